// Tests of mlm/optimizer.hpp: hand-checked schedule values and Adam steps, then Adam / AdamW,
// OneCycleLR, warm-up + cosine and clip_grad_norm_ against PyTorch fixtures made by
// tests/fixtures/make_optimizer_fixtures.py (float64 torch 1.13).
//
// Tolerances: relative 1e-12 in double (torch and we do the same operations in the same order;
// only fused multiply-adds and vectorized libm calls may differ by an ulp), relative 1e-6 when the
// optimizer runs in float against the float64 reference.
#include <doctest/doctest.h>

#include <mlm/optimizer.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

json load_fixture(const std::string& name) {
    const std::string path = std::string(MLM_FIXTURE_DIR) + "/" + name;
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path
                                              << "; regenerate with tests/fixtures/make_optimizer_fixtures.py");
    return json::parse(in);
}

double rel_err(double got, double want) {
    if (got == want) return 0.0;
    return std::abs(got - want) / std::max(std::abs(want), std::numeric_limits<double>::min());
}

// Largest relative error of got against want (same length).
template <class T>
double max_rel_err(const std::vector<T>& got, const std::vector<double>& want) {
    REQUIRE(got.size() == want.size());
    double worst = 0.0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, rel_err(double(got[i]), want[i]));
    return worst;
}

template <class T>
std::vector<T> to_vector(const json& j) {
    std::vector<T> out;
    for (const auto& x : j) out.push_back(static_cast<T>(x.get<double>()));
    return out;
}

mlm::TensorKind kind_from_string(const std::string& s) {
    if (s == "embedding") return mlm::TensorKind::embedding;
    if (s == "weight") return mlm::TensorKind::weight;
    if (s == "bias") return mlm::TensorKind::bias;
    if (s == "norm_scale") return mlm::TensorKind::norm_scale;
    FAIL("unknown tensor kind " << s);
    return mlm::TensorKind::weight;
}

std::vector<mlm::TensorInfo> tensors_from_json(const json& j) {
    std::vector<mlm::TensorInfo> out;
    for (const auto& t : j)
        out.push_back({t["name"].get<std::string>(), t["shape"].get<std::vector<int64_t>>(),
                       t["offset"].get<std::size_t>(), t["numel"].get<std::size_t>(),
                       kind_from_string(t["kind"].get<std::string>())});
    return out;
}

mlm::LrSchedule schedule_from_json(const json& s) {
    const std::string type = s["type"].get<std::string>();
    if (type == "warmup_cosine")
        return mlm::WarmupCosineSchedule(s["lr_max"].get<double>(), s["lr_min"].get<double>(),
                                         s["warmup_steps"].get<int64_t>(), s["total_steps"].get<int64_t>());
    REQUIRE(type == "one_cycle");
    mlm::OneCycleOptions o;
    o.lr_max = s["lr_max"].get<double>();
    o.total_steps = s["total_steps"].get<int64_t>();
    o.pct_start = s["pct_start"].get<double>();
    o.anneal = s["anneal"].get<std::string>() == "cos" ? mlm::AnnealStrategy::cos : mlm::AnnealStrategy::linear;
    o.three_phase = s["three_phase"].get<bool>();
    o.div_factor = s["div_factor"].get<double>();
    o.final_div_factor = s["final_div_factor"].get<double>();
    o.base_momentum = s["base_momentum"].get<double>();
    o.max_momentum = s["max_momentum"].get<double>();
    o.cycle_momentum = s.value("cycle_momentum", true);
    return mlm::OneCycleSchedule(o);
}

template <class T>
constexpr double param_tolerance() { return std::is_same_v<T, double> ? 1e-12 : 1e-6; }

