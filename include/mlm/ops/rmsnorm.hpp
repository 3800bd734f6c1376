// mlm/ops/rmsnorm.hpp — RMSNorm with a scale and no bias (the reference model's norm).
//
//   y (N, C)      y = scale * x / (r + eps),  r = ||x||_2 / sqrt(C)
//   rinv (N)      1 / (r + eps), kept for backward
//   x (N, C), scale (C)
// Note eps is added to the RMS, not inside the square root, as in the original notebook.
#pragma once

#include <cmath>

#include "common.hpp"

namespace mlm {

template <class T>
void rmsnorm_forward(T* y, T* rinv, const T* x, const T* scale, int N, int C, T eps) {
    detail::parallel_for(N, [&](std::ptrdiff_t i) {
        const T* xi = x + static_cast<std::size_t>(i) * C;
        T* yi = y + static_cast<std::size_t>(i) * C;
        T ss = 0;
        for (int c = 0; c < C; ++c) ss += xi[c] * xi[c];
        const T r = std::sqrt(ss / C);
        const T inv = T(1) / (r + eps);
        rinv[i] = inv;
        for (int c = 0; c < C; ++c) yi[c] = scale[c] * xi[c] * inv;
    });
}

// Differentiates y = scale * x * rinv, rinv = 1 / (r + eps), r = ||x|| / sqrt(C).
// With g = dy * scale:  dx = g * rinv - x * (g . x) * rinv^2 / (r * C)   (second term 0 if r = 0)
template <class T>
void rmsnorm_backward_input(T* dx, const T* dy, const T* x, const T* rinv, const T* scale, int N,
                            int C) {
    detail::parallel_for(N, [&](std::ptrdiff_t i) {
        const T* xi = x + static_cast<std::size_t>(i) * C;
        const T* dyi = dy + static_cast<std::size_t>(i) * C;
        T* dxi = dx + static_cast<std::size_t>(i) * C;
        T gx = 0, ss = 0;
        for (int c = 0; c < C; ++c) {
            gx += dyi[c] * scale[c] * xi[c];
            ss += xi[c] * xi[c];
        }
        const T r = std::sqrt(ss / C);
        const T inv = rinv[i];
        const T k = r > T(0) ? gx * inv * inv / (r * C) : T(0);
        for (int c = 0; c < C; ++c) dxi[c] += dyi[c] * scale[c] * inv - xi[c] * k;
    });
}

// dscale[c] += sum_i dy[i, c] * x[i, c] * rinv[i]
template <class T>
void rmsnorm_backward_scale(T* dscale, const T* dy, const T* x, const T* rinv, int N, int C) {
    const int blocks = detail::num_channel_blocks(C);
    detail::parallel_for(blocks, [&](std::ptrdiff_t cb) {
        const int c0 = cb * detail::channel_block;
        const int c1 = c0 + detail::channel_block < C ? c0 + detail::channel_block : C;
        T acc[detail::channel_block] = {};
        for (int i = 0; i < N; ++i) {
            const T* xi = x + static_cast<std::size_t>(i) * C;
            const T* dyi = dy + static_cast<std::size_t>(i) * C;
            for (int c = c0; c < c1; ++c) acc[c - c0] += dyi[c] * xi[c] * rinv[i];
        }
        for (int c = c0; c < c1; ++c) dscale[c] += acc[c - c0];
    });
}

}  // namespace mlm
