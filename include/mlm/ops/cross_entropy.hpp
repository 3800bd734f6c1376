// mlm/ops/cross_entropy.hpp — softmax cross-entropy on the labelled rows only.
//
//   losses (M)      losses[m] = logsumexp(logits[m]) - logits[m, targets[m]]
//   probs (M, V)    softmax(logits), kept for backward; may alias logits
//   logits (M, V), targets (M) ids in [0, V)
// The rows carrying the ignore label (-100) never reach here: the packed batch lists only the
// labelled rows, so "ignore" costs nothing.
#pragma once

#include <cmath>

#include "common.hpp"

namespace mlm {

template <class T>
void cross_entropy_forward(T* losses, T* probs, const T* logits, const int32_t* targets, int M,
                           int V) {
    detail::parallel_for(M, [&](std::ptrdiff_t m) {
        Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>> z(logits + static_cast<std::size_t>(m) * V, V);
        Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>> p(probs + static_cast<std::size_t>(m) * V, V);
        const T zt = z(targets[m]);  // read before p (which may alias z) is written
        const T zmax = z.maxCoeff();
        p = (z - zmax).exp();
        const T sum = p.sum();
        p /= sum;
        losses[m] = std::log(sum) + zmax - zt;
    });
}

// Differentiates loss = sum_m w * losses[m] w.r.t. the logits:
//   dlogits[m] = w * (probs[m] - onehot(targets[m])).  Written (not added); may alias probs.
template <class T>
void cross_entropy_backward(T* dlogits, const T* probs, const int32_t* targets, int M, int V, T w) {
    detail::parallel_for(M, [&](std::ptrdiff_t m) {
        const T* p = probs + static_cast<std::size_t>(m) * V;
        T* d = dlogits + static_cast<std::size_t>(m) * V;
        for (int v = 0; v < V; ++v) d[v] = w * p[v];
        d[targets[m]] -= w;
    });
}

}  // namespace mlm
