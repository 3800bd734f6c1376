// mlm/config.hpp — the model's hyper-parameters.
//
// ModelConfig holds every size and switch of the encoder. Its defaults are the reference system
// (the "Masked Language Modeling from Scratch" notebook): vocab 8192, dim 256, 8 heads, 6 layers,
// FFN 4x, max length 128, dropout 0.1, RMSNorm eps 1e-8, the original block order.
//
//   mlm::ModelConfig config;            // the reference model, 6,861,056 parameters
//   config.norm_placement = mlm::NormPlacement::pre;
//   config.validate();                  // throws std::invalid_argument naming the bad field
//   std::string json = mlm::to_json(config);   // config.json of a checkpoint (compiled part)
//
// The fields are declared once, in the table after the struct (fields.hpp): JSON, equality, the
// Python attributes and the `mlm train` options come from it.
//
// Header-only apart from the JSON round trip, which lives in the compiled library (src/config.cpp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include "fields.hpp"

namespace mlm {

// Where each block applies its RMSNorm.
//   reference: x = norm(x); x = x + f(x)   (the original notebook: the norm rewrites the residual)
//   pre:       x = x + f(norm(x))          (the usual pre-norm transformer)
enum class NormPlacement { reference, pre };

inline const auto& enum_names(const NormPlacement*) {
    static const EnumName<NormPlacement> names[] = {{NormPlacement::reference, "reference"}, {NormPlacement::pre, "pre"}};
    return names;
}
inline const char* to_string(NormPlacement p) { return enum_name(p); }
inline NormPlacement norm_placement_from_string(const std::string& s) {
    return enum_from_name<NormPlacement>(s, "norm_placement");
}

struct ModelConfig {
    int vocab_size = 8192;
    int dim = 256;           // C: model width
    int n_heads = 8;         // H: attention heads, dim % n_heads == 0
    int n_layers = 6;        // L: encoder blocks
    int ffn_mult = 4;        // the feed-forward hidden width is ffn_mult * dim
    int max_len = 128;       // rows of the learned positional embedding: longest sequence
    float dropout = 0.1f;    // after the embedding, the attention output, GELU and the FFN output
    double norm_eps = 1e-8;  // RMSNorm: y = scale * x / (||x|| / sqrt(dim) + eps)
    int unk_id = 0;
    int pad_id = 1;
    int mask_id = 2;
    NormPlacement norm_placement = NormPlacement::reference;
    float init_std = 0.02f;  // weights and embeddings ~ N(0, init_std); biases 0; norm scales 1

    // Bounds on the model's size that validate() enforces. A checkpoint's config.json is read
    // before its weights, and a program allocates the parameters (and gradients and Adam
    // moments) from it: a forged or mistyped size must be refused, not become an allocation of
    // terabytes or a layout of billions of layers. 2^32 parameters are 16 GiB as float32.
    static constexpr int64_t max_parameters = int64_t(1) << 32;
    static constexpr int max_layers = 1024;

    int head_dim() const { return dim / n_heads; }
    int ffn_dim() const { return ffn_mult * dim; }

