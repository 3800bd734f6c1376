// mlm/encoder.hpp — the encoder-only transformer: forward, manual backward, inference.
//
// Encoder<T> (T = float for speed, double for gradient checks) owns its parameters and
// gradients (one flat buffer each, laid out by ParameterLayout) and a workspace that grows to the
// largest batch it has seen and is reused afterwards: after the first step at the largest batch a
// training step allocates nothing.
//
//   mlm::ModelConfig config;                       // the reference model
//   mlm::Encoder<float> model(config, /*seed=*/42);
//   mlm::Batch batch;                              // packed: see batch.hpp
//   batch.add_sequence({5, 17, 2, 40}, {-100, -100, 9, -100});
//   model.zero_grad();
//   float loss = model.forward(batch, {/*train=*/true, /*dropout_key=*/step});
//   model.backward();                              // gradients() += d loss / d parameters
//   // inference, thread-safe on a const model (one workspace per thread):
//   mlm::InferenceWorkspace<float> ws;
//   std::vector<float> logits(config.vocab_size);
//   int32_t row = 2;
//   model.logits(logits.data(), batch, &row, 1, ws);
//
// The block (config.norm_placement):
//   reference:  u = norm1(x); x = u + drop(attn(u));  u = norm2(x); x = u + drop(ffn(u))
//   pre:        x = x + drop(attn(norm1(x)));        x = x + drop(ffn(norm2(x)))
// with ffn(u) = W3 drop(gelu(W0 u + b0)) + b3, then a final RMSNorm and the head tied to the
// token embedding. Dropout sites: the embedding sum, the attention output, after GELU, the FFN
// output (none on attention probabilities). Only labelled rows go through the final norm and
// the vocab-sized head.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch.hpp"
#include "config.hpp"
#include "ops/attention.hpp"
#include "ops/common.hpp"
#include "ops/cross_entropy.hpp"
#include "ops/dropout.hpp"
#include "ops/embedding.hpp"
#include "ops/gelu.hpp"
#include "ops/gemm.hpp"
#include "ops/linear.hpp"
#include "ops/rmsnorm.hpp"
#include "parameters.hpp"
#include "random.hpp"

