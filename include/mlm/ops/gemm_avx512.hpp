// mlm/ops/gemm_avx512.hpp — the float GEMM kernel for AVX-512 CPUs (internal; use mlm::gemm).
//
//   C (M, N) row-major += alpha * op(A) (M, K) * op(B) (K, N)
//
// Why our own kernel: Eigen's float kernel (gebp, 48x4 on AVX-512) keeps this machine's FMA unit
// about 60% busy; a training step is ~70% GEMM, so the kernel sets the speed of everything. The
// structure is the classic one (Goto / BLIS), written for row-major C:
//
//   for jc in N by nc:                   B block  (kc x nc)  packed once, lives in L2/L3
//     for pc in K by kc:
//       pack op(B)[pc:, jc:] -> Bp       NR-wide micro-panels, [k][j]
//       for ic in M by mc:
//         pack op(A)[ic:, pc:] -> Ap     MR-tall micro-panels, [k][i], lives in L2
//         for jr in nc by NR:            one Bp micro-panel (kc x NR) stays in L1/L2 ...
//           for ir in mc by MR:          ... while the A micro-panels stream past it
//             C[ir:ir+MR, jr:jr+NR] += alpha * Ap_ir * Bp_jr      (the micro-kernel)
//
// The micro-kernel holds an MR x NR tile of C in MR * NR/16 zmm registers (14 x 32: 28
// accumulators, 2 for B, broadcasts of A come straight from memory), so every FMA needs no
// register traffic but its own accumulator. Edges: the packed panels are zero-padded to MR / NR,
// and the write-back stores only the valid rows and (masked) columns.
//
// Summation order: every element of C is summed over k in the fixed chunks of gemm_kc(K), in
// ascending order, whatever the thread split (threads own disjoint tiles of C), so results are
// bitwise identical for any number of threads.
#pragma once

