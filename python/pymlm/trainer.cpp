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

#include <mlm/masked_lm.hpp>
#include <mlm/trainer.hpp>

#include <optional>

namespace pymlm {

namespace {

using mlm::TrainerConfig;

const char* bucketing_to_string(mlm::BatcherOptions::Bucketing b) {
    switch (b) {
        case mlm::BatcherOptions::Bucketing::on: return "on";
        case mlm::BatcherOptions::Bucketing::off: return "off";
        default: return "auto";
    }
}
mlm::BatcherOptions::Bucketing bucketing_from_string(const std::string& s) {
    if (s == "auto" || s == "automatic") return mlm::BatcherOptions::Bucketing::automatic;
    if (s == "on") return mlm::BatcherOptions::Bucketing::on;
    if (s == "off") return mlm::BatcherOptions::Bucketing::off;
    raise_value_error("bucketing must be \"auto\", \"on\" or \"off\", got \"" + s + "\"");
}

// The fields of TrainerConfig in declaration order (for keyword construction, repr, as_dict).
const std::vector<std::string>& trainer_config_fields() {
    static const std::vector<std::string> fields = {
        "epochs", "max_steps", "max_tokens", "max_time_s", "max_total_time_s", "batch_size", "batch_tokens", "max_batch_sequences",
        "bucketing", "grad_accum", "optimizer", "lr", "beta1", "beta2", "eps", "weight_decay",
        "decay_weights_only", "clip_grad_norm", "schedule", "lr_min", "warmup_steps", "warmup_fraction",
        "pct_start", "div_factor", "final_div_factor", "three_phase", "anneal_linear", "cycle_momentum",
        "base_momentum", "max_momentum", "schedule_steps", "masking", "seed", "eval_every_steps", "eval_at_start",
        "eval", "save_best", "out_dir", "checkpoint_every_steps", "checkpoint_every_minutes", "checkpoint_on_stop",
        "overwrite", "progress", "log_every_steps", "on_non_finite", "max_non_finite_skips", "threads"};
    return fields;
}

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
    // ---- MaskingOptions ----------------------------------------------------------------------------
    py::class_<mlm::MaskingOptions>(m, "MaskingOptions", R"doc(
How the trainer masks: each ordinary token selected with mask_probability (0.15); of the selected
tokens mask_fraction become [MASK], random_fraction a random token, the rest stay (the original:
1.0 / 0.0; BERT: 0.8 / 0.1). whole_word selects words; at_least_one gives every sentence a target.)doc")
        .def(py::init([](double mask_probability, double mask_fraction, double random_fraction, bool whole_word,
                         bool at_least_one) {
                 mlm::MaskingOptions o;
                 o.mask_probability = mask_probability;
                 o.mask_fraction = mask_fraction;
                 o.random_fraction = random_fraction;
                 o.whole_word = whole_word;
                 o.at_least_one = at_least_one;
                 o.validate();
                 return o;
             }),
             py::kw_only(), py::arg("mask_probability") = 0.15, py::arg("mask_fraction") = 1.0,
             py::arg("random_fraction") = 0.0, py::arg("whole_word") = false, py::arg("at_least_one") = false,
             "Keyword arguments only; ValueError if a probability or fraction is out of range.")
        .def_readwrite("mask_probability", &mlm::MaskingOptions::mask_probability, "Selection probability.")
        .def_readwrite("mask_fraction", &mlm::MaskingOptions::mask_fraction, "Selected -> [MASK] share.")
        .def_readwrite("random_fraction", &mlm::MaskingOptions::random_fraction, "Selected -> random token share.")
        .def_readwrite("whole_word", &mlm::MaskingOptions::whole_word, "Select whole words.")
        .def_readwrite("at_least_one", &mlm::MaskingOptions::at_least_one, "At least one target per sentence.")
        .def("__repr__", [](const mlm::MaskingOptions& o) {
            auto f = [](double x) { return std::string(py::str(py::float_(x))); };
            return "MaskingOptions(mask_probability=" + f(o.mask_probability) + ", mask_fraction=" +
                   f(o.mask_fraction) + ", random_fraction=" + f(o.random_fraction) +
                   ", whole_word=" + (o.whole_word ? "True" : "False") +
                   ", at_least_one=" + (o.at_least_one ? "True" : "False") + ")";
        });

