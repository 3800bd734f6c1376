// mlm/ops/embedding.hpp — token + learned positional embedding over a packed batch.
//
//   out (N, C)         out[i] = wte[tokens[i]] + wpe[pos(i)], pos(i) = i - start of i's sequence
//   tokens (N)         ids in [0, V)
//   offsets (B+1)      sequence starts
//   wte (V, C), wpe (max_len, C)
#pragma once

#include "common.hpp"

namespace mlm {

template <class T>
void embedding_forward(T* out, const int32_t* tokens, const int32_t* offsets, const T* wte,
                       const T* wpe, int B, int C) {
    detail::parallel_for(B, [&](std::ptrdiff_t b) {
        for (int i = offsets[b]; i < offsets[b + 1]; ++i) {
            const T* e = wte + static_cast<std::size_t>(tokens[i]) * C;
            const T* p = wpe + static_cast<std::size_t>(i - offsets[b]) * C;
            T* o = out + static_cast<std::size_t>(i) * C;
            for (int c = 0; c < C; ++c) o[c] = e[c] + p[c];
        }
    });
}

// Differentiates out[i] = wte[tokens[i]] + wpe[pos(i)]:
//   dwte[tokens[i]] += dout[i],  dwpe[pos(i)] += dout[i].
// Several rows share a token, so threads own channel blocks and visit rows in order: no races,
// and the sums do not depend on the thread count.
template <class T>
void embedding_backward(T* dwte, T* dwpe, const T* dout, const int32_t* tokens,
                        const int32_t* offsets, int B, int C) {
    const int blocks = detail::num_channel_blocks(C);
    detail::parallel_for(blocks, [&](std::ptrdiff_t cb) {
        const int c0 = cb * detail::channel_block;
        const int c1 = c0 + detail::channel_block < C ? c0 + detail::channel_block : C;
        for (int b = 0; b < B; ++b) {
            for (int i = offsets[b]; i < offsets[b + 1]; ++i) {
                const T* d = dout + static_cast<std::size_t>(i) * C;
                T* e = dwte + static_cast<std::size_t>(tokens[i]) * C;
                T* p = dwpe + static_cast<std::size_t>(i - offsets[b]) * C;
                for (int c = c0; c < c1; ++c) {
                    e[c] += d[c];
                    p[c] += d[c];
                }
            }
        }
    });
}

}  // namespace mlm