namespace mlm {

struct ForwardOptions {
    bool train = true;          // dropout on (training) or off (evaluation)
    uint64_t dropout_key = 0;   // seeds this step's dropout masks; vary it every step
};

namespace detail {

// A buffer that only grows. Growing allocates; using it at or below its high-water mark does not.
// 64-byte aligned: Eigen's vectorized reductions peel differently at different alignments, so an
// unaligned arena would make the last bits of a result depend on where the heap put it.
template <class U>
class GrowBuffer {
public:
    U* ensure(std::size_t n) {
        if (n > data_.size()) data_.resize(n);
        return data_.data();
    }
    std::size_t capacity() const { return data_.size(); }

private:
    std::vector<U, Eigen::aligned_allocator<U>> data_;
};

// Hands out consecutive pieces of one buffer.
template <class U>
struct Bump {
    U* base;
    std::size_t used = 0;
    U* take(std::size_t n) {
        U* p = base + used;
        used += n;
        return p;
    }
};

inline void check_batch(const Batch& batch, const ModelConfig& c) {
    const int B = batch.num_sequences();
    if (B < 0 || batch.offsets.empty() || batch.offsets[0] != 0 ||
        batch.offsets.back() != batch.num_tokens())
        throw std::invalid_argument("Batch: offsets must start at 0 and end at the token count");
    for (int b = 0; b < B; ++b) {
        const int L = batch.length(b);
        if (L <= 0) throw std::invalid_argument("Batch: sequence " + std::to_string(b) + " is empty");
        if (L > c.max_len)
            throw std::invalid_argument("Batch: sequence " + std::to_string(b) + " has " +
                                        std::to_string(L) + " tokens, more than max_len " +
                                        std::to_string(c.max_len));
    }
    for (int i = 0; i < batch.num_tokens(); ++i) {
        const int32_t t = batch.tokens[i];
        if (t < 0 || t >= c.vocab_size)
            throw std::invalid_argument("Batch: token id " + std::to_string(t) + " at row " +
                                        std::to_string(i) + " is outside the vocab [0, " +
                                        std::to_string(c.vocab_size) + ")");
    }
    if (batch.target_rows.size() != batch.target_ids.size())
        throw std::invalid_argument("Batch: target_rows and target_ids differ in length");
    for (int m = 0; m < batch.num_targets(); ++m) {
        const int32_t r = batch.target_rows[m], y = batch.target_ids[m];
        if (r < 0 || r >= batch.num_tokens())
            throw std::invalid_argument("Batch: target row " + std::to_string(r) + " is outside [0, " +
                                        std::to_string(batch.num_tokens()) + ")");
        if (y < 0 || y >= c.vocab_size)
            throw std::invalid_argument("Batch: label " + std::to_string(y) + " at row " +
                                        std::to_string(r) + " is outside the vocab [0, " +
                                        std::to_string(c.vocab_size) + ")");
    }
}

template <class T>
void add_inplace(T* y, const T* x, std::size_t n) {
    parallel_for(n, [&](std::ptrdiff_t i) {
        y[i] += x[i];
    });
}

template <class T>
void copy_rows(T* dst, const T* src, const int32_t* rows, int R, int C) {
    parallel_for(R, [&](std::ptrdiff_t r) {
        std::copy_n(src + static_cast<std::size_t>(rows[r]) * C, C, dst + static_cast<std::size_t>(r) * C);
    });
}

// Keys of the dropout sites of one step: (key, layer, site) -> 64-bit mask key.
inline uint64_t dropout_site_key(uint64_t key, int layer, int site) {
    return random_u64(key, static_cast<uint64_t>(layer + 1), static_cast<uint64_t>(site));
}

}  // namespace detail

// Activations of one block. Training keeps one set per layer; inference reuses one set for all
// layers (x_in and x_out may then be the same buffer, ff_act may equal ff_pre, masks are null).
template <class T>
struct LayerActivations {
    T* x_in;       // (N, C) block input
    T* rinv1;      // (N)
    T* n1;         // (N, C) norm1(x_in)
    T* qkv;        // (N, 3C)
    T* probs;      // (P) attention probabilities
    T* att;        // (N, C) heads concatenated, input of out_proj
    T* x_mid;      // (N, C) stream after the attention sublayer
    T* rinv2;      // (N)
    T* n2;         // (N, C) norm2(x_mid)
    T* ff_pre;     // (N, F) W0 n2 + b0
    T* ff_act;     // (N, F) drop(gelu(ff_pre))
    T* x_out;      // (N, C) block output
    uint8_t* keep_attn;  // (N, C) dropout masks, null when dropout is off
    uint8_t* keep_ff1;   // (N, F)
    uint8_t* keep_ff2;   // (N, C)
};

// Buffers of one inference call; one per concurrent caller. Grows to the largest batch seen.
template <class T>
class InferenceWorkspace {
    template <class>
    friend class Encoder;
    detail::GrowBuffer<T> arena_;
    detail::GrowBuffer<int64_t> prob_offsets_;
    GemmWorkspace<T> gemm_;
};

template <class T>
class Encoder {
public:
    explicit Encoder(const ModelConfig& config, uint64_t seed = 0)
        : config_(config), layout_(config) {
        params_.resize(layout_.size());
        grads_.resize(layout_.size());
        p_ = ParameterViews<T>(layout_, params_.data());
        g_ = ParameterViews<T>(layout_, grads_.data());
        init_parameters(seed);
    }
    Encoder(const Encoder& other)
        : config_(other.config_), layout_(other.config_), params_(other.params_),
          grads_(other.grads_) {
        p_ = ParameterViews<T>(layout_, params_.data());
        g_ = ParameterViews<T>(layout_, grads_.data());
    }
    Encoder& operator=(const Encoder&) = delete;

    const ModelConfig& config() const { return config_; }
    const ParameterLayout& layout() const { return layout_; }
    std::size_t num_parameters() const { return layout_.size(); }
    T* parameters() { return params_.data(); }
    const T* parameters() const { return params_.data(); }
    T* gradients() { return grads_.data(); }
    const T* gradients() const { return grads_.data(); }
    const ParameterViews<T>& params() const { return p_; }
    const ParameterViews<T>& grads() const { return g_; }