// Runs every case of optimizer_<name>.json in T and compares each step with torch.
template <class T>
void check_against_torch(const std::string& file, mlm::WeightDecay decay) {
    const json fx = load_fixture(file);
    const auto tensors = tensors_from_json(fx["tensors"]);
    const auto grads_per_step = fx["grads"];
    const double beta1_default = fx["beta1"].get<double>();
    for (const auto& c : fx["cases"]) {
        const std::string name = c["name"].get<std::string>();
        CAPTURE(file);
        CAPTURE(name);
        mlm::AdamOptions o;
        o.beta1 = beta1_default;
        o.beta2 = fx["beta2"].get<double>();
        o.eps = fx["eps"].get<double>();
        o.weight_decay = fx["weight_decay"].get<double>();
        o.decay = decay;
        o.decay_weights_only = c["exempt_non_weights"].get<bool>();
        mlm::Adam<T> adam(tensors, o);
        const mlm::LrSchedule schedule = schedule_from_json(c["schedule"]);
        auto params = to_vector<T>(fx["params0"]);
        REQUIRE(params.size() == adam.size());
        const auto& want_params = c["params"];
        for (std::size_t step = 0; step < want_params.size(); ++step) {
            CAPTURE(step);
            const double lr = schedule.lr(static_cast<int64_t>(step));
            const double beta1 = schedule.beta1(static_cast<int64_t>(step)).value_or(o.beta1);
            CHECK(rel_err(lr, c["lr"][step].get<double>()) <= 1e-12);
            CHECK(rel_err(beta1, c["beta1"][step].get<double>()) <= 1e-12);
            const auto grads = to_vector<T>(grads_per_step[step]);
            adam.step(params, grads, lr, beta1);
            const double err = max_rel_err(params, want_params[step].get<std::vector<double>>());
            CHECK(err <= param_tolerance<T>());
        }
        CHECK(adam.step_count() == static_cast<int64_t>(want_params.size()));
    }
}

}  // namespace

// --------------------------------------------------------------------------------------------
// Schedules, hand-checked
// --------------------------------------------------------------------------------------------

TEST_CASE("ConstantSchedule") {
    mlm::ConstantSchedule s(3e-4);
    CHECK(s.lr(0) == 3e-4);
    CHECK(s.lr(123456) == 3e-4);
    CHECK_FALSE(s.beta1(0).has_value());
    CHECK_THROWS_AS(s.lr(-1), std::out_of_range);
    CHECK_THROWS_AS(mlm::ConstantSchedule(-1.0), std::invalid_argument);
}

TEST_CASE("WarmupLinearSchedule: boundaries") {
    // 4 warm-up steps 2.5e-4, 5e-4, 7.5e-4, 1e-3; peak at step 3; lr_min at the last step 9.
    mlm::WarmupLinearSchedule s(1e-3, 1e-5, 4, 10);
    CHECK(s.lr(0) == doctest::Approx(2.5e-4).epsilon(1e-15));
    CHECK(s.lr(1) == doctest::Approx(5e-4).epsilon(1e-15));
    CHECK(s.lr(3) == 1e-3);                                         // end of warm-up
    CHECK(s.lr(4) == doctest::Approx(1e-3 - 0.99e-3 / 6).epsilon(1e-15));
    CHECK(s.lr(6) == doctest::Approx(5.05e-4).epsilon(1e-15));      // half-way down
    CHECK(s.lr(9) == doctest::Approx(1e-5).epsilon(1e-15));         // last step
    CHECK(s.lr(10) == 1e-5);                                        // clamped past the end
    CHECK(s.lr(1000) == 1e-5);
    CHECK_FALSE(s.beta1(0).has_value());
    CHECK_THROWS_AS(s.lr(-1), std::out_of_range);

    mlm::WarmupLinearSchedule no_warmup(1e-3, 0.0, 0, 11);          // 0 and 1 warm-up steps agree
    mlm::WarmupLinearSchedule one_warmup(1e-3, 0.0, 1, 11);
    CHECK(no_warmup.lr(0) == 1e-3);
    CHECK(no_warmup.lr(5) == doctest::Approx(5e-4).epsilon(1e-15));
    CHECK(no_warmup.lr(10) == 0.0);
    for (int64_t i = 0; i < 12; ++i) CHECK(no_warmup.lr(i) == one_warmup.lr(i));

    mlm::WarmupLinearSchedule single(1e-3, 1e-5, 0, 1);            // a one-step run uses lr_max
    CHECK(single.lr(0) == 1e-3);
    mlm::WarmupLinearSchedule all_warmup(1e-3, 1e-5, 5, 5);
    CHECK(all_warmup.lr(4) == 1e-3);
    CHECK(all_warmup.lr(5) == 1e-5);

    CHECK_THROWS_AS(mlm::WarmupLinearSchedule(1e-3, 1e-5, 6, 5), std::invalid_argument);
    CHECK_THROWS_AS(mlm::WarmupLinearSchedule(1e-3, 1e-5, -1, 5), std::invalid_argument);
    CHECK_THROWS_AS(mlm::WarmupLinearSchedule(1e-3, 1e-5, 0, 0), std::invalid_argument);
    CHECK_THROWS_AS(mlm::WarmupLinearSchedule(1e-3, -1e-5, 0, 5), std::invalid_argument);
}

