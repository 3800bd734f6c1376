// pymlm.MaskedLM (model + tokenizer: load, save, predict_mask, fill_mask, evaluate), its result
// types, and the evaluation options and metrics shared with the trainer.
#include "common.hpp"
#include "fields.hpp"

#include <mlm/checkpoint.hpp>
#include <mlm/data.hpp>
#include <mlm/masked_lm.hpp>
#include <mlm/metrics.hpp>

#include <cmath>
#include <random>

namespace pymlm {

namespace {

py::dict metrics_dict(const mlm::EvalMetrics& m) {
    py::dict d;
    d["sentences"] = m.sentences;
    d["masked_tokens"] = m.masked_tokens;
    d["loss"] = m.loss;
    d["accuracy"] = m.accuracy;
    d["perplexity"] = m.perplexity();
    d["single_mask_sentences"] = m.single_mask_sentences;
    d["single_mask_accuracy"] = m.single_mask_accuracy;
    d["single_mask_topk_accuracy"] = m.single_mask_topk_accuracy;
    d["single_mask_loss"] = m.single_mask_loss;
    d["top_k"] = m.top_k;
    d["seconds"] = m.seconds;
    return d;
}

std::string fmt(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", x);
    return buf;
}

// A random seed from Python's `random` module, so random.seed() makes notebooks reproducible.
uint64_t python_random_seed() {
    return py::module_::import("random").attr("getrandbits")(63).cast<uint64_t>();
}

py::list candidates_to_python(const std::vector<mlm::FillMaskCandidate>& cands) {
    py::list out;
    for (const auto& c : cands) {
        py::dict d;
        d["score"] = c.score;
        d["token"] = c.token;
        d["token_str"] = c.token_str;
        d["sequence"] = c.sequence;
        out.append(d);
    }
    return out;
}

// Hugging Face's fill-mask shape for one text: one [MASK] -> a list of dicts; several -> a list
// of such lists, one per [MASK] in text order.
py::object fill_mask_result(const std::vector<std::vector<mlm::FillMaskCandidate>>& per_mask) {
    if (per_mask.size() == 1) return candidates_to_python(per_mask[0]);
    py::list out;
    for (const auto& c : per_mask) out.append(candidates_to_python(c));
    return out;
}

mlm::EvalOptions eval_options(std::size_t max_sentences, uint64_t seed, double mask_prob, int top_k,
                              std::size_t batch_tokens, bool mlm_part, bool single_mask) {
    mlm::EvalOptions o;
    o.max_sentences = max_sentences;
    o.seed = seed;
    o.mask_probability = mask_prob;
    o.top_k = top_k;
    o.batch_tokens = batch_tokens;
    o.mlm = mlm_part;
    o.single_mask = single_mask;
    o.validate();
    return o;
}

void check_checkpoint_files(const std::string& dir) {
    require_directory(dir, "checkpoint directory");
    // checkpoint_file: a write interrupted after its commit point leaves new files elsewhere.
    for (const char* f : {mlm::checkpoint_config_file, mlm::checkpoint_model_file, mlm::checkpoint_tokenizer_file})
        require_file(mlm::checkpoint_file(dir, f), std::string(f) + " of the checkpoint");
}

}  // namespace

void bind_masked_lm(py::module_& m) {
    // ---- evaluation ------------------------------------------------------------------------------
    py::class_<mlm::EvalOptions> eval_cls(m, "EvalOptions", R"doc(
How held-out sentences are evaluated (the same everywhere: trainer, MaskedLM.evaluate, `mlm eval`):
seed 1234 for the masks, mask_probability 0.15, top-5 for the single-mask top-k accuracy.)doc");
    def_fields(eval_cls, "EvalOptions", /*all_in_repr=*/true);

    py::class_<mlm::EvalMetrics>(m, "EvalMetrics", R"doc(
Metrics on held-out sentences (NaN where not computed):
    loss, accuracy          MLM loss (nats per masked token) and masked-token accuracy, 15% masked
                            with a fixed seed
    perplexity              exp(loss)
    single_mask_accuracy    one random token masked per sentence, argmax correct (the original's
                            predict_mask accuracy); single_mask_topk_accuracy, single_mask_loss
    sentences, masked_tokens, single_mask_sentences, top_k, seconds)doc")
        .def_readonly("sentences", &mlm::EvalMetrics::sentences, "Sentences evaluated.")
        .def_readonly("masked_tokens", &mlm::EvalMetrics::masked_tokens, "Masked tokens of the MLM part.")
        .def_readonly("loss", &mlm::EvalMetrics::loss, "MLM loss: mean cross-entropy (nats) per masked token.")
        .def_readonly("accuracy", &mlm::EvalMetrics::accuracy, "Masked-token accuracy (argmax == label).")
        .def_property_readonly("perplexity", &mlm::EvalMetrics::perplexity, "exp(loss).")
        .def_readonly("single_mask_sentences", &mlm::EvalMetrics::single_mask_sentences,
                      "Sentences with a token to mask.")
        .def_readonly("single_mask_accuracy", &mlm::EvalMetrics::single_mask_accuracy,
                      "One random token masked per sentence: argmax accuracy.")
        .def_readonly("single_mask_topk_accuracy", &mlm::EvalMetrics::single_mask_topk_accuracy,
                      "The same, label among the top_k.")
        .def_readonly("single_mask_loss", &mlm::EvalMetrics::single_mask_loss, "The same, mean cross-entropy.")
        .def_readonly("top_k", &mlm::EvalMetrics::top_k, "k of single_mask_topk_accuracy.")
        .def_readonly("seconds", &mlm::EvalMetrics::seconds, "Wall time of the evaluation.")
        .def("as_dict", &metrics_dict, "The metrics as a dict (perplexity included).")
        .def("__getitem__", [](const mlm::EvalMetrics& e, const std::string& k) -> py::object {
            py::dict d = metrics_dict(e);
            if (!d.contains(k)) throw py::key_error(k);
            return d[py::str(k)];
        })
        .def("__repr__", [](const mlm::EvalMetrics& e) {
            return "EvalMetrics(loss=" + fmt(e.loss) + ", accuracy=" + fmt(e.accuracy) + ", single_mask_accuracy=" +
                   fmt(e.single_mask_accuracy) + ", single_mask_top" + std::to_string(e.top_k) +
                   "_accuracy=" + fmt(e.single_mask_topk_accuracy) + ", sentences=" + std::to_string(e.sentences) + ")";
        });

    // ---- prediction results ---------------------------------------------------------------------
    py::class_<mlm::TokenScore>(m, "TokenScore", "One candidate token: id, readable token, softmax probability.")
        .def_readonly("id", &mlm::TokenScore::id, "Token id.")
        .def_readonly("token", &mlm::TokenScore::token, "Readable form (\"paris\", or \"[PAD]\" for specials).")
        .def_readonly("probability", &mlm::TokenScore::probability, "Softmax probability over the whole vocab.")
        .def("__iter__", [](const mlm::TokenScore& t) { return py::iter(py::make_tuple(t.token, t.probability)); })
        .def("__repr__", [](const mlm::TokenScore& t) {
            return "TokenScore(token=" + std::string(py::repr(py::str(t.token))) + ", id=" + std::to_string(t.id) +
                   ", probability=" + fmt(t.probability) + ")";
        });

    py::class_<mlm::MaskPrediction>(m, "MaskPrediction", R"doc(
The result of predict_mask: which token was masked, what the model put there, and the original's
three sentences. str(prediction) is the original's four lines:

    masked: you predicted: you
    ACTUAL: hello! how are you?
    MASKED: hello! how are [MASK]?
     MODEL: hello! how are you?)doc")
        .def_readonly("sentence", &mlm::MaskPrediction::sentence, "The input as given (the ACTUAL line).")
        .def_readonly("input_ids", &mlm::MaskPrediction::input_ids, "Its token ids before masking.")
        .def_readonly("position", &mlm::MaskPrediction::position, "Index into input_ids that was masked.")
        .def_readonly("masked_id", &mlm::MaskPrediction::masked_id, "The id that was masked.")
        .def_readonly("masked_token", &mlm::MaskPrediction::masked_token,
                      "Its readable form (\"[MASK]\" if the text had a [MASK]).")
        .def_readonly("predicted_id", &mlm::MaskPrediction::predicted_id, "Argmax id at the masked position.")
        .def_readonly("predicted_token", &mlm::MaskPrediction::predicted_token, "Its readable form.")
        .def_readonly("predicted_probability", &mlm::MaskPrediction::predicted_probability,
                      "Its softmax probability.")
        .def_readonly("masked_text", &mlm::MaskPrediction::masked_text, "The sentence with [MASK] (the MASKED line).")
        .def_readonly("predicted_text", &mlm::MaskPrediction::predicted_text,
                      "The sentence with the prediction filled in (the MODEL line).")
        .def_readonly("correct", &mlm::MaskPrediction::correct,
                      "predicted_id == masked_id (False when the text had its own [MASK]).")
        .def_readonly("top_k", &mlm::MaskPrediction::top_k, "The best candidates (TokenScore), best first.")
        .def_property_readonly(
            "lines",
            [](const mlm::MaskPrediction& p) {
                std::vector<std::string> lines;
                const std::string text = mlm::format_prediction(p);
                std::size_t start = 0;
                for (std::size_t i = 0; i < text.size(); ++i)
                    if (text[i] == '\n') {
                        lines.push_back(text.substr(start, i - start));
                        start = i + 1;
                    }
                return lines;
            },
            "The original's four lines (masked/predicted, ACTUAL, MASKED, MODEL) without newlines.")
        .def("__str__", [](const mlm::MaskPrediction& p) {
            std::string s = mlm::format_prediction(p);
            if (!s.empty() && s.back() == '\n') s.pop_back();
            return s;
        })
        .def("__repr__", [](const mlm::MaskPrediction& p) {
            return "MaskPrediction(masked=" + std::string(py::repr(py::str(p.masked_token))) +
                   ", predicted=" + std::string(py::repr(py::str(p.predicted_token))) +
                   ", correct=" + (p.correct ? "True" : "False") + ", probability=" + fmt(p.predicted_probability) +
                   ", position=" + std::to_string(p.position) + ")";
        });

    // ---- MaskedLM --------------------------------------------------------------------------------
    py::class_<mlm::MaskedLM> cls(m, "MaskedLM", R"doc(
A trained model with its tokenizer: what the original notebook holds after training.

    lm = pymlm.MaskedLM.load("runs/demo")             # a checkpoint directory
    lm.predict_mask("hello! how are you?")            # MaskPrediction (see pymlm.predict_mask)
    lm.fill_mask("the capital of france is [MASK].")  # [{"score", "token", "token_str", "sequence"}, ...]
    lm.save("runs/copy")

Inference calls release the GIL and may run from several threads at once.)doc");
    cls.def(py::init([](const mlm::Encoder<float>& model, const mlm::Tokenizer& tokenizer) {
                return mlm::MaskedLM(mlm::Encoder<float>(model), tokenizer);
            }),
            py::arg("model"), py::arg("tokenizer"),
            "Pairs a Model (copied) with the tokenizer it was trained with; ValueError if the tokenizer's vocab "
            "size or special ids differ from the model config's.");
    cls.def(py::init([](const mlm::ModelConfig& config, const mlm::Tokenizer& tokenizer, uint64_t seed) {
                config.validate();
                return mlm::MaskedLM(config, tokenizer, seed);
            }),
            py::arg("config"), py::arg("tokenizer"), py::arg("seed") = 0,
            "A freshly initialised model for the tokenizer (weights from seed).");
    cls.def_static(
        "load",
        [](const std::filesystem::path& dir_path) {
            const std::string dir = path_string(dir_path);
            check_checkpoint_files(dir);
            sync_threads();
            py::gil_scoped_release release;
            return mlm::MaskedLM::load(dir);
        },
        py::arg("dir"),
        "Loads a checkpoint directory (config.json, model.safetensors, tokenizer.model), e.g. a Trainer's "
        "out_dir or out_dir/best. FileNotFoundError if the directory or a file is missing; CheckpointError "
        "(a ValueError) if a file is corrupt or the tokenizer's vocab does not match config.json.");
    cls.def(
        "save",
        [](const mlm::MaskedLM& lm, const std::filesystem::path& dir) {
            const std::string d = path_string(dir);
            sync_threads();
            py::gil_scoped_release release;
            lm.save(d);
        },
        py::arg("dir"),
        "Writes config.json, model.safetensors and tokenizer.model into dir (created if needed) as one change: "
        "a crash leaves the old files or the new ones, never a mix. Trainer state already in dir is left alone.");
    cls.def_property_readonly(
        "config", [](const mlm::MaskedLM& lm) { return lm.config(); }, "The model's ModelConfig (a copy).");
    cls.def_property_readonly(
        "model", [](mlm::MaskedLM& lm) -> mlm::Encoder<float>& { return lm.model(); },
        py::return_value_policy::reference_internal,
        "The Model (not a copy: its parameter views are this MaskedLM's weights).");
    cls.def_property_readonly(
        "tokenizer", [](const mlm::MaskedLM& lm) -> const mlm::Tokenizer& { return lm.tokenizer(); },
        py::return_value_policy::reference_internal, "The Tokenizer.");
    cls.def("encode", &mlm::MaskedLM::encode, py::arg("text"), "The tokenizer's ids, truncated to max_len.");
    cls.def("token_string", &mlm::MaskedLM::token_string, py::arg("id"),
            "Readable form of one id: decoded (\"paris\"), or the piece of a special id (\"[MASK]\").");
    cls.def(
        "logits",
        [](const mlm::MaskedLM& lm, py::handle ids, py::handle positions) {
            const std::vector<int32_t> v = ids_from_python(ids, "ids", lm.config().vocab_size);
            if (v.empty()) raise_value_error("logits: no token ids");
            if (static_cast<int>(v.size()) > lm.config().max_len)
                raise_value_error("logits: " + std::to_string(v.size()) + " ids, more than max_len " +
                                  std::to_string(lm.config().max_len));
            std::vector<int32_t> rows;
            if (positions.is_none()) {
                for (int32_t i = 0; i < static_cast<int32_t>(v.size()); ++i) rows.push_back(i);
            } else {
                rows = ids_from_python(positions, "positions", static_cast<int>(v.size()));
            }
            std::vector<float> out;
            {
                sync_threads();
                py::gil_scoped_release release;
                out = lm.logits(v, rows);
            }
            const auto R = static_cast<py::ssize_t>(rows.size());
            return to_numpy(std::move(out), {R, static_cast<py::ssize_t>(lm.config().vocab_size)});
        },
        py::arg("ids"), py::arg("positions") = py::none(),
        "Logits (len(positions), V) of one sequence of ids at the given positions (default: all), no dropout.");

    cls.def(
        "predict_mask",
        [](const mlm::MaskedLM& lm, py::handle sentences, std::optional<uint64_t> seed, std::optional<int> position,
           int top_k) -> py::object {
            if (top_k < 0) raise_value_error("predict_mask: top_k must be >= 0, got " + std::to_string(top_k));
            if (position && *position < 0)
                raise_value_error("predict_mask: position must be >= 0, got " + std::to_string(*position));
            const bool single = py::isinstance<py::str>(sentences);
            const std::vector<std::string> texts = strings_from_python(sentences, "sentences");
            std::vector<uint64_t> seeds;
            for (std::size_t i = 0; i < texts.size(); ++i) seeds.push_back(seed ? *seed : python_random_seed());
            std::vector<mlm::MaskPrediction> out;
            {
                sync_threads();
                py::gil_scoped_release release;
                for (std::size_t i = 0; i < texts.size(); ++i)
                    out.push_back(lm.predict_mask(texts[i], seeds[i], position ? *position : -1, top_k));
            }
            if (single) return py::cast(std::move(out[0]));
            return py::cast(std::move(out));
        },
        py::arg("sentence"), py::arg("seed") = py::none(), py::arg("position") = py::none(), py::arg("top_k") = 5,
        R"doc(
The original's predict_mask: tokenizes the sentence (lower-cased, truncated to max_len), masks
one token and lets the model fill it (argmax). Which token: `position` (an index into the
sentence's token ids) if given; else the first [MASK] already in the text; else a random
ordinary token chosen by `seed` (None: a fresh random seed from Python's `random`, so each call
masks another token; random.seed() makes that reproducible).

Returns a MaskPrediction (str() gives the four lines; pymlm.predict_mask prints them), or a list
of them for a list of sentences. ValueError for a sentence without tokens to mask,
OutOfRangeError for a position outside the sentence's tokens. Releases the GIL.)doc");

    cls.def(
        "fill_mask",
        [](const mlm::MaskedLM& lm, py::handle texts_obj, int top_k, py::object targets_obj) -> py::object {
            const bool single = py::isinstance<py::str>(texts_obj);
            const std::vector<std::string> texts = strings_from_python(texts_obj, "text_or_texts");
            std::vector<std::string> targets;
            if (!targets_obj.is_none()) targets = strings_from_python(targets_obj, "targets");
            if (!targets_obj.is_none() && targets.empty()) raise_value_error("fill_mask: targets is empty");
            std::vector<std::vector<std::vector<mlm::FillMaskCandidate>>> results(texts.size());
            {
                sync_threads();
                py::gil_scoped_release release;
                // A list goes through the batched C++ call: its texts share forward passes.
                if (single) results[0] = lm.fill_mask(texts[0], top_k, targets);
                else results = lm.fill_mask(texts, top_k, targets);
            }
            if (single) return fill_mask_result(results[0]);
            py::list out;
            for (const auto& r : results) out.append(fill_mask_result(r));
            return out;
        },
        py::arg("text_or_texts"), py::arg("top_k") = 5, py::arg("targets") = py::none(),
        R"doc(
Predicts every [MASK] of the text, shaped like Hugging Face's fill-mask pipeline:

    one text, one [MASK]        -> [{"score", "token", "token_str", "sequence"}, ...] (top_k, best first)
    one text, several [MASK]s   -> one such list per [MASK], in text order
    a list of texts             -> one result per text, each shaped as above; the texts are
                                   packed into shared forward passes (much faster than a loop)

score: softmax probability over the whole vocab; token: id; token_str: readable token;
sequence: the text with that [MASK] filled in (other [MASK]s stay). Each [MASK] is predicted
with the others still masked. targets: restrict the candidates to these tokens (words that
are one token, or pieces like "▁paris"). ValueError if a text holds no [MASK] or a target is
not a single token. Releases the GIL.)doc");

    cls.def(
        "evaluate",
        [](const mlm::MaskedLM& lm, py::handle data, std::size_t max_sentences, uint64_t seed, double mask_prob,
           int top_k, std::size_t batch_tokens, bool mlm_part, bool single_mask) {
            const mlm::EvalOptions o =
                eval_options(max_sentences, seed, mask_prob, top_k, batch_tokens, mlm_part, single_mask);
            if (py::isinstance<mlm::TokenizedCorpus>(data)) {
                const auto& corpus = data.cast<const mlm::TokenizedCorpus&>();
                sync_threads();
                py::gil_scoped_release release;
                return lm.evaluate(corpus, o);
            }
            if (is_path_like(data)) {
                const std::string path = path_from_python(data);
                require_file(path, "evaluation file");
                sync_threads();
                py::gil_scoped_release release;
                return lm.evaluate_file(path, o);
            }
            const std::vector<std::string> sentences = strings_from_python(data, "data");
            sync_threads();
            py::gil_scoped_release release;
            return lm.evaluate(mlm::tokenize_sentences(lm.tokenizer(), sentences, lm.config().max_len), o);
        },
        py::arg("data"), py::kw_only(), py::arg("max_sentences") = 0, py::arg("seed") = 1234,
        py::arg("mask_prob") = 0.15, py::arg("top_k") = 5, py::arg("batch_tokens") = 4096, py::arg("mlm") = true,
        py::arg("single_mask") = true,
        "Evaluates on held-out sentences: a text file path, a Corpus, or a list of sentences. Returns "
        "EvalMetrics (MLM loss and accuracy with 15% masked by a fixed seed; single-mask accuracy). "
        "Releases the GIL.");
    cls.def("__repr__", [](const mlm::MaskedLM& lm) {
        const auto& c = lm.config();
        return "MaskedLM(vocab_size=" + std::to_string(c.vocab_size) + ", dim=" + std::to_string(c.dim) +
               ", n_heads=" + std::to_string(c.n_heads) + ", n_layers=" + std::to_string(c.n_layers) +
               ", parameters=" + std::to_string(lm.model().num_parameters()) + ")";
    });
}

}  // namespace pymlm