#if defined(__AVX512F__)
#define MLM_GEMM_AVX512 1
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace mlm::detail::avx512 {

constexpr int MR = 14;  // rows of the C tile in registers
constexpr int NR = 32;  // columns: two zmm vectors
constexpr int kc_max = 384, mc_max = 280, nc_max = 1024;  // mc a multiple of MR, nc of NR

// Row stride for copied rows of A: kc rounded up to 16 floats, and never a multiple of 128
// floats, so that the MR rows a micro-kernel reads do not fall into the same L1 sets (rows 4 KiB
// apart all map to one set of this 8-way cache: K = 1024 ran ~15% slower read in place).
constexpr int padded_stride(int kc) {
    const int ld = (kc + 15) / 16 * 16;
    return ld % 128 == 0 ? ld + 16 : ld;
}

// Floats of packing buffer one thread needs: A's block (mc rows) then Bp (kc x nc).
constexpr std::size_t a_block_floats = std::size_t(mc_max) * padded_stride(kc_max);
constexpr std::size_t buffer_floats = a_block_floats + std::size_t(kc_max) * nc_max;

// The depth chunk: K itself when it fits, otherwise K cut into equal chunks (a multiple of 8)
// no longer than `max` (a multiple of 8). Depends on K only, which is what makes results
// thread-count independent.
inline int depth_chunk(int K, int max = kc_max) {
    if (K <= max) return K;
    const int chunks = (K + max - 1) / max;
    return ((K + chunks - 1) / chunks + 7) / 8 * 8;
}

// op(A) stored transposed, (K, M): rows [i0, i0 + m) and depth [p0, p0 + kc) as MR-row
// micro-panels, each kc x MR ([k][i], MR contiguous floats per k); rows past the end are zero.
inline void pack_a_transposed(float* Ap, const float* A, int lda, int i0, int m, int p0, int kc) {
    for (int ip = 0; ip < m; ip += MR) {
        const __mmask16 mask = static_cast<__mmask16>((1u << std::min(MR, m - ip)) - 1);
        float* dst = Ap + static_cast<std::size_t>(ip) * kc;
        for (int k = 0; k < kc; ++k) {
            const float* src = A + static_cast<std::size_t>(p0 + k) * lda + i0 + ip;
            _mm512_mask_storeu_ps(dst + k * MR, (1u << MR) - 1, _mm512_maskz_loadu_ps(mask, src));
        }
    }
}

// op(A) stored as rows, (M, K): rows [i0, i0 + m) and depth [p0, p0 + kc) copied with stride ld
// and rounded up to whole MR-row panels with zero rows. The micro-kernel only broadcasts single
// elements of A, so rows serve as well as a transposed panel, and copying them is a memcpy.
inline void copy_rows_a(float* dst, int ld, const float* A, int lda, int i0, int m, int p0, int kc) {
    const int rows = (m + MR - 1) / MR * MR;
    for (int i = 0; i < rows; ++i) {
        float* d = dst + static_cast<std::size_t>(i) * ld;
        if (i < m) std::memcpy(d, A + static_cast<std::size_t>(i0 + i) * lda + p0, sizeof(float) * kc);
        else std::memset(d, 0, sizeof(float) * kc);
    }
}

// Bp: depth [p0, p0 + kc) and columns [j0, j0 + n) of op(B), as NR-column micro-panels, each
// kc x NR ([k][j]); columns past the end are zero.
inline void pack_b(float* Bp, const float* B, int ldb, bool trans_b, int j0, int n, int p0, int kc) {
    for (int jp = 0; jp < n; jp += NR) {
        const int nr = std::min(NR, n - jp);
        float* dst = Bp + static_cast<std::size_t>(jp) * kc;
        if (!trans_b) {  // op(B)(k, j) = B[k * ldb + j]: NR contiguous floats per k
            const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
            const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
            for (int k = 0; k < kc; ++k) {
                const float* src = B + static_cast<std::size_t>(p0 + k) * ldb + j0 + jp;
                _mm512_store_ps(dst + k * NR, _mm512_maskz_loadu_ps(m0, src));
                _mm512_store_ps(dst + k * NR + 16, _mm512_maskz_loadu_ps(m1, src + 16));
            }
        } else {  // op(B)(k, j) = B[j * ldb + k]: a transpose, one column at a time
            for (int j = 0; j < NR; ++j) {
                if (j < nr) {
                    const float* src = B + static_cast<std::size_t>(j0 + jp + j) * ldb + p0;
                    for (int k = 0; k < kc; ++k) dst[k * NR + j] = src[k];
                } else {
                    for (int k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
                }
            }
        }
    }
}

// C[0:mr, 0:nr] += alpha * a (MR x kc) * Bp (kc x NR), where a(i, k) is Ap[k * MR + i] for a
// transposed micro-panel (Panel) or Ap[i * lda_p + k] for copied rows.
template <bool Panel>
inline void micro_kernel(int kc, const float* Ap, int lda_p, const float* Bp, float* C, int ldc,
                         int mr, int nr, float alpha) {
    const std::ptrdiff_t row_step = Panel ? 1 : lda_p, k_step = Panel ? MR : 1;
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
#pragma GCC unroll 14
    for (int i = 0; i < MR; ++i) {  // the C tile is needed at the end: fetch it meanwhile
        _mm_prefetch(reinterpret_cast<const char*>(C + static_cast<std::size_t>(i) * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(C + static_cast<std::size_t>(i) * ldc + 16), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; ++k) {
        const __m512 b0 = _mm512_load_ps(Bp), b1 = _mm512_load_ps(Bp + 16);
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
            const __m512 a = _mm512_set1_ps(Ap[i * row_step]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        Ap += k_step;
        Bp += NR;
    }
    const __m512 va = _mm512_set1_ps(alpha);
    if (nr == NR) {
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
            if (i >= mr) break;
            float* c = C + static_cast<std::size_t>(i) * ldc;
            _mm512_storeu_ps(c, _mm512_fmadd_ps(va, acc[i][0], _mm512_loadu_ps(c)));
            _mm512_storeu_ps(c + 16, _mm512_fmadd_ps(va, acc[i][1], _mm512_loadu_ps(c + 16)));
        }
    } else {
        const __mmask16 m0 = nr >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << nr) - 1);
        const __mmask16 m1 = nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 14
        for (int i = 0; i < MR; ++i) {
            if (i >= mr) break;
            float* c = C + static_cast<std::size_t>(i) * ldc;
            _mm512_mask_storeu_ps(c, m0, _mm512_fmadd_ps(va, acc[i][0], _mm512_maskz_loadu_ps(m0, c)));
            _mm512_mask_storeu_ps(c + 16, m1, _mm512_fmadd_ps(va, acc[i][1], _mm512_maskz_loadu_ps(m1, c + 16)));
        }
    }
}

// One thread's part: C[m0:m1, n0:n1], with its own packing buffer (buffer_floats, 64-byte aligned).
inline void gemm_tile(float* C, int ldc, const float* A, int lda, bool trans_a, const float* B,
                      int ldb, bool trans_b, int m0, int m1, int n0, int n1, int K, float alpha,
                      float* buffer) {
    const int kc_chunk = depth_chunk(K);
    float* Ap = buffer;
    float* Bp = buffer + a_block_floats;
    for (int jc = n0; jc < n1; jc += nc_max) {
        const int nc = std::min(nc_max, n1 - jc);
        for (int pc = 0; pc < K; pc += kc_chunk) {
            const int kc = std::min(kc_chunk, K - pc);
            pack_b(Bp, B, ldb, trans_b, jc, nc, pc, kc);
            for (int ic = m0; ic < m1; ic += mc_max) {
                const int mc = std::min(mc_max, m1 - ic);
                // op(A) stored as rows: the kernel reads them in place, except when rows 2 KiB
                // apart or a multiple of that would share L1 sets, and for a ragged last panel
                // (it would read past the end): those are copied, zero-padded to MR rows.
                const bool in_place = !trans_a && lda % 512 != 0;
                const int copied = in_place ? mc / MR * MR : 0;
                const int lda_p = padded_stride(kc);
                if (trans_a) pack_a_transposed(Ap, A, lda, ic, mc, pc, kc);
                else if (copied < mc) copy_rows_a(Ap, lda_p, A, lda, ic + copied, mc - copied, pc, kc);
                for (int jr = 0; jr < nc; jr += NR) {
                    const float* bp = Bp + static_cast<std::size_t>(jr) * kc;
                    const int nr = std::min(NR, nc - jr);
                    for (int ir = 0; ir < mc; ir += MR) {
                        float* c = C + static_cast<std::size_t>(ic + ir) * ldc + jc + jr;
                        const int mr = std::min(MR, mc - ir);
                        if (trans_a)
                            micro_kernel<true>(kc, Ap + static_cast<std::size_t>(ir) * kc, 0, bp, c, ldc, mr, nr, alpha);
                        else if (ir < copied)
                            micro_kernel<false>(kc, A + static_cast<std::size_t>(ic + ir) * lda + pc, lda, bp, c, ldc, mr, nr, alpha);
                        else
                            micro_kernel<false>(kc, Ap + static_cast<std::size_t>(ir - copied) * lda_p, lda_p, bp, c, ldc, mr, nr, alpha);
                    }
                }
            }
        }
    }
}

// ---- few rows: C (M, N) += alpha * A (M, K) * W^T, W stored (N, K) ---------------------------
// Inference on one sentence multiplies ~20 rows by every weight matrix. W is read once per call
// (from L3 or memory), so packing it would cost as much as the product; A is small, so it is
// packed transposed instead: At (kc, Mp), Mp = M rounded up to 8 lanes. The kernel computes a
// tile of C^T, R rows of W against all Mp lanes, in R x V vector accumulators (V = Mp / 8): per
// k it loads V vectors of At and broadcasts R elements of W straight from memory (one per FMA).
// Each element of C is one lane summed over k in ascending order, in depth chunks fixed by K:
// the same bits for any thread split.
//
// 8-lane (256-bit) vectors: Zen 4 runs a 512-bit FMA as two 256-bit halves, so 8-lane vectors
// do the same work per cycle and waste fewer lanes on M = 19 (24 lanes, not 32). At most 8 rows
// of W at a time: rows of K = 1024 floats lie 4 KiB apart, all in one set of the 8-way L1, and
// 12 of them ran at half speed. Up to 4 rows of A, where most lanes would be empty, dot products
// along k do better (gemm_dot_rows).

// Used below this many rows of A; above it the packed kernel, whose tile is 14 rows, is ahead.
constexpr int few_rows_max = 32;
// Depth chunk of At: K itself up to this (At then fits the gemm buffer for any M < few_rows_max).
constexpr int few_rows_kc_max = 8192;
static_assert(std::size_t(few_rows_kc_max) * few_rows_max <= buffer_floats, "At fits the buffer");

// ---- 1 to 4 rows: dot products along k, 16-lane vectors, reduced across lanes at the end. A
// block of up to 4 rows of A against 4 rows of W keeps 16 accumulators.
constexpr int dot_rows_max = 4;

// Lane sums of four vectors: {sum(v0), sum(v1), sum(v2), sum(v3)}.
inline __m128 lane_sums4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    // The maskz forms with a full mask are the plain instructions; the unmasked intrinsics trip
    // GCC 12's -Wuninitialized on their undefined pass-through operand.
    constexpr __mmask16 all = 0xFFFF;
    // per 128-bit block b: {v0[b0]+v0[b2], v1[b0]+v1[b2], v0[b1]+v0[b3], v1[b1]+v1[b3]}
    const __m512 s01 = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, v0, v1), _mm512_maskz_unpackhi_ps(all, v0, v1));
    const __m512 s23 = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, v2, v3), _mm512_maskz_unpackhi_ps(all, v2, v3));
    // per block: {v0, v1, v2, v3} summed over the block's four elements
    const __m512 t = _mm512_add_ps(_mm512_maskz_shuffle_ps(all, s01, s23, 0x44), _mm512_maskz_shuffle_ps(all, s01, s23, 0xEE));
    // the four blocks added
    const __m512 u = _mm512_add_ps(t, _mm512_maskz_shuffle_f32x4(all, t, t, 0x4E));
    const __m512 w = _mm512_add_ps(u, _mm512_maskz_shuffle_f32x4(all, u, u, 0xB1));
    return _mm512_maskz_extractf32x4_ps(0xF, w, 0);
}

