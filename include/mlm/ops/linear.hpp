// mlm/ops/linear.hpp — y = x W^T + b with W stored (out, in) like nn.Linear.
//
//   y (N, O)    x (N, I)    w (O, I)    b (O) or null
// The products go through mlm::gemm (ops/gemm.hpp): threaded by us over slices of the output,
// with packing buffers kept in the caller's GemmWorkspace, so nothing is allocated per call.
#pragma once

#include "common.hpp"
#include "gemm.hpp"

namespace mlm {

template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int N, int I, int O,
                    GemmWorkspace<T>& ws) {
    detail::parallel_for(N, [&](std::ptrdiff_t i) {
        for (int o = 0; o < O; ++o) y[static_cast<std::size_t>(i) * O + o] = b ? b[o] : T(0);
    });
    gemm(y, O, x, I, false, w, I, true, N, O, I, ws);
}

// Differentiates y = x W^T + b w.r.t. the input:  dx += dy W
template <class T>
void linear_backward_input(T* dx, const T* dy, const T* w, int N, int I, int O,
                           GemmWorkspace<T>& ws) {
    gemm(dx, I, dy, O, false, w, I, false, N, I, O, ws);
}

// Differentiates y = x W^T + b w.r.t. the weights:  dW += dy^T x,  db += sum_rows dy
template <class T>
void linear_backward_weight(T* dw, T* db, const T* dy, const T* x, int N, int I, int O,
                            GemmWorkspace<T>& ws) {
    gemm(dw, I, dy, O, true, x, I, false, O, I, N, ws);
    if (!db) return;
    const int blocks = detail::num_channel_blocks(O);
    detail::parallel_for(blocks, [&](std::ptrdiff_t cb) {
        const int c0 = cb * detail::channel_block;
        const int c1 = c0 + detail::channel_block < O ? c0 + detail::channel_block : O;
        T acc[detail::channel_block] = {};
        for (int i = 0; i < N; ++i) {
            const T* dyi = dy + static_cast<std::size_t>(i) * O;
            for (int c = c0; c < c1; ++c) acc[c - c0] += dyi[c];
        }
        for (int c = c0; c < c1; ++c) db[c] += acc[c - c0];
    });
}

}  // namespace mlm
