// mlm/ops/gelu.hpp — exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
//
//   y (n), x (n): any flat buffer (the FFN's (N, F) hidden layer). y may alias x.
// Uses Eigen's vectorized erf (unsupported/SpecialFunctions) for float.
#pragma once

#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>

#include "common.hpp"

namespace mlm {

template <class T>
void gelu_forward(T* y, const T* x, std::size_t n) {
    const std::ptrdiff_t chunks =
        static_cast<std::ptrdiff_t>((n + detail::elementwise_chunk - 1) / detail::elementwise_chunk);
    detail::parallel_for(chunks, [&](std::ptrdiff_t k) {
        const std::size_t begin = static_cast<std::size_t>(k) * detail::elementwise_chunk;
        const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(
            std::min<std::size_t>(detail::elementwise_chunk, n - begin));
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> X(x + begin, len);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> Y(y + begin, len);
        Y = T(0.5) * X * (T(1) + (X * T(M_SQRT1_2)).erf());
    });
}

// Differentiates y = x Phi(x):  dx += dy * (Phi(x) + x phi(x)),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
template <class T>
void gelu_backward(T* dx, const T* dy, const T* x, std::size_t n) {
    const std::ptrdiff_t chunks =
        static_cast<std::ptrdiff_t>((n + detail::elementwise_chunk - 1) / detail::elementwise_chunk);
    const T inv_sqrt_2pi = T(0.3989422804014327);
    detail::parallel_for(chunks, [&](std::ptrdiff_t k) {
        const std::size_t begin = static_cast<std::size_t>(k) * detail::elementwise_chunk;
        const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(
            std::min<std::size_t>(detail::elementwise_chunk, n - begin));
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> X(x + begin, len);
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> DY(dy + begin, len);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> DX(dx + begin, len);
        DX += DY * (T(0.5) * (T(1) + (X * T(M_SQRT1_2)).erf()) +
                    X * (T(-0.5) * X.square()).exp() * inv_sqrt_2pi);
    });
}

// d <- d * (Phi(x) + x phi(x)), in place: the gradient through GELU into a buffer holding dy.
template <class T>
void gelu_backward_inplace(T* d, const T* x, std::size_t n) {
    const std::ptrdiff_t chunks =
        static_cast<std::ptrdiff_t>((n + detail::elementwise_chunk - 1) / detail::elementwise_chunk);
    const T inv_sqrt_2pi = T(0.3989422804014327);
    detail::parallel_for(chunks, [&](std::ptrdiff_t k) {
        const std::size_t begin = static_cast<std::size_t>(k) * detail::elementwise_chunk;
        const std::ptrdiff_t len = static_cast<std::ptrdiff_t>(
            std::min<std::size_t>(detail::elementwise_chunk, n - begin));
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>> X(x + begin, len);
        Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>> Dd(d + begin, len);
        Dd *= T(0.5) * (T(1) + (X * T(M_SQRT1_2)).erf()) +
              X * (T(-0.5) * X.square()).exp() * inv_sqrt_2pi;
    });
}

}  // namespace mlm
