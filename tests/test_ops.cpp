// Every op: a hand-checkable case and a finite-difference check of its backward, in double.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <mlm/ops/attention.hpp>
#include <mlm/ops/cross_entropy.hpp>
#include <mlm/ops/dropout.hpp>
#include <mlm/ops/embedding.hpp>
#include <mlm/ops/gelu.hpp>
#include <mlm/ops/gemm.hpp>
#include <mlm/ops/linear.hpp>
#include <mlm/ops/rmsnorm.hpp>

#include "gradcheck.hpp"

using mlm::test::dot;
using mlm::test::grad_check;
using mlm::test::random_vector;
using std::vector;

constexpr double kTol = 1e-6;  // normalized finite-difference error bound, double precision

TEST_CASE("rmsnorm: a 2x5 input by hand") {
    const vector<double> x = {1, 2, 3, 4, 5, -1, 0, 1, 0, 0};
    const vector<double> scale = {1, 1, 1, 1, 2};
    vector<double> y(10), rinv(2);
    mlm::rmsnorm_forward(y.data(), rinv.data(), x.data(), scale.data(), 2, 5, 1e-8);
    const double r0 = std::sqrt(55.0 / 5.0), r1 = std::sqrt(2.0 / 5.0);
    const vector<double> expect = {1 / r0, 2 / r0, 3 / r0, 4 / r0, 10 / r0,
                                   -1 / r1, 0, 1 / r1, 0, 0};
    for (int i = 0; i < 10; ++i) CHECK(y[i] == doctest::Approx(expect[i]).epsilon(1e-7));
    CHECK(y[5] == doctest::Approx(-1.5811388).epsilon(1e-7));
}

TEST_CASE("rmsnorm: finite differences") {
    const int N = 3, C = 7;
    auto x = random_vector(N * C, 1), scale = random_vector(C, 2), w = random_vector(N * C, 3);
    for (auto& s : scale) s += 1.0;
    vector<double> y(N * C), rinv(N), dx(N * C, 0.0), dscale(C, 0.0);
    auto f = [&] {
        mlm::rmsnorm_forward(y.data(), rinv.data(), x.data(), scale.data(), N, C, 1e-8);
        return dot(w, y.data());
    };
    f();
    mlm::rmsnorm_backward_input(dx.data(), w.data(), x.data(), rinv.data(), scale.data(), N, C);
    mlm::rmsnorm_backward_scale(dscale.data(), w.data(), x.data(), rinv.data(), N, C);
    CHECK(grad_check(f, x.data(), dx.data(), x.size()).normalized_error < kTol);
    CHECK(grad_check(f, scale.data(), dscale.data(), scale.size()).normalized_error < kTol);
}

TEST_CASE("linear: by hand and finite differences") {
    // y = x W^T + b with W (2, 3)
    const vector<double> x1 = {1, 2, 3}, W1 = {1, 0, -1, 2, 1, 0}, b1 = {0.5, -1};
    vector<double> y1(2);
    mlm::GemmWorkspace<double> ws;
    mlm::linear_forward(y1.data(), x1.data(), W1.data(), b1.data(), 1, 3, 2, ws);
    CHECK(y1[0] == doctest::Approx(-1.5));
    CHECK(y1[1] == doctest::Approx(3.0));

    const int N = 4, I = 5, O = 3;
    auto x = random_vector(N * I, 4), W = random_vector(O * I, 5), b = random_vector(O, 6),
         w = random_vector(N * O, 7);
    vector<double> y(N * O), dx(N * I, 0.0), dW(O * I, 0.0), db(O, 0.0);
    auto f = [&] {
        mlm::linear_forward(y.data(), x.data(), W.data(), b.data(), N, I, O, ws);
        return dot(w, y.data());
    };
    f();
    mlm::linear_backward_input(dx.data(), w.data(), W.data(), N, I, O, ws);
    mlm::linear_backward_weight(dW.data(), db.data(), w.data(), x.data(), N, I, O, ws);
    CHECK(grad_check(f, x.data(), dx.data(), x.size()).normalized_error < kTol);
    CHECK(grad_check(f, W.data(), dW.data(), W.size()).normalized_error < kTol);
    CHECK(grad_check(f, b.data(), db.data(), b.size()).normalized_error < kTol);
}