TEST_CASE("WarmupCosineSchedule: boundaries") {
    mlm::WarmupCosineSchedule s(1e-3, 1e-5, 4, 10);
    CHECK(s.lr(0) == doctest::Approx(2.5e-4).epsilon(1e-15));
    CHECK(s.lr(3) == 1e-3);                                                  // end of warm-up
    CHECK(s.lr(5) == doctest::Approx(1e-5 + 0.99e-3 * 0.75).epsilon(1e-15)); // cos(pi/3) = 1/2
    CHECK(s.lr(6) == doctest::Approx(5.05e-4).epsilon(1e-15));
    CHECK(s.lr(9) == 1e-5);                                                  // last step: cos(pi) = -1
    CHECK(s.lr(10) == 1e-5);
    CHECK_FALSE(s.beta1(3).has_value());
    CHECK_THROWS_AS(s.lr(-3), std::out_of_range);
    CHECK_THROWS_AS(mlm::WarmupCosineSchedule(1e-3, 1e-5, 11, 10), std::invalid_argument);
}

TEST_CASE("OneCycleSchedule: boundaries and errors") {
    mlm::OneCycleOptions o;
    o.lr_max = 6e-4;
    o.total_steps = 100;  // rise ends at 0.3 * 100 - 1 = 29
    mlm::OneCycleSchedule s(o);
    CHECK(s.lr(0) == doctest::Approx(6e-4 / 25).epsilon(1e-15));
    CHECK(*s.beta1(0) == doctest::Approx(0.95).epsilon(1e-15));
    CHECK(s.lr(29) == doctest::Approx(6e-4).epsilon(1e-15));
    CHECK(*s.beta1(29) == doctest::Approx(0.85).epsilon(1e-15));
    CHECK(s.lr(99) == doctest::Approx(6e-4 / 25 / 1e4).epsilon(1e-12));  // last step: min lr
    CHECK(*s.beta1(99) == doctest::Approx(0.95).epsilon(1e-15));
    CHECK(s.lr(100) > s.lr(99));                          // torch's value after the final step
    CHECK_THROWS_AS(s.lr(101), std::out_of_range);        // torch raises ValueError
    CHECK_THROWS_AS(s.beta1(101), std::out_of_range);
    CHECK_THROWS_AS(s.lr(-1), std::out_of_range);

    o.anneal = mlm::AnnealStrategy::linear;
    o.three_phase = true;  // rise to 29, fall to 58, anneal to 99
    mlm::OneCycleSchedule t(o);
    CHECK(t.lr(29) == doctest::Approx(6e-4).epsilon(1e-15));
    CHECK(t.lr(58) == doctest::Approx(6e-4 / 25).epsilon(1e-15));
    CHECK(*t.beta1(58) == doctest::Approx(0.95).epsilon(1e-15));
    CHECK(t.lr(99) == doctest::Approx(6e-4 / 25 / 1e4).epsilon(1e-12));

    o.cycle_momentum = false;
    CHECK_FALSE(mlm::OneCycleSchedule(o).beta1(10).has_value());

    mlm::OneCycleOptions bad = o;
    bad.total_steps = 0;
    CHECK_THROWS_AS(mlm::OneCycleSchedule{bad}, std::invalid_argument);
    bad = o;
    bad.total_steps = 10;
    bad.pct_start = 0.1;  // rise phase ends at step 0: torch divides by zero
    CHECK_THROWS_AS(mlm::OneCycleSchedule{bad}, std::invalid_argument);
    bad = o;
    bad.pct_start = 1.5;
    CHECK_THROWS_AS(mlm::OneCycleSchedule{bad}, std::invalid_argument);
}

