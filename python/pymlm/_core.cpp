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

// float fields (dropout, init_std) go to Python as the shortest decimal that round-trips the
// float, so ModelConfig().dropout == 0.1 rather than 0.10000000149011612.
template <class F>
std::string shortest(F x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}
double float_to_py(float x) { return std::strtod(shortest(x).c_str(), nullptr); }

template <float mlm::ModelConfig::*field>
void def_float_field(py::class_<mlm::ModelConfig>& cls, const char* name, const char* doc) {
    cls.def_property(
        name, [](const mlm::ModelConfig& c) { return float_to_py(c.*field); },
        [](mlm::ModelConfig& c, double v) { c.*field = static_cast<float>(v); }, doc);
}

std::string config_repr(const mlm::ModelConfig& c) {
    std::ostringstream os;
    os << "ModelConfig(vocab_size=" << c.vocab_size << ", dim=" << c.dim
       << ", n_heads=" << c.n_heads << ", n_layers=" << c.n_layers << ", ffn_mult=" << c.ffn_mult
       << ", max_len=" << c.max_len << ", dropout=" << shortest(c.dropout)
       << ", norm_eps=" << shortest(c.norm_eps) << ", unk_id=" << c.unk_id << ", pad_id=" << c.pad_id
       << ", mask_id=" << c.mask_id << ", norm_placement='" << mlm::to_string(c.norm_placement)
       << "', init_std=" << shortest(c.init_std) << ")";
    return os.str();
}

bool config_equal(const mlm::ModelConfig& a, const mlm::ModelConfig& b) {
    return a.vocab_size == b.vocab_size && a.dim == b.dim && a.n_heads == b.n_heads &&
           a.n_layers == b.n_layers && a.ffn_mult == b.ffn_mult && a.max_len == b.max_len &&
           a.dropout == b.dropout && a.norm_eps == b.norm_eps && a.unk_id == b.unk_id &&
           a.pad_id == b.pad_id && a.mask_id == b.mask_id &&
           a.norm_placement == b.norm_placement && a.init_std == b.init_std;
}

void bind_config(py::module_& m) {
    const mlm::ModelConfig d;  // the defaults: the reference model
    py::class_<mlm::ModelConfig> cls(m, "ModelConfig",
                                 "Hyper-parameters of the encoder. The defaults are the reference "
                                 "model (vocab 8192, dim 256, 8 heads, 6 layers, 6,861,056 "
                                 "parameters). The constructor validates; after changing fields, "
                                 "validate() checks again.");
    cls.def(py::init([](int vocab_size, int dim, int n_heads, int n_layers, int ffn_mult,
                         int max_len, double dropout, double norm_eps, int unk_id, int pad_id,
                         int mask_id, const std::string& norm_placement, double init_std) {
                 mlm::ModelConfig c;
                 c.vocab_size = vocab_size;
                 c.dim = dim;
                 c.n_heads = n_heads;
                 c.n_layers = n_layers;
                 c.ffn_mult = ffn_mult;
                 c.max_len = max_len;
                 c.dropout = static_cast<float>(dropout);
                 c.norm_eps = norm_eps;
                 c.unk_id = unk_id;
                 c.pad_id = pad_id;
                 c.mask_id = mask_id;
                 c.norm_placement = mlm::norm_placement_from_string(norm_placement);
                 c.init_std = static_cast<float>(init_std);
                 c.validate();
                 return c;
             }),
             py::kw_only(), py::arg("vocab_size") = d.vocab_size, py::arg("dim") = d.dim,
             py::arg("n_heads") = d.n_heads, py::arg("n_layers") = d.n_layers,
             py::arg("ffn_mult") = d.ffn_mult, py::arg("max_len") = d.max_len,
             py::arg("dropout") = float_to_py(d.dropout), py::arg("norm_eps") = d.norm_eps,
             py::arg("unk_id") = d.unk_id, py::arg("pad_id") = d.pad_id,
             py::arg("mask_id") = d.mask_id,
             py::arg("norm_placement") = std::string(mlm::to_string(d.norm_placement)),
             py::arg("init_std") = float_to_py(d.init_std),
             "Keyword arguments only; unspecified fields keep the reference model's values. ValueError "
             "names the first field that is out of range.")
        .def_readwrite("vocab_size", &mlm::ModelConfig::vocab_size, "token ids (the tokenizer's vocab_size)")
        .def_readwrite("dim", &mlm::ModelConfig::dim, "model width")
        .def_readwrite("n_heads", &mlm::ModelConfig::n_heads, "attention heads; dim % n_heads == 0")
        .def_readwrite("n_layers", &mlm::ModelConfig::n_layers, "encoder blocks")
        .def_readwrite("ffn_mult", &mlm::ModelConfig::ffn_mult, "feed-forward width = ffn_mult * dim")
        .def_readwrite("max_len", &mlm::ModelConfig::max_len, "longest sequence (positional rows)")
        .def_readwrite("norm_eps", &mlm::ModelConfig::norm_eps, "RMSNorm epsilon")
        .def_readwrite("unk_id", &mlm::ModelConfig::unk_id, "id of [UNK]")
        .def_readwrite("pad_id", &mlm::ModelConfig::pad_id, "id of [PAD] (marks padding in padded batches)")
        .def_readwrite("mask_id", &mlm::ModelConfig::mask_id, "id of [MASK]")
        .def_property(
            "norm_placement",
            [](const mlm::ModelConfig& c) { return std::string(mlm::to_string(c.norm_placement)); },
            [](mlm::ModelConfig& c, const std::string& s) {
                c.norm_placement = mlm::norm_placement_from_string(s);
            },
            "'reference' (the original: x = norm(x); x = x + f(x)) or 'pre' (x = x + f(norm(x)))")
        .def_property_readonly("head_dim", &mlm::ModelConfig::head_dim, "dim / n_heads")
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
        .def("__repr__", &config_repr)
        .def("__eq__", &config_equal, py::is_operator())
        .def("__copy__", [](const mlm::ModelConfig& c) { return c; })
        .def("__deepcopy__", [](const mlm::ModelConfig& c, py::dict) { return c; }, py::arg("memo"))
        .def(py::pickle([](const mlm::ModelConfig& c) { return mlm::to_json(c); },
                        [](const std::string& json) { return mlm::model_config_from_json(json); }));
    def_float_field<&mlm::ModelConfig::dropout>(
        cls, "dropout", "dropout rate after the embedding, attention output, GELU and FFN output");
    def_float_field<&mlm::ModelConfig::init_std>(cls, "init_std", "std of the N(0, s) weight init");
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
