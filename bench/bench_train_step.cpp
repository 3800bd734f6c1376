// bench_train_step — training throughput at the reference size on real Wikipedia batches, and
// the fraction of the machine's GEMM rate a whole step reaches.
//
//   bench_train_step --data ../shared/data/wiki-sentences.train-100k.txt
//                    [--tokenizer tok.model] [--batch-tokens 4096] [--fixed 32x128]
//                    [--threads 2] [--runs 5] [--steps 4]
//
// Batches: the sentences are tokenized (a unigram-8192 tokenizer trained on the file unless
// --tokenizer is given), cut into length-bucketed batches of about --batch-tokens real tokens and
// masked at 15%, exactly as `mlm train --batch-tokens` does; --fixed BxT uses B sentences of at
// least T tokens truncated to T (the original's full-length shape).
//
// Each run alternates, in one process: (a) a full training step (forward, backward, AdamW) on
// each of --steps batches; (b) the same step's matrix products alone, through Eigen's own
// threaded product (`C.noalias() += A * B`), the machine's "GEMM rate" on these shapes. The
// report gives medians over --runs runs with min-max, tokens/s, GFLOP/s and step / GEMM.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <mlm/collator.hpp>
#include <mlm/data.hpp>
#include <mlm/encoder.hpp>
#include <mlm/optimizer.hpp>
#include <mlm/tokenizer.hpp>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stat {
    double median, min, max;
};
Stat stat(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return {v[v.size() / 2], v.front(), v.back()};
}

// Matrix-product FLOPs of one training step (forward, input and weight gradients): the linears
// and the head, and the attention products.
struct Flops {
    double linear = 0, attention = 0;
};
Flops step_flops(const mlm::ModelConfig& c, const mlm::Batch& b) {
    const double N = b.num_tokens(), M = b.num_targets(), C = c.dim, F = c.ffn_dim(), V = c.vocab_size;
    Flops f;
    f.linear = 3 * (c.n_layers * 2 * N * C * (3 * C + C + 2 * F) + 2 * M * C * V);
    for (int s = 0; s < b.num_sequences(); ++s)
        f.attention += 3 * c.n_layers * 2.0 * 2 * double(b.length(s)) * b.length(s) * C;
    return f;
}

// The same products through Eigen's threaded GEMM, on buffers of the right shapes.
struct GemmReplay {
    std::vector<float> a, b, c;
    // Returns the seconds of the linear/head products and of the attention products.
    std::pair<double, double> run(const mlm::ModelConfig& cfg, const mlm::Batch& batch) {
        const int N = batch.num_tokens(), M = batch.num_targets(), C = cfg.dim, F = cfg.ffn_dim(),
                  V = cfg.vocab_size;
        const std::size_t big = static_cast<std::size_t>(std::max(N, V)) * std::max(F, 3 * C);
        if (a.size() < big) {
            a.assign(big, 0.01f);
            b.assign(big, 0.02f);
            c.assign(big, 0.0f);
        }
        auto prod = [&](int m, int n, int k, bool ta, bool tb) {
            mlm::gemm_reference(c.data(), n, a.data(), ta ? m : k, ta, b.data(), tb ? k : n, tb, m, n, k);
        };
        auto t0 = Clock::now();
        double attention = 0;
        for (int l = 0; l < cfg.n_layers; ++l) {
            for (int o : {3 * C, C, F}) prod(N, o, C, false, true);  // forward qkv, out, ff0
            prod(N, C, F, false, true);                              // ff3
            for (int o : {3 * C, C, F}) prod(N, C, o, false, false);  // d input
            prod(N, F, C, false, false);
            for (int o : {3 * C, C, F}) prod(o, C, N, true, false);   // d weight
            prod(C, F, N, true, false);
            const auto ta = Clock::now();
            for (int s = 0; s < batch.num_sequences(); ++s) {  // attention, all heads at once
                const int L = batch.length(s);
                for (int rep = 0; rep < 3; ++rep) {
                    prod(L, L, C, false, true);
                    prod(L, C, L, false, false);
                }
            }
            attention += seconds_since(ta);
        }
        prod(M, V, C, false, true);  // head forward, d input, d weight
        prod(M, C, V, false, false);
        prod(V, C, M, true, false);
        return {seconds_since(t0) - attention, attention};
    }
};

}  // namespace

