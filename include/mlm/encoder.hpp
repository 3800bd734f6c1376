// mlm/encoder.hpp — the encoder-only transformer: forward, manual backward, inference.
//
// Encoder<T> (T = float for speed, double for gradient checks) owns its parameters and
// gradients (one flat buffer each, laid out by ParameterLayout) and a workspace that grows to the
// largest batch it has seen and is reused afterwards: after the first step at the largest batch a
// training step allocates nothing. Each workspace (training: detail::plan_training_workspace,
// inference: detail::plan_inference_workspace) is planned by one function that names every
// buffer once, run to size the arena and again to bind the pointers (workspace.hpp); every
// buffer is 64-byte aligned, so results do not depend on where the heap puts the arena.
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
#include "workspace.hpp"

namespace mlm {

struct ForwardOptions {
    bool train = true;          // dropout on (training) or off (evaluation)
    uint64_t dropout_key = 0;   // seeds this step's dropout masks; vary it every step
};

namespace detail {

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

// Activations of one block, by their role in the block. Training keeps one set per layer, each
// its own buffer; inference points one set at the few buffers it reuses for every layer (see
// InferenceBuffers: x_in is x_out, n2 is n1, rinv2 is rinv1, ff_act is ff_pre, masks are null).
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

namespace detail {

// The sizes a batch's workspace depends on. Letters as in ops/common.hpp, and
//   B sequences   P attention probabilities (H * sum_b L_b^2)   L the longest sequence
//   R rows whose logits inference returns
struct BatchDims {
    std::size_t N = 0, B = 0, M = 0, P = 0, L = 0, R = 0;
    std::size_t threads = 1;  // blocks of attention backward's scratch
    bool dropout = false;     // dropout masks are kept
};

inline BatchDims batch_dims(const Batch& batch, const ModelConfig& c) {
    BatchDims d;
    d.N = static_cast<std::size_t>(batch.num_tokens());
    d.B = static_cast<std::size_t>(batch.num_sequences());
    d.M = static_cast<std::size_t>(batch.num_targets());
    for (int b = 0; b < batch.num_sequences(); ++b) {
        const auto L = static_cast<std::size_t>(batch.length(b));
        d.P += static_cast<std::size_t>(c.n_heads) * L * L;
        d.L = std::max(d.L, L);
    }
    return d;
}

// The attention's block starts into a planned (B+1) buffer; the plan sized probs as P.
inline void fill_prob_offsets(int64_t* prob_offsets, const Batch& batch, int H, std::size_t P) {
    if (attention_prob_offsets(prob_offsets, batch.offsets.data(), batch.num_sequences(), H) !=
        static_cast<int64_t>(P))
        throw std::logic_error("workspace: the attention probabilities differ from the planned size");
}

// Everything a training step keeps between forward and backward, and backward's own buffers.
template <class T>
struct TrainingBuffers {
    int64_t* prob_offsets;              // (B+1) where each sequence's block of probs starts
    std::vector<T*> xs;                 // (n_layers+1) the stream: xs[0] the embedding output,
                                        // xs[l+1] block l's output, each (N, C)
    std::vector<LayerActivations<T>> layers;
    uint8_t* keep_emb;                  // (N, C) embedding dropout mask, null without dropout
    // the head, on the M labelled rows
    T* head_x;      // (M, C) rows of the final stream
    T* head_rinv;   // (M)
    T* head_h;      // (M, C) norm_f(head_x)
    T* head_vocab;  // (M, V) the vocab-wide rows, in place: logits, softmax (kept for backward),
                    // then d logits
    T* losses;      // (M)
    // backward: the gradients of one block at a time, each buffer one role for every layer
    T* dhead_h;     // (M, C) d head_h
    T* dhead_x;     // (M, C) d head_x
    T* dresidual;   // (N, C) d stream: d x_out entering a block's backward, d x_in leaving it
    T* dbranch;     // (N, C) d of a sublayer's output before the residual add (FFN, then attention)
    T* dff;         // (N, F) d of the FFN's hidden units: d ff_act, then d ff_pre in place
    T* dnorm;       // (N, C) d of a norm's output (n2, then n1)
    T* datt;        // (N, C) d att
    T* dqkv;        // (N, 3C)
    T* attn_scratch;  // (threads, L, L) attention backward's per-thread dP block
};

// The training workspace of one batch, in arena order. Run by plan_workspace.
template <class T, class Ws>
void plan_training_workspace(Ws& ws, TrainingBuffers<T>& b, const ModelConfig& c, const BatchDims& d) {
    const std::size_t N = d.N, M = d.M, C = c.dim, F = c.ffn_dim(), V = c.vocab_size;
    const int n_layers = c.n_layers;
    const bool drop = d.dropout;
    b.xs.resize(n_layers + 1);  // no allocation once sized for this config
    b.layers.resize(n_layers);
    ws.take(b.prob_offsets, d.B + 1, "prob_offsets");
    ws.take(b.xs[0], N * C, "x_emb");
    ws.take(b.keep_emb, drop ? N * C : 0, "keep_emb");
    for (int l = 0; l < n_layers; ++l) {
        LayerActivations<T>& a = b.layers[l];
        a.x_in = b.xs[l];
        ws.take(a.rinv1, N, "rinv1");
        ws.take(a.n1, N * C, "n1");
        ws.take(a.qkv, N * 3 * C, "qkv");
        ws.take(a.probs, d.P, "probs");
        ws.take(a.att, N * C, "att");
        ws.take(a.x_mid, N * C, "x_mid");
        ws.take(a.rinv2, N, "rinv2");
        ws.take(a.n2, N * C, "n2");
        ws.take(a.ff_pre, N * F, "ff_pre");
        ws.take(a.ff_act, N * F, "ff_act");
        ws.take(b.xs[l + 1], N * C, "x_out");
        a.x_out = b.xs[l + 1];
        ws.take(a.keep_attn, drop ? N * C : 0, "keep_attn");
        ws.take(a.keep_ff1, drop ? N * F : 0, "keep_ff1");
        ws.take(a.keep_ff2, drop ? N * C : 0, "keep_ff2");
    }
    ws.take(b.head_x, M * C, "head_x");
    ws.take(b.head_rinv, M, "head_rinv");
    ws.take(b.head_h, M * C, "head_h");
    ws.take(b.head_vocab, M * V, "head_vocab");
    ws.take(b.losses, M, "losses");
    ws.take(b.dhead_h, M * C, "dhead_h");
    ws.take(b.dhead_x, M * C, "dhead_x");
    ws.take(b.dresidual, N * C, "dresidual");
    ws.take(b.dbranch, N * C, "dbranch");
    ws.take(b.dff, N * F, "dff");
    ws.take(b.dnorm, N * C, "dnorm");
    ws.take(b.datt, N * C, "datt");
    ws.take(b.dqkv, N * 3 * C, "dqkv");
    ws.take(b.attn_scratch, d.threads * d.L * d.L, "attn_scratch");
}

// One inference call's buffers: no gradients, so a block's buffers serve every layer, and a
// buffer is named for every role it holds.
template <class T>
struct InferenceBuffers {
    int64_t* prob_offsets;  // (B+1)
    T* residual;   // (N, C) the stream: every block's input and, overwritten, its output
    T* rinv;       // (N) of the norm last applied (norm1, then norm2)
    T* normed;     // (N, C) norm1(x_in), then norm2(x_mid): n1 is dead once x_mid exists
    T* qkv;        // (N, 3C)
    T* probs;      // (P)
    T* att;        // (N, C)
    T* x_mid;      // (N, C)
    T* ff_hidden;  // (N, F) W0 n2 + b0, then gelu of it in place
    T* head_x;     // (R, C) the requested rows of the final stream
    T* head_rinv;  // (R)
    T* head_h;     // (R, C) norm_f(head_x)