// C[i0:i0+R, j0:j0+4] += alpha * A[i0:i0+R, :] . W[j0:j0+4, :]  (R rows of A, 4 rows of W; rows
// of W past `nw` are not read and their results not written).
template <int R>
inline void dot_block(float* C, int ldc, const float* A, int lda, const float* W, int ldw, int nw,
                      int K, float alpha) {
    __m512 acc[R][4];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm512_setzero_ps();
    const float* w[4];
    for (int j = 0; j < 4; ++j) w[j] = W + static_cast<std::size_t>(std::min(j, nw - 1)) * ldw;
    int k = 0;
    auto step = [&](__mmask16 mask) {
        __m512 wv[4];
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) wv[j] = _mm512_maskz_loadu_ps(mask, w[j] + k);
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) {
            const __m512 a = _mm512_maskz_loadu_ps(mask, A + static_cast<std::size_t>(i) * lda + k);
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(a, wv[j], acc[i][j]);
        }
    };
    for (; k + 16 <= K; k += 16) step(0xFFFF);
    if (k < K) step(static_cast<__mmask16>((1u << (K - k)) - 1));
    const __mmask8 store = static_cast<__mmask8>((1u << std::min(nw, 4)) - 1);
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
        float* c = C + static_cast<std::size_t>(i) * ldc;
        const __m128 sums = lane_sums4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
        _mm_mask_storeu_ps(c, store, _mm_fmadd_ps(_mm_set1_ps(alpha), sums, _mm_maskz_loadu_ps(store, c)));
    }
}

