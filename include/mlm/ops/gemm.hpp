// mlm/ops/gemm.hpp — C += op(A) op(B) on row-major buffers, threaded by us, allocation-free.
//
//   C (M, N) row-major with leading dimension ldc
//   op(A) (M, K): A stored (M, K) with lda, or (K, M) when trans_a
//   op(B) (K, N): B stored (K, N) with ldb, or (N, K) when trans_b
//
// Why not `C.noalias() += A * B` on Eigen maps: Eigen's product allocates its packing buffers on
// the heap at every call (touching fresh pages costs ~15 us each here) and its threaded version
// synchronises threads with spin-waits inside every product. Here each thread takes its own
// slice of C's rows (or columns, whichever is longer), packs into buffers that a GemmWorkspace
// keeps between calls, and runs Eigen's sequential blocked kernel (gebp) on it. The depth
// blocking kc depends only on the problem, never on the thread count, so every element of C is
// summed in the same order whatever the split: results are bitwise identical for 1 or 2 threads.
//
// float on AVX-512 CPUs runs our own kernel (gemm_avx512.hpp: faster than Eigen's on the step's
// shapes; bench/bench_gemm measures both against the FMA peak, see docs/benchmarks.md); double,
// and float elsewhere, use Eigen's internal GEMM driver (general_matrix_matrix_product,
// level3_blocking), which is stable across Eigen 3.3/3.4. `gemm_reference` below is the plain
// Eigen product, kept to test against.
#pragma once

#include <algorithm>
#include <type_traits>
#include <vector>

#include "common.hpp"
#include "gemm_avx512.hpp"

namespace mlm {

// Caps of the blocking sizes (elements): the packed lhs panel is kc x mc, the rhs panel kc x nc.
constexpr Eigen::Index gemm_kc_max = 640, gemm_mc_max = 1024, gemm_nc_max = 512;
constexpr std::size_t gemm_buffer_elements = gemm_kc_max * (gemm_mc_max + gemm_nc_max);
#ifdef MLM_GEMM_AVX512
static_assert(detail::avx512::buffer_floats <= gemm_buffer_elements, "one buffer serves both kernels");
#endif

// Packing buffers for gemm(): one fixed-size pair per thread, allocated on first use.
template <class T>
class GemmWorkspace {
public:
    // Buffers of thread t, each at least `elements` long (grows; call outside parallel regions).
    void reserve(int threads, std::size_t elements) {
        if (static_cast<int>(buffers_.size()) < threads) buffers_.resize(threads);
        for (int t = 0; t < threads; ++t)
            if (buffers_[t].size() < elements) buffers_[t].resize(elements);
    }
    T* buffer(int t) { return buffers_[t].data(); }
    std::size_t capacity() const {
        std::size_t n = 0;
        for (const auto& b : buffers_) n += b.capacity();
        return n;
    }

private:
    // A plain aligned vector: Eigen's aligned_allocator gives the 64-byte alignment packing wants.
    std::vector<std::vector<T, Eigen::aligned_allocator<T>>> buffers_;
};

namespace detail {

template <class T>
struct FixedBlocking : Eigen::internal::level3_blocking<T, T> {
    FixedBlocking(T* a, T* b, Eigen::Index mc, Eigen::Index nc, Eigen::Index kc) {
        this->m_blockA = a;
        this->m_blockB = b;
        this->m_mc = mc;
        this->m_nc = nc;
        this->m_kc = kc;
    }
};

// Column-major view of the row-major problem: C^T (N x M) += op(B)^T (N x K) * op(A)^T (K x M).
// A row-major (r x c, ld) buffer read as column-major is its transpose with stride ld, so the
// storage orders below follow from trans_a / trans_b.
template <class T, int LhsOrder, int RhsOrder>
void gemm_colmajor(Eigen::Index rows, Eigen::Index cols, Eigen::Index depth, const T* lhs,
                   Eigen::Index lhs_stride, const T* rhs, Eigen::Index rhs_stride, T* res,
                   Eigen::Index res_stride, T alpha, FixedBlocking<T>& blocking) {
    Eigen::internal::general_matrix_matrix_product<Eigen::Index, T, LhsOrder, false, T, RhsOrder,
                                                   false, Eigen::ColMajor, 1>::run(
        rows, cols, depth, lhs, lhs_stride, rhs, rhs_stride, res, 1, res_stride, alpha, blocking);
}

}  // namespace detail

template <class T>
void gemm(T* C, int ldc, const T* A, int lda, bool trans_a, const T* B, int ldb, bool trans_b,
          int M, int N, int K, GemmWorkspace<T>& ws, T alpha = T(1)) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    using Eigen::Index;
    // Column-major problem: rows = N (C's columns), cols = M (C's rows).
    // Eigen's cache-based blocking, capped so one fixed-size buffer per thread always suffices
    // (this machine reports a 320 MB L3, which would let a panel grow to the whole matrix).
    Index kc = K, mc = N, nc = M;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(kc, mc, nc, Index(1));
    kc = std::min<Index>(kc, gemm_kc_max);
    mc = std::min<Index>(mc, gemm_mc_max);
    nc = std::min<Index>(nc, gemm_nc_max);
    int threads = std::max(1, std::min(max_threads(), (M * N) / (64 * 64)));
#ifdef _OPENMP
    if (omp_in_parallel()) threads = 1;
#endif
#ifdef MLM_GEMM_AVX512
    constexpr bool own_kernel = std::is_same_v<T, float>;
    constexpr int tile_rows = own_kernel ? detail::avx512::MR : 8, tile_cols = own_kernel ? detail::avx512::NR : 48;
#else
    constexpr int tile_rows = 8, tile_cols = 48;  // Eigen's gebp tile of C
#endif
    // A few rows of activations against a weight stored (N, K) (inference on one sentence): the
    // few-rows kernel reads the weight in place, since packing it would cost more than the
    // product. Columns are split between threads.
#ifdef MLM_GEMM_AVX512
    const bool few_rows = own_kernel && !trans_a && trans_b && M < detail::avx512::few_rows_max;
#else
    const bool few_rows = false;
#endif
    // Otherwise split the longer side of C so both threads get long, efficient panels, at
    // multiples of the kernel's tile.
    const bool split_rows = !few_rows && M >= N;
    const int extent = split_rows ? M : N;
    const int align = few_rows ? 8 : split_rows ? tile_rows : tile_cols;
    const int chunk = ((extent + threads - 1) / threads + align - 1) / align * align;
    ws.reserve(threads, gemm_buffer_elements);