    LayerActivations<T> layer() const {
        LayerActivations<T> a{};
        a.x_in = a.x_out = residual;
        a.rinv1 = a.rinv2 = rinv;
        a.n1 = a.n2 = normed;
        a.qkv = qkv;
        a.probs = probs;
        a.att = att;
        a.x_mid = x_mid;
        a.ff_pre = a.ff_act = ff_hidden;
        return a;  // no dropout masks
    }
};

template <class T, class Ws>
void plan_inference_workspace(Ws& ws, InferenceBuffers<T>& b, const ModelConfig& c, const BatchDims& d) {
    const std::size_t N = d.N, R = d.R, C = c.dim, F = c.ffn_dim();
    ws.take(b.prob_offsets, d.B + 1, "prob_offsets");
    ws.take(b.residual, N * C, "residual");
    ws.take(b.rinv, N, "rinv");
    ws.take(b.normed, N * C, "normed");
    ws.take(b.qkv, N * 3 * C, "qkv");
    ws.take(b.probs, d.P, "probs");
    ws.take(b.att, N * C, "att");
    ws.take(b.x_mid, N * C, "x_mid");
    ws.take(b.ff_hidden, N * F, "ff_hidden");
    ws.take(b.head_x, R * C, "head_x");
    ws.take(b.head_rinv, R, "head_rinv");
    ws.take(b.head_h, R * C, "head_h");
}

}  // namespace detail

// Buffers of one inference call; one per concurrent caller. Grows to the largest batch seen.
template <class T>
class InferenceWorkspace {
public:
    std::size_t bytes() const { return arena_.capacity() + gemm_.capacity() * sizeof(T); }

private:
    template <class>
    friend class Encoder;
    detail::WorkspaceArena arena_;
    detail::InferenceBuffers<T> buffers_{};
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

