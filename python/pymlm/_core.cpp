// pymlm._core — the pybind11 bindings of the mlm library.
//
// Built by CMake (MLM_BUILD_PYTHON=ON; `pip install .` turns it on through setup.py). The Python
// package python/pymlm/__init__.py re-exports what is bound here and adds pure-Python helpers.
//
// Layout: one bind_* function per area (declared in common.hpp), called from PYBIND11_MODULE at
// the bottom; each area has its own file, which CMake picks up by glob:
//   _core.cpp       threads, build facts, ModelConfig
//   errors.cpp      exception types and translators, argument conversion helpers
//   tokenizer.cpp   Tokenizer
//   data.cpp        read_lines, Corpus, MaskingCollator, MaskedBatch
//   model.cpp       Model (the encoder), ForwardOutput
//   masked_lm.cpp   MaskedLM, MaskPrediction, TokenScore, EvalOptions, EvalMetrics
//   trainer.cpp     TrainerConfig, MaskingOptions, StepRecord, EvalRecord, TrainResult, TrainerCore
//
// Errors: C++ exceptions cross into Python through pybind11's translators and ours (errors.cpp):
//   mlm::CheckpointError -> pymlm.CheckpointError (a ValueError), std::out_of_range ->
//   pymlm.OutOfRangeError (a ValueError and an IndexError), std::invalid_argument -> ValueError,
//   std::length_error / std::domain_error -> ValueError, std::bad_alloc -> MemoryError,
//   any other std::exception -> RuntimeError (with its what() as the message).
#include "common.hpp"
#include "fields.hpp"

#include <mlm/config.hpp>
#include <mlm/ops/common.hpp>
#include <mlm/parameters.hpp>

#include <atomic>
#include <charconv>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <string>

#ifndef MLM_VERSION_STRING
#define MLM_VERSION_STRING "0.0.0+unknown"
#endif

namespace pymlm {

// ---- threads and build facts ----------------------------------------------------------------

namespace {
std::atomic<int> requested_threads{0};  // the last set_num_threads(n); 0: never called
}  // namespace

void sync_threads() {
    const int n = requested_threads.load();
    if (n > 0 && mlm::max_threads() != n) mlm::set_num_threads(n);
}

void bind_runtime(py::module_& m) {
    m.attr("__version__") = MLM_VERSION_STRING;
#ifdef _OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif

    m.def(
        "set_num_threads",
        [](int n) {
            if (n < 1)
                throw std::invalid_argument("set_num_threads: n must be at least 1, got " +
                                            std::to_string(n));
            requested_threads.store(n);
            mlm::set_num_threads(n);
        },
        py::arg("n"),
        "Sets the threads used by mlm's parallel loops and Eigen's products (OpenMP builds; "
        "without OpenMP everything runs on one thread and this only checks n). Applies to calls "
        "from every Python thread.");
    m.def(
        "get_num_threads",
        []() {
            sync_threads();
            return mlm::max_threads();
        },
        "Threads mlm's parallel loops will use (1 in a build without OpenMP).");
}

// ---- ModelConfig ----------------------------------------------------------------------------

void bind_config(py::module_& m) {
    py::class_<mlm::ModelConfig> cls(m, "ModelConfig",
                                 "Hyper-parameters of the encoder. The defaults are the reference "
                                 "model (vocab 8192, dim 256, 8 heads, 6 layers, 6,861,056 "
                                 "parameters). The constructor takes keyword arguments only and "
                                 "validates; after changing fields, validate() checks again.");
    def_fields(cls, "ModelConfig", /*all_in_repr=*/true);
    cls.def_property_readonly("head_dim", &mlm::ModelConfig::head_dim, "dim / n_heads")
        .def_property_readonly("ffn_dim", &mlm::ModelConfig::ffn_dim, "ffn_mult * dim")
        .def("validate", &mlm::ModelConfig::validate,
             "Raises ValueError naming the first field that is out of range.")
        .def(
            "num_parameters",
            [](const mlm::ModelConfig& c) { return mlm::ParameterLayout(c).size(); },
            "Number of parameters of the model (the tied output head counted once).")
        .def("to_json", [](const mlm::ModelConfig& c) { return mlm::to_json(c); },
             "config.json text of a checkpoint.")
        .def_static("from_json", &mlm::model_config_from_json, py::arg("text"),
                    "Parses config.json text; unknown keys are an error, missing keys take the "
                    "defaults.")
        .def(py::pickle([](const mlm::ModelConfig& c) { return mlm::to_json(c); },
                        [](const std::string& json) { return mlm::model_config_from_json(json); }));
}

}  // namespace pymlm

PYBIND11_MODULE(_core, m) {
    m.doc() = "pymlm._core: bindings of the mlm C++ library (masked-language-model pre-training "
              "of small BERT-like encoders on CPUs)";
    pymlm::bind_errors(m);
    pymlm::bind_runtime(m);
    pymlm::bind_config(m);
    pymlm::bind_tokenizer(m);
    pymlm::bind_data(m);
    pymlm::bind_model(m);
    pymlm::bind_masked_lm(m);
    pymlm::bind_trainer(m);
}
