// bench_train_step — training throughput at the reference size on real Wikipedia batches, and
// the fraction of the machine's GEMM rate a whole step reaches.
//
//   bench_train_step [--data FILE]   (default $MLM_DATA/wiki-sentences.train-100k.txt, the full
//                                     corpus of data/README.md, else data/wiki-train-30k.txt.xz)
//                    [--tokenizer tok.model] [--save-tokenizer tok.model]
//                    [--batch-tokens 4096] [--fixed 32x128] [--steps 4]
//                    [--export-batches FILE] [--batches FILE]
//                    [--threads 2] [--runs 5] [--gemm 1] [--json FILE]
//
// Batches: the sentences are tokenized (a unigram-8192 tokenizer trained on the file unless
// --tokenizer is given; --save-tokenizer keeps it), cut into length-bucketed batches of about
// --batch-tokens real tokens and masked at 15%, exactly as `mlm train --batch-tokens` does;
// --fixed BxT makes B rows of T real tokens each (the original's full-length shape): sentences of
// at least T tokens cut to T, and when the file has too few of those, the following rows are
// consecutive sentences joined and cut into T-token pieces.
// --export-batches writes the batches (masked ids, offsets, labels; see bench_common.hpp) to a
// file, and --batches reads them from one instead of tokenizing: bench/compare_torch.py gives the
// same file to the PyTorch side. --runs 0 stops after making (and exporting) the batches.
//
// Each run alternates, in one process: (a) a full training step (forward, backward, AdamW) on
// each of --steps batches; (b) unless --gemm 0, the same step's matrix products alone, through
// Eigen's own threaded product (`C.noalias() += A * B`), the machine's "GEMM rate" on these
// shapes. A warm-up pass of both comes first. The report gives medians over --runs runs with
// min-max, tokens/s, GFLOP/s and step / GEMM; --json writes them (and the process's peak resident
// memory) to a file.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <mlm/collator.hpp>
#include <mlm/data.hpp>
#include <mlm/encoder.hpp>
#include <mlm/optimizer.hpp>
#include <mlm/tokenizer.hpp>

#include "bench_common.hpp"