        detail::TrainingBuffers<T>& w = work_;
        embedding_forward(w.xs[0], batch.tokens.data(), batch.offsets.data(), p_.class_embedding,
                          p_.pos_embedding, B, C);
        if (drop) {
            dropout_mask(w.keep_emb, NC, config_.dropout, detail::dropout_site_key(options.dropout_key, -1, 0));
            dropout_forward(w.xs[0], w.xs[0], w.keep_emb, NC, config_.dropout);
        }
        for (int l = 0; l < config_.n_layers; ++l)
            layer_forward(w.layers[l], p_.layers[l], batch, w.prob_offsets, drop, options.dropout_key, l, gemm_);
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

        head_backward(batch, loss_scale);  // fills dresidual = d loss / d x_final
        for (int l = config_.n_layers - 1; l >= 0; --l)
            layer_backward(work_.layers[l], p_.layers[l], g_.layers[l], batch, drop);
        if (drop) dropout_backward_inplace(work_.dresidual, work_.keep_emb, NC, config_.dropout);
        embedding_backward(g_.class_embedding, g_.pos_embedding, work_.dresidual, batch.tokens.data(),
                           batch.offsets.data(), B, C);
        batch_ = nullptr;
    }

    // Losses of the labelled rows of the last forward (M), before averaging.
    const T* target_losses() const { return work_.losses; }