    // Weights and embeddings ~ N(0, init_std), biases 0, norm scales 1, drawn in layout order.
    void init_parameters(uint64_t seed) {
        Rng rng(seed);
        for (const auto& t : layout_.tensors()) {
            T* p = params_.data() + t.offset;
            switch (t.kind) {
                case TensorKind::embedding:
                case TensorKind::weight:
                    for (std::size_t i = 0; i < t.numel; ++i)
                        p[i] = static_cast<T>(rng.normal() * config_.init_std);
                    break;
                case TensorKind::bias: std::fill_n(p, t.numel, T(0)); break;
                case TensorKind::norm_scale: std::fill_n(p, t.numel, T(1)); break;
            }
        }
    }

    void zero_grad() { detail::parallel_zero(grads_.data(), grads_.size()); }

    // ---- training ----------------------------------------------------------------------------

    // Runs the model on a packed batch and keeps what backward needs. Returns the mean
    // cross-entropy over the labelled rows (0 when there are none).
    T forward(const Batch& batch, const ForwardOptions& options = {}) {
        detail::check_batch(batch, config_);
        batch_ = &batch;
        options_ = options;
        const bool drop = options.train && config_.dropout > 0.0f;
        plan_training(batch, drop);
        const int N = batch.num_tokens(), B = batch.num_sequences(), C = config_.dim;
        const std::size_t NC = static_cast<std::size_t>(N) * C;

        embedding_forward(xs_[0], batch.tokens.data(), batch.offsets.data(), p_.class_embedding,
                          p_.pos_embedding, B, C);
        if (drop) {
            dropout_mask(keep_emb_, NC, config_.dropout, detail::dropout_site_key(options.dropout_key, -1, 0));
            dropout_forward(xs_[0], xs_[0], keep_emb_, NC, config_.dropout);
        }
        for (int l = 0; l < config_.n_layers; ++l)
            layer_forward(acts_[l], p_.layers[l], batch, prob_offsets_, drop, options.dropout_key, l, gemm_);
        loss_ = head_forward(batch);
        return loss_;
    }

    // Packs right-padded (B, T) arrays (pad_id marks padding, labels -100 where ignored) and
    // runs forward; gives the same loss and gradients as the packed batch.
    T forward_padded(const int32_t* input_ids, const int32_t* labels, int B, int T_,
                     const ForwardOptions& options = {}) {
        Batch::assign_from_padded(padded_batch_, input_ids, labels, B, T_, config_.pad_id);
        return forward(padded_batch_, options);
    }

    // Adds d(loss_scale * loss)/d(parameters) into gradients(), for the batch of the last
    // forward (which must still be alive and unchanged).
    void backward(T loss_scale = T(1)) {
        if (!batch_) throw std::logic_error("Encoder::backward called without a forward");
        const Batch& batch = *batch_;
        const int N = batch.num_tokens(), B = batch.num_sequences(), C = config_.dim;
        const int M = batch.num_targets();
        if (M == 0) return;  // no labelled row: the loss is the constant 0
        const std::size_t NC = static_cast<std::size_t>(N) * C;
        const bool drop = options_.train && config_.dropout > 0.0f;

        head_backward(batch, loss_scale);  // fills dx_ = d loss / d x_final
        for (int l = config_.n_layers - 1; l >= 0; --l) layer_backward(acts_[l], p_.layers[l], g_.layers[l], batch, drop);
        if (drop) dropout_backward_inplace(dx_, keep_emb_, NC, config_.dropout);
        embedding_backward(g_.class_embedding, g_.pos_embedding, dx_, batch.tokens.data(),
                           batch.offsets.data(), B, C);
        batch_ = nullptr;
    }

    // Losses of the labelled rows of the last forward (M), before averaging.
    const T* target_losses() const { return losses_; }

    // Bytes held by the training workspace (for memory reports and the no-allocation test).
    std::size_t workspace_bytes() const {
        return arena_.capacity() * sizeof(T) + masks_.capacity() + prob_offsets_buf_.capacity() * 8 +
               gemm_.capacity() * sizeof(T);
    }