TEST_CASE("LrSchedule holds any schedule") {
    mlm::OneCycleOptions o;
    o.total_steps = 10;
    const std::vector<mlm::LrSchedule> all = {mlm::ConstantSchedule(1e-3),
                                              mlm::WarmupLinearSchedule(1e-3, 0.0, 2, 10),
                                              mlm::WarmupCosineSchedule(1e-3, 0.0, 2, 10),
                                              mlm::OneCycleSchedule(o)};
    CHECK(all[0].lr(5) == 1e-3);
    CHECK(all[1].lr(1) == 1e-3);
    CHECK(all[2].lr(1) == 1e-3);
    CHECK(all[3].lr(2) == mlm::OneCycleSchedule(o).lr(2));
    CHECK(all[3].beta1(2) == mlm::OneCycleSchedule(o).beta1(2));
    CHECK_FALSE(all[2].beta1(2).has_value());
}

// --------------------------------------------------------------------------------------------
// Adam, hand-checked
// --------------------------------------------------------------------------------------------

TEST_CASE("Adam: the first step moves every parameter by about lr") {
    // Step 1: m_hat = g and v_hat = g^2, so p -= lr * g / (|g| + eps).
    mlm::Adam<double> adam(3);
    std::vector<double> p = {1.0, -2.0, 0.5}, g = {2.0, -0.5, 1e-3};
    adam.step(p, g, 0.1);
    CHECK(p[0] == doctest::Approx(1.0 - 0.1 * 2.0 / (2.0 + 1e-8)).epsilon(1e-14));
    CHECK(p[1] == doctest::Approx(-2.0 + 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));
    CHECK(p[2] == doctest::Approx(0.5 - 0.1 * 1e-3 / (1e-3 + 1e-8)).epsilon(1e-14));
    CHECK(adam.step_count() == 1);
    CHECK(adam.m()[0] == doctest::Approx(0.2).epsilon(1e-15));
    CHECK(adam.v()[0] == doctest::Approx(0.004).epsilon(1e-15));
}

TEST_CASE("Adam: weight decay, L2 versus decoupled") {
    mlm::AdamOptions o;
    o.weight_decay = 0.5;
    o.decay = mlm::WeightDecay::decoupled;
    mlm::Adam<double> adamw(1, o);
    std::vector<double> p = {2.0}, g = {0.0};
    adamw.step(p, g, 0.1);  // zero gradient: only the decay acts, p *= 1 - 0.1 * 0.5
    CHECK(p[0] == doctest::Approx(2.0 * 0.95).epsilon(1e-15));

    o.decay = mlm::WeightDecay::l2;
    mlm::Adam<double> adam(1, o);
    p = {2.0};
    adam.step(p, g, 0.1);  // gradient becomes 0.5 * 2 = 1: a normalized step of lr
    CHECK(p[0] == doctest::Approx(2.0 - 0.1 / (1.0 + 1e-8)).epsilon(1e-15));
}

TEST_CASE("Adam: decay ranges follow TensorKind") {
    mlm::ModelConfig config;
    config.vocab_size = 8; config.dim = 4; config.n_heads = 2; config.n_layers = 1; config.max_len = 3;
    mlm::ParameterLayout layout(config);
    mlm::AdamOptions o;
    o.weight_decay = 0.1;
    {
        mlm::Adam<float> all(layout, o);
        REQUIRE(all.decay_ranges().size() == 1);
        CHECK(all.decay_ranges()[0].end == layout.size());
        CHECK(all.decay_ranges()[0].decay);
    }
    o.decay_weights_only = true;
    mlm::Adam<float> adam(layout, o);
    // [embeddings, ln_1] no | [in_proj, out_proj] yes | [out_proj.bias, ln_2] no | ff0.weight yes |
    // ff0.bias no | ff3.weight yes | [ff3.bias, ln_f] no
    const auto& r = adam.decay_ranges();
    REQUIRE(r.size() == 7);
    const bool want[] = {false, true, false, true, false, true, false};
    std::size_t covered = 0;
    for (std::size_t i = 0; i < r.size(); ++i) {
        CHECK(r[i].decay == want[i]);
        CHECK(r[i].begin == covered);
        covered = r[i].end;
    }
    CHECK(covered == layout.size());
    CHECK(r[1].begin == layout.find("encoders.0.attn.in_proj.weight").offset);
    CHECK(r[1].end == layout.find("encoders.0.attn.out_proj.bias").offset);

    // Only the weights shrink under pure decay (zero gradients).
    std::vector<float> p(layout.size(), 1.0f), g(layout.size(), 0.0f);
    adam.step(p, g, 0.01);
    for (const auto& t : layout.tensors()) {
        CAPTURE(t.name);
        const float want_value = t.kind == mlm::TensorKind::weight ? float(1.0 - 0.01 * 0.1) : 1.0f;
        CHECK(p[t.offset] == want_value);
        CHECK(p[t.offset + t.numel - 1] == want_value);
    }
}