    // ---- TrainerConfig -----------------------------------------------------------------------------
    py::class_<TrainerConfig> cfg(m, "TrainerConfig", R"doc(
The training recipe. The defaults are the original's: Adam, one-cycle LR peaking at 6e-4, batches
of 128 sentences, 100 epochs, 15% masking, evaluation at the end of every epoch. pymlm.Trainer
without a config uses pymlm.DEFAULT_RECIPE ("best") instead; pymlm.apply_recipe sets a recipe here.

    config = pymlm.TrainerConfig(epochs=2, batch_size=64, out_dir="runs/demo")
    config.masking.mask_probability = 0.2

How long: the run ends at the first of epochs / max_steps / max_tokens (0 disables one); max_time_s
is a wall-time budget per fit() call, max_total_time_s one for the whole run (resumes included). Keyword arguments are the attribute names; unknown ones are a
TypeError. The string fields take: optimizer "adam" | "adamw"; schedule "one_cycle" | "constant" |
"warmup_linear" | "warmup_cosine"; bucketing "auto" | "on" | "off"; progress (the C++ progress
printer on stderr, which pymlm.Trainer turns off in favour of tqdm) "auto" | "bar" | "lines" |
"none"; on_non_finite "skip" | "stop".)doc");
    cfg.def(py::init([](py::kwargs kwargs) {
                py::object obj = py::cast(TrainerConfig());
                const auto& fields = trainer_config_fields();
                for (auto item : kwargs) {
                    const auto name = item.first.cast<std::string>();
                    if (std::find(fields.begin(), fields.end(), name) == fields.end())
                        raise_type_error("TrainerConfig: unknown option \"" + name + "\"");
                    obj.attr(item.first) = item.second;
                }
                TrainerConfig c = obj.cast<TrainerConfig>();
                c.validate();
                return c;
            }),
            "Keyword arguments set the fields of the same name; the result is validated (ValueError naming "
            "the first bad field).");
    cfg.def_readwrite("epochs", &TrainerConfig::epochs, "Epochs to train (0: no epoch limit).")
        .def_readwrite("max_steps", &TrainerConfig::max_steps, "Optimizer steps (0: no limit).")
        .def_readwrite("max_tokens", &TrainerConfig::max_tokens, "Real tokens fed to the model (0: no limit).")
        .def_readwrite("max_time_s", &TrainerConfig::max_time_s, "Wall-time budget of one fit() call (0: none).")
        .def_readwrite("max_total_time_s", &TrainerConfig::max_total_time_s,
                       "Wall-time budget of the whole run, over all its resumed fit() calls (0: none).")
        .def_readwrite("batch_size", &TrainerConfig::batch_size, "Sentences per batch (when batch_tokens is 0).")
        .def_readwrite("batch_tokens", &TrainerConfig::batch_tokens,
                       "> 0: token-budget batches of at most this many real tokens.")
        .def_readwrite("max_batch_sequences", &TrainerConfig::max_batch_sequences,
                       "Token-budget mode: at most this many sentences per batch (0: no cap).")
        .def_property(
            "bucketing", [](const TrainerConfig& c) { return std::string(bucketing_to_string(c.bucketing)); },
            [](TrainerConfig& c, const std::string& s) { c.bucketing = bucketing_from_string(s); },
            "Length bucketing: \"auto\" (on with batch_tokens), \"on\", \"off\".")
        .def_readwrite("grad_accum", &TrainerConfig::grad_accum, "Batches per optimizer step.")
        .def_property(
            "optimizer", [](const TrainerConfig& c) { return std::string(mlm::to_string(c.optimizer)); },
            [](TrainerConfig& c, const std::string& s) { c.optimizer = mlm::optimizer_kind_from_string(s); },
            "\"adam\" (L2 weight decay, torch.optim.Adam) or \"adamw\" (decoupled).")
        .def_readwrite("lr", &TrainerConfig::lr, "Peak (one-cycle, warm-up schedules) or constant learning rate.")
        .def_readwrite("beta1", &TrainerConfig::beta1, "Adam beta1 when the schedule does not cycle it.")
        .def_readwrite("beta2", &TrainerConfig::beta2, "Adam beta2.")
        .def_readwrite("eps", &TrainerConfig::eps, "Adam epsilon.")
        .def_readwrite("weight_decay", &TrainerConfig::weight_decay, "Weight decay.")
        .def_readwrite("decay_weights_only", &TrainerConfig::decay_weights_only,
                       "Exempt norm scales, biases and embeddings from weight decay.")
        .def_readwrite("clip_grad_norm", &TrainerConfig::clip_grad_norm, "> 0: clip the global gradient norm.")
        .def_property(
            "schedule", [](const TrainerConfig& c) { return std::string(mlm::to_string(c.schedule)); },
            [](TrainerConfig& c, const std::string& s) { c.schedule = mlm::schedule_kind_from_string(s); },
            "\"one_cycle\" (torch's OneCycleLR), \"constant\", \"warmup_linear\", \"warmup_cosine\".")
        .def_readwrite("lr_min", &TrainerConfig::lr_min, "Warm-up schedules: final learning rate.")
        .def_readwrite("warmup_steps", &TrainerConfig::warmup_steps, "Warm-up schedules: warm-up steps.")
        .def_readwrite("warmup_fraction", &TrainerConfig::warmup_fraction,
                       "Warm-up as a fraction of the run (when warmup_steps is 0).")
        .def_readwrite("pct_start", &TrainerConfig::pct_start, "One-cycle: share of the run spent rising.")
        .def_readwrite("div_factor", &TrainerConfig::div_factor, "One-cycle: initial lr = lr / div_factor.")
        .def_readwrite("final_div_factor", &TrainerConfig::final_div_factor,
                       "One-cycle: final lr = initial lr / final_div_factor.")
        .def_readwrite("three_phase", &TrainerConfig::three_phase, "One-cycle: torch's three_phase.")
        .def_readwrite("anneal_linear", &TrainerConfig::anneal_linear, "One-cycle: linear instead of cosine.")
        .def_readwrite("cycle_momentum", &TrainerConfig::cycle_momentum, "One-cycle: cycle beta1.")
        .def_readwrite("base_momentum", &TrainerConfig::base_momentum, "One-cycle: lowest beta1.")
        .def_readwrite("max_momentum", &TrainerConfig::max_momentum, "One-cycle: highest beta1.")
        .def_readwrite("schedule_steps", &TrainerConfig::schedule_steps,
                       "> 0: the schedule's length instead of the derived one.")
        .def_readwrite("masking", &TrainerConfig::masking, "MaskingOptions of the training batches.")
        .def_readwrite("seed", &TrainerConfig::seed, "Seed of initial weights, batch plans, masks and dropout.")
        .def_readwrite("eval_every_steps", &TrainerConfig::eval_every_steps,
                       "Evaluate every N steps (0: at the end of every epoch).")
        .def_readwrite("eval_at_start", &TrainerConfig::eval_at_start, "Also evaluate before the first step.")
        .def_readwrite("eval", &TrainerConfig::eval, "EvalOptions of the evaluations.")
        .def_readwrite("save_best", &TrainerConfig::save_best, "Keep out_dir/best (lowest validation loss).")
        .def_readwrite("out_dir", &TrainerConfig::out_dir, "Run directory (\"\": write nothing).")
        .def_readwrite("checkpoint_every_steps", &TrainerConfig::checkpoint_every_steps,
                       "Checkpoint every N steps (0: off).")
        .def_readwrite("checkpoint_every_minutes", &TrainerConfig::checkpoint_every_minutes,
                       "Checkpoint every N minutes (0: off).")
        .def_readwrite("checkpoint_on_stop", &TrainerConfig::checkpoint_on_stop,
                       "Write a checkpoint when stopped early (Ctrl-C, a callback).")
        .def_readwrite("overwrite", &TrainerConfig::overwrite, "Allow a new run in a directory that holds one.")
        .def_property(
            "progress", [](const TrainerConfig& c) { return std::string(mlm::to_string(c.progress)); },
            [](TrainerConfig& c, const std::string& s) { c.progress = mlm::progress_mode_from_string(s); },
            "The C++ progress printer on stderr: \"auto\", \"bar\", \"lines\", \"none\".")
        .def_readwrite("log_every_steps", &TrainerConfig::log_every_steps, "Progress lines every N steps.")
        .def_property(
            "on_non_finite", [](const TrainerConfig& c) { return std::string(mlm::to_string(c.on_non_finite)); },
            [](TrainerConfig& c, const std::string& s) { c.on_non_finite = mlm::non_finite_policy_from_string(s); },
            "A non-finite loss or gradient: \"skip\" the step or \"stop\".")
        .def_readwrite("max_non_finite_skips", &TrainerConfig::max_non_finite_skips,
                       "Consecutive skipped steps before the run stops.")
        .def_readwrite("threads", &TrainerConfig::threads, "OpenMP threads (0: leave the current setting).")
        .def("validate", &TrainerConfig::validate, "Raises ValueError naming the first bad field.")
        .def("to_json", [](const TrainerConfig& c) { return mlm::to_json(c); }, "JSON text of the config.")
        .def_static("from_json", &mlm::trainer_config_from_json, py::arg("text"),
                    "Parses JSON text (unknown keys are an error, missing keys take the defaults).")
        .def(
            "as_dict",
            [](py::object self) {
                py::dict d;
                for (const auto& f : trainer_config_fields()) d[py::str(f)] = self.attr(f.c_str());
                return d;
            },
            "The fields as a dict (masking and eval as their option objects).")
        .def_static(
            "field_names", []() { return trainer_config_fields(); }, "Names of the fields, in declaration order.")
        .def("__copy__", [](const TrainerConfig& c) { return c; })
        .def("__deepcopy__", [](const TrainerConfig& c, py::dict) { return c; }, py::arg("memo"))
        .def(py::pickle([](const TrainerConfig& c) { return mlm::to_json(c); },
                        [](const std::string& s) { return mlm::trainer_config_from_json(s); }))
        .def("__repr__", [](py::object self) {
            // only the fields that differ from the defaults
            py::object defaults = py::cast(TrainerConfig());
            std::string r = "TrainerConfig(";
            bool first = true;
            for (const auto& f : trainer_config_fields()) {
                if (f == "masking" || f == "eval") continue;
                py::object v = self.attr(f.c_str());
                if (v.equal(defaults.attr(f.c_str()))) continue;
                r += (first ? "" : ", ") + f + "=" + std::string(py::repr(v));
                first = false;
            }
            return r + ")";
        });

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
}

}  // namespace pymlm
