// mlm/ops/attention.hpp — multi-head self-attention over a packed batch, per (sequence, head).
//
//   out (N, C)      concatenated heads: out[i, h*D:(h+1)*D] = softmax(q k^T / sqrt(D)) v
//   probs (P)       softmax rows of every (sequence b, head h), an (L_b, L_b) block at
//                   prob_offsets[b] + h * L_b * L_b; P = H * sum_b L_b^2. Kept for backward.
//   qkv (N, 3C)     the fused projection: q | k | v, head h in columns h*D..(h+1)*D of each
//   offsets (B+1)   sequence starts; prob_offsets (B+1) block starts in probs
// A sequence attends only to itself, so there is no padding and no key mask. Each (b, h) pair
// is one task of our parallel loop; the small products inside run single-threaded.
#pragma once

#include <cmath>

#include "common.hpp"

namespace mlm {

// prob_offsets[b] = H * sum_{b' < b} L_b'^2; returns the total P.
inline int64_t attention_prob_offsets(int64_t* prob_offsets, const int32_t* offsets, int B, int H) {
    int64_t total = 0;
    for (int b = 0; b < B; ++b) {
        prob_offsets[b] = total;
        const int64_t L = offsets[b + 1] - offsets[b];
        total += H * L * L;
    }
    prob_offsets[B] = total;
    return total;
}

template <class T>
void attention_forward(T* out, T* probs, const T* qkv, const int32_t* offsets,
                       const int64_t* prob_offsets, int B, int C, int H) {
    const int D = C / H;
    const T scale = T(1) / std::sqrt(T(D));
    detail::parallel_for_dynamic(B * H, [&](std::ptrdiff_t task) {
        const int b = task / H, h = task % H;
        const int L = offsets[b + 1] - offsets[b];
        const T* base = qkv + static_cast<std::size_t>(offsets[b]) * 3 * C;
        CStridedMapR<T> q(base + h * D, L, D, Eigen::OuterStride<>(3 * C));
        CStridedMapR<T> k(base + C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        CStridedMapR<T> v(base + 2 * C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        MapR<T> p(probs + prob_offsets[b] + static_cast<int64_t>(h) * L * L, L, L);
        StridedMapR<T> o(out + static_cast<std::size_t>(offsets[b]) * C + h * D, L, D,
                         Eigen::OuterStride<>(C));
        p.noalias() = q * k.transpose();  // scaled inside the softmax: no temporary
        for (int r = 0; r < L; ++r) {
            auto row = p.row(r).array();
            row = ((row - row.maxCoeff()) * scale).exp();
            row /= row.sum();
        }
        o.noalias() = p * v;
    });
}

// Differentiates o = P v, P = softmax(S), S = q k^T / sqrt(D), per (sequence, head):
//   dv += P^T do;  dP = do v^T;  dS = P * (dP - rowsum(dP * P));  dq += dS k / sqrt(D);
//   dk += dS^T q / sqrt(D).
// dqkv (N, 3C) receives the sums; scratch holds max_threads() blocks of (max L)^2 elements.
template <class T>
void attention_backward(T* dqkv, T* scratch, const T* dout, const T* qkv, const T* probs,
                        const int32_t* offsets, const int64_t* prob_offsets, int B, int C, int H,
                        int max_len) {
    const int D = C / H;
    const T scale = T(1) / std::sqrt(T(D));
    detail::parallel_for_dynamic(B * H, [&](std::ptrdiff_t task) {
        const int b = task / H, h = task % H;
        const int L = offsets[b + 1] - offsets[b];
        const std::size_t row0 = static_cast<std::size_t>(offsets[b]);
        const T* base = qkv + row0 * 3 * C;
        T* dbase = dqkv + row0 * 3 * C;
        CStridedMapR<T> q(base + h * D, L, D, Eigen::OuterStride<>(3 * C));
        CStridedMapR<T> k(base + C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        CStridedMapR<T> v(base + 2 * C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        StridedMapR<T> dq(dbase + h * D, L, D, Eigen::OuterStride<>(3 * C));
        StridedMapR<T> dk(dbase + C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        StridedMapR<T> dv(dbase + 2 * C + h * D, L, D, Eigen::OuterStride<>(3 * C));
        CStridedMapR<T> dout_bh(dout + row0 * C + h * D, L, D, Eigen::OuterStride<>(C));
        CMapR<T> p(probs + prob_offsets[b] + static_cast<int64_t>(h) * L * L, L, L);
        MapR<T> ds(scratch + static_cast<std::size_t>(thread_index()) * max_len * max_len, L, L);

        dv.noalias() += p.transpose() * dout_bh;
        ds.noalias() = dout_bh * v.transpose();  // dP
        for (int r = 0; r < L; ++r) {
            const T dot = ds.row(r).dot(p.row(r));
            ds.row(r).array() = p.row(r).array() * (ds.row(r).array() - dot) * scale;
        }
        dq.noalias() += ds * k;
        dk.noalias() += ds.transpose() * q;
    });
}

}  // namespace mlm