TEST_CASE("Adam: state round trip resumes exactly") {
    std::vector<mlm::TensorInfo> tensors = {{"a", {3}, 0, 3, mlm::TensorKind::weight},
                                            {"b", {2}, 3, 2, mlm::TensorKind::bias}};
    mlm::AdamOptions o;
    o.weight_decay = 0.01;
    o.decay_weights_only = true;
    auto grad_at = [](int step) {
        std::vector<double> g(5);
        for (int i = 0; i < 5; ++i) g[i] = std::sin(0.7 * step + 1.3 * i);
        return g;
    };
    mlm::Adam<double> straight(tensors, o);
    std::vector<double> p_straight = {0.5, -0.5, 1.0, 0.2, -0.3};
    for (int s = 0; s < 20; ++s) straight.step(p_straight, grad_at(s), 1e-2, 0.9 - 0.001 * s);

    mlm::Adam<double> first(tensors, o);
    std::vector<double> p = {0.5, -0.5, 1.0, 0.2, -0.3};
    for (int s = 0; s < 10; ++s) first.step(p, grad_at(s), 1e-2, 0.9 - 0.001 * s);
    mlm::Adam<double> resumed(tensors, o);  // as a checkpoint load would: copy m, v, step
    std::copy(first.m().begin(), first.m().end(), resumed.m().begin());
    std::copy(first.v().begin(), first.v().end(), resumed.v().begin());
    resumed.set_step_count(first.step_count());
    for (int s = 10; s < 20; ++s) resumed.step(p, grad_at(s), 1e-2, 0.9 - 0.001 * s);
    CHECK(p == p_straight);
    CHECK(resumed.m() == straight.m());
    CHECK(resumed.v() == straight.v());
    CHECK(resumed.step_count() == 20);

    resumed.reset();
    CHECK(resumed.step_count() == 0);
    CHECK(std::all_of(resumed.m().begin(), resumed.m().end(), [](double x) { return x == 0.0; }));
    CHECK_THROWS_AS(resumed.set_step_count(-1), std::invalid_argument);
}

TEST_CASE("Adam: argument errors") {
    mlm::Adam<float> adam(4);
    std::vector<float> p(4), g(3);
    CHECK_THROWS_AS(adam.step(p, g, 1e-3), std::invalid_argument);
    g.resize(4);
    CHECK_THROWS_AS(adam.step(p, g, -1e-3), std::invalid_argument);
    CHECK_THROWS_AS(adam.step(p, g, 1e-3, 1.0), std::invalid_argument);
    CHECK(adam.step_count() == 0);  // nothing happened

    mlm::AdamOptions o;
    o.beta2 = 1.0;
    CHECK_THROWS_AS(mlm::Adam<float>(4, o), std::invalid_argument);
    o = {};
    o.weight_decay = -0.1;
    CHECK_THROWS_AS(mlm::Adam<float>(4, o), std::invalid_argument);
    std::vector<mlm::TensorInfo> gap = {{"a", {3}, 0, 3, mlm::TensorKind::weight},
                                        {"b", {2}, 4, 2, mlm::TensorKind::bias}};
    CHECK_THROWS_AS(mlm::Adam<float>{gap}, std::invalid_argument);
}