TEST_CASE("gelu: known values and finite differences") {
    const vector<double> x = {0, 1, -1, 2, -3};
    vector<double> y(5);
    mlm::gelu_forward(y.data(), x.data(), 5);
    CHECK(y[0] == doctest::Approx(0.0));
    CHECK(y[1] == doctest::Approx(0.8413447460685429).epsilon(1e-12));
    CHECK(y[2] == doctest::Approx(-0.15865525393145707).epsilon(1e-12));
    CHECK(y[3] == doctest::Approx(1.9544997361036416).epsilon(1e-12));
    CHECK(y[4] == doctest::Approx(-0.004049694744305).epsilon(1e-9));

    // float goes through Eigen's vectorized erf: close to the double values
    const vector<float> xf = {0.5f, -0.5f, 1.5f, 3.0f};
    vector<float> yf(4);
    mlm::gelu_forward(yf.data(), xf.data(), 4);
    for (int i = 0; i < 4; ++i) {
        const double xi = xf[i], exact = 0.5 * xi * (1 + std::erf(xi / std::sqrt(2.0)));
        CHECK(yf[i] == doctest::Approx(exact).epsilon(2e-6));
    }

    const int n = 5000;  // spans several parallel chunks
    auto xs = random_vector(n, 8, 2.0), w = random_vector(n, 9);
    vector<double> ys(n), dx(n, 0.0);
    auto f = [&] {
        mlm::gelu_forward(ys.data(), xs.data(), n);
        return dot(w, ys.data());
    };
    f();
    mlm::gelu_backward(dx.data(), w.data(), xs.data(), n);
    CHECK(grad_check(f, xs.data(), dx.data(), n, 200).normalized_error < kTol);
    vector<double> d2 = w;
    mlm::gelu_backward_inplace(d2.data(), xs.data(), n);
    for (int i = 0; i < n; ++i) REQUIRE(d2[i] == doctest::Approx(dx[i]).epsilon(1e-14));
}

TEST_CASE("dropout: mask statistics, determinism and finite differences") {
    const std::size_t n = 200000;
    vector<uint8_t> keep(n), keep2(n);
    mlm::dropout_mask(keep.data(), n, 0.1f, 1234);
    mlm::dropout_mask(keep2.data(), n, 0.1f, 1234);
    CHECK(keep == keep2);
    std::size_t kept = 0;
    for (auto k : keep) kept += k;
    CHECK(static_cast<double>(kept) / n == doctest::Approx(0.9).epsilon(0.005));
    mlm::dropout_mask(keep2.data(), n, 0.1f, 1235);
    CHECK(keep != keep2);

    const vector<double> x = {1, 2, 3, 4};
    const vector<uint8_t> k4 = {1, 0, 1, 1};
    vector<double> y(4);
    mlm::dropout_forward(y.data(), x.data(), k4.data(), 4, 0.5f);
    CHECK(y == vector<double>{2, 0, 6, 8});

    const std::size_t m = 1000;
    auto xs = random_vector(m, 10), w = random_vector(m, 11);
    vector<double> ys(m), dx(m, 0.0);
    auto f = [&] {
        mlm::dropout_forward(ys.data(), xs.data(), keep.data(), m, 0.1f);
        return dot(w, ys.data());
    };
    f();
    mlm::dropout_backward(dx.data(), w.data(), keep.data(), m, 0.1f);
    CHECK(grad_check(f, xs.data(), dx.data(), m, 100).normalized_error < kTol);
}