    // ---- inference -----------------------------------------------------------------------------

    // logits (R, V) at the given rows of a packed batch; no dropout, no gradient buffers.
    // Const and thread-safe: concurrent callers need their own workspace.
    void logits(T* out, const Batch& batch, const int32_t* rows, int R,
                InferenceWorkspace<T>& ws) const {
        detail::check_batch(batch, config_);
        for (int r = 0; r < R; ++r)
            if (rows[r] < 0 || rows[r] >= batch.num_tokens())
                throw std::invalid_argument("Encoder::logits: row " + std::to_string(rows[r]) +
                                            " is outside [0, " + std::to_string(batch.num_tokens()) + ")");
        const int N = batch.num_tokens(), B = batch.num_sequences(), C = config_.dim,
                  F = config_.ffn_dim(), H = config_.n_heads, V = config_.vocab_size;
        int64_t* po = ws.prob_offsets_.ensure(static_cast<std::size_t>(B) + 1);
        const int64_t P = attention_prob_offsets(po, batch.offsets.data(), B, H);
        const std::size_t n = static_cast<std::size_t>(N);
        detail::Bump<T> bump{ws.arena_.ensure(n * (7 * C + F + 2) + static_cast<std::size_t>(P) +
                                              static_cast<std::size_t>(R) * (2 * C + 1))};
        LayerActivations<T> a{};
        a.x_in = a.x_out = bump.take(n * C);
        a.rinv1 = bump.take(n);
        a.n1 = bump.take(n * C);
        a.qkv = bump.take(n * 3 * C);
        a.probs = bump.take(static_cast<std::size_t>(P));
        a.att = bump.take(n * C);
        a.x_mid = bump.take(n * C);
        a.rinv2 = bump.take(n);
        a.n2 = a.n1;  // n1 is dead once x_mid exists
        a.ff_pre = a.ff_act = bump.take(n * F);
        embedding_forward(a.x_in, batch.tokens.data(), batch.offsets.data(), p_.class_embedding,
                          p_.pos_embedding, B, C);
        for (int l = 0; l < config_.n_layers; ++l)
            layer_forward(a, p_.layers[l], batch, po, false, 0, l, ws.gemm_);
        T* xr = bump.take(static_cast<std::size_t>(R) * C);
        T* hr = bump.take(static_cast<std::size_t>(R) * C);
        T* rinv = bump.take(static_cast<std::size_t>(R));
        detail::copy_rows(xr, a.x_out, rows, R, C);
        rmsnorm_forward(hr, rinv, xr, p_.ln_f_scale, R, C, static_cast<T>(config_.norm_eps));
        linear_forward(out, hr, p_.class_embedding, static_cast<const T*>(nullptr), R, C, V, ws.gemm_);
    }

private:
    // Lays out the training activations for this batch, growing the workspace if needed.
    void plan_training(const Batch& batch, bool drop) {
        const int N = batch.num_tokens(), B = batch.num_sequences(), M = batch.num_targets();
        const int C = config_.dim, F = config_.ffn_dim(), H = config_.n_heads, V = config_.vocab_size;
        const int nl = config_.n_layers;
        prob_offsets_ = prob_offsets_buf_.ensure(static_cast<std::size_t>(B) + 1);
        const int64_t P = attention_prob_offsets(prob_offsets_, batch.offsets.data(), B, H);
        const int maxL = batch.max_length();
        const std::size_t n = static_cast<std::size_t>(N), m = static_cast<std::size_t>(M);
        const std::size_t per_layer = n * (8 * C + 2 * F + 2) + static_cast<std::size_t>(P);
        const std::size_t total = n * C                      // xs_[0]
                                  + nl * per_layer           // layers (x_out is the next x_in)
                                  + m * (2 * C + 1)          // head: x rows, normed rows, rinv
                                  + m * V + m                // probs, losses
                                  + n * (6 * C + F)          // dx, dn, dc, dqkv (3C), dff (F)
                                  + m * C                    // d head rows
                                  + static_cast<std::size_t>(max_threads()) * maxL * maxL;
        detail::Bump<T> bump{arena_.ensure(total)};
        const std::size_t mask_total = drop ? n * (C + nl * (2 * C + F)) : 0;
        detail::Bump<uint8_t> mbump{masks_.ensure(mask_total)};

        xs_.resize(nl + 1);  // no allocation once sized for this config
        acts_.resize(nl);
        xs_[0] = bump.take(n * C);
        keep_emb_ = drop ? mbump.take(n * C) : nullptr;
        for (int l = 0; l < nl; ++l) {
            LayerActivations<T>& a = acts_[l];
            a.x_in = xs_[l];
            a.rinv1 = bump.take(n);
            a.n1 = bump.take(n * C);
            a.qkv = bump.take(n * 3 * C);
            a.probs = bump.take(static_cast<std::size_t>(P));
            a.att = bump.take(n * C);
            a.x_mid = bump.take(n * C);
            a.rinv2 = bump.take(n);
            a.n2 = bump.take(n * C);
            a.ff_pre = bump.take(n * F);
            a.ff_act = bump.take(n * F);
            a.x_out = xs_[l + 1] = bump.take(n * C);
            a.keep_attn = drop ? mbump.take(n * C) : nullptr;
            a.keep_ff1 = drop ? mbump.take(n * F) : nullptr;
            a.keep_ff2 = drop ? mbump.take(n * C) : nullptr;
        }
        head_x_ = bump.take(m * C);
        head_h_ = bump.take(m * C);
        head_rinv_ = bump.take(m);
        probs_ = bump.take(m * V);
        losses_ = bump.take(m);
        dx_ = bump.take(n * C);
        dn_ = bump.take(n * C);
        dc_ = bump.take(n * C);
        dqkv_ = bump.take(n * 3 * C);
        dff_ = bump.take(n * F);
        dhead_ = bump.take(m * C);
        attn_scratch_ = bump.take(static_cast<std::size_t>(max_threads()) * maxL * maxL);
        attn_scratch_len_ = maxL;
    }