// Columns [n0, n1) of C = A W^T for M <= 4 rows, both read in place; the rows of W 2 blocks on
// are prefetched into L2.
inline void gemm_dot_rows(float* C, int ldc, const float* A, int lda, const float* W, int ldw, int M, int n0,
                          int n1, int K, float alpha) {
    constexpr int ahead = 2;
    for (int j = n0; j < n1; j += 4) {
        const int nw = std::min(4, n1 - j);
        const float* w = W + static_cast<std::size_t>(j) * ldw;
        for (int r = 0, jp = j + 4 * ahead; r < 4 && jp + r < n1; ++r) {
            const char* row = reinterpret_cast<const char*>(W + static_cast<std::size_t>(jp + r) * ldw);
            for (int k = 0; k < K; k += 16) _mm_prefetch(row + sizeof(float) * k, _MM_HINT_T1);
        }
        switch (M) {
            case 4: dot_block<4>(C + j, ldc, A, lda, w, ldw, nw, K, alpha); break;
            case 3: dot_block<3>(C + j, ldc, A, lda, w, ldw, nw, K, alpha); break;
            case 2: dot_block<2>(C + j, ldc, A, lda, w, ldw, nw, K, alpha); break;
            default: dot_block<1>(C + j, ldc, A, lda, w, ldw, nw, K, alpha); break;
        }
    }
}

// ---- 5 to 31 rows
// At[k][i] = A[i][p0 + k] for k < kc, i < M; lanes M..Mp-1 are zero.
inline void pack_a_lanes(float* At, int Mp, const float* A, int lda, int M, int p0, int kc) {
    for (int k = 0; k < kc; ++k)
        for (int i = M; i < Mp; ++i) At[static_cast<std::size_t>(k) * Mp + i] = 0.0f;
    for (int i = 0; i < M; ++i) {
        const float* a = A + static_cast<std::size_t>(i) * lda + p0;
        for (int k = 0; k < kc; ++k) At[static_cast<std::size_t>(k) * Mp + i] = a[k];
    }
}