TEST_CASE("embedding: lookup by hand and finite differences") {
    const int V = 5, C = 3, maxL = 4;
    auto wte = random_vector(V * C, 12), wpe = random_vector(maxL * C, 13);
    const vector<int32_t> tokens = {4, 1, 4, 0, 4, 2};  // token 4 repeats across sequences
    const vector<int32_t> offsets = {0, 3, 4, 6};
    vector<double> out(6 * C);
    mlm::embedding_forward(out.data(), tokens.data(), offsets.data(), wte.data(), wpe.data(), 3, C);
    // row 4 is token 4 at position 0 of the third sequence
    for (int c = 0; c < C; ++c) CHECK(out[4 * C + c] == doctest::Approx(wte[4 * C + c] + wpe[c]));
    auto w = random_vector(6 * C, 14);
    vector<double> dwte(V * C, 0.0), dwpe(maxL * C, 0.0);
    auto f = [&] {
        mlm::embedding_forward(out.data(), tokens.data(), offsets.data(), wte.data(), wpe.data(), 3, C);
        return dot(w, out.data());
    };
    mlm::embedding_backward(dwte.data(), dwpe.data(), w.data(), tokens.data(), offsets.data(), 3, C);
    CHECK(grad_check(f, wte.data(), dwte.data(), wte.size()).normalized_error < kTol);
    CHECK(grad_check(f, wpe.data(), dwpe.data(), wpe.size()).normalized_error < kTol);
}

TEST_CASE("attention: softmax rows by hand") {
    // one sequence of 2 tokens, one head of dim 1: q = k = (0, 1), v = (1, 3)
    const int C = 1, H = 1;
    const vector<double> qkv = {0, 0, 1, /**/ 1, 1, 3};
    const vector<int32_t> offsets = {0, 2};
    vector<int64_t> po(2);
    CHECK(mlm::attention_prob_offsets(po.data(), offsets.data(), 1, H) == 4);
    vector<double> out(2), probs(4);
    mlm::attention_forward(out.data(), probs.data(), qkv.data(), offsets.data(), po.data(), 1, C, H);
    // row 0: scores (0, 0) -> (0.5, 0.5); row 1: scores (0, 1) -> (1, e) / (1 + e)
    const double e = std::exp(1.0);
    CHECK(probs[0] == doctest::Approx(0.5));
    CHECK(probs[1] == doctest::Approx(0.5));
    CHECK(probs[2] == doctest::Approx(1 / (1 + e)));
    CHECK(probs[3] == doctest::Approx(e / (1 + e)));
    CHECK(out[0] == doctest::Approx(2.0));
    CHECK(out[1] == doctest::Approx((1 + 3 * e) / (1 + e)));
}

TEST_CASE("attention: finite differences over ragged lengths") {
    const int C = 6, H = 2, B = 3;
    const vector<int32_t> offsets = {0, 5, 6, 9};  // lengths 5, 1, 3
    const int N = 9, maxL = 5;
    vector<int64_t> po(B + 1);
    const int64_t P = mlm::attention_prob_offsets(po.data(), offsets.data(), B, H);
    auto qkv = random_vector(N * 3 * C, 15), w = random_vector(N * C, 16);
    vector<double> out(N * C), probs(P), dqkv(N * 3 * C, 0.0),
        scratch(static_cast<std::size_t>(mlm::max_threads()) * maxL * maxL);
    auto f = [&] {
        mlm::attention_forward(out.data(), probs.data(), qkv.data(), offsets.data(), po.data(), B, C, H);
        return dot(w, out.data());
    };
    f();
    mlm::attention_backward(dqkv.data(), scratch.data(), w.data(), qkv.data(), probs.data(),
                            offsets.data(), po.data(), B, C, H, maxL);
    auto r = grad_check(f, qkv.data(), dqkv.data(), qkv.size(), 200);
    CHECK(r.normalized_error < kTol);
    CHECK(r.grad_norm > 0.1);
    // a sequence attends only to itself: its output ignores the others' values
    f();
    vector<double> out2 = out;
    qkv[0 * 3 * C + 2 * C] += 5.0;  // v of row 0 (sequence 0)
    f();
    for (int i = 5; i < N; ++i)
        for (int c = 0; c < C; ++c) CHECK(out[i * C + c] == out2[i * C + c]);
}