    // One block forward. With dropout, masks are drawn from (key, layer, site).
    void layer_forward(LayerActivations<T>& a, const LayerViews<T>& w, const Batch& batch,
                       const int64_t* prob_offsets, bool drop, uint64_t key, int l,
                       GemmWorkspace<T>& gw) const {
        const int N = batch.num_tokens(), B = batch.num_sequences();
        const int C = config_.dim, F = config_.ffn_dim(), H = config_.n_heads;
        const std::size_t NC = static_cast<std::size_t>(N) * C, NF = static_cast<std::size_t>(N) * F;
        const T eps = static_cast<T>(config_.norm_eps);
        const float p = config_.dropout;
        const bool ref = config_.norm_placement == NormPlacement::reference;

        // attention sublayer: x_mid = base1 + drop(out_proj(attn(in_proj(n1))))
        rmsnorm_forward(a.n1, a.rinv1, a.x_in, w.ln_1_scale, N, C, eps);
        linear_forward(a.qkv, a.n1, w.in_proj_weight, static_cast<const T*>(nullptr), N, C, 3 * C, gw);
        attention_forward(a.att, a.probs, a.qkv, batch.offsets.data(), prob_offsets, B, C, H);
        linear_forward(a.x_mid, a.att, w.out_proj_weight, w.out_proj_bias, N, C, C, gw);
        if (drop) {
            dropout_mask(a.keep_attn, NC, p, detail::dropout_site_key(key, l, 1));
            dropout_forward(a.x_mid, a.x_mid, a.keep_attn, NC, p);
        }
        detail::add_inplace(a.x_mid, ref ? a.n1 : a.x_in, NC);

        // feed-forward sublayer: x_out = base2 + drop(W3 drop(gelu(W0 n2 + b0)) + b3)
        rmsnorm_forward(a.n2, a.rinv2, a.x_mid, w.ln_2_scale, N, C, eps);
        linear_forward(a.ff_pre, a.n2, w.ff0_weight, w.ff0_bias, N, C, F, gw);
        gelu_forward(a.ff_act, a.ff_pre, NF);
        if (drop) {
            dropout_mask(a.keep_ff1, NF, p, detail::dropout_site_key(key, l, 2));
            dropout_forward(a.ff_act, a.ff_act, a.keep_ff1, NF, p);
        }
        linear_forward(a.x_out, a.ff_act, w.ff3_weight, w.ff3_bias, N, F, C, gw);
        if (drop) {
            dropout_mask(a.keep_ff2, NC, p, detail::dropout_site_key(key, l, 3));
            dropout_forward(a.x_out, a.x_out, a.keep_ff2, NC, p);
        }
        detail::add_inplace(a.x_out, ref ? a.n2 : a.x_mid, NC);
    }

