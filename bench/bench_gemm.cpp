// bench_gemm — GFLOP/s of the matrix products of one training step at the reference size,
// with mlm::gemm (our threading, reused buffers) and Eigen's own product, side by side.
//
//   bench_gemm [--tokens 4096] [--threads 2] [--reps 5]
// The shapes: N tokens, C 256, F 1024, V 8192, M = 15% of N labelled rows; forward, backward
// w.r.t. inputs and w.r.t. weights of every linear and of the tied head. The token-weighted
// total is the "machine GEMM rate" a training step is compared against.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <mlm/ops/gemm.hpp>
#include <mlm/random.hpp>

struct Shape { const char* name; int M, N, K; bool ta, tb; int count; };

int main(int argc, char** argv) {
    int tokens = 4096, threads = 2, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!std::strcmp(argv[i], "--tokens")) tokens = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
        else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    }
    mlm::set_num_threads(threads);
    const int N = tokens, C = 256, F = 1024, V = 8192, M = tokens * 15 / 100, L = 6;
    const Shape shapes[] = {
        {"fwd qkv    x W^T", N, 3 * C, C, false, true, L},
        {"fwd out    x W^T", N, C, C, false, true, L},
        {"fwd ff0    x W^T", N, F, C, false, true, L},
        {"fwd ff3    x W^T", N, C, F, false, true, L},
        {"fwd head   h E^T", M, V, C, false, true, 1},
        {"bwd qkv    dy W", N, C, 3 * C, false, false, L},
        {"bwd out    dy W", N, C, C, false, false, L},
        {"bwd ff0    dy W", N, C, F, false, false, L},
        {"bwd ff3    dy W", N, F, C, false, false, L},
        {"bwd head   dz E", M, C, V, false, false, 1},
        {"grad qkv   dy^T x", 3 * C, C, N, true, false, L},
        {"grad out   dy^T x", C, C, N, true, false, L},
        {"grad ff0   dy^T x", F, C, N, true, false, L},
        {"grad ff3   dy^T x", C, F, N, true, false, L},
        {"grad head  dz^T h", V, C, M, true, false, 1},
    };
    mlm::Rng rng(1);
    std::vector<float> A(static_cast<std::size_t>(N) * V), B(static_cast<std::size_t>(V) * F), Cm(static_cast<std::size_t>(N) * V);
    for (auto& x : A) x = static_cast<float>(rng.uniform() - 0.5);
    for (auto& x : B) x = static_cast<float>(rng.uniform() - 0.5);
    mlm::GemmWorkspace<float> ws;
    double total_flop = 0, total_mlm = 0, total_eigen = 0;
    std::printf("%-20s %6s %6s %6s   %10s %10s\n", "product", "M", "N", "K", "mlm GF/s", "Eigen GF/s");
    for (const auto& s : shapes) {
        const int lda = s.ta ? s.M : s.K, ldb = s.tb ? s.K : s.N;
        auto time = [&](bool ours) {
            std::vector<double> t;
            for (int r = 0; r < reps + 1; ++r) {
                auto t0 = std::chrono::steady_clock::now();
                if (ours) mlm::gemm(Cm.data(), s.N, A.data(), lda, s.ta, B.data(), ldb, s.tb, s.M, s.N, s.K, ws);
                else mlm::gemm_reference(Cm.data(), s.N, A.data(), lda, s.ta, B.data(), ldb, s.tb, s.M, s.N, s.K);
                auto t1 = std::chrono::steady_clock::now();
                if (r > 0) t.push_back(std::chrono::duration<double>(t1 - t0).count());
            }
            std::sort(t.begin(), t.end());
            return t[t.size() / 2];
        };
        const double ours = time(true), eigen = time(false);
        const double flop = 2.0 * s.M * s.N * s.K;
        std::printf("%-20s %6d %6d %6d   %10.1f %10.1f\n", s.name, s.M, s.N, s.K, flop / ours * 1e-9, flop / eigen * 1e-9);
        total_flop += flop * s.count;
        total_mlm += ours * s.count;
        total_eigen += eigen * s.count;
    }
    std::printf("step total (%d threads): mlm %.1f GFLOP/s, Eigen %.1f GFLOP/s; products alone allow %.0f tokens/s (mlm)\n",
                threads, total_flop / total_mlm * 1e-9, total_flop / total_eigen * 1e-9, N / total_mlm);
}