    // Bytes held by the training workspace (for memory reports and the no-allocation test).
    std::size_t workspace_bytes() const { return arena_.capacity() + gemm_.capacity() * sizeof(T); }

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
        const int B = batch.num_sequences(), C = config_.dim, H = config_.n_heads, V = config_.vocab_size;
        detail::BatchDims d = detail::batch_dims(batch, config_);
        d.R = static_cast<std::size_t>(R);
        detail::InferenceBuffers<T>& w = ws.buffers_;
        detail::plan_workspace(ws.arena_, [&](auto& v) { detail::plan_inference_workspace(v, w, config_, d); });
        detail::fill_prob_offsets(w.prob_offsets, batch, H, d.P);
        LayerActivations<T> a = w.layer();
        embedding_forward(a.x_in, batch.tokens.data(), batch.offsets.data(), p_.class_embedding,
                          p_.pos_embedding, B, C);
        for (int l = 0; l < config_.n_layers; ++l)
            layer_forward(a, p_.layers[l], batch, w.prob_offsets, false, 0, l, ws.gemm_);
        detail::copy_rows(w.head_x, a.x_out, rows, R, C);
        rmsnorm_forward(w.head_h, w.head_rinv, w.head_x, p_.ln_f_scale, R, C, static_cast<T>(config_.norm_eps));
        linear_forward(out, w.head_h, p_.class_embedding, static_cast<const T*>(nullptr), R, C, V, ws.gemm_);
    }

private:
    // Lays out the training workspace for this batch, growing it if needed.
    void plan_training(const Batch& batch, bool drop) {
        detail::BatchDims d = detail::batch_dims(batch, config_);
        d.dropout = drop;
        d.threads = static_cast<std::size_t>(max_threads());
        detail::plan_workspace(arena_, [&](auto& v) { detail::plan_training_workspace(v, work_, config_, d); });
        detail::fill_prob_offsets(work_.prob_offsets, batch, config_.n_heads, d.P);
        attn_scratch_len_ = static_cast<int>(d.L);
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
        detail::TrainingBuffers<T>& w = work_;
        detail::copy_rows(w.head_x, w.xs[config_.n_layers], batch.target_rows.data(), M, C);
        rmsnorm_forward(w.head_h, w.head_rinv, w.head_x, p_.ln_f_scale, M, C, static_cast<T>(config_.norm_eps));
        linear_forward(w.head_vocab, w.head_h, p_.class_embedding, static_cast<const T*>(nullptr), M, C, V, gemm_);
        cross_entropy_forward(w.losses, w.head_vocab, w.head_vocab, batch.target_ids.data(), M, V);  // logits -> probs
        double sum = 0;
        for (int m = 0; m < M; ++m) sum += w.losses[m];
        return static_cast<T>(sum / M);
    }

    // Differentiates loss = loss_scale * mean_m CE(E h_m, y_m), h_m = norm_f(x[target_rows[m]]);
    // leaves d loss / d x_final in dresidual.
    void head_backward(const Batch& batch, T loss_scale) {
        const int N = batch.num_tokens(), M = batch.num_targets(), C = config_.dim, V = config_.vocab_size;
        const std::size_t MC = static_cast<std::size_t>(M) * C;
        detail::TrainingBuffers<T>& w = work_;
        cross_entropy_backward(w.head_vocab, w.head_vocab, batch.target_ids.data(), M, V, loss_scale / T(M));  // probs -> d logits
        std::fill_n(w.dhead_h, MC, T(0));
        linear_backward_input(w.dhead_h, w.head_vocab, p_.class_embedding, M, C, V, gemm_);
        linear_backward_weight(g_.class_embedding, static_cast<T*>(nullptr), w.head_vocab, w.head_h, M, C, V, gemm_);
        std::fill_n(w.dhead_x, MC, T(0));
        rmsnorm_backward_input(w.dhead_x, w.dhead_h, w.head_x, w.head_rinv, p_.ln_f_scale, M, C);
        rmsnorm_backward_scale(g_.ln_f_scale, w.dhead_h, w.head_x, w.head_rinv, M, C);
        detail::parallel_zero(w.dresidual, static_cast<std::size_t>(N) * C);
        for (int m = 0; m < M; ++m) {  // rows are distinct, in order: a plain scatter
            T* d = w.dresidual + static_cast<std::size_t>(batch.target_rows[m]) * C;
            const T* s = w.dhead_x + static_cast<std::size_t>(m) * C;
            for (int c = 0; c < C; ++c) d[c] += s[c];
        }
    }