// C[0:M, 0:nw] += alpha * (At^T W[0:nw, 0:kc]^T) for nw <= R rows of W; rows of W past nw are
// not read (row nw - 1 stands in) and their results not written.
template <int V, int R>
inline void few_rows_tile(float* C, int ldc, const float* At, int M, const float* W, int ldw, int nw, int kc,
                          float alpha, const float* next, int next_rows) {
    constexpr int Mp = 8 * V;
    __m256 acc[R][V];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) acc[r][v] = _mm256_setzero_ps();
    const float* w[R];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) w[r] = W + static_cast<std::size_t>(std::min(r, nw - 1)) * ldw;
    // The next tile's rows into L2, one cache line per k (R rows x kc / 16 lines <= kc): spread
    // over the loop, since a burst of prefetches stalls the core once its miss buffers are full.
    const int prefetches = next_rows * ((kc + 15) / 16);
    for (int k = 0; k < kc; ++k) {
        if (k < prefetches)
            _mm_prefetch(reinterpret_cast<const char*>(next + static_cast<std::size_t>(k % next_rows) * ldw +
                                                       16 * (k / next_rows)),
                         _MM_HINT_T1);
        __m256 a[V];
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) a[v] = _mm256_loadu_ps(At + static_cast<std::size_t>(k) * Mp + 8 * v);
#pragma GCC unroll 16
        for (int r = 0; r < R; ++r) {
            const __m256 b = _mm256_broadcast_ss(w[r] + k);
#pragma GCC unroll 4
            for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(a[v], b, acc[r][v]);
        }
    }
    // C^T's tile back into C's rows: through a small buffer, nw floats per row of C.
    alignas(32) float t[R][Mp];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
        for (int v = 0; v < V; ++v) _mm256_store_ps(&t[r][8 * v], acc[r][v]);
    for (int i = 0; i < M; ++i) {
        float* c = C + static_cast<std::size_t>(i) * ldc;
        for (int r = 0; r < nw; ++r) c[r] += alpha * t[r][i];
    }
}

// Columns [n0, n1) of C for all M rows, depth [p0, p0 + kc) from At. W is streamed once (from L3
// or memory), so each tile prefetches the next one's rows into L2.
template <int V, int R>
void few_rows_columns(float* C, int ldc, const float* At, int M, const float* W, int ldw, int n0, int n1, int p0,
                      int kc, float alpha) {
    for (int j = n0; j < n1; j += R) {
        const int nw = std::min(R, n1 - j);
        const int next_rows = std::max(0, std::min(R, n1 - j - R));
        const float* w = W + static_cast<std::size_t>(j) * ldw + p0;
        const float* next = next_rows > 0 ? w + static_cast<std::size_t>(R) * ldw : w;  // never past W's end
        few_rows_tile<V, R>(C + j, ldc, At, M, w, ldw, nw, kc, alpha, next, next_rows);
    }
}

// Columns [n0, n1) of C = A W^T for M < few_rows_max rows; `buf` holds At (gemm's buffer).
// Out of line: inlined into gemm, GCC spilled accumulators to the stack.
[[gnu::noinline]] inline void gemm_few_rows(float* C, int ldc, const float* A, int lda, const float* W, int ldw,
                                            int M, int n0, int n1, int K, float alpha, float* buf) {
    if (M <= dot_rows_max) return gemm_dot_rows(C, ldc, A, lda, W, ldw, M, n0, n1, K, alpha);
    const int V = (M + 7) / 8, Mp = 8 * V;
    const int kc_chunk = depth_chunk(K, few_rows_kc_max);
    for (int p0 = 0; p0 < K; p0 += kc_chunk) {
        const int kc = std::min(kc_chunk, K - p0);
        pack_a_lanes(buf, Mp, A, lda, M, p0, kc);
        // R x V accumulators and V vectors of At within the 32 vector registers
        switch (V) {
            case 1: few_rows_columns<1, 8>(C, ldc, buf, M, W, ldw, n0, n1, p0, kc, alpha); break;
            case 2: few_rows_columns<2, 8>(C, ldc, buf, M, W, ldw, n0, n1, p0, kc, alpha); break;
            case 3: few_rows_columns<3, 8>(C, ldc, buf, M, W, ldw, n0, n1, p0, kc, alpha); break;
            default: few_rows_columns<4, 6>(C, ldc, buf, M, W, ldw, n0, n1, p0, kc, alpha); break;
        }
    }
}

}  // namespace mlm::detail::avx512

#endif  // __AVX512F__