    // Final norm and tied head on the labelled rows; returns the mean loss.
    T head_forward(const Batch& batch) {
        const int M = batch.num_targets(), C = config_.dim, V = config_.vocab_size;
        if (M == 0) return T(0);
        detail::copy_rows(head_x_, xs_[config_.n_layers], batch.target_rows.data(), M, C);
        rmsnorm_forward(head_h_, head_rinv_, head_x_, p_.ln_f_scale, M, C, static_cast<T>(config_.norm_eps));
        linear_forward(probs_, head_h_, p_.class_embedding, static_cast<const T*>(nullptr), M, C, V, gemm_);
        cross_entropy_forward(losses_, probs_, probs_, batch.target_ids.data(), M, V);
        double sum = 0;
        for (int m = 0; m < M; ++m) sum += losses_[m];
        return static_cast<T>(sum / M);
    }

    // Differentiates loss = loss_scale * mean_m CE(E h_m, y_m), h_m = norm_f(x[target_rows[m]]);
    // leaves d loss / d x_final in dx_.
    void head_backward(const Batch& batch, T loss_scale) {
        const int N = batch.num_tokens(), M = batch.num_targets(), C = config_.dim, V = config_.vocab_size;
        cross_entropy_backward(probs_, probs_, batch.target_ids.data(), M, V, loss_scale / T(M));
        std::fill_n(dhead_, static_cast<std::size_t>(M) * C, T(0));
        linear_backward_input(dhead_, probs_, p_.class_embedding, M, C, V, gemm_);  // d h_m
        linear_backward_weight(g_.class_embedding, static_cast<T*>(nullptr), probs_, head_h_, M, C, V, gemm_);
        std::fill_n(head_h_, static_cast<std::size_t>(M) * C, T(0));  // reuse: d x_m
        rmsnorm_backward_input(head_h_, dhead_, head_x_, head_rinv_, p_.ln_f_scale, M, C);
        rmsnorm_backward_scale(g_.ln_f_scale, dhead_, head_x_, head_rinv_, M, C);
        detail::parallel_zero(dx_, static_cast<std::size_t>(N) * C);
        for (int m = 0; m < M; ++m) {  // rows are distinct, in order: a plain scatter
            T* d = dx_ + static_cast<std::size_t>(batch.target_rows[m]) * C;
            const T* s = head_h_ + static_cast<std::size_t>(m) * C;
            for (int c = 0; c < C; ++c) d[c] += s[c];
        }
    }

