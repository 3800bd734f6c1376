// mlm/ops/common.hpp — what every op shares: row-major Eigen maps and thread helpers.
//
// Ops take raw pointers to row-major buffers (outputs first, then inputs, then sizes) and wrap
// them in Eigen::Map for the products. Letters used in the shape comments of every op:
//   N packed tokens (rows)   C channels (model dim)   F feed-forward width   H heads
//   D head dim (C / H)       V vocab                  M labelled rows        L one sequence's length
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

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

// Threads available to our own parallel loops (1 without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Sets the threads of our loops and of Eigen's products (OpenMP builds; a no-op otherwise).
inline void set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
    Eigen::setNbThreads(n > 0 ? n : 1);
}

namespace detail {

// Channel blocks for weight-gradient reductions: each thread owns a run of output channels and
// sums over all rows in row order, so results do not depend on the thread count.
constexpr int channel_block = 16;

inline int num_channel_blocks(int C) { return (C + channel_block - 1) / channel_block; }

// Zero-fills n elements in parallel (fresh activation-gradient buffers).
template <class T>
void parallel_zero(T* x, std::size_t n) {
    const std::ptrdiff_t chunk = 1 << 14;
    const std::ptrdiff_t chunks = static_cast<std::ptrdiff_t>((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t k = 0; k < chunks; ++k) {
        const std::size_t begin = static_cast<std::size_t>(k * chunk);
        const std::size_t end = begin + chunk < n ? begin + chunk : n;
        for (std::size_t i = begin; i < end; ++i) x[i] = T(0);
    }
}

}  // namespace detail
}  // namespace mlm