int main(int argc, char** argv) {
    std::string data = "../shared/data/wiki-sentences.train-100k.txt", tokenizer_path;
    int batch_tokens = 4096, threads = 2, runs = 5, steps = 4, fixed_b = 0, fixed_t = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--data") data = argv[i + 1];
        else if (k == "--tokenizer") tokenizer_path = argv[i + 1];
        else if (k == "--batch-tokens") batch_tokens = std::atoi(argv[i + 1]);
        else if (k == "--threads") threads = std::atoi(argv[i + 1]);
        else if (k == "--runs") runs = std::atoi(argv[i + 1]);
        else if (k == "--steps") steps = std::atoi(argv[i + 1]);
        else if (k == "--fixed") std::sscanf(argv[i + 1], "%dx%d", &fixed_b, &fixed_t);
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    mlm::set_num_threads(threads);

    mlm::Tokenizer tokenizer;
    if (!tokenizer_path.empty()) {
        tokenizer = mlm::Tokenizer::load(tokenizer_path);
    } else {
        std::printf("training a unigram-8192 tokenizer on %s ...\n", data.c_str());
        mlm::TokenizerTrainOptions o;
        o.max_sentences = 100000;
        tokenizer = mlm::Tokenizer::train({data}, o);
    }
    mlm::TokenizeOptions topt;
    topt.max_sentences = 40000;
    const mlm::TokenizedCorpus corpus = mlm::tokenize_file(tokenizer, data, topt);

    mlm::ModelConfig config;
    config.vocab_size = tokenizer.vocab_size();
    mlm::Encoder<float> model(config, 1);
    mlm::Adam<float> adam(model.layout(), [] {
        mlm::AdamOptions o;
        o.weight_decay = 0.01;
        return o;
    }());
    const mlm::MaskingCollator collator(tokenizer, {}, 7);

    // The batches: bucketed token-budget batches, or B sentences cut to T tokens.
    std::vector<mlm::Batch> batches(steps);
    if (fixed_b > 0) {
        std::vector<std::vector<int32_t>> seqs;
        std::vector<uint64_t> index;
        for (std::size_t i = 0; i < corpus.size() && static_cast<int>(seqs.size()) < fixed_b * steps; ++i) {
            std::vector<int32_t> s = corpus.sequence(i);
            if (static_cast<int>(s.size()) < fixed_t) continue;
            s.resize(fixed_t);
            seqs.push_back(std::move(s));
            index.push_back(i);
        }
        if (static_cast<int>(seqs.size()) < fixed_b * steps) {
            std::fprintf(stderr, "not enough sentences of %d tokens\n", fixed_t);
            return 1;
        }
        for (int s = 0; s < steps; ++s) {
            std::vector<std::vector<int32_t>> part(seqs.begin() + s * fixed_b, seqs.begin() + (s + 1) * fixed_b);
            std::vector<uint64_t> idx(index.begin() + s * fixed_b, index.begin() + (s + 1) * fixed_b);
            collator.collate(part, idx, 0, batches[s]);
        }
    } else {
        mlm::BatcherOptions bo;
        bo.max_tokens = static_cast<std::size_t>(batch_tokens);
        const auto plan = mlm::Batcher(corpus, bo, 3).epoch_batches(0);
        for (int s = 0; s < steps; ++s) collator.collate(corpus, plan[static_cast<std::size_t>(s) * 7 % plan.size()], 0, batches[s]);
    }
    double tokens = 0, flops = 0, linear_flops = 0;
    for (const auto& b : batches) {
        const Flops f = step_flops(config, b);
        tokens += b.num_tokens();
        flops += f.linear + f.attention;
        linear_flops += f.linear;
    }
    std::printf("%d batches: %.0f real tokens each on average, %d threads, %s\n", steps, tokens / steps,
                threads, fixed_b ? "full-length sequences" : "length-bucketed token-budget batches");

    GemmReplay gemm;
    auto train_pass = [&](uint64_t key) {
        const auto t0 = Clock::now();
        for (const auto& b : batches) {
            model.zero_grad();
            model.forward(b, {true, key++});
            model.backward();
            adam.step(model.parameters(), model.gradients(), 1e-4);
        }
        return seconds_since(t0);
    };
    auto gemm_pass = [&] {  // seconds of the linear products, and of all products
        std::pair<double, double> t{0, 0};
        for (const auto& b : batches) {
            const auto [lin, att] = gemm.run(config, b);
            t.first += lin;
            t.second += lin + att;
        }
        return t;
    };
    train_pass(0);  // warm-up: sizes the workspace
    gemm_pass();
    // The machine's GEMM rate is that of the big products (linears and head); the attention's
    // small products run slower in Eigen and are reported apart.
    std::printf("step FLOPs: %.1f M per real token (%.1f%% attention)\n", flops / tokens * 1e-6,
                100 * (flops - linear_flops) / flops);
    std::vector<double> step_rate, gemm_rate, all_rate, fraction;
    for (int r = 0; r < runs; ++r) {
        const double ts = train_pass(100 + r * steps);
        const auto [t_linear, t_all] = gemm_pass();
        const double rate = linear_flops / t_linear;  // FLOP/s of Eigen on the big shapes
        step_rate.push_back(tokens / ts);
        gemm_rate.push_back(rate * 1e-9);
        all_rate.push_back(flops / t_all * 1e-9);
        fraction.push_back(flops / ts / rate);
        std::printf("run %d: step %.0f tokens/s (%.1f GFLOP/s); Eigen GEMM %.1f GFLOP/s (with attention %.1f); "
                    "step/GEMM %.2f\n", r, tokens / ts, flops / ts * 1e-9, rate * 1e-9, flops / t_all * 1e-9,
                    flops / ts / rate);
    }
    const Stat s = stat(step_rate), g = stat(gemm_rate), a = stat(all_rate), f = stat(fraction);
    std::printf("median of %d runs: training %.0f real tokens/s (min %.0f, max %.0f); "
                "Eigen GEMM rate %.1f GFLOP/s (%.1f-%.1f; %.1f counting the attention products); "
                "a step reaches %.0f%% of it (%.0f-%.0f%%)\n",
                runs, s.median, s.min, s.max, g.median, g.min, g.max, a.median, 100 * f.median,
                100 * f.min, 100 * f.max);
}