    // One block backward: dresidual holds d/d x_out on entry and d/d x_in on exit.
    void layer_backward(const LayerActivations<T>& a, const LayerViews<T>& w, LayerViews<T>& gw,
                        const Batch& batch, bool drop) {
        const int N = batch.num_tokens(), B = batch.num_sequences();
        const int C = config_.dim, F = config_.ffn_dim(), H = config_.n_heads;
        const std::size_t NC = static_cast<std::size_t>(N) * C, NF = static_cast<std::size_t>(N) * F;
        const float p = config_.dropout;
        const bool ref = config_.norm_placement == NormPlacement::reference;
        detail::TrainingBuffers<T>& d = work_;

        // x_out = base2 + drop(ff_out): d ff_out = drop'(d x_out)  (dropout is its own adjoint)
        if (drop) dropout_forward(d.dbranch, d.dresidual, a.keep_ff2, NC, p);
        else std::copy_n(d.dresidual, NC, d.dbranch);
        // ff_out = ff_act W3^T + b3
        detail::parallel_zero(d.dff, NF);
        linear_backward_input(d.dff, d.dbranch, w.ff3_weight, N, F, C, gemm_);
        linear_backward_weight(gw.ff3_weight, gw.ff3_bias, d.dbranch, a.ff_act, N, F, C, gemm_);
        // ff_act = drop(gelu(ff_pre))
        if (drop) dropout_backward_inplace(d.dff, a.keep_ff1, NF, p);
        gelu_backward_inplace(d.dff, a.ff_pre, NF);
        // ff_pre = n2 W0^T + b0
        detail::parallel_zero(d.dnorm, NC);
        linear_backward_input(d.dnorm, d.dff, w.ff0_weight, N, C, F, gemm_);
        linear_backward_weight(gw.ff0_weight, gw.ff0_bias, d.dff, a.n2, N, C, F, gemm_);
        norm_residual_backward(d.dnorm, a.x_mid, a.rinv2, w.ln_2_scale, gw.ln_2_scale, N, ref);

        // x_mid = base1 + drop(att Wo^T + bo)
        if (drop) dropout_forward(d.dbranch, d.dresidual, a.keep_attn, NC, p);
        else std::copy_n(d.dresidual, NC, d.dbranch);
        detail::parallel_zero(d.datt, NC);
        linear_backward_input(d.datt, d.dbranch, w.out_proj_weight, N, C, C, gemm_);
        linear_backward_weight(gw.out_proj_weight, gw.out_proj_bias, d.dbranch, a.att, N, C, C, gemm_);
        detail::parallel_zero(d.dqkv, 3 * NC);
        attention_backward(d.dqkv, d.attn_scratch, d.datt, a.qkv, a.probs, batch.offsets.data(),
                           d.prob_offsets, B, C, H, attn_scratch_len_);
        // qkv = n1 Win^T
        detail::parallel_zero(d.dnorm, NC);
        linear_backward_input(d.dnorm, d.dqkv, w.in_proj_weight, N, C, 3 * C, gemm_);
        linear_backward_weight(gw.in_proj_weight, static_cast<T*>(nullptr), d.dqkv, a.n1, N, C, 3 * C, gemm_);
        norm_residual_backward(d.dnorm, a.x_in, a.rinv1, w.ln_1_scale, gw.ln_1_scale, N, ref);
    }

    // The residual around a sublayer whose norm input is x and output u = norm(x); dresidual
    // holds d/d(sublayer output), du the gradient reaching u through the sublayer.
    //   reference: out = u + f(u)  ->  du += dresidual;  dresidual = norm'(du)
    //   pre:       out = x + f(u)  ->  dresidual += norm'(du)
    void norm_residual_backward(T* du, const T* x, const T* rinv, const T* scale, T* dscale, int N,
                                bool ref) {
        const int C = config_.dim;
        const std::size_t NC = static_cast<std::size_t>(N) * C;
        T* dresidual = work_.dresidual;
        if (ref) {
            detail::add_inplace(du, dresidual, NC);
            detail::parallel_zero(dresidual, NC);
        }
        rmsnorm_backward_input(dresidual, du, x, rinv, scale, N, C);
        rmsnorm_backward_scale(dscale, du, x, rinv, N, C);
    }

    ModelConfig config_;
    ParameterLayout layout_;
    std::vector<T> params_, grads_;
    ParameterViews<T> p_, g_;

    // training workspace: pointers into arena_, planned afresh by every forward
    detail::WorkspaceArena arena_;
    detail::TrainingBuffers<T> work_{};
    GemmWorkspace<T> gemm_;
    Batch padded_batch_;
    const Batch* batch_ = nullptr;
    ForwardOptions options_;
    T loss_ = 0;
    int attn_scratch_len_ = 0;
};

}  // namespace mlm
