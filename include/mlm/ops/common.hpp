// mlm/ops/common.hpp — what every op shares: row-major Eigen maps and thread helpers.
//
// Ops take raw pointers to row-major buffers (outputs first, then inputs, then sizes) and wrap
// them in Eigen::Map for the products. Letters used in the shape comments of every op:
//   N packed tokens (rows)   C channels (model dim)   F feed-forward width   H heads
//   D head dim (C / H)       V vocab                  M labelled rows        L one sequence's length
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../threads.hpp"  // max_threads, thread_index, set_num_threads

namespace mlm {

template <class T>
using MatrixR = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using MapR = Eigen::Map<MatrixR<T>>;
template <class T>
using CMapR = Eigen::Map<const MatrixR<T>>;
// A block of columns inside a wider row-major buffer (a head's slice of qkv, say).
template <class T>
using StridedMapR = Eigen::Map<MatrixR<T>, 0, Eigen::OuterStride<>>;
template <class T>
using CStridedMapR = Eigen::Map<const MatrixR<T>, 0, Eigen::OuterStride<>>;
template <class T>
using RowVec = Eigen::Matrix<T, 1, Eigen::Dynamic>;

namespace detail {

// Runs f(i) for i in [0, n), split statically over the threads. Serial when one thread is
// available or we already are inside a parallel region: libgomp allocates a new team for every
// one-thread region, and a training step must not allocate.
template <class F>
void parallel_for(std::ptrdiff_t n, F&& f) {
#ifdef _OPENMP
    if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
        for (std::ptrdiff_t i = 0; i < n; ++i) f(i);
        return;
    }
#endif
    for (std::ptrdiff_t i = 0; i < n; ++i) f(i);
}

// The same with dynamic scheduling, one index at a time: for tasks of uneven size.
template <class F>
void parallel_for_dynamic(std::ptrdiff_t n, F&& f) {
#ifdef _OPENMP
    if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
        for (std::ptrdiff_t i = 0; i < n; ++i) f(i);
        return;
    }
#endif
    for (std::ptrdiff_t i = 0; i < n; ++i) f(i);
}

// f(begin, end) over chunks of `chunk` elements of [0, n): elementwise loops.
template <class F>
void parallel_chunks(std::size_t n, std::size_t chunk, F&& f) {
    const auto chunks = static_cast<std::ptrdiff_t>((n + chunk - 1) / chunk);
    parallel_for(chunks, [&](std::ptrdiff_t k) {
        const std::size_t begin = static_cast<std::size_t>(k) * chunk;
        f(begin, begin + chunk < n ? begin + chunk : n);
    });
}
constexpr std::size_t elementwise_chunk = 8192;

// Channel blocks for weight-gradient reductions: each thread owns a run of output channels and
// sums over all rows in row order, so results do not depend on the thread count.
constexpr int channel_block = 16;

inline int num_channel_blocks(int C) { return (C + channel_block - 1) / channel_block; }

// f(c0, c1) for every channel block of [0, C).
template <class F>
void parallel_channel_blocks(int C, F&& f) {
    parallel_for(num_channel_blocks(C), [&](std::ptrdiff_t cb) {
        const int c0 = static_cast<int>(cb) * channel_block;
        f(c0, c0 + channel_block < C ? c0 + channel_block : C);
    });
}

// Zero-fills n elements in parallel (fresh activation-gradient buffers).
template <class T>
void parallel_zero(T* x, std::size_t n) {
    parallel_chunks(n, elementwise_chunk, [&](std::size_t b, std::size_t e) {
        std::fill(x + b, x + e, T(0));
    });
}

}  // namespace detail
}  // namespace mlm
