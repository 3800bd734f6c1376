// The field tables (fields.hpp): each config's table is whole, and what is derived from it (JSON,
// the resume check, the recipe reset, the run assembly's options) treats every field, one at a time.
#include <doctest/doctest.h>

#include <mlm/run.hpp>
#include <mlm/trainer_config.hpp>

#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "../src/fields_json.hpp"
#include "../src/run_directory.hpp"

namespace {

// A different valid-looking value of the same type.
template <class T>
T changed(const T& v) {
    if constexpr (std::is_same_v<T, bool>) {
        return !v;
    } else if constexpr (std::is_enum_v<T>) {
        const auto& names = enum_names(static_cast<const T*>(nullptr));
        const std::size_t n = std::size(names);
        for (std::size_t i = 0; i < n; ++i)
            if (names[i].value == v) return names[(i + 1) % n].value;
        return names[0].value;
    } else if constexpr (std::is_integral_v<T>) {
        return static_cast<T>(v + 3);
    } else if constexpr (std::is_floating_point_v<T>) {
        return v == 0 ? static_cast<T>(0.25) : static_cast<T>(v * 0.5);
    } else if constexpr (std::is_same_v<T, std::string>) {
        return v + "x";
    } else {
        T w = v;
        w.push_back("x");
        return w;
    }
}

// Calls f(path, top_role, mutate) for every leaf field of S, where mutate(s) changes that field of s.
template <class S, class F, class Get>
void for_each_leaf(F&& f, Get get, const std::string& prefix, mlm::Role top_role, bool top) {
    mlm::for_each_field<S>([&](const auto& field) {
        using T = typename std::decay_t<decltype(field)>::value_type;
        const mlm::Role role = top ? field.role : top_role;
        auto inner = [get, field](auto& root) -> T& { return field.of(get(root)); };
        if constexpr (mlm::is_field_group<T>) {
            for_each_leaf<T>(f, inner, prefix + field.name + ".", role, false);
        } else {
            f(prefix + field.name, role, [inner](auto& root) { inner(root) = changed(inner(root)); });
        }
    });
}

template <class S, class F>
void for_each_leaf(F&& f) {
    for_each_leaf<S>(f, [](auto& root) -> auto& { return root; }, "", mlm::Role::run, true);
}

template <class S>
void check_table_is_well_formed() {
    std::set<std::string> names;
    std::set<std::ptrdiff_t> offsets;
    const S s{};
    mlm::for_each_field<S>([&](const auto& f) {
        CAPTURE(f.name);
        CHECK(names.insert(f.name).second);
        CHECK(offsets.insert(reinterpret_cast<const char*>(&f.of(s)) - reinterpret_cast<const char*>(&s)).second);
        CHECK(std::string(f.help).size() > 0);
        CHECK(std::string(f.section).size() > 0);
    });
    CHECK(names.size() == mlm::field_count<S>());
}

}  // namespace

TEST_CASE("every table lists each field of its struct once, with a help text") {
    check_table_is_well_formed<mlm::ModelConfig>();
    check_table_is_well_formed<mlm::TrainerConfig>();
    check_table_is_well_formed<mlm::MaskingOptions>();
    check_table_is_well_formed<mlm::EvalOptions>();
    check_table_is_well_formed<mlm::DataOptions>();
    // TrainerConfig's groups count once as fields and once per field of theirs as paths
    CHECK(mlm::field_paths<mlm::TrainerConfig>().size() ==
          mlm::field_count<mlm::TrainerConfig>() - 2 + mlm::field_count<mlm::MaskingOptions>() +
              mlm::field_count<mlm::EvalOptions>());
}

TEST_CASE("JSON carries every field: each one changed alone comes back, and only it") {
    auto round_trip = [](const auto& c) {
        using S = std::decay_t<decltype(c)>;
        S back{};
        mlm::detail::fields_from_json(nlohmann::json::parse(mlm::detail::fields_to_json(c).dump()), back, "test");
        return back;
    };
    int fields = 0;
    for_each_leaf<mlm::TrainerConfig>([&](const std::string& path, mlm::Role, auto mutate) {
        CAPTURE(path);
        mlm::TrainerConfig c;
        mutate(c);
        CHECK_FALSE(mlm::fields_equal(c, mlm::TrainerConfig{}));
        CHECK(mlm::fields_equal(round_trip(c), c));
        ++fields;
    });
    CHECK(fields == static_cast<int>(mlm::field_paths<mlm::TrainerConfig>().size()));
    for_each_leaf<mlm::ModelConfig>([&](const std::string& path, mlm::Role, auto mutate) {
        CAPTURE(path);
        mlm::ModelConfig c;
        mutate(c);
        CHECK(c != mlm::ModelConfig{});
        CHECK(round_trip(c) == c);
    });
    for_each_leaf<mlm::DataOptions>([&](const std::string& path, mlm::Role, auto mutate) {
        CAPTURE(path);
        mlm::DataOptions d;
        mutate(d);
        CHECK(mlm::fields_equal(mlm::data_options_from_json(mlm::to_json(d)), d));
    });
}

