// mlm/ops/dropout.hpp — inverted dropout with counter-based, seeded masks.
//
//   y (n) = x * keep / (1 - p)      keep (n): 1 where kept, 0 where dropped; saved for backward
// (branch-free: a dropped inf or NaN input stays NaN, so a non-finite value is never hidden)
//   y may alias x.
// keep[i] comes from hashing (key, i / 4): a 64-bit draw gives four 16-bit uniforms, and element
// i is dropped when its uniform is below round(p * 65536). The mask depends only on the key and
// the index, never on the thread count. The caller derives the key from (seed, step, site).
#pragma once

#include <cmath>

#include "../random.hpp"
#include "common.hpp"

namespace mlm {

inline uint32_t dropout_threshold(float p) {
    return static_cast<uint32_t>(std::lround(static_cast<double>(p) * 65536.0));
}

// Fills keep (n) from the key: keep[i] = 1 with probability 1 - p.
inline void dropout_mask(uint8_t* keep, std::size_t n, float p, uint64_t key) {
    const uint32_t threshold = dropout_threshold(p);
    const uint64_t stream = mix64(key);
    const std::size_t groups = (n + 3) / 4;
    detail::parallel_chunks(groups, detail::elementwise_chunk / 4, [&](std::size_t gb, std::size_t ge) {
        for (std::size_t g = gb; g < ge; ++g) {
            const uint64_t bits = mix64(stream ^ (static_cast<uint64_t>(g) * 0xd1b54a32d192ed03ull));
            for (std::size_t j = 0; j < 4; ++j) {
                const std::size_t i = g * 4 + j;
                if (i < n) keep[i] = ((bits >> (16 * j)) & 0xffff) >= threshold ? 1 : 0;
            }
        }
    });
}

template <class T>
void dropout_forward(T* y, const T* x, const uint8_t* keep, std::size_t n, float p) {
    const T s = T(1) / (T(1) - T(p));
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) y[i] = x[i] * (static_cast<T>(keep[i]) * s);
    });
}

// Differentiates y = x * keep / (1 - p):  dx += dy * keep / (1 - p).  dx may alias dy only if the
// caller wants dx = dropout'(dy) in place; then use dropout_backward_inplace.
template <class T>
void dropout_backward(T* dx, const T* dy, const uint8_t* keep, std::size_t n, float p) {
    const T s = T(1) / (T(1) - T(p));
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) dx[i] += dy[i] * (static_cast<T>(keep[i]) * s);
    });
}

// d <- d * keep / (1 - p), in place: the gradient flowing back through a dropout into a buffer
// that holds nothing else yet.
template <class T>
void dropout_backward_inplace(T* d, const uint8_t* keep, std::size_t n, float p) {
    const T s = T(1) / (T(1) - T(p));
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) d[i] *= static_cast<T>(keep[i]) * s;
    });
}

}  // namespace mlm