TEST_CASE("cross-entropy: by hand and finite differences") {
    const vector<double> logits = {0, 0, 0, 0, /**/ 1, 2, 3, 4};
    const vector<int32_t> targets = {1, 3};
    vector<double> losses(2), probs(8);
    mlm::cross_entropy_forward(losses.data(), probs.data(), logits.data(), targets.data(), 2, 4);
    CHECK(losses[0] == doctest::Approx(std::log(4.0)));
    const double lse = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0));
    CHECK(losses[1] == doctest::Approx(lse - 4.0));
    CHECK(probs[0] == doctest::Approx(0.25));

    const int M = 3, V = 11;
    auto z = random_vector(M * V, 17, 3.0);
    const vector<int32_t> t = {0, 10, 4};
    vector<double> l(M), p(M * V), dz(M * V);
    auto f = [&] {
        mlm::cross_entropy_forward(l.data(), p.data(), z.data(), t.data(), M, V);
        return (l[0] + l[1] + l[2]) / M;
    };
    f();
    mlm::cross_entropy_backward(dz.data(), p.data(), t.data(), M, V, 1.0 / M);
    CHECK(grad_check(f, z.data(), dz.data(), z.size()).normalized_error < kTol);
    // in place (probs and logits sharing a buffer) gives the same
    f();  // grad_check leaves the last perturbed result behind
    vector<double> zz = z, ll(M);
    mlm::cross_entropy_forward(ll.data(), zz.data(), zz.data(), t.data(), M, V);
    for (int m = 0; m < M; ++m) CHECK(ll[m] == doctest::Approx(l[m]).epsilon(1e-14));
}

TEST_CASE("gemm in float: every transpose, ragged edges and long depths, within the rounding bound") {
    // float runs the AVX-512 kernels where the CPU has them: the packed one (14 x 32 tiles of C,
    // depth cut into chunks of at most 384) and, below 32 rows with B stored (N, K), the few-rows
    // one (rows in 8-lane vectors, 1 to 4 of them; depth chunks of at most 8,192): sizes straddle
    // the tile and lane edges and several depth chunks of each.
    mlm::GemmWorkspace<float> ws;
    mlm::Rng rng(22);
    const int sizes[][3] = {{1, 1, 1}, {13, 31, 5}, {14, 32, 384}, {15, 33, 385}, {29, 65, 1000},
                            {300, 17, 70}, {17, 300, 771}, {57, 96, 256}, {2, 1030, 40},
                            {8, 25, 9}, {9, 13, 64}, {24, 7, 100}, {31, 50, 33}, {3, 5, 8200}};
    for (int trial = 0; trial < 56; ++trial) {
        const bool ta = trial & 1, tb = trial & 2;
        const int M = sizes[trial / 4][0], N = sizes[trial / 4][1], K = sizes[trial / 4][2];
        CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(ta); CAPTURE(tb);
        const int lda = (ta ? M : K) + 5, ldb = (tb ? K : N) + 3, ldc = N + 1;
        auto to_float = [](const vector<double>& v) { return vector<float>(v.begin(), v.end()); };
        const auto A = to_float(random_vector(static_cast<std::size_t>(ta ? K : M) * lda, 400 + trial));
        const auto B = to_float(random_vector(static_cast<std::size_t>(tb ? N : K) * ldb, 500 + trial));
        const auto C0 = to_float(random_vector(static_cast<std::size_t>(M) * ldc, 600 + trial));
        auto C = C0;
        mlm::gemm(C.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, ws, 0.5f);
        // Against the exact product of the float inputs (in double): recursive summation of K
        // float products is off by at most about K * u * sum |a b| (u = 2^-24), plus the final
        // rounding of C.
        int bad = 0;
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                double exact = 0, magnitude = 0;
                for (int k = 0; k < K; ++k) {
                    const double a = ta ? A[static_cast<std::size_t>(k) * lda + i] : A[static_cast<std::size_t>(i) * lda + k];
                    const double b = tb ? B[static_cast<std::size_t>(j) * ldb + k] : B[static_cast<std::size_t>(k) * ldb + j];
                    exact += a * b;
                    magnitude += std::abs(a * b);
                }
                const std::size_t at = static_cast<std::size_t>(i) * ldc + j;
                const double want = C0[at] + 0.5 * exact;
                const double bound = (K + 2) * 0x1p-24 * (0.5 * magnitude + std::abs(want)) + 1e-30;
                bad += std::abs(C[at] - want) > bound;
            }
        CHECK(bad == 0);
        // the padding between rows of C is never written
        for (int i = 0; i < M; ++i) CHECK(C[static_cast<std::size_t>(i) * ldc + N] == C0[static_cast<std::size_t>(i) * ldc + N]);
    }
}

