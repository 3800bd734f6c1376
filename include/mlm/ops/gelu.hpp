// mlm/ops/gelu.hpp — exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)).
//
//   y (n), x (n): any flat buffer (the FFN's (N, F) hidden layer). y may alias x.
// Uses Eigen's vectorized erf (unsupported/SpecialFunctions) for float.
#pragma once

#include <cmath>
#include <unsupported/Eigen/SpecialFunctions>

#include "common.hpp"

namespace mlm {

namespace detail {

template <class T>
using ArrayMap = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>;
template <class T>
using ConstArrayMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

// d/dx [x Phi(x)] = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi)
template <class T>
auto gelu_derivative(const ConstArrayMap<T>& x) {
    return T(0.5) * (T(1) + (x * T(M_SQRT1_2)).erf()) +
           x * (T(-0.5) * x.square()).exp() * T(0.3989422804014327);
}

}  // namespace detail

template <class T>
void gelu_forward(T* y, const T* x, std::size_t n) {
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        const auto len = static_cast<std::ptrdiff_t>(e - b);
        detail::ConstArrayMap<T> X(x + b, len);
        detail::ArrayMap<T>(y + b, len) = T(0.5) * X * (T(1) + (X * T(M_SQRT1_2)).erf());
    });
}

// Differentiates y = x Phi(x):  dx += dy * (Phi(x) + x phi(x))
template <class T>
void gelu_backward(T* dx, const T* dy, const T* x, std::size_t n) {
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        const auto len = static_cast<std::ptrdiff_t>(e - b);
        detail::ArrayMap<T>(dx + b, len) +=
            detail::ConstArrayMap<T>(dy + b, len) * detail::gelu_derivative(detail::ConstArrayMap<T>(x + b, len));
    });
}

// d <- d * (Phi(x) + x phi(x)), in place: the gradient through GELU into a buffer holding dy.
template <class T>
void gelu_backward_inplace(T* d, const T* x, std::size_t n) {
    detail::parallel_chunks(n, detail::elementwise_chunk, [&](std::size_t b, std::size_t e) {
        const auto len = static_cast<std::ptrdiff_t>(e - b);
        detail::ArrayMap<T>(d + b, len) *= detail::gelu_derivative(detail::ConstArrayMap<T>(x + b, len));
    });
}

}  // namespace mlm
