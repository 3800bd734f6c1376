// ParameterViews bind by checkpoint key: a layout in another order binds every view to its own
// tensor; a tensor of another shape, a missing key or a tensor no view reads is an error.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <mlm/parameters.hpp>

namespace {

mlm::ModelConfig small_config() {
    mlm::ModelConfig c;
    c.vocab_size = 40;
    c.dim = 16;
    c.n_heads = 2;
    c.n_layers = 3;
    c.ffn_mult = 3;
    c.max_len = 10;
    return c;
}

// The reference layout with its tensors in reverse order (offsets recomputed).
struct ReversedLayout : mlm::ParameterLayout {
    explicit ReversedLayout(const mlm::ModelConfig& c) : ParameterLayout(c) {
        std::reverse(tensors_.begin(), tensors_.end());
        std::size_t offset = 0;
        for (auto& t : tensors_) {
            t.offset = offset;
            offset += t.numel;
        }
    }
};

// One tensor's shape changed to `shape` (same number of elements: a transposed weight).
struct ReshapedLayout : mlm::ParameterLayout {
    ReshapedLayout(const mlm::ModelConfig& c, const std::string& key, std::vector<int64_t> shape)
        : ParameterLayout(c) {
        for (auto& t : tensors_)
            if (t.name == key) t.shape = std::move(shape);
    }
};

// One tensor left out.
struct TrimmedLayout : mlm::ParameterLayout {
    TrimmedLayout(const mlm::ModelConfig& c, const std::string& key) : ParameterLayout(c) {
        tensors_.erase(std::find_if(tensors_.begin(), tensors_.end(), [&](const auto& t) { return t.name == key; }));
    }
};

// One tensor more than the engine reads.
struct ExtendedLayout : mlm::ParameterLayout {
    explicit ExtendedLayout(const mlm::ModelConfig& c) : ParameterLayout(c) {
        add("encoders.0.attn.in_proj.bias", {3 * c.dim}, mlm::TensorKind::bias);
    }
};

// Every view with the key it must be bound to.
std::vector<std::pair<std::string, const float*>> views_by_key(const mlm::ParameterViews<float>& p) {
    std::vector<std::pair<std::string, const float*>> v = {
        {"embedding.class_embedding.weight", p.class_embedding},
        {"embedding.pos_embedding.weight", p.pos_embedding},
        {"ln_f.scale", p.ln_f_scale}};
    for (std::size_t i = 0; i < p.layers.size(); ++i) {
        const std::string k = "encoders." + std::to_string(i) + ".";
        const auto& l = p.layers[i];
        v.insert(v.end(), {{k + "ln_1.scale", l.ln_1_scale},
                           {k + "attn.in_proj.weight", l.in_proj_weight},
                           {k + "attn.out_proj.weight", l.out_proj_weight},
                           {k + "attn.out_proj.bias", l.out_proj_bias},
                           {k + "ln_2.scale", l.ln_2_scale},
                           {k + "ffd.feed_forward.0.weight", l.ff0_weight},
                           {k + "ffd.feed_forward.0.bias", l.ff0_bias},
                           {k + "ffd.feed_forward.3.weight", l.ff3_weight},
                           {k + "ffd.feed_forward.3.bias", l.ff3_bias}});
    }
    return v;
}

void check_bound_by_key(const mlm::ParameterLayout& layout) {
    std::vector<float> buf(layout.size());
    const mlm::ParameterViews<float> p(layout, buf.data());
    const auto views = views_by_key(p);
    CHECK(views.size() == layout.tensors().size());
    for (const auto& [key, ptr] : views) {
        CAPTURE(key);
        CHECK(ptr == buf.data() + layout.find(key).offset);
    }
}

}  // namespace

TEST_CASE("every view points at its own key's tensor, in the reference order and in reverse") {
    const mlm::ModelConfig c = small_config();
    const mlm::ParameterLayout layout(c);
    const ReversedLayout reversed(c);
    CHECK(reversed.size() == layout.size());
    CHECK(reversed.find("ln_f.scale").offset == 0);  // the orders really differ
    CHECK(layout.find("ln_f.scale").offset != 0);
    check_bound_by_key(layout);
    check_bound_by_key(reversed);
    CHECK(layout.config().n_layers == 3);
}

TEST_CASE("a tensor of another shape, a missing key or an unread tensor is an error naming it") {
    const mlm::ModelConfig c = small_config();
    std::vector<float> buf(mlm::ParameterLayout(c).size() + 3 * c.dim);
    // ff0 stored (C, F) instead of (F, C): the same size, so only the shape check can tell
    const ReshapedLayout transposed(c, "encoders.1.ffd.feed_forward.0.weight", {c.dim, c.ffn_dim()});
    CHECK_THROWS_WITH_AS(mlm::ParameterViews<float>(transposed, buf.data()),
                         doctest::Contains("\"encoders.1.ffd.feed_forward.0.weight\" is (16, 48)"),
                         std::logic_error);
    const ReshapedLayout renamed_shape(c, "ln_f.scale", {c.dim, 1});
    CHECK_THROWS_WITH_AS(mlm::ParameterViews<float>(renamed_shape, buf.data()),
                         doctest::Contains("reads it as (16)"), std::logic_error);
    const TrimmedLayout trimmed(c, "encoders.2.ln_2.scale");
    CHECK_THROWS_WITH_AS(mlm::ParameterViews<float>(trimmed, buf.data()),
                         doctest::Contains("no tensor \"encoders.2.ln_2.scale\""), std::logic_error);
    const ExtendedLayout extended(c);
    CHECK_THROWS_WITH_AS(mlm::ParameterViews<float>(extended, buf.data()),
                         doctest::Contains("\"encoders.0.attn.in_proj.bias\" is bound to no view"),
                         std::logic_error);
}