TEST_CASE("gemm in float: bitwise the same result for 1 and 2 threads") {
    mlm::GemmWorkspace<float> ws;
    const int threads = mlm::max_threads();
    for (const bool ta : {false, true}) {
        const int M = 301, N = 270, K = 900;  // both sides split, three depth chunks
        auto A = random_vector(static_cast<std::size_t>(M) * K, 700 + ta);
        auto B = random_vector(static_cast<std::size_t>(K) * N, 800 + ta);
        vector<float> a(A.begin(), A.end()), b(B.begin(), B.end());
        auto run = [&](int t, int m, int n) {
            mlm::set_num_threads(t);
            vector<float> c(static_cast<std::size_t>(m) * n, 1.0f);
            mlm::gemm(c.data(), n, a.data(), ta ? m : K, ta, b.data(), n, false, m, n, K, ws);
            return c;
        };
        CHECK(run(1, M, N) == run(2, M, N));  // rows split
        CHECK(run(1, 40, N) == run(2, 40, N));  // columns split
    }
    // the few-rows kernel (inference: a sentence's rows against a weight stored (N, K)): columns split
    for (const int M : {3, 19, 31}) {
        const int N = 1000, K = 257;
        CAPTURE(M);
        auto A = random_vector(static_cast<std::size_t>(M) * K, 900 + M);
        auto W = random_vector(static_cast<std::size_t>(N) * K, 950 + M);
        vector<float> a(A.begin(), A.end()), w(W.begin(), W.end());
        auto run = [&](int t) {
            mlm::set_num_threads(t);
            vector<float> c(static_cast<std::size_t>(M) * N, 1.0f);
            mlm::gemm(c.data(), N, a.data(), K, false, w.data(), K, true, M, N, K, ws);
            return c;
        };
        CHECK(run(1) == run(2));
    }
    mlm::set_num_threads(threads);
}

TEST_CASE("gemm: every transpose combination against the plain Eigen product") {
    mlm::GemmWorkspace<double> ws;
    mlm::Rng rng(21);
    for (int trial = 0; trial < 24; ++trial) {
        const bool ta = trial & 1, tb = trial & 2;
        // sizes around the kernel's panel widths, and big enough to be split across threads
        const int M = 1 + static_cast<int>(rng.below(trial < 12 ? 9 : 300));
        const int N = 1 + static_cast<int>(rng.below(trial < 12 ? 9 : 300));
        const int K = 1 + static_cast<int>(rng.below(trial < 12 ? 9 : 700));
        CAPTURE(M); CAPTURE(N); CAPTURE(K); CAPTURE(ta); CAPTURE(tb);
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 1, ldc = N + 2;  // padded strides
        auto A = random_vector(static_cast<std::size_t>(ta ? K : M) * lda, 100 + trial);
        auto B = random_vector(static_cast<std::size_t>(tb ? N : K) * ldb, 200 + trial);
        auto C1 = random_vector(static_cast<std::size_t>(M) * ldc, 300 + trial);
        auto C2 = C1;
        mlm::gemm(C1.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, ws, 0.5);
        mlm::gemm_reference(C2.data(), ldc, A.data(), lda, ta, B.data(), ldb, tb, M, N, K, 0.5);
        double err = 0;
        for (std::size_t i = 0; i < C1.size(); ++i) err = std::max(err, std::abs(C1[i] - C2[i]));
        CHECK(err < 1e-12 * K);
    }
}
