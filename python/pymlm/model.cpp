// pymlm.Model: the encoder (mlm::Encoder<float>) with numpy views of its flat buffers.
#include "common.hpp"

#include <mlm/batch.hpp>
#include <mlm/checkpoint.hpp>
#include <mlm/encoder.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>

namespace pymlm {

namespace {

using Model = mlm::Encoder<float>;

// Numpy views (no copy) of every tensor of a flat buffer, keyed by checkpoint name. `owner` is
// the Python Model object: each array keeps it (and so the buffer) alive.
py::dict tensor_views(const Model& model, float* base, py::handle owner) {
    py::dict out;
    for (const auto& t : model.layout().tensors()) {
        std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
        out[py::str(t.name)] = py::array_t<float>(shape, base + t.offset, owner);
    }
    return out;
}

py::array flat_view(const Model& model, float* base, py::handle owner) {
    return py::array_t<float>({static_cast<py::ssize_t>(model.num_parameters())}, base, owner);
}

const mlm::TensorInfo& find_tensor(const Model& model, const std::string& name) {
    const std::string key = name == mlm::tied_head_key ? "embedding.class_embedding.weight" : name;
    if (const mlm::TensorInfo* t = model.layout().try_find(key)) return *t;
    throw py::key_error("no parameter named \"" + name + "\" in this model (see Model.parameter_names())");
}

// Logits of an inference pass at `rows` of a packed batch: (R, V).
std::vector<float> inference_logits(const Model& model, const mlm::Batch& batch, const std::vector<int32_t>& rows) {
    std::vector<float> out(rows.size() * static_cast<std::size_t>(model.config().vocab_size));
    if (rows.empty()) return out;
    mlm::InferenceWorkspace<float> ws;
    model.logits(out.data(), batch, rows.data(), static_cast<int>(rows.size()), ws);
    return out;
}

// Model.forward / backward use the model's training workspace; this serializes them between
// Python threads (they run without the GIL). Inference (MaskedLM) does not need it.
std::mutex& training_mutex() {
    static std::mutex m;
    return m;
}

// What Model.forward returns.
struct ForwardOutput {
    py::object loss = py::none();           // float, or None without labels
    py::object logits = py::none();         // numpy, or None
    py::object target_losses = py::none();  // (M,) per masked position, or None
};

}  // namespace

void bind_model(py::module_& m) {
    py::class_<ForwardOutput>(m, "ForwardOutput", R"doc(
What Model.forward returns:
    loss           mean cross-entropy over the labelled positions (float), or None without labels
    logits         numpy float32 logits (see Model.forward for the shape), or None
    target_losses  (M,) float32 cross-entropy of each labelled position (row-major order), or None)doc")
        .def_readonly("loss", &ForwardOutput::loss, "Mean cross-entropy over the labelled positions, or None.")
        .def_readonly("logits", &ForwardOutput::logits, "Logits as a numpy float32 array, or None.")
        .def_readonly("target_losses", &ForwardOutput::target_losses,
                      "Cross-entropy of each labelled position (M,), or None.")
        .def("__getitem__",
             [](const ForwardOutput& o, const std::string& key) -> py::object {
                 if (key == "loss") return o.loss;
                 if (key == "logits") return o.logits;
                 if (key == "target_losses") return o.target_losses;
                 throw py::key_error(key);
             })
        .def("__iter__", [](const ForwardOutput& o) { return py::iter(py::make_tuple(o.loss, o.logits)); })
        .def("__repr__", [](const ForwardOutput& o) {
            std::string r = "ForwardOutput(loss=" + std::string(py::repr(o.loss));
            if (!o.logits.is_none()) r += ", logits=<shape " + std::string(py::str(o.logits.attr("shape"))) + ">";
            return r + ")";
        });

    py::class_<Model> cls(m, "Model", R"doc(
The encoder-only transformer (the original's model): token + learned positional embeddings,
n_layers blocks of RMSNorm / multi-head attention / GELU feed-forward, a final RMSNorm and an
output head tied to the token embedding. float32 parameters in one flat buffer.

    model = pymlm.Model(pymlm.ModelConfig(vocab_size=tok.vocab_size, dim=128, n_layers=2), seed=0)
    out = model.forward(batch.input_ids, batch.labels)        # loss + logits of the masked positions
    model.zero_grad(); model.backward()                       # gradients of out.loss
    params = model.parameters()                               # name -> numpy view, no copy
    params["ln_f.scale"][:] = 1.0                             # writes into the model

Parameter names are the original PyTorch model's state_dict keys. Views returned by parameters()
and gradients() keep the model alive; they are invalid only in the sense that the model may be
training and changing them.)doc");

    cls.def(py::init([](const mlm::ModelConfig& config, uint64_t seed) {
                config.validate();
                return Model(config, seed);
            }),
            py::arg("config"), py::arg("seed") = 0,
            "A freshly initialised model: weights ~ N(0, init_std), biases 0, norm scales 1, drawn from seed.");
    cls.def_static(
        "load",
        [](const std::filesystem::path& dir_path) {
            const std::string dir = path_string(dir_path);
            require_directory(dir, "checkpoint directory");
            require_file(mlm::checkpoint_file(dir, mlm::checkpoint_config_file), "config.json of the checkpoint");
            require_file(mlm::checkpoint_file(dir, mlm::checkpoint_model_file), "model.safetensors of the checkpoint");
            sync_threads();
            py::gil_scoped_release release;
            const mlm::ModelConfig config = mlm::load_config(dir);
            Model model(config, 0);
            mlm::load_model_params(dir, config, model.parameters());
            return model;
        },
        py::arg("dir"),
        "Loads config.json and model.safetensors of a checkpoint directory (MaskedLM.load also loads the "
        "tokenizer). CheckpointError if a tensor is missing or has the wrong shape.");
    cls.def(
        "save",
        [](const Model& model, const std::filesystem::path& dir) {
            const std::string d = path_string(dir);
            sync_threads();
            py::gil_scoped_release release;
            mlm::save_model(d, model.config(), model.parameters());
        },
        py::arg("dir"),
        "Writes model.safetensors and config.json into dir (created if needed), atomically; a tokenizer.model "
        "already there is left alone.");

    cls.def_property_readonly(
        "config", [](const Model& model) { return model.config(); }, "The ModelConfig (a copy).");
    cls.def("num_parameters", &Model::num_parameters, "Number of parameters (the tied head counted once).");
    cls.def(
        "parameter_names",
        [](const Model& model) {
            std::vector<std::string> names;
            for (const auto& t : model.layout().tensors()) names.push_back(t.name);
            return names;
        },
        "Tensor names in layout order: the original PyTorch model's state_dict keys (without the tied "
        "mlm_head.weight).");
    cls.def(
        "parameters",
        [](py::object self) {
            Model& model = self.cast<Model&>();
            return tensor_views(model, model.parameters(), self);
        },
        "A dict name -> numpy float32 array that is a view into the model's parameters (no copy): writing "
        "into it changes the model.");
    cls.def(
        "gradients",
        [](py::object self) {
            Model& model = self.cast<Model&>();
            return tensor_views(model, model.gradients(), self);
        },
        "Like parameters(), for the gradients that backward() accumulates.");
    cls.def(
        "parameter",
        [](py::object self, const std::string& name) {
            Model& model = self.cast<Model&>();
            const mlm::TensorInfo& t = find_tensor(model, name);
            std::vector<py::ssize_t> shape(t.shape.begin(), t.shape.end());
            return py::array_t<float>(shape, model.parameters() + t.offset, self);
        },
        py::arg("name"), "The numpy view of one parameter tensor (mlm_head.weight is the tied embedding).");
    cls.def_property_readonly(
        "flat_parameters",
        [](py::object self) {
            Model& model = self.cast<Model&>();
            return flat_view(model, model.parameters(), self);
        },
        "All parameters as one 1-D numpy view (the flat buffer, in layout order).");
    cls.def_property_readonly(
        "flat_gradients",
        [](py::object self) {
            Model& model = self.cast<Model&>();
            return flat_view(model, model.gradients(), self);
        },
        "All gradients as one 1-D numpy view.");
    cls.def(
        "state_dict",
        [](const Model& model, bool include_head) {
            py::dict out;
            for (const auto& t : model.layout().tensors()) {
                std::vector<float> v(model.parameters() + t.offset, model.parameters() + t.offset + t.numel);
                out[py::str(t.name)] = to_numpy(std::move(v), std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
            }
            if (include_head) out[py::str(mlm::tied_head_key)] = out["embedding.class_embedding.weight"];
            return out;
        },
        py::arg("include_head") = false,
        "Copies of every tensor, name -> numpy array (loads into the PyTorch reference model with "
        "include_head=True, which adds mlm_head.weight, the tied embedding).");
    cls.def(
        "load_state_dict",
        [](Model& model, const py::dict& state, bool strict) {
            require_not_training(&model, "Model.load_state_dict");
            std::vector<std::pair<const mlm::TensorInfo*, py::array_t<float, py::array::c_style | py::array::forcecast>>> todo;
            std::vector<std::string> missing;
            for (const auto& t : model.layout().tensors()) {
                if (!state.contains(t.name)) {
                    missing.push_back(t.name);
                    continue;
                }
                py::object value = state[py::str(t.name)];
                if (py::hasattr(value, "detach")) value = value.attr("detach")().attr("cpu")().attr("numpy")();
                auto a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(value);
                if (!a) {
                    PyErr_Clear();
                    raise_type_error("load_state_dict: " + t.name + " is not a numeric array");
                }
                std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
                if (shape != t.shape) {
                    std::string want, got;
                    for (auto d : t.shape) want += (want.empty() ? "" : ", ") + std::to_string(d);
                    for (auto d : shape) got += (got.empty() ? "" : ", ") + std::to_string(d);
                    raise_value_error("load_state_dict: " + t.name + " has shape (" + got + "), the model expects (" +
                                      want + ")");
                }
                todo.emplace_back(&t, std::move(a));
            }
            if (strict) {
                std::vector<std::string> unexpected;
                for (auto item : state) {
                    const auto k = item.first.cast<std::string>();
                    if (k != mlm::tied_head_key && !model.layout().try_find(k)) unexpected.push_back(k);
                }
                if (!missing.empty() || !unexpected.empty()) {
                    std::string msg = "load_state_dict:";
                    if (!missing.empty()) msg += " missing " + std::to_string(missing.size()) + " tensors (first: " + missing[0] + ")";
                    if (!unexpected.empty())
                        msg += std::string(missing.empty() ? "" : ";") + " unexpected " +
                               std::to_string(unexpected.size()) + " tensors (first: " + unexpected[0] + ")";
                    raise_value_error(msg);
                }
            }
            for (auto& [t, a] : todo) std::memcpy(model.parameters() + t->offset, a.data(), t->numel * sizeof(float));
        },
        py::arg("state_dict"), py::arg("strict") = true,
        "Copies tensors (numpy arrays or torch tensors) into the model, checking names and shapes first; "
        "with strict, every tensor must be there and nothing else (mlm_head.weight is accepted and ignored: "
        "it is the tied embedding).");
    cls.def(
        "init_parameters",
        [](Model& model, uint64_t seed) {
            require_not_training(&model, "Model.init_parameters");
            model.init_parameters(seed);
        },
        py::arg("seed"),
            "Re-initialises every parameter from seed (as the constructor does).");
    cls.def(
        "zero_grad",
        [](Model& model) {
            require_not_training(&model, "Model.zero_grad");
            model.zero_grad();
        },
        "Sets every gradient to zero.");
    cls.def(
        "copy", [](const Model& model) { return Model(model); }, "An independent copy (parameters and gradients).");
    cls.def("__copy__", [](const Model& model) { return Model(model); });
    cls.def("__deepcopy__", [](const Model& model, py::dict) { return Model(model); }, py::arg("memo"));
    cls.def(py::pickle(
        [](const Model& model) {
            const auto* bytes = reinterpret_cast<const char*>(model.parameters());
            return py::make_tuple(mlm::to_json(model.config()),
                                  py::bytes(bytes, model.num_parameters() * sizeof(float)));
        },
        [](const py::tuple& state) {
            if (state.size() != 2) raise_value_error("Model: bad pickle state");
            Model model(mlm::model_config_from_json(state[0].cast<std::string>()), 0);
            const std::string bytes = state[1].cast<std::string>();
            if (bytes.size() != model.num_parameters() * sizeof(float))
                raise_value_error("Model: the pickled parameters do not fit the pickled config");
            std::memcpy(model.parameters(), bytes.data(), bytes.size());
            return model;
        }));

    cls.def(
        "forward",
        [](Model& model, py::handle input_ids, py::object labels, bool train, uint64_t dropout_key,
           std::optional<std::string> logits) {
            require_not_training(&model, "Model.forward");
            const mlm::ModelConfig& c = model.config();
            const IdMatrix ids = id_matrix_from_python(input_ids, "input_ids", 0, c.vocab_size);
            std::optional<IdMatrix> lab;
            if (!labels.is_none()) {
                lab = id_matrix_from_python(labels, "labels", 0, c.vocab_size, mlm::ignore_label);
                if (lab->rows != ids.rows || lab->cols != ids.cols)
                    raise_value_error("labels have shape (" + std::to_string(lab->rows) + ", " +
                                      std::to_string(lab->cols) + ") but input_ids (" + std::to_string(ids.rows) +
                                      ", " + std::to_string(ids.cols) + ")");
            }
            std::string mode = logits.value_or("none");
            if (mode == "auto") mode = lab ? "masked" : "all";
            if (mode != "masked" && mode != "all" && mode != "none")
                raise_value_error("forward: logits must be \"auto\", \"masked\", \"all\" or None, got \"" + mode + "\"");
            if (mode == "masked" && !lab) raise_value_error("forward: logits=\"masked\" needs labels");

            const int B = ids.rows, T = ids.cols, V = c.vocab_size;
            mlm::Batch batch = mlm::Batch::from_padded(ids.data.data(), lab ? lab->data.data() : nullptr, B, T, c.pad_id);
            // (the packed batch is checked against the config by the encoder)
            ForwardOutput out;
            float loss = 0;
            std::vector<float> target_losses, lg;
            std::vector<int32_t> rows;
            {
                sync_threads();
                py::gil_scoped_release release;
                std::lock_guard<std::mutex> lock(training_mutex());
                if (lab) {
                    mlm::ForwardOptions fo;
                    fo.train = train;
                    fo.dropout_key = dropout_key;
                    loss = model.forward_padded(ids.data.data(), lab->data.data(), B, T, fo);
                    target_losses.assign(model.target_losses(), model.target_losses() + batch.num_targets());
                }
                if (mode == "masked") {
                    rows = batch.target_rows;
                } else if (mode == "all") {
                    rows.resize(static_cast<std::size_t>(batch.num_tokens()));
                    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
                }
                if (mode != "none") lg = inference_logits(model, batch, rows);
            }
            if (lab) {
                out.loss = py::float_(loss);
                const auto M = static_cast<py::ssize_t>(target_losses.size());
                out.target_losses = to_numpy(std::move(target_losses), {M});
            }
            if (mode == "masked") {
                const auto M = static_cast<py::ssize_t>(rows.size());
                out.logits = to_numpy(std::move(lg), {M, V});
            } else if (mode == "all") {
                // scatter the packed rows into (B, T, V); pad positions stay 0
                std::vector<float> full(static_cast<std::size_t>(B) * T * V, 0.0f);
                for (int b = 0; b < B; ++b)
                    for (int t = 0; t < batch.length(b); ++t)
                        std::copy_n(lg.data() + static_cast<std::size_t>(batch.offsets[b] + t) * V, V,
                                    full.data() + (static_cast<std::size_t>(b) * T + t) * V);
                out.logits = to_numpy(std::move(full), {B, T, V});
            }
            return out;
        },
        py::arg("input_ids"), py::arg("labels") = py::none(), py::kw_only(), py::arg("train") = false,
        py::arg("dropout_key") = 0, py::arg("logits") = "auto",
        R"doc(
Runs the model on a padded batch, like the original's model(input_ids) + cross-entropy.

input_ids: (B, T) or (T,) integer array (int32 or int64; lists work too), each row
    right-padded with pad_id. labels: the same shape, the target id at masked positions and
    -100 elsewhere (what MaskingCollator returns), or None.
train: dropout on (a training step) or off. dropout_key: seeds this call's dropout masks.
logits: "auto" (default: "masked" with labels, "all" without), "masked" -> (M, V) at the
    labelled positions in row-major order (M = number of labels != -100), "all" -> (B, T, V)
    with zeros at pad positions (B*T*V floats: mind the memory at the reference vocab), or
    None for no logits. Logits always come from a pass without dropout.

With labels, the loss is the mean cross-entropy over the labelled positions, and backward()
then computes its gradients. Raises ValueError for ids outside the vocab, rows longer than
max_len, tokens after padding, or labels on pad positions; TypeError for non-integer arrays.
Releases the GIL.)doc");
    cls.def(
        "__call__",
        [](py::object self, py::object input_ids, py::object labels, bool train, uint64_t dropout_key,
           std::optional<std::string> logits) {
            return self.attr("forward")(input_ids, labels, py::arg("train") = train,
                                        py::arg("dropout_key") = dropout_key, py::arg("logits") = logits);
        },
        py::arg("input_ids"), py::arg("labels") = py::none(), py::kw_only(), py::arg("train") = false,
        py::arg("dropout_key") = 0, py::arg("logits") = "auto", "The same as forward().");
    cls.def(
        "backward",
        [](Model& model, float loss_scale) {
            require_not_training(&model, "Model.backward");
            sync_threads();
            py::gil_scoped_release release;
            std::lock_guard<std::mutex> lock(training_mutex());
            model.backward(loss_scale);
        },
        py::arg("loss_scale") = 1.0f,
        "Adds d(loss_scale * loss) / d(parameters) into the gradients, for the last forward() that had "
        "labels (call zero_grad() first unless you mean to accumulate). RuntimeError without such a "
        "forward. Releases the GIL.");
    cls.def("__repr__", [](const Model& model) {
        const auto& c = model.config();
        return "Model(vocab_size=" + std::to_string(c.vocab_size) + ", dim=" + std::to_string(c.dim) +
               ", n_heads=" + std::to_string(c.n_heads) + ", n_layers=" + std::to_string(c.n_layers) +
               ", parameters=" + std::to_string(model.num_parameters()) + ")";
    });
}

}  // namespace pymlm