namespace {

using bench::Clock;
using bench::seconds_since;
using bench::Stat;
using bench::stat;

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

// Rows of exactly T real tokens for --fixed BxT: sentences of at least T tokens cut to T, then, if
// there are too few, consecutive shorter sentences joined and cut into T-token pieces.
std::vector<std::vector<int32_t>> full_length_rows(const mlm::TokenizedCorpus& corpus, int T, std::size_t count,
                                                   std::size_t* joined) {
    std::vector<std::vector<int32_t>> rows;
    for (std::size_t i = 0; i < corpus.size() && rows.size() < count; ++i) {
        if (corpus.length(i) < T) continue;
        std::vector<int32_t> s = corpus.sequence(i);
        s.resize(static_cast<std::size_t>(T));
        rows.push_back(std::move(s));
    }
    *joined = 0;
    std::vector<int32_t> run;
    for (std::size_t i = 0; i < corpus.size() && rows.size() < count; ++i) {
        if (corpus.length(i) >= T) continue;  // used above
        const std::vector<int32_t> s = corpus.sequence(i);
        run.insert(run.end(), s.begin(), s.end());
        while (static_cast<int>(run.size()) >= T && rows.size() < count) {
            rows.emplace_back(run.begin(), run.begin() + T);
            run.erase(run.begin(), run.begin() + T);
            ++*joined;
        }
    }
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    const char* corpus = std::getenv("MLM_DATA");
    std::string data = corpus ? std::string(corpus) + "/wiki-sentences.train-100k.txt" : "data/wiki-train-30k.txt.xz",
                tokenizer_path, save_tokenizer, export_path, batches_path, json_path;
    int batch_tokens = 4096, threads = 2, runs = 5, steps = 4, fixed_b = 0, fixed_t = 0, gemm = 1;
    for (int i = 1; i < argc; i += 2) {
        const std::string k = argv[i];
        if (i + 1 >= argc) {
            std::fprintf(stderr, "option %s needs a value\n", argv[i]);
            return 2;
        }
        if (k == "--data") data = argv[i + 1];
        else if (k == "--tokenizer") tokenizer_path = argv[i + 1];
        else if (k == "--save-tokenizer") save_tokenizer = argv[i + 1];
        else if (k == "--batch-tokens") batch_tokens = std::atoi(argv[i + 1]);
        else if (k == "--threads") threads = std::atoi(argv[i + 1]);
        else if (k == "--runs") runs = std::atoi(argv[i + 1]);
        else if (k == "--steps") steps = std::atoi(argv[i + 1]);
        else if (k == "--fixed") std::sscanf(argv[i + 1], "%dx%d", &fixed_b, &fixed_t);
        else if (k == "--export-batches") export_path = argv[i + 1];
        else if (k == "--batches") batches_path = argv[i + 1];
        else if (k == "--gemm") gemm = std::atoi(argv[i + 1]);
        else if (k == "--json") json_path = argv[i + 1];
        else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (steps < 1) {
        std::fprintf(stderr, "--steps must be at least 1\n");
        return 2;
    }
    mlm::set_num_threads(threads);

    mlm::ModelConfig config;
    std::vector<mlm::Batch> batches;
    std::string kind;
    if (!batches_path.empty()) {
        int pad_id = 0;
        batches = bench::read_batches(batches_path, &config.vocab_size, &pad_id);
        if (pad_id != config.pad_id || batches.empty()) {
            std::fprintf(stderr, "%s: pad id %d (the model's is %d), %zu batches\n", batches_path.c_str(), pad_id,
                         config.pad_id, batches.size());
            return 1;
        }
        steps = static_cast<int>(batches.size());
        kind = "batches read from " + batches_path;
    } else {
        mlm::Tokenizer tokenizer;
        if (!tokenizer_path.empty()) {
            tokenizer = mlm::Tokenizer::load(tokenizer_path);
        } else {
            std::printf("training a unigram-8192 tokenizer on %s ...\n", data.c_str());
            mlm::TokenizerTrainOptions o;
            o.max_sentences = 100000;
            tokenizer = mlm::Tokenizer::train({data}, o);
        }
        if (!save_tokenizer.empty()) tokenizer.save(save_tokenizer);
        mlm::TokenizeOptions topt;
        topt.max_sentences = 40000;
        const mlm::TokenizedCorpus corpus = mlm::tokenize_file(tokenizer, data, topt);
        config.vocab_size = tokenizer.vocab_size();
        const mlm::MaskingCollator collator(tokenizer, {}, 7);

        // The batches: bucketed token-budget batches, or B rows of T tokens.
        batches.resize(static_cast<std::size_t>(steps));
        if (fixed_b > 0) {
            const std::size_t count = static_cast<std::size_t>(fixed_b) * steps;
            std::size_t joined = 0;
            const auto rows = full_length_rows(corpus, fixed_t, count, &joined);
            if (rows.size() < count) {
                std::fprintf(stderr, "not enough text for %zu rows of %d tokens\n", count, fixed_t);
                return 1;
            }
            for (int s = 0; s < steps; ++s) {
                std::vector<std::vector<int32_t>> part(rows.begin() + s * fixed_b, rows.begin() + (s + 1) * fixed_b);
                std::vector<uint64_t> idx(static_cast<std::size_t>(fixed_b));
                for (int k = 0; k < fixed_b; ++k) idx[k] = static_cast<uint64_t>(s) * fixed_b + k;
                collator.collate(part, idx, 0, batches[s]);
            }
            kind = "full-length rows of " + std::to_string(fixed_t) + " tokens (" + std::to_string(count - joined) +
                   " single sentences, " + std::to_string(joined) + " joined from consecutive sentences)";
        } else {
            mlm::BatcherOptions bo;
            bo.max_tokens = static_cast<std::size_t>(batch_tokens);
            const auto plan = mlm::Batcher(corpus, bo, 3).epoch_batches(0);
            for (int s = 0; s < steps; ++s)
                collator.collate(corpus, plan[static_cast<std::size_t>(s) * 7 % plan.size()], 0, batches[s]);
            kind = "length-bucketed token-budget batches";
        }
        if (!export_path.empty()) {
            bench::write_batches(export_path, batches, config.vocab_size, config.pad_id);
            std::printf("wrote %d batches to %s\n", steps, export_path.c_str());
        }
    }
    double tokens = 0, flops = 0, linear_flops = 0, sequences = 0, targets = 0;
    for (const auto& b : batches) {
        const Flops f = step_flops(config, b);
        tokens += b.num_tokens();
        sequences += b.num_sequences();
        targets += b.num_targets();
        flops += f.linear + f.attention;
        linear_flops += f.linear;
    }
    std::printf("%d batches: %.0f real tokens, %.1f sequences, %.0f targets each on average, %d threads; %s\n",
                steps, tokens / steps, sequences / steps, targets / steps, threads, kind.c_str());
    if (runs <= 0) return 0;

    const long rss_before_model = bench::proc_status_kib("VmRSS");
    mlm::Encoder<float> model(config, 1);
    mlm::Adam<float> adam(model.layout(), [] {
        mlm::AdamOptions o;
        o.weight_decay = 0.01;
        return o;
    }());
    const long rss_model = bench::proc_status_kib("VmRSS");

    GemmReplay gemm_replay;
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
            const auto [lin, att] = gemm_replay.run(config, b);
            t.first += lin;
            t.second += lin + att;
        }
        return t;
    };
    train_pass(0);  // warm-up: sizes the workspace
    if (gemm) gemm_pass();
    // The machine's GEMM rate is that of the big products (linears and head); the attention's
    // small products run slower in Eigen and are reported apart.
    std::printf("step FLOPs: %.1f M per real token (%.1f%% attention)\n", flops / tokens * 1e-6,
                100 * (flops - linear_flops) / flops);
    std::vector<double> step_rate, step_gflops, gemm_rate, all_rate, fraction, cpu_rate;
    for (int r = 0; r < runs; ++r) {
        const std::clock_t cpu0 = std::clock();
        const double ts = train_pass(100 + static_cast<uint64_t>(r) * steps);
        cpu_rate.push_back(tokens / (static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC));
        step_rate.push_back(tokens / ts);
        step_gflops.push_back(flops / ts * 1e-9);
        if (!gemm) {
            std::printf("run %d: step %.0f tokens/s (%.1f GFLOP/s)\n", r, tokens / ts, flops / ts * 1e-9);
            continue;
        }
        const auto [t_linear, t_all] = gemm_pass();
        const double rate = linear_flops / t_linear;  // FLOP/s of Eigen on the big shapes
        gemm_rate.push_back(rate * 1e-9);
        all_rate.push_back(flops / t_all * 1e-9);
        fraction.push_back(flops / ts / rate);
        std::printf("run %d: step %.0f tokens/s (%.1f GFLOP/s); Eigen GEMM %.1f GFLOP/s (with attention %.1f); "
                    "step/GEMM %.2f\n", r, tokens / ts, flops / ts * 1e-9, rate * 1e-9, flops / t_all * 1e-9,
                    flops / ts / rate);
    }
    const Stat s = stat(step_rate), g = stat(gemm_rate), a = stat(all_rate), f = stat(fraction);
    if (gemm)
        std::printf("median of %d runs: training %.0f real tokens/s (min %.0f, max %.0f); "
                    "Eigen GEMM rate %.1f GFLOP/s (%.1f-%.1f; %.1f counting the attention products); "
                    "a step reaches %.0f%% of it (%.0f-%.0f%%)\n",
                    runs, s.median, s.min, s.max, g.median, g.min, g.max, a.median, 100 * f.median,
                    100 * f.min, 100 * f.max);
    else
        std::printf("median of %d runs: training %.0f real tokens/s (min %.0f, max %.0f)\n", runs, s.median,
                    s.min, s.max);
    const long peak = bench::proc_status_kib("VmHWM");
    std::printf("peak resident memory %.1f MiB (%.1f MiB before the model was made)\n", peak / 1024.0,
                rss_before_model / 1024.0);
    if (!json_path.empty()) {
        bench::JsonObject j;
        j.str("program", "bench_train_step")
            .str("batches", kind)
            .integer("threads", threads)
            .integer("steps", steps)
            .integer("runs", runs)
            .num("tokens_per_step", tokens / steps)
            .num("sequences_per_step", sequences / steps)
            .num("targets_per_step", targets / steps)
            .num("flops_per_token", flops / tokens)
            .num("attention_flop_fraction", (flops - linear_flops) / flops)
            .array("tokens_per_s", step_rate)
            .stat("tokens_per_s_stat", s)
            .array("step_gflops", step_gflops)
            .array("tokens_per_cpu_s", cpu_rate)
            .boolean("gemm", gemm != 0);
        if (gemm)
            j.array("gemm_gflops", gemm_rate)
                .stat("gemm_gflops_stat", g)
                .array("gemm_gflops_with_attention", all_rate)
                .array("step_over_gemm", fraction)
                .stat("step_over_gemm_stat", f);
        j.integer("rss_before_model_kib", rss_before_model)
            .integer("rss_after_model_kib", rss_model)
            .integer("peak_rss_kib", peak);
        j.write(json_path);
    }
}
