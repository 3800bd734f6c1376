// pymlm training: TrainerConfig, MaskingOptions, the step / eval records, TrainResult and
// TrainerCore (mlm::Trainer). The Python class pymlm.Trainer (python/pymlm/_training.py) wraps
// TrainerCore with data conversion, a tqdm progress bar, callbacks and a history.
//
// train() runs without the GIL. After every step (and evaluation) the C++ loop calls back: the
// callback takes the GIL, calls the Python callback, then PyErr_CheckSignals() so that Ctrl-C is
// seen within one step. A Python exception there (KeyboardInterrupt included) asks the trainer to
// stop; the trainer then finishes the step, writes its checkpoint (when it has an out_dir) and
// returns, and the exception is raised again from train().
#include "common.hpp"
#include "fields.hpp"

#include <mlm/masked_lm.hpp>
#include <mlm/run.hpp>
#include <mlm/trainer.hpp>

#include <optional>

namespace pymlm {

namespace {

using mlm::TrainerConfig;

py::dict step_dict(const mlm::StepRecord& r) {
    py::dict d;
    d["step"] = r.step;
    d["total_steps"] = r.total_steps;
    d["epoch"] = r.epoch;
    d["tokens"] = r.tokens;
    d["step_tokens"] = r.step_tokens;
    d["step_masked"] = r.step_masked;
    d["loss"] = r.loss;
    d["lr"] = r.lr;
    d["beta1"] = r.beta1;
    d["grad_norm"] = r.grad_norm;
    d["tokens_per_s"] = r.tokens_per_s;
    d["elapsed_s"] = r.elapsed_s;
    d["skipped"] = r.skipped;
    d["loss_smoothed"] = r.loss_smoothed;
    d["tokens_per_s_smoothed"] = r.tokens_per_s_smoothed;
    d["eta_s"] = r.eta_s;
    return d;
}

py::dict result_dict(const mlm::TrainResult& r) {
    py::dict d;
    d["stop_reason"] = mlm::to_string(r.stop_reason);
    d["steps"] = r.steps;
    d["epochs"] = r.epochs;
    d["tokens"] = r.tokens;
    d["last_loss"] = r.last_loss;
    d["best_val_loss"] = r.best_val_loss;
    d["best_step"] = r.best_step;
    d["last_eval"] = py::cast(r.last_eval).attr("as_dict")();
    d["elapsed_s"] = r.elapsed_s;
    d["skipped_steps"] = r.skipped_steps;
    d["checkpoint_step"] = r.checkpoint_step;
    return d;
}

mlm::TokenizedCorpus corpus_arg(py::handle obj) {
    if (obj.is_none()) return mlm::TokenizedCorpus();
    if (!py::isinstance<mlm::TokenizedCorpus>(obj))
        raise_type_error("TrainerCore.set_data expects Corpus objects (pymlm.Trainer converts files and "
                         "sentences)");
    return obj.cast<const mlm::TokenizedCorpus&>();
}

// Single knobs by field name ("lr", "masking.mask_probability") into a FieldOptions<S>: each value
// goes through the attribute of the bound class (its type checks), the name into `given`.
template <class S>
void options_from_dict(const py::dict& options, mlm::FieldOptions<S>& out, const char* class_name) {
    py::object values = py::cast(S{});
    const std::vector<std::string> paths = mlm::field_paths<S>();
    for (auto item : options) {
        const std::string name = py::str(item.first);
        bool known = std::find(paths.begin(), paths.end(), name) != paths.end();
        mlm::for_each_field<S>([&](const auto& f) { known = known || name == f.name; });
        if (!known) raise_type_error(std::string(class_name) + " has no field \"" + name + "\"");
        py::object target = values;
        std::string rest = name;
        for (std::size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1))
            target = target.attr(rest.substr(0, dot).c_str());
        target.attr(rest.c_str()) = item.second;
        out.given.insert(name);
    }
    out.values = values.cast<S>();
}

// Calls a Python callback from the training thread (which runs without the GIL). Returns true to
// ask the trainer to stop: when the callback says so, or when it or a signal handler raised.
template <class Record>
bool call_back(const py::object& fn, const Record& record, std::optional<py::error_already_set>& pending) {
    py::gil_scoped_acquire gil;
    if (pending) return true;
    try {
        bool stop = false;
        if (!fn.is_none()) {
            py::object r = fn(py::cast(record, py::return_value_policy::copy));
            stop = !r.is_none() && r.cast<bool>();
        }
        if (PyErr_CheckSignals() != 0) throw py::error_already_set();
        return stop;
    } catch (py::error_already_set& e) {
        pending.emplace(std::move(e));
        return true;
    }
}

}  // namespace

