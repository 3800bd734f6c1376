// mlm/parameters.hpp — one flat buffer per role, and the named views into it.
//
// Parameters, gradients and the optimizer's moments are each one contiguous array with the same
// layout. ParameterLayout is the size table: every tensor's checkpoint key (the original PyTorch
// model's state_dict key), shape, offset and kind, in state_dict order. ParameterViews<T> binds a
// flat buffer to per-tensor pointers, so the engine reads `p.layers[i].in_proj_weight`: each
// pointer is looked up in the layout by its checkpoint key and its shape checked, once, when the
// views are made, so a layout in another order still binds every view to its own tensor.
//
//   mlm::ModelConfig config;
//   mlm::ParameterLayout layout(config);
//   std::vector<float> params(layout.size());
//   auto p = mlm::ParameterViews<float>(layout, params.data());
//   const auto& t = layout.find("encoders.0.attn.in_proj.weight");   // shape {768, 256}
//
// The output head `mlm_head.weight` is tied to `embedding.class_embedding.weight`: it is stored
// once, under the embedding's key, and re-tied on load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"

namespace mlm {

// What a tensor is, for weight decay exemptions and initialisation.
enum class TensorKind { embedding, weight, bias, norm_scale };

struct TensorInfo {
    std::string name;            // checkpoint key, e.g. "encoders.3.ffd.feed_forward.0.bias"
    std::vector<int64_t> shape;  // row-major; a Linear weight is (out, in) like nn.Linear
    std::size_t offset = 0;      // into the flat buffer, in elements
    std::size_t numel = 0;
    TensorKind kind = TensorKind::weight;
};

class ParameterLayout {
public:
    explicit ParameterLayout(const ModelConfig& config) : config_(config) {
        config.validate();
        const int64_t V = config.vocab_size, C = config.dim, F = config.ffn_dim();
        add("embedding.class_embedding.weight", {V, C}, TensorKind::embedding);
        add("embedding.pos_embedding.weight", {config.max_len, C}, TensorKind::embedding);
        for (int i = 0; i < config.n_layers; ++i) {
            const std::string b = "encoders." + std::to_string(i) + ".";
            add(b + "ln_1.scale", {C}, TensorKind::norm_scale);
            add(b + "attn.in_proj.weight", {3 * C, C}, TensorKind::weight);
            add(b + "attn.out_proj.weight", {C, C}, TensorKind::weight);
            add(b + "attn.out_proj.bias", {C}, TensorKind::bias);
            add(b + "ln_2.scale", {C}, TensorKind::norm_scale);
            add(b + "ffd.feed_forward.0.weight", {F, C}, TensorKind::weight);
            add(b + "ffd.feed_forward.0.bias", {F}, TensorKind::bias);
            add(b + "ffd.feed_forward.3.weight", {C, F}, TensorKind::weight);
            add(b + "ffd.feed_forward.3.bias", {C}, TensorKind::bias);
        }
        add("ln_f.scale", {C}, TensorKind::norm_scale);
    }

    const ModelConfig& config() const { return config_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    std::size_t size() const { return size_; }  // total elements

    const TensorInfo* try_find(const std::string& name) const {
        for (const auto& t : tensors_)
            if (t.name == name) return &t;
        return nullptr;
    }
    const TensorInfo& find(const std::string& name) const {
        if (const TensorInfo* t = try_find(name)) return *t;
        throw std::out_of_range("no parameter named \"" + name + "\" in this model");
    }

protected:
    // A subclass may lay the tensors out otherwise (the tests do, to check the views bind by key).
    void add(std::string name, std::vector<int64_t> shape, TensorKind kind) {
        std::size_t n = 1;
        for (int64_t d : shape) n *= static_cast<std::size_t>(d);
        tensors_.push_back({std::move(name), std::move(shape), size_, n, kind});
        size_ += n;
    }
    ModelConfig config_;
    std::vector<TensorInfo> tensors_;
    std::size_t size_ = 0;
};

namespace detail {
inline std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + ")";
}
}  // namespace detail

// Per-tensor pointers into one flat buffer laid out by a ParameterLayout. Member names follow the
// checkpoint keys. Works for parameters, gradients and optimizer moments alike.
template <class T>
struct LayerViews {
    T* ln_1_scale;        // (C)
    T* in_proj_weight;    // (3C, C)  rows: q | k | v, head h owns rows h*D..(h+1)*D of each
    T* out_proj_weight;   // (C, C)
    T* out_proj_bias;     // (C)
    T* ln_2_scale;        // (C)
    T* ff0_weight;        // (F, C)   ffd.feed_forward.0
    T* ff0_bias;          // (F)
    T* ff3_weight;        // (C, F)   ffd.feed_forward.3
    T* ff3_bias;          // (C)
};

template <class T>
struct ParameterViews {
    T* class_embedding;  // (V, C), also the tied output head
    T* pos_embedding;    // (max_len, C)
    std::vector<LayerViews<T>> layers;
    T* ln_f_scale;       // (C)

    ParameterViews() = default;
    // Binds every view by its checkpoint key. Throws std::logic_error if a key is missing from
    // the layout, has another shape than the engine expects, or a tensor of the layout is left
    // unbound: the layout and the engine disagree.
    ParameterViews(const ParameterLayout& layout, T* base) {
        const ModelConfig& c = layout.config();
        const int64_t V = c.vocab_size, C = c.dim, F = c.ffn_dim(), L = c.max_len;
        const auto& tensors = layout.tensors();
        std::vector<bool> bound(tensors.size(), false);
        auto bind = [&](const std::string& key, const std::vector<int64_t>& shape) {
            const TensorInfo* t = layout.try_find(key);
            if (!t) throw std::logic_error("ParameterViews: the layout has no tensor \"" + key + "\"");
            if (t->shape != shape)
                throw std::logic_error("ParameterViews: \"" + key + "\" is " + detail::shape_string(t->shape) +
                                       " in the layout but the engine reads it as " + detail::shape_string(shape));
            bound[static_cast<std::size_t>(t - tensors.data())] = true;
            return base + t->offset;
        };
        class_embedding = bind("embedding.class_embedding.weight", {V, C});
        pos_embedding = bind("embedding.pos_embedding.weight", {L, C});
        layers.resize(static_cast<std::size_t>(c.n_layers));
        for (int i = 0; i < c.n_layers; ++i) {
            const std::string k = "encoders." + std::to_string(i) + ".";
            LayerViews<T>& l = layers[static_cast<std::size_t>(i)];
            l.ln_1_scale = bind(k + "ln_1.scale", {C});
            l.in_proj_weight = bind(k + "attn.in_proj.weight", {3 * C, C});
            l.out_proj_weight = bind(k + "attn.out_proj.weight", {C, C});
            l.out_proj_bias = bind(k + "attn.out_proj.bias", {C});
            l.ln_2_scale = bind(k + "ln_2.scale", {C});
            l.ff0_weight = bind(k + "ffd.feed_forward.0.weight", {F, C});
            l.ff0_bias = bind(k + "ffd.feed_forward.0.bias", {F});
            l.ff3_weight = bind(k + "ffd.feed_forward.3.weight", {C, F});
            l.ff3_bias = bind(k + "ffd.feed_forward.3.bias", {C});
        }
        ln_f_scale = bind("ln_f.scale", {C});
        for (std::size_t i = 0; i < tensors.size(); ++i)
            if (!bound[i])
                throw std::logic_error("ParameterViews: the layout's tensor \"" + tensors[i].name +
                                       "\" is bound to no view");
    }
};

}  // namespace mlm