    auto run_piece = [&](int piece, T* buf) {
        const int begin = std::min(extent, piece * chunk), end = std::min(extent, begin + chunk);
        if (begin >= end) return;
#ifdef MLM_GEMM_AVX512
        if constexpr (own_kernel) {
            if (few_rows) {
                detail::avx512::gemm_few_rows(C, ldc, A, lda, B, ldb, M, begin, end, K, alpha, buf);
                return;
            }
            detail::avx512::gemm_tile(C, ldc, A, lda, trans_a, B, ldb, trans_b,
                                      split_rows ? begin : 0, split_rows ? end : M,
                                      split_rows ? 0 : begin, split_rows ? N : end, K, alpha, buf);
            return;
        }
#endif
        detail::FixedBlocking<T> blocking(buf, buf + gemm_kc_max * gemm_mc_max, mc, nc, kc);
        // Sub-problem: C rows [m0, m1) x columns [n0, n1)
        const int m0 = split_rows ? begin : 0, m1 = split_rows ? end : M;
        const int n0 = split_rows ? 0 : begin, n1 = split_rows ? N : end;
        // lhs = op(B)^T (N x K): rows n0..n1;  rhs = op(A)^T (K x M): columns m0..m1
        const T* lhs = trans_b ? B + static_cast<std::size_t>(n0) * ldb : B + n0;
        const T* rhs = trans_a ? A + m0 : A + static_cast<std::size_t>(m0) * lda;
        T* res = C + static_cast<std::size_t>(m0) * ldc + n0;
        const Index rows = n1 - n0, cols = m1 - m0;
        if (trans_b && trans_a)
            detail::gemm_colmajor<T, Eigen::RowMajor, Eigen::RowMajor>(rows, cols, K, lhs, ldb, rhs, lda, res, ldc, alpha, blocking);
        else if (trans_b)
            detail::gemm_colmajor<T, Eigen::RowMajor, Eigen::ColMajor>(rows, cols, K, lhs, ldb, rhs, lda, res, ldc, alpha, blocking);
        else if (trans_a)
            detail::gemm_colmajor<T, Eigen::ColMajor, Eigen::RowMajor>(rows, cols, K, lhs, ldb, rhs, lda, res, ldc, alpha, blocking);
        else
            detail::gemm_colmajor<T, Eigen::ColMajor, Eigen::ColMajor>(rows, cols, K, lhs, ldb, rhs, lda, res, ldc, alpha, blocking);
    };
    // One thread (or already inside a parallel region): no OpenMP region at all, since libgomp
    // allocates a team for every one-thread region.
    if (threads == 1) {
        for (int piece = 0; piece < threads; ++piece) run_piece(piece, ws.buffer(0));
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        // The team may be smaller than asked: each thread then takes every team-th piece.
#ifdef _OPENMP
        const int team = omp_get_num_threads();
#else
        const int team = 1;
#endif
        const int t = thread_index();
        for (int piece = t; piece < threads; piece += team) run_piece(piece, ws.buffer(t));
    }
}

// The plain Eigen product the optimized gemm is tested against.
template <class T>
void gemm_reference(T* C, int ldc, const T* A, int lda, bool trans_a, const T* B, int ldb,
                    bool trans_b, int M, int N, int K, T alpha = T(1)) {
    StridedMapR<T> c(C, M, N, Eigen::OuterStride<>(ldc));
    CStridedMapR<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
    CStridedMapR<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
    if (trans_a && trans_b) c.noalias() += alpha * (a.transpose() * b.transpose());
    else if (trans_a) c.noalias() += alpha * (a.transpose() * b);
    else if (trans_b) c.noalias() += alpha * (a * b.transpose());
    else c.noalias() += alpha * (a * b);
}

}  // namespace mlm
