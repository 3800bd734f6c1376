// mlm/ops/linear.hpp — y = x W^T + b with W stored (out, in) like nn.Linear.
//
//   y (N, O)    x (N, I)    w (O, I)    b (O) or null
// The products are Eigen GEMMs called from serial code, so Eigen threads them itself (never
// call these from inside our own parallel region).
#pragma once

#include "common.hpp"

namespace mlm {

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int N, int I, int O) {
    MapR<T> Y(y, N, O);
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; ++i)
            for (int o = 0; o < O; ++o) y[static_cast<std::size_t>(i) * O + o] = b[o];
        Y.noalias() += CMapR<T>(x, N, I) * CMapR<T>(w, O, I).transpose();
    } else {
        Y.noalias() = CMapR<T>(x, N, I) * CMapR<T>(w, O, I).transpose();
    }
}

// Differentiates y = x W^T + b w.r.t. the input:  dx += dy W
template <class T>
void linear_backward_input(T* dx, const T* dy, const T* w, int N, int I, int O) {
    MapR<T>(dx, N, I).noalias() += CMapR<T>(dy, N, O) * CMapR<T>(w, O, I);
}

// Differentiates y = x W^T + b w.r.t. the weights:  dW += dy^T x,  db += sum_rows dy
template <class T>
void linear_backward_weight(T* dw, T* db, const T* dy, const T* x, int N, int I, int O) {
    MapR<T>(dw, O, I).noalias() += CMapR<T>(dy, N, O).transpose() * CMapR<T>(x, N, I);
    if (!db) return;
    const int blocks = detail::num_channel_blocks(O);
#pragma omp parallel for schedule(static)
    for (int cb = 0; cb < blocks; ++cb) {
        const int c0 = cb * detail::channel_block;
        const int c1 = c0 + detail::channel_block < O ? c0 + detail::channel_block : O;
        T acc[detail::channel_block] = {};
        for (int i = 0; i < N; ++i) {
            const T* dyi = dy + static_cast<std::size_t>(i) * O;
            for (int c = c0; c < c1; ++c) acc[c - c0] += dyi[c];
        }
        for (int c = c0; c < c1; ++c) db[c] += acc[c - c0];
    }
}

}  // namespace mlm
