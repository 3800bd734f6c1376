// bench_step — real tokens per second of full training steps (forward, backward) at the
// reference size on packed batches, and the time of each phase.
//
//   bench_step [--tokens 4096] [--steps 10] [--threads 2] [--fixed 32x128]
// Batches have synthetic lengths drawn like Wikipedia sentences (mean ~32 tokens) unless
// --fixed BxT is given (B full-length sequences of T tokens, the original's shape).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <mlm/encoder.hpp>

int main(int argc, char** argv) {
    int tokens = 4096, steps = 10, threads = 2, fixed_b = 0, fixed_t = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--tokens")) tokens = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--fixed")) std::sscanf(argv[i + 1], "%dx%d", &fixed_b, &fixed_t);
    }
    mlm::set_num_threads(threads);
    mlm::ModelConfig config;
    mlm::Encoder<float> model(config, 1);
    mlm::Rng rng(5);
    mlm::Batch batch;
    int n = 0;
    while (fixed_b ? batch.num_sequences() < fixed_b : n < tokens) {
        int L = fixed_b ? fixed_t : 8 + static_cast<int>(rng.below(49));
        if (!fixed_b) L = std::min(L, tokens - n);
        if (L < 1) break;
        std::vector<int32_t> ids(L), labels(L, -100);
        for (int i = 0; i < L; ++i) {
            ids[i] = 3 + static_cast<int>(rng.below(config.vocab_size - 3));
            if (rng.uniform() < 0.15) { labels[i] = ids[i]; ids[i] = config.mask_id; }
        }
        batch.add_sequence(ids, labels);
        n += L;
    }
    std::printf("batch: %d sequences, %d tokens, %d targets, %d threads\n", batch.num_sequences(),
                batch.num_tokens(), batch.num_targets(), threads);
    std::vector<double> times;
    for (int s = 0; s < steps + 1; ++s) {
        auto t0 = std::chrono::steady_clock::now();
        model.zero_grad();
        model.forward(batch, {true, static_cast<uint64_t>(s)});
        auto t1 = std::chrono::steady_clock::now();
        model.backward();
        auto t2 = std::chrono::steady_clock::now();
        const double f = std::chrono::duration<double>(t1 - t0).count();
        const double b = std::chrono::duration<double>(t2 - t1).count();
        if (s > 0) times.push_back(f + b);
        std::printf("step %d: forward %.1f ms, backward %.1f ms, %.0f tokens/s\n", s, f * 1e3, b * 1e3,
                    batch.num_tokens() / (f + b));
    }
    std::sort(times.begin(), times.end());
    std::printf("median: %.0f real tokens/s\n", batch.num_tokens() / times[times.size() / 2]);
}