void bind_trainer(py::module_& m) {
    // ---- MaskingOptions, TrainerConfig, DataOptions: from their field tables -----------------------
    py::class_<mlm::MaskingOptions> masking(m, "MaskingOptions", R"doc(
How the trainer masks: each ordinary token selected with mask_probability (0.15); of the selected
tokens mask_fraction become [MASK], random_fraction a random token, the rest stay (the original:
1.0 / 0.0; BERT: 0.8 / 0.1). whole_word selects words; at_least_one gives every sentence a target.)doc");
    def_fields(masking, "MaskingOptions", /*all_in_repr=*/true);

    py::class_<TrainerConfig> cfg(m, "TrainerConfig", R"doc(
The training knobs, declared once in C++ (include/mlm/trainer_config.hpp); TrainerConfig.fields()
lists each with its type, default, role and help. The defaults are the original's recipe: Adam,
one-cycle LR peaking at 6e-4, batches of 128 sentences, 100 epochs, 15% masking, evaluation at the
end of every epoch. pymlm.Trainer without a config uses pymlm.DEFAULT_RECIPE ("best") instead;
pymlm.apply_recipe sets a recipe here.

    config = pymlm.TrainerConfig(epochs=2, batch_size=64, out_dir="runs/demo")
    config.masking.mask_probability = 0.2

How long: the run ends at the first of epochs / max_steps / max_tokens (0 disables one); max_time_s
is a wall-time budget per fit() call, max_total_time_s one for the whole run (resumes included).
Enum fields take their names: optimizer "adam" | "adamw"; schedule "one_cycle" | "constant" |
"warmup_linear" | "warmup_cosine"; bucketing "auto" | "on" | "off"; anneal "cos" | "linear";
on_non_finite "skip" | "stop".)doc");
    def_fields(cfg, "TrainerConfig", /*all_in_repr=*/false);
    cfg.def("validate", &TrainerConfig::validate, "Raises ValueError naming the first bad field.")
        .def("to_json", [](const TrainerConfig& c) { return mlm::to_json(c); }, "JSON text of the config.")
        .def_static("from_json", &mlm::trainer_config_from_json, py::arg("text"),
                    "Parses JSON text (unknown keys are an error, missing keys take the defaults).")
        .def(py::pickle([](const TrainerConfig& c) { return mlm::to_json(c); },
                        [](const std::string& s) { return mlm::trainer_config_from_json(s); }));

    py::class_<mlm::DataOptions> data(m, "DataOptions", R"doc(
Where a run's sentences come from (data.json of a run directory): train files, a valid file, the
holdout taken from the training sentences when there is no held-out data (2,000 at most 10%),
max_sentences, and the cache of tokenized files.)doc");
    def_fields(data, "DataOptions", /*all_in_repr=*/false);
    data.def("to_json", [](const mlm::DataOptions& d) { return mlm::to_json(d); }, "JSON text (data.json).")
        .def_static("from_json", &mlm::data_options_from_json, py::arg("text"), "Parses data.json text.");

    m.attr("DEFAULT_RECIPE") = mlm::to_string(mlm::kDefaultRecipe);

    m.def(
        "apply_recipe",
        [](const std::string& recipe, mlm::ModelConfig model, TrainerConfig trainer) {
            mlm::apply_recipe(mlm::recipe_from_string(recipe), model, trainer);
            return py::make_tuple(model, trainer);
        },
        py::arg("recipe"), py::arg("model_config"), py::arg("trainer_config"),
        R"doc(Copies of model_config and trainer_config with the knobs of a training recipe set, the
other fields untouched: (ModelConfig, TrainerConfig).

recipe: "original" (the notebook's: the reference block order, dropout 0.1, Adam, one-cycle lr
peaking at 6e-4, batches of 128 sentences, 15% masking; the defaults of both configs) or "best"
(the project's, measured in docs/quality.md: pre-norm, no dropout, AdamW with decay 0.01 on the
weight matrices, lr 1e-3 with a 5% warm-up then cosine decay, gradient norm clipped to 1, batches of
4,096 tokens, 30% masking). The recipe leaves alone the model's size, the run's length, data, evaluation,
checkpoint and thread settings, and the seed.)doc");

    // ---- records -----------------------------------------------------------------------------------
    py::class_<mlm::StepRecord>(m, "StepRecord", "What happened at one optimizer step (one line of log.jsonl).")
        .def_readonly("step", &mlm::StepRecord::step, "Optimizer steps done, this one included (1-based).")
        .def_readonly("total_steps", &mlm::StepRecord::total_steps, "The schedule's length (0 if unbounded).")
        .def_readonly("epoch", &mlm::StepRecord::epoch, "Fractional epoch.")
        .def_readonly("tokens", &mlm::StepRecord::tokens, "Real tokens seen so far.")
        .def_readonly("step_tokens", &mlm::StepRecord::step_tokens, "Real tokens of this step.")
        .def_readonly("step_masked", &mlm::StepRecord::step_masked, "Masked tokens of this step.")
        .def_readonly("loss", &mlm::StepRecord::loss, "Mean cross-entropy over the step's masked tokens.")
        .def_readonly("lr", &mlm::StepRecord::lr, "Learning rate of the step.")
        .def_readonly("beta1", &mlm::StepRecord::beta1, "Adam beta1 of the step.")
        .def_readonly("grad_norm", &mlm::StepRecord::grad_norm, "Gradient norm before clipping.")
        .def_readonly("tokens_per_s", &mlm::StepRecord::tokens_per_s, "Throughput of the step.")
        .def_readonly("elapsed_s", &mlm::StepRecord::elapsed_s, "Wall time of the run so far.")
        .def_readonly("skipped", &mlm::StepRecord::skipped, "Non-finite loss or gradient: not applied.")
        .def_readonly("loss_smoothed", &mlm::StepRecord::loss_smoothed,
                      "For display: moving average of the loss over this session's steps (weight 0.95).")
        .def_readonly("tokens_per_s_smoothed", &mlm::StepRecord::tokens_per_s_smoothed,
                      "For display: moving average of the throughput.")
        .def_readonly("eta_s", &mlm::StepRecord::eta_s,
                      "Time left to the end of the run or of a time budget (NaN: unknown).")
        .def("as_dict", &step_dict, "The fields as a dict.")
        .def("__repr__", [](const mlm::StepRecord& r) {
            return "StepRecord(step=" + std::to_string(r.step) + ", epoch=" + std::to_string(r.epoch) +
                   ", loss=" + std::to_string(r.loss) + ", lr=" + std::string(py::repr(py::float_(r.lr))) + ")";
        });

    py::class_<mlm::EvalRecord>(m, "EvalRecord", "One evaluation on the held-out sentences during training.")
        .def_readonly("step", &mlm::EvalRecord::step, "Optimizer steps done.")
        .def_readonly("epoch", &mlm::EvalRecord::epoch, "Fractional epoch.")
        .def_readonly("tokens", &mlm::EvalRecord::tokens, "Real tokens seen so far.")
        .def_readonly("elapsed_s", &mlm::EvalRecord::elapsed_s, "Wall time of the run so far.")
        .def_readonly("metrics", &mlm::EvalRecord::metrics, "The EvalMetrics.")
        .def_readonly("best", &mlm::EvalRecord::best, "The lowest validation loss so far.")
        .def(
            "as_dict",
            [](const mlm::EvalRecord& r) {
                py::dict d = py::cast(r.metrics).attr("as_dict")();
                d["step"] = r.step;
                d["epoch"] = r.epoch;
                d["tokens"] = r.tokens;
                d["elapsed_s"] = r.elapsed_s;
                d["best"] = r.best;
                return d;
            },
            "The metrics and the position as one flat dict.")
        .def("__repr__", [](const mlm::EvalRecord& r) {
            return "EvalRecord(step=" + std::to_string(r.step) + ", metrics=" +
                   std::string(py::repr(py::cast(r.metrics))) + (r.best ? ", best=True" : "") + ")";
        });

    py::class_<mlm::TrainResult>(m, "TrainResult", "How a fit() call ended.")
        .def_property_readonly(
            "stop_reason", [](const mlm::TrainResult& r) { return std::string(mlm::to_string(r.stop_reason)); },
            "\"finished\", \"max_time\", \"stopped\" (a callback, request_stop, Ctrl-C) or \"non_finite\".")
        .def_readonly("steps", &mlm::TrainResult::steps, "Optimizer steps done in total.")
        .def_readonly("epochs", &mlm::TrainResult::epochs, "Fractional epochs done.")
        .def_readonly("tokens", &mlm::TrainResult::tokens, "Real tokens seen.")
        .def_readonly("last_loss", &mlm::TrainResult::last_loss, "Loss of the last step.")
        .def_readonly("best_val_loss", &mlm::TrainResult::best_val_loss, "Lowest validation loss (NaN: none).")
        .def_readonly("best_step", &mlm::TrainResult::best_step, "Step of best_val_loss.")
        .def_readonly("last_eval", &mlm::TrainResult::last_eval, "The last EvalMetrics (NaN fields when none ran).")
        .def_readonly("elapsed_s", &mlm::TrainResult::elapsed_s, "Wall time of the run (all sessions).")
        .def_readonly("skipped_steps", &mlm::TrainResult::skipped_steps, "Steps skipped as non-finite.")
        .def_readonly("checkpoint_step", &mlm::TrainResult::checkpoint_step,
                      "Step of the newest checkpoint in out_dir (-1: none written). After a non_finite stop, the "
                      "last one written before the fault: such a stop writes none.")
        .def("as_dict", &result_dict, "The fields as a dict.")
        .def("__repr__", [](const mlm::TrainResult& r) {
            return "TrainResult(stop_reason='" + std::string(mlm::to_string(r.stop_reason)) +
                   "', steps=" + std::to_string(r.steps) + ", epochs=" + std::to_string(r.epochs) +
                   ", last_loss=" + std::to_string(r.last_loss) + ", best_val_loss=" + std::to_string(r.best_val_loss) +
                   ")";
        });

    // ---- TrainerCore -------------------------------------------------------------------------------
    py::class_<mlm::Trainer> core(m, "TrainerCore", R"doc(
The C++ training loop (mlm::Trainer) as it is. pymlm.Trainer wraps it with data conversion, a
progress bar, callbacks and a history; use this class directly for full control.

    core = pymlm.TrainerCore(model_config, tok, pymlm.TrainerConfig(epochs=1))
    core.set_data(train_corpus, valid_corpus)
    result = core.train(on_step=lambda r: print(r.loss))

train() releases the GIL; its callbacks take it back. Ctrl-C (or any exception in a callback)
stops the run after the current step; the checkpoint is written, then the exception is raised.)doc");
    core.def(py::init([](const mlm::ModelConfig& model, const mlm::Tokenizer& tokenizer, const TrainerConfig& config) {
                 return std::make_unique<mlm::Trainer>(model, tokenizer, config);
             }),
             py::arg("model"), py::arg("tokenizer"), py::arg("config"),
             "A new run: a model initialised from the config and config.seed. The tokenizer's vocab size and "
             "special ids must match the model config (ValueError).");
    core.def(py::init([](const mlm::Encoder<float>& model, const mlm::Tokenizer& tokenizer, const TrainerConfig& config) {
                 return std::make_unique<mlm::Trainer>(model, tokenizer, config);
             }),
             py::arg("model"), py::arg("tokenizer"), py::arg("config"),
             "A new run starting from the given Model's weights (copied).");
    core.def(
        "set_data",
        [](mlm::Trainer& t, py::handle train, py::handle valid) {
            if (is_training(&t)) throw std::runtime_error("TrainerCore.set_data: the trainer is training");
            mlm::TokenizedCorpus tr = corpus_arg(train), va = corpus_arg(valid);
            sync_threads();
            py::gil_scoped_release release;
            t.set_data(std::move(tr), std::move(va));
        },
        py::arg("train"), py::arg("valid") = py::none(),
        "Training and (optional) held-out Corpus, tokenized with this tokenizer and max_length <= max_len. "
        "Computes the schedule's length.");
    core.def(
        "train",
        [](mlm::Trainer& t, py::object on_step, py::object on_eval) {
            if (is_training(&t)) throw std::runtime_error("TrainerCore.train: this trainer is already training");
            std::optional<py::error_already_set> pending;
            t.on_step = [&](const mlm::StepRecord& r) { return call_back(on_step, r, pending); };
            t.on_eval = [&](const mlm::EvalRecord& r) { return call_back(on_eval, r, pending); };
            struct Reset {
                mlm::Trainer& t;
                ~Reset() {
                    t.on_step = nullptr;
                    t.on_eval = nullptr;
                    mark_training(&t, false);
                    mark_training(&t.model(), false);
                }
            } reset{t};
            mark_training(&t, true);
            mark_training(&t.model(), true);
            mlm::TrainResult result;
            {
                sync_threads();
                py::gil_scoped_release release;
                result = t.train();
            }
            if (pending) throw *pending;
            return result;
        },
        py::arg("on_step") = py::none(), py::arg("on_eval") = py::none(),
        "Runs until a target, the time budget, a stop request or a non-finite failure; returns a TrainResult. "
        "on_step(StepRecord) / on_eval(EvalRecord) are called after every step / evaluation; a true return "
        "value stops the run. Releases the GIL. A second call continues the run.");
    core.def(
        "evaluate",
        [](const mlm::Trainer& t) {
            sync_threads();
            py::gil_scoped_release release;
            return t.evaluate();
        },
        "EvalMetrics of the current model on the held-out corpus (NaN without one). Releases the GIL.");
    core.def(
        "resume",
        [](mlm::Trainer& t, const std::optional<std::filesystem::path>& dir) {
            const std::string d = dir ? path_string(*dir) : std::string();
            if (!d.empty() || !t.config().out_dir.empty())
                require_directory(d.empty() ? t.config().out_dir : d, "run directory");
            if (is_training(&t)) throw std::runtime_error("TrainerCore.resume: the trainer is training");
            sync_threads();
            py::gil_scoped_release release;
            t.resume(d);
        },
        py::arg("dir") = py::none(),
        "Continues the run saved in dir (default: out_dir): parameters, Adam state, step, data position. "
        "Call after set_data() with the same data and the same run-defining config.");
    core.def(
        "save_checkpoint",
        [](const mlm::Trainer& t, const std::optional<std::filesystem::path>& dir) {
            const std::string d = dir ? path_string(*dir) : std::string();
            sync_threads();
            py::gil_scoped_release release;
            t.save_checkpoint(d);
        },
        py::arg("dir") = py::none(), "Writes a full checkpoint (model, tokenizer, trainer state) into dir or out_dir.");
    core.def("request_stop", &mlm::Trainer::request_stop,
             "Asks a running train() to stop after the current step (safe from any thread).");
    core.def_static(
        "has_state", [](const std::filesystem::path& dir) { return mlm::Trainer::has_state(path_string(dir)); },
        py::arg("dir"), "True when dir holds a trainer state to resume from.");
    core.def_static(
        "load_config",
        [](const std::filesystem::path& dir) {
            const std::string d = path_string(dir);
            require_directory(d, "run directory");
            return mlm::Trainer::load_config(d);
        },
        py::arg("dir"), "The TrainerConfig stored in dir's trainer state.");
    core.def_property_readonly(
        "model", [](mlm::Trainer& t) -> mlm::Encoder<float>& { return t.model(); },
        py::return_value_policy::reference_internal,
        "The Model being trained (not a copy; do not run forward/backward on it while train() runs).");
    core.def_property_readonly(
        "tokenizer", [](const mlm::Trainer& t) -> const mlm::Tokenizer& { return t.tokenizer(); },
        py::return_value_policy::reference_internal, "The Tokenizer.");
    core.def_property_readonly(
        "config", [](const mlm::Trainer& t) { return t.config(); }, "The TrainerConfig (a copy).");
    core.def_property_readonly(
        "model_config", [](const mlm::Trainer& t) { return t.model_config(); }, "The ModelConfig (a copy).");
    core.def_property_readonly("train_data", &mlm::Trainer::train_data, py::return_value_policy::reference_internal,
                               "The training Corpus (after a holdout was taken from it).");
    core.def_property_readonly("valid_data", &mlm::Trainer::valid_data, py::return_value_policy::reference_internal,
                               "The held-out Corpus (empty when there is none).");
    core.def_property_readonly("step", &mlm::Trainer::step, "Optimizer steps done.");
    core.def_property_readonly("epoch", &mlm::Trainer::epoch, "Fractional epoch of the next step.");
    core.def_property_readonly("tokens_seen", &mlm::Trainer::tokens_seen, "Real tokens seen.");
    core.def_property_readonly("total_steps", &mlm::Trainer::total_steps,
                               "The schedule's length (0 before set_data or when unbounded).");
    core.def_property_readonly("current_lr", &mlm::Trainer::current_lr, "The learning rate of the next step.");
    core.def(
        "to_masked_lm",
        [](const mlm::Trainer& t) { return mlm::MaskedLM(mlm::Encoder<float>(t.model()), t.tokenizer()); },
        "A MaskedLM with a copy of the current weights and the tokenizer.");

    // ---- the run, assembled in C++ (mlm::assemble_run) -------------------------------------------
    m.def(
        "assemble_run",
        [](const std::optional<std::string>& recipe, const std::optional<mlm::ModelConfig>& model,
           const std::optional<TrainerConfig>& trainer, const mlm::Encoder<float>* weights, py::dict model_options,
           py::dict trainer_options, py::dict data_options, const std::optional<mlm::Tokenizer>& tokenizer,
           py::handle train, py::handle valid, bool resume, py::object on_notice) {
            mlm::RunRequest req;
            if (recipe) req.recipe = mlm::recipe_from_string(*recipe);
            req.model = model;
            req.trainer = trainer;
            req.weights = weights;
            options_from_dict(model_options, req.model_options, "ModelConfig");
            options_from_dict(trainer_options, req.trainer_options, "TrainerConfig");
            options_from_dict(data_options, req.data, "DataOptions");
            req.tokenizer = tokenizer;
            if (!train.is_none()) req.train = corpus_arg(train);
            if (!valid.is_none()) req.valid = corpus_arg(valid);
            req.resume = resume;
            std::function<void(const mlm::Notice&)> notify;
            if (!on_notice.is_none()) {
                // Held by a shared_ptr that takes the GIL to let go of it: the C++ side copies the
                // callback without the GIL.
                std::shared_ptr<py::object> fn(new py::object(on_notice), [](py::object* o) {
                    py::gil_scoped_acquire gil;
                    delete o;
                });
                notify = [fn](const mlm::Notice& n) {
                    py::gil_scoped_acquire gil;
                    try {
                        (*fn)(n.kind == mlm::Notice::Kind::warning ? "warning" : "info", n.text);
                    } catch (py::error_already_set& e) {
                        e.discard_as_unraisable("pymlm: a notice callback");
                    }
                };
            }
            sync_threads();
            std::unique_ptr<mlm::Trainer> t;
            {
                py::gil_scoped_release release;
                t = mlm::assemble_run(req, notify);
            }
            return t;
        },
        py::kw_only(), py::arg("recipe") = py::none(), py::arg("model") = py::none(), py::arg("trainer") = py::none(),
        py::arg("weights") = py::none(), py::arg("model_options") = py::dict(), py::arg("trainer_options") = py::dict(),
        py::arg("data_options") = py::dict(), py::arg("tokenizer") = py::none(), py::arg("train") = py::none(),
        py::arg("valid") = py::none(), py::arg("resume") = false, py::arg("on_notice") = py::none(),
        R"doc(A TrainerCore with its data set, assembled by the same C++ function as `mlm train` (mlm::assemble_run):
the recipe (None: DEFAULT_RECIPE unless a whole `trainer` config is given), whole configs, single
knobs by field name (``{"lr": 1e-3, "masking.mask_probability": 0.2}``) over them, the data
(Corpus objects, or files in data_options: train, valid, holdout, max_sentences, cache), the
holdout when there is no held-out data, data.json and the resume rules. on_notice(kind, text) hears
what the user may want to know ("info" or "warning"). Releases the GIL while it reads.)doc");
    m.def("non_finite_stop_message", &mlm::non_finite_stop_message, py::arg("result"), py::arg("out_dir"),
          "Why a run stopped on a non-finite loss or gradient, as one sentence (\"\" for other stops).");
}

}  // namespace pymlm
