#include <doctest/doctest.h>

#include <mlm/batch.hpp>
#include <mlm/config.hpp>
#include <mlm/parameters.hpp>

TEST_CASE("the default config is the reference model: 6,861,056 parameters") {
    mlm::ModelConfig config;
    mlm::ParameterLayout layout(config);
    CHECK(layout.size() == 6861056);
    CHECK(layout.tensors().size() == 2 + 6 * 9 + 1);
    CHECK(layout.find("encoders.0.attn.in_proj.weight").shape == std::vector<int64_t>{768, 256});
    CHECK(layout.find("encoders.5.ffd.feed_forward.3.weight").shape == std::vector<int64_t>{256, 1024});
    CHECK(layout.try_find("mlm_head.weight") == nullptr);  // tied: stored as the embedding
    CHECK_THROWS_AS(layout.find("nope"), std::out_of_range);
}

TEST_CASE("views point at the layout's offsets") {
    mlm::ModelConfig config;
    config.vocab_size = 64; config.dim = 32; config.n_heads = 2; config.n_layers = 2;
    mlm::ParameterLayout layout(config);
    std::vector<float> buf(layout.size());
    mlm::ParameterViews<float> p(layout, buf.data());
    CHECK(p.layers.size() == 2);
    CHECK(p.layers[1].ff3_bias - buf.data() ==
          static_cast<std::ptrdiff_t>(layout.find("encoders.1.ffd.feed_forward.3.bias").offset));
    CHECK(p.ln_f_scale - buf.data() == static_cast<std::ptrdiff_t>(layout.find("ln_f.scale").offset));
}

TEST_CASE("config JSON round trip and errors") {
    mlm::ModelConfig c;
    c.n_layers = 3; c.norm_placement = mlm::NormPlacement::pre; c.dropout = 0.25f;
    mlm::ModelConfig d = mlm::model_config_from_json(mlm::to_json(c));
    CHECK(d.n_layers == 3);
    CHECK(d.norm_placement == mlm::NormPlacement::pre);
    CHECK(d.dropout == doctest::Approx(0.25));
    CHECK_THROWS_WITH_AS(mlm::model_config_from_json("{\"dim\": 30, \"n_heads\": 8}"),
                         doctest::Contains("divisible"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(mlm::model_config_from_json("{\"colour\": 1}"),
                         doctest::Contains("unknown key"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(mlm::model_config_from_json("{\"dim\": "),
                         doctest::Contains("not valid JSON"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(mlm::model_config_from_json("{\"dim\": \"256\"}"),
                         doctest::Contains("integer"), std::invalid_argument);
}

TEST_CASE("Batch packs right-padded rows and rejects the rest") {
    const int32_t ids[] = {5, 6, 7, 1, 1, /**/ 8, 2, 1, 1, 1};
    const int32_t lab[] = {-100, 9, -100, -100, -100, /**/ -100, 4, -100, -100, -100};
    auto b = mlm::Batch::from_padded(ids, lab, 2, 5, 1);
    CHECK(b.num_sequences() == 2);
    CHECK(b.tokens == std::vector<int32_t>{5, 6, 7, 8, 2});
    CHECK(b.offsets == std::vector<int32_t>{0, 3, 5});
    CHECK(b.target_rows == std::vector<int32_t>{1, 4});
    CHECK(b.target_ids == std::vector<int32_t>{9, 4});
    const int32_t gap[] = {5, 1, 7};
    CHECK_THROWS_WITH_AS(mlm::Batch::from_padded(gap, nullptr, 1, 3, 1),
                         doctest::Contains("after a pad"), std::invalid_argument);
    const int32_t empty[] = {1, 1};
    CHECK_THROWS_AS(mlm::Batch::from_padded(empty, nullptr, 1, 2, 1), std::invalid_argument);
}
