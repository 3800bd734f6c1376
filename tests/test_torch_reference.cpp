// The engine against the project's PyTorch reference (pymlm.torch, python/pymlm/torch.py).
//
// Committed fixtures (tests/fixtures/tiny_*.safetensors, made by tests/fixtures/make_fixtures.py)
// hold a tiny model's parameters, a ragged padded batch, torch's logits, loss, every parameter
// gradient, and 10 Adam + OneCycleLR steps. The same comparison runs at the full reference size
// when ctest's torch_reference_full test generates a fresh fixture (needs torch):
//   test_torch_reference --full-fixture=PATH
//
// Tolerances. double: 1e-9 relative to the tensor's largest entry (float64 round-off through a
// few hundred operations). float: the engine runs in float32 against torch in float64 (tiny) or
// float32 (full); we allow 2e-4 of the tensor's largest entry for gradients and 1e-4 absolute for
// logits and losses, about 1000 float32 epsilons: a sign error, a missing term or a wrong
// transpose all give errors of order 1 in these units.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <mlm/encoder.hpp>
#include <mlm/optimizer.hpp>
#include <mlm/safetensors.hpp>

namespace {

std::string g_full_fixture;  // set by --full-fixture=PATH

template <class T>
double max_abs(const std::vector<T>& v) {
    double m = 0;
    for (T x : v) m = std::max(m, std::abs(static_cast<double>(x)));
    return m;
}

// max |a - b| / scale
template <class T>
double max_error(const T* a, const std::vector<double>& b, double scale) {
    double e = 0;
    for (std::size_t i = 0; i < b.size(); ++i)
        e = std::max(e, std::abs(static_cast<double>(a[i]) - b[i]) / scale);
    return e;
}

template <class T>
void compare_with_fixture(const std::string& path, double tol_rel, double tol_abs, int steps) {
    auto file = mlm::SafetensorsFile::open(path);
    const mlm::ModelConfig config = mlm::model_config_from_json(file.metadata().at("config"));
    CAPTURE(path);
    CAPTURE(mlm::to_string(config.norm_placement));
    mlm::Encoder<T> model(config, 0);
    for (const auto& t : model.layout().tensors())
        file.read_into<T>(t.name, model.parameters() + t.offset, t.shape, /*convert=*/true);

    const auto ids_shape = file.info("input_ids").shape;
    const int B = static_cast<int>(ids_shape[0]), Tn = static_cast<int>(ids_shape[1]);
    const auto input_ids = file.read<int32_t>("input_ids");
    const auto labels = file.read<int32_t>("labels");
    const mlm::ForwardOptions eval{false, 0};

    // loss and gradients
    model.zero_grad();
    const double loss = model.forward_padded(input_ids.data(), labels.data(), B, Tn, eval);
    model.backward();
    const double loss_ref = file.read<double>("loss", true)[0];
    CHECK(std::abs(loss - loss_ref) < tol_abs);
    for (const auto& t : model.layout().tensors()) {
        CAPTURE(t.name);
        const auto ref = file.read<double>("grad." + t.name, true);
        const double scale = std::max(max_abs(ref), 1e-12);
        CHECK(max_error(model.gradients() + t.offset, ref, scale) < tol_rel);
    }

    // logits at every real row, through the inference path
    {
        const mlm::Batch batch = mlm::Batch::from_padded(input_ids.data(), labels.data(), B, Tn, config.pad_id);
        std::vector<int32_t> rows(batch.num_tokens());
        for (int i = 0; i < batch.num_tokens(); ++i) rows[i] = i;
        const int V = config.vocab_size;
        std::vector<T> logits(static_cast<std::size_t>(batch.num_tokens()) * V);
        mlm::InferenceWorkspace<T> ws;
        model.logits(logits.data(), batch, rows.data(), batch.num_tokens(), ws);
        const auto ref = file.read<double>("logits", true);  // (B, T, V) padded
        double err = 0;
        for (int b = 0; b < B; ++b)
            for (int i = batch.offsets[b]; i < batch.offsets[b + 1]; ++i)
                for (int v = 0; v < V; ++v) {
                    const double r = ref[(static_cast<std::size_t>(b) * Tn + (i - batch.offsets[b])) * V + v];
                    err = std::max(err, std::abs(static_cast<double>(logits[static_cast<std::size_t>(i) * V + v]) - r));
                }
        CHECK(err < tol_abs);
    }

    // Adam under OneCycleLR, step for step
    const auto losses_ref = file.read<double>("adam_losses", true);
    const auto lrs_ref = file.read<double>("adam_lrs", true);
    const auto beta1s_ref = file.read<double>("adam_beta1s", true);
    REQUIRE(static_cast<int>(losses_ref.size()) == steps);
    const auto optimizer = nlohmann::json::parse(file.metadata().at("optimizer"));
    mlm::OneCycleOptions one_cycle;
    one_cycle.lr_max = optimizer.at("max_lr").get<double>();
    one_cycle.total_steps = steps;
    mlm::OneCycleSchedule schedule(one_cycle);
    mlm::AdamOptions adam_options;
    adam_options.weight_decay = 0.0;
    adam_options.decay = mlm::WeightDecay::l2;
    mlm::Adam<T> adam(model.layout(), adam_options);
    for (int s = 0; s < steps; ++s) {
        CAPTURE(s);
        CHECK(schedule.lr(s) == doctest::Approx(lrs_ref[s]).epsilon(1e-12));
        CHECK(*schedule.beta1(s) == doctest::Approx(beta1s_ref[s]).epsilon(1e-12));
        model.zero_grad();
        const double l = model.forward_padded(input_ids.data(), labels.data(), B, Tn, eval);
        CHECK(std::abs(l - losses_ref[s]) < tol_abs);
        model.backward();
        adam.step(model.parameters(), model.gradients(), schedule.lr(s), *schedule.beta1(s));
    }
    for (const auto& t : model.layout().tensors()) {
        CAPTURE(t.name);
        const auto ref = file.read<double>("adam_final." + t.name, true);
        const double scale = std::max(max_abs(ref), 1e-12);
        CHECK(max_error(model.parameters() + t.offset, ref, scale) < tol_rel);
    }
}

}  // namespace

TEST_CASE("tiny model vs PyTorch, both norm placements, double") {
    for (const char* name : {"tiny_reference.safetensors", "tiny_pre.safetensors"})
        compare_with_fixture<double>(std::string(MLM_FIXTURE_DIR) + "/" + name, 1e-12, 1e-12, 10);
}

TEST_CASE("tiny model vs PyTorch, both norm placements, float") {
    for (const char* name : {"tiny_reference.safetensors", "tiny_pre.safetensors"})
        compare_with_fixture<float>(std::string(MLM_FIXTURE_DIR) + "/" + name, 2e-5, 1e-5, 10);
}

TEST_CASE("full reference size vs PyTorch, float (live fixture)") {
    if (g_full_fixture.empty()) {
        MESSAGE("no --full-fixture given: ctest's torch_reference_full runs this case");
        return;
    }
    compare_with_fixture<float>(g_full_fixture, 2e-4, 1e-4, 10);
}

// doctest's main, plus --full-fixture=PATH
int main(int argc, char** argv) {
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        if (std::strncmp(argv[i], "--full-fixture=", 15) == 0) g_full_fixture = argv[i] + 15;
        else rest.push_back(argv[i]);
    }
    doctest::Context context(static_cast<int>(rest.size()), rest.data());
    return context.run();
}
