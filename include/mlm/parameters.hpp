// mlm/parameters.hpp — one flat buffer per role, and the named views into it.
//
// Parameters, gradients and the optimizer's moments are each one contiguous array with the same
// layout. ParameterLayout is the size table: every tensor's checkpoint key (the original PyTorch
// model's state_dict key), shape, offset and kind, in state_dict order. ParameterViews<T> binds a
// flat buffer to per-tensor pointers, so the engine reads `p.layers[i].in_proj_weight`.
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
    explicit ParameterLayout(const ModelConfig& config) {
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

private:
    void add(std::string name, std::vector<int64_t> shape, TensorKind kind) {
        std::size_t n = 1;
        for (int64_t d : shape) n *= static_cast<std::size_t>(d);
        tensors_.push_back({std::move(name), std::move(shape), size_, n, kind});
        size_ += n;
    }
    std::vector<TensorInfo> tensors_;
    std::size_t size_ = 0;
};

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
    ParameterViews(const ParameterLayout& layout, T* base) {
        const auto& t = layout.tensors();
        std::size_t k = 0;
        auto next = [&]() { return base + t.at(k++).offset; };
        class_embedding = next();
        pos_embedding = next();
        const std::size_t n_layers = (t.size() - 3) / 9;
        layers.resize(n_layers);
        for (auto& l : layers) {
            l.ln_1_scale = next();
            l.in_proj_weight = next();
            l.out_proj_weight = next();
            l.out_proj_bias = next();
            l.ln_2_scale = next();
            l.ff0_weight = next();
            l.ff0_bias = next();
            l.ff3_weight = next();
            l.ff3_bias = next();
        }
        ln_f_scale = next();
    }
};

}  // namespace mlm