    // Throws std::invalid_argument naming the first field that is out of range.
    void validate() const {
        auto fail = [](const std::string& what) {
            throw std::invalid_argument("ModelConfig: " + what);
        };
        if (vocab_size < 4) fail("vocab_size must be at least 4, got " + std::to_string(vocab_size));
        if (dim < 1) fail("dim must be positive, got " + std::to_string(dim));
        if (n_heads < 1) fail("n_heads must be positive, got " + std::to_string(n_heads));
        if (dim % n_heads != 0)
            fail("dim (" + std::to_string(dim) + ") must be divisible by n_heads (" +
                 std::to_string(n_heads) + ")");
        if (n_layers < 0) fail("n_layers must be >= 0, got " + std::to_string(n_layers));
        if (ffn_mult < 1) fail("ffn_mult must be positive, got " + std::to_string(ffn_mult));
        if (max_len < 1) fail("max_len must be positive, got " + std::to_string(max_len));
        // The engine computes 3 * dim and ffn_dim() in int.
        constexpr int64_t int_max = std::numeric_limits<int>::max();
        if (3 * int64_t(dim) > int_max) fail("dim " + std::to_string(dim) + " is too large");
        if (int64_t(ffn_mult) * dim > int_max)
            fail("ffn_mult * dim (" + std::to_string(int64_t(ffn_mult) * dim) + ") is too large");
        if (n_layers > max_layers)
            fail("n_layers must be at most " + std::to_string(max_layers) + ", got " +
                 std::to_string(n_layers));
        // ParameterLayout's count in double: exact up to 2^53, far beyond the limit, and never
        // overflows.
        const double C = dim, F = double(ffn_mult) * dim;
        const double parameters =
            C * (double(vocab_size) + max_len + 1) + double(n_layers) * (4 * C * C + 2 * F * C + 4 * C + F);
        if (parameters > double(max_parameters)) {
            char count[64];
            std::snprintf(count, sizeof count, "%.0f", parameters);
            fail(std::string("the model would have ") + count + " parameters, more than the limit of " +
                 std::to_string(max_parameters) + " (check vocab_size, dim, ffn_mult, max_len and n_layers)");
        }
        if (!(dropout >= 0.0f && dropout < 1.0f))
            fail("dropout must be in [0, 1), got " + std::to_string(dropout));
        if (!(norm_eps >= 0.0)) fail("norm_eps must be >= 0, got " + std::to_string(norm_eps));
        if (!(init_std > 0.0f)) fail("init_std must be positive, got " + std::to_string(init_std));
        for (auto [name, id] : {std::pair<const char*, int>{"unk_id", unk_id},
                                {"pad_id", pad_id}, {"mask_id", mask_id}}) {
            if (id < 0 || id >= vocab_size)
                fail(std::string(name) + " " + std::to_string(id) + " is outside the vocab [0, " +
                     std::to_string(vocab_size) + ")");
        }
        if (pad_id == mask_id) fail("pad_id and mask_id must differ");
    }
};

inline const auto& fields(const ModelConfig*) {
    using C = ModelConfig;
    static const auto table = std::make_tuple(
        field(&C::vocab_size, "vocab_size", Role::run, "model", "Token ids (the tokenizer's vocab size)"),
        field(&C::dim, "dim", Role::run, "model", "Model width"),
        field(&C::n_heads, "n_heads", Role::run, "model", "Attention heads (dim % n_heads == 0)"),
        field(&C::n_layers, "n_layers", Role::run, "model", "Encoder blocks"),
        field(&C::ffn_mult, "ffn_mult", Role::run, "model", "Feed-forward width / dim"),
        field(&C::max_len, "max_len", Role::run, "model", "Longest sequence (longer ones are truncated)"),
        field(&C::dropout, "dropout", Role::recipe, "model", "Dropout probability"),
        field(&C::norm_eps, "norm_eps", Role::run, "model", "RMSNorm epsilon"),
        field(&C::unk_id, "unk_id", Role::run, "model", "Id of [UNK]"),
        field(&C::pad_id, "pad_id", Role::run, "model", "Id of [PAD]"),
        field(&C::mask_id, "mask_id", Role::run, "model", "Id of [MASK]"),
        field(&C::norm_placement, "norm_placement", Role::recipe, "model",
              "reference: x = norm(x); x = x + f(x) (the original), pre: x = x + f(norm(x))"),
        field(&C::init_std, "init_std", Role::run, "model", "Std of the initial weights"));
    return table;
}
MLM_CHECK_FIELD_TABLE(ModelConfig);

inline bool operator==(const ModelConfig& a, const ModelConfig& b) { return fields_equal(a, b); }
inline bool operator!=(const ModelConfig& a, const ModelConfig& b) { return !(a == b); }

// config.json of a checkpoint. Unknown keys are an error, missing keys take the defaults.
// Implemented in the compiled library (link mlm::mlm).
std::string to_json(const ModelConfig& config);
ModelConfig model_config_from_json(const std::string& json);

}  // namespace mlm