TEST_CASE("the resume check names every field that defines the run and no runtime one") {
    for_each_leaf<mlm::TrainerConfig>([&](const std::string& path, mlm::Role role, auto mutate) {
        CAPTURE(path);
        mlm::detail::RunState stored, now;
        mutate(now.trainer_config);
        const std::vector<std::string> diffs = mlm::detail::resume_differences(stored, now);
        if (role == mlm::Role::runtime) {
            CHECK(diffs.empty());
        } else {
            REQUIRE(diffs.size() == 1);
            CHECK(diffs[0].rfind(path + " is ", 0) == 0);
        }
    });
    for_each_leaf<mlm::ModelConfig>([&](const std::string& path, mlm::Role, auto mutate) {
        CAPTURE(path);
        mlm::detail::RunState stored, now;
        mutate(now.model_config);
        CHECK(mlm::detail::resume_differences(stored, now).size() == 1);
    });
}

TEST_CASE("apply_recipe resets exactly the recipe's fields, whatever their values were") {
    for (mlm::Recipe recipe : {mlm::Recipe::original, mlm::Recipe::best}) {
        mlm::ModelConfig m0;
        mlm::TrainerConfig t0;
        mlm::apply_recipe(recipe, m0, t0);  // the recipe from the defaults
        for_each_leaf<mlm::TrainerConfig>([&](const std::string& path, mlm::Role role, auto mutate) {
            CAPTURE(path);
            mlm::ModelConfig m;
            mlm::TrainerConfig t;
            mutate(t);
            mlm::apply_recipe(recipe, m, t);
            mlm::TrainerConfig expected = t0;  // a recipe field is the recipe's; any other keeps its value
            if (role != mlm::Role::recipe) mutate(expected);
            CHECK(mlm::fields_equal(t, expected));
        });
        for_each_leaf<mlm::ModelConfig>([&](const std::string& path, mlm::Role role, auto mutate) {
            CAPTURE(path);
            mlm::ModelConfig m;
            mlm::TrainerConfig t;
            mutate(m);
            mlm::apply_recipe(recipe, m, t);
            CHECK((m == m0) == (role == mlm::Role::recipe));
        });
    }
}

TEST_CASE("single knobs by name: FieldOptions copies each given field, a group whole, and refuses unknown names") {
    for_each_leaf<mlm::TrainerConfig>([&](const std::string& path, mlm::Role, auto mutate) {
        CAPTURE(path);
        mlm::FieldOptions<mlm::TrainerConfig> o;
        mutate(o.values);
        o.given.insert(path);
        mlm::TrainerConfig dst;
        o.apply_to(dst);
        CHECK(mlm::fields_equal(dst, o.values));
    });
    mlm::FieldOptions<mlm::TrainerConfig> group;
    group.set("masking", [](auto& c) { c.masking.mask_probability = 0.5; c.masking.whole_word = true; });
    mlm::TrainerConfig dst;
    group.apply_to(dst);
    CHECK(dst.masking.mask_probability == 0.5);
    CHECK(dst.masking.whole_word);
    mlm::FieldOptions<mlm::TrainerConfig> typo;
    typo.given.insert("learning_rate");
    CHECK_THROWS_WITH_AS(typo.apply_to(dst), doctest::Contains("\"learning_rate\""), std::invalid_argument);
}

TEST_CASE("trainer configs of earlier versions are read: display knobs dropped, anneal_linear renamed") {
    const mlm::TrainerConfig c =
        mlm::trainer_config_from_json(R"({"epochs": 2, "progress": "lines", "log_every_steps": 5, "anneal_linear": true})");
    CHECK(c.epochs == 2);
    CHECK(c.anneal == mlm::AnnealStrategy::linear);
    CHECK(mlm::data_options_from_json(R"({"train": ["a.txt"], "no_cache": true})").cache == false);
    CHECK_THROWS_WITH_AS(mlm::trainer_config_from_json(R"({"batch_size": -1})"), doctest::Contains("\"batch_size\""),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(mlm::trainer_config_from_json(R"({"optimizer": "sgd"})"), doctest::Contains("\"adam\", \"adamw\""),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(mlm::trainer_config_from_json(R"({"masking": {"colour": 1}})"),
                         doctest::Contains("unknown key \"masking.colour\""), std::invalid_argument);
}