// --------------------------------------------------------------------------------------------
// Against PyTorch
// --------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("Adam (torch.optim.Adam, L2 decay) matches torch for 20 steps", T, double, float) {
    check_against_torch<T>("optimizer_adam.json", mlm::WeightDecay::l2);
}

TEST_CASE_TEMPLATE("AdamW (torch.optim.AdamW, decoupled decay) matches torch for 20 steps", T, double, float) {
    check_against_torch<T>("optimizer_adamw.json", mlm::WeightDecay::decoupled);
}

TEST_CASE("OneCycleSchedule matches torch's OneCycleLR for every step") {
    const json fx = load_fixture("optimizer_schedules.json");
    const double adam_beta1 = fx["adam_beta1"].get<double>();
    for (const auto& c : fx["cases"]) {
        const json& sj = c["schedule"];
        CAPTURE(sj.dump());
        const mlm::LrSchedule s = schedule_from_json(sj);
        const int64_t total = sj["total_steps"].get<int64_t>();
        REQUIRE(c["lr"].size() == static_cast<std::size_t>(total + 1));
        double worst_lr = 0.0, worst_beta1 = 0.0;
        for (int64_t step = 0; step <= total; ++step) {
            worst_lr = std::max(worst_lr, rel_err(s.lr(step), c["lr"][step].get<double>()));
            const double beta1 = s.beta1(step).value_or(adam_beta1);
            worst_beta1 = std::max(worst_beta1, rel_err(beta1, c["beta1"][step].get<double>()));
        }
        CHECK(worst_lr <= 1e-12);
        CHECK(worst_beta1 <= 1e-12);
        CHECK(s.beta1(0).has_value() == sj["cycle_momentum"].get<bool>());
        CHECK_THROWS_AS(s.lr(total + 1), std::out_of_range);
    }
}

TEST_CASE_TEMPLATE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_", T, double, float) {
    const json fx = load_fixture("optimizer_clip.json");
    for (const auto& c : fx["cases"]) {
        CAPTURE(c["name"].get<std::string>());
        auto grads = to_vector<T>(fx["grads"]);
        const double norm = mlm::clip_grad_norm(grads, c["max_norm"].get<double>());
        CHECK(rel_err(norm, c["total_norm"].get<double>()) <= param_tolerance<T>());
        CHECK(max_rel_err(grads, c["grads_after"].get<std::vector<double>>()) <= param_tolerance<T>());
    }
}

TEST_CASE("clip_grad_norm: hand-checked, non-finite norms are reported, not applied") {
    std::vector<double> g = {3.0, 4.0};
    CHECK(mlm::grad_norm(g.data(), g.size()) == 5.0);
    CHECK(mlm::clip_grad_norm(g, 1.0) == 5.0);
    CHECK(g[0] == doctest::Approx(3.0 / (5.0 + 1e-6)).epsilon(1e-15));
    CHECK(g[1] == doctest::Approx(4.0 / (5.0 + 1e-6)).epsilon(1e-15));

    std::vector<float> nan_grads = {1.0f, std::numeric_limits<float>::quiet_NaN(), 2.0f};
    CHECK(std::isnan(mlm::clip_grad_norm(nan_grads, 1.0)));
    CHECK(nan_grads[0] == 1.0f);
    CHECK(nan_grads[2] == 2.0f);

    std::vector<float> inf_grads = {1.0f, -std::numeric_limits<float>::infinity()};
    CHECK(std::isinf(mlm::clip_grad_norm(inf_grads, 1.0)));
    CHECK(inf_grads[0] == 1.0f);

    std::vector<float> empty;
    CHECK(mlm::clip_grad_norm(empty, 1.0) == 0.0);
    CHECK_THROWS_AS(mlm::clip_grad_norm(g, 0.0), std::invalid_argument);
    CHECK_THROWS_AS(mlm::clip_grad_norm(g, std::nan("")), std::invalid_argument);

    // Large buffers take the OpenMP path; the result must agree with a serial sum.
    std::vector<float> big(100000);
    double sum = 0.0;
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = float(std::sin(0.01 * double(i)));
        sum += double(big[i]) * double(big[i]);
    }
    CHECK(mlm::grad_norm(big.data(), big.size()) == doctest::Approx(std::sqrt(sum)).epsilon(1e-12));
}