    // One block backward: dx_ holds d/d x_out on entry and d/d x_in on exit.
    void layer_backward(const LayerActivations<T>& a, const LayerViews<T>& w, LayerViews<T>& gw,
                        const Batch& batch, bool drop) {
        const int N = batch.num_tokens(), B = batch.num_sequences();
        const int C = config_.dim, F = config_.ffn_dim(), H = config_.n_heads;
        const std::size_t NC = static_cast<std::size_t>(N) * C, NF = static_cast<std::size_t>(N) * F;
        const float p = config_.dropout;
        const bool ref = config_.norm_placement == NormPlacement::reference;

        // x_out = base2 + drop(ff_out): d ff_out = drop'(dx)  (dropout is its own adjoint)
        if (drop) dropout_forward(dc_, dx_, a.keep_ff2, NC, p);
        else std::copy_n(dx_, NC, dc_);
        // ff_out = ff_act W3^T + b3
        detail::parallel_zero(dff_, NF);
        linear_backward_input(dff_, dc_, w.ff3_weight, N, F, C, gemm_);
        linear_backward_weight(gw.ff3_weight, gw.ff3_bias, dc_, a.ff_act, N, F, C, gemm_);
        // ff_act = drop(gelu(ff_pre))
        if (drop) dropout_backward_inplace(dff_, a.keep_ff1, NF, p);
        gelu_backward_inplace(dff_, a.ff_pre, NF);
        // ff_pre = n2 W0^T + b0
        detail::parallel_zero(dn_, NC);
        linear_backward_input(dn_, dff_, w.ff0_weight, N, C, F, gemm_);
        linear_backward_weight(gw.ff0_weight, gw.ff0_bias, dff_, a.n2, N, C, F, gemm_);
        norm_residual_backward(dn_, a.x_mid, a.rinv2, w.ln_2_scale, gw.ln_2_scale, N, ref);

        // x_mid = base1 + drop(att Wo^T + bo)
        if (drop) dropout_forward(dc_, dx_, a.keep_attn, NC, p);
        else std::copy_n(dx_, NC, dc_);
        detail::parallel_zero(dn_, NC);  // d att
        linear_backward_input(dn_, dc_, w.out_proj_weight, N, C, C, gemm_);
        linear_backward_weight(gw.out_proj_weight, gw.out_proj_bias, dc_, a.att, N, C, C, gemm_);
        detail::parallel_zero(dqkv_, 3 * NC);
        attention_backward(dqkv_, attn_scratch_, dn_, a.qkv, a.probs, batch.offsets.data(),
                           prob_offsets_, B, C, H, attn_scratch_len_);
        // qkv = n1 Win^T
        detail::parallel_zero(dn_, NC);
        linear_backward_input(dn_, dqkv_, w.in_proj_weight, N, C, 3 * C, gemm_);
        linear_backward_weight(gw.in_proj_weight, static_cast<T*>(nullptr), dqkv_, a.n1, N, C, 3 * C, gemm_);
        norm_residual_backward(dn_, a.x_in, a.rinv1, w.ln_1_scale, gw.ln_1_scale, N, ref);
    }

    // The residual around a sublayer whose norm input is x and output u = norm(x); dx_ holds
    // d/d(sublayer output), du the gradient reaching u through the sublayer.
    //   reference: out = u + f(u)  ->  du += dx_;  dx_ = norm'(du)
    //   pre:       out = x + f(u)  ->  dx_ += norm'(du)
    void norm_residual_backward(T* du, const T* x, const T* rinv, const T* scale, T* dscale, int N,
                                bool ref) {
        const int C = config_.dim;
        const std::size_t NC = static_cast<std::size_t>(N) * C;
        if (ref) {
            detail::add_inplace(du, dx_, NC);
            detail::parallel_zero(dx_, NC);
        }
        rmsnorm_backward_input(dx_, du, x, rinv, scale, N, C);
        rmsnorm_backward_scale(dscale, du, x, rinv, N, C);
    }

    ModelConfig config_;
    ParameterLayout layout_;
    std::vector<T> params_, grads_;
    ParameterViews<T> p_, g_;

    // training workspace (pointers into arena_ / masks_, re-planned every forward)
    detail::GrowBuffer<T> arena_;
    detail::GrowBuffer<uint8_t> masks_;
    detail::GrowBuffer<int64_t> prob_offsets_buf_;
    GemmWorkspace<T> gemm_;
    Batch padded_batch_;
    const Batch* batch_ = nullptr;
    ForwardOptions options_;
    T loss_ = 0;
    int64_t* prob_offsets_ = nullptr;
    std::vector<T*> xs_;
    std::vector<LayerActivations<T>> acts_;
    uint8_t* keep_emb_ = nullptr;
    T *head_x_ = nullptr, *head_h_ = nullptr, *head_rinv_ = nullptr, *probs_ = nullptr,
      *losses_ = nullptr;
    T *dx_ = nullptr, *dn_ = nullptr, *dc_ = nullptr, *dqkv_ = nullptr, *dff_ = nullptr,
      *dhead_ = nullptr, *attn_scratch_ = nullptr;
    int attn_scratch_len_ = 0;
};

}  // namespace mlm
