// bench_gemm — GFLOP/s of the matrix products of one training step at the reference size,
// with mlm::gemm (our threading, reused buffers) and Eigen's own product, side by side.
//
//   bench_gemm [--tokens 4096] [--threads 2] [--reps 5]
//   bench_gemm --peak [--threads 2]     the cores' fused multiply-add peak (see fma_peak_gflops)
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

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

// The FMA peak of `threads` cores in GFLOP/s: every thread runs 12 independent chains of fused
// multiply-adds on registers only (no loads or stores), enough to cover the FMA latency on both
// pipes, so nothing but the FMA units limits it. The best of 5 timings of the whole team.
static double fma_peak_gflops(int threads) {
#if defined(__AVX512F__)
    using V = __m512;
    constexpr int lanes = 16;
    auto set = [](float x) { return _mm512_set1_ps(x); };
    auto fma = [](V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); };
    auto first = [](V a) { return _mm512_cvtss_f32(a); };
#elif defined(__FMA__)
    using V = __m256;
    constexpr int lanes = 8;
    auto set = [](float x) { return _mm256_set1_ps(x); };
    auto fma = [](V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); };
    auto first = [](V a) { return _mm256_cvtss_f32(a); };
#else
    using V = float;
    constexpr int lanes = 1;
    auto set = [](float x) { return x; };
    auto fma = [](V a, V b, V c) { return a * b + c; };
    auto first = [](V a) { return a; };
#endif
    constexpr int chains = 12;
    const long iters = 50'000'000;
    volatile float sink = 0;
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
        {
            V acc[chains];
            for (int c = 0; c < chains; ++c) acc[c] = set(0.001f * static_cast<float>(c));
            const V mul = set(0.999999f), add = set(1e-7f);
            for (long i = 0; i < iters; ++i)
                for (int c = 0; c < chains; ++c) acc[c] = fma(acc[c], mul, add);
            float total = 0;
            for (int c = 0; c < chains; ++c) total += first(acc[c]);
            sink = sink + total;
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, 2.0 * lanes * chains * static_cast<double>(iters) * threads / s * 1e-9);
    }
    (void)sink;
    return best;
}

struct Shape { const char* name; int M, N, K; bool ta, tb; int count; };

int main(int argc, char** argv) {
    int tokens = 4096, threads = 2, reps = 5;
    bool peak = false;
    for (int i = 1; i < argc; ++i) {
        const bool value = i + 1 < argc;
        if (!std::strcmp(argv[i], "--peak")) peak = true;
        else if (!std::strcmp(argv[i], "--tokens") && value) tokens = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--threads") && value) threads = std::atoi(argv[++i]);
        else if (!std::strcmp(argv[i], "--reps") && value) reps = std::atoi(argv[++i]);
        else {
            std::fprintf(stderr, "usage: bench_gemm [--tokens N] [--threads T] [--reps R] | --peak [--threads T]\n");
            return 2;
        }
    }
    mlm::set_num_threads(threads);
    if (peak) {
        std::printf("FMA peak: %.1f GFLOP/s on 1 thread, %.1f on %d threads\n", fma_peak_gflops(1),
                    fma_peak_gflops(threads), threads);
        return 0;
    }
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
    // each operand sized for the largest shape that uses it (small --tokens make C's V x C the largest)
    std::size_t a_size = 0, b_size = 0, c_size = 0;
    for (const auto& s : shapes) {
        a_size = std::max(a_size, static_cast<std::size_t>(s.M) * s.K);
        b_size = std::max(b_size, static_cast<std::size_t>(s.K) * s.N);
        c_size = std::max(c_size, static_cast<std::size_t>(s.M) * s.N);
    }
    std::vector<float> A(a_size), B(b_size), Cm(c_size);
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
