// pymlm.Tokenizer: the sentencepiece tokenizer with [UNK] [PAD] [MASK] (mlm/tokenizer.hpp).
#include "common.hpp"

#include <mlm/tokenizer.hpp>

#include <algorithm>
#include <cctype>

namespace pymlm {

namespace {

mlm::TokenizerModel tokenizer_model_from_string(const std::string& s) {
    if (s == "unigram") return mlm::TokenizerModel::unigram;
    if (s == "bpe") return mlm::TokenizerModel::bpe;
    raise_value_error("Tokenizer.train: model must be \"unigram\" or \"bpe\", got \"" + s + "\"");
}

// Does a string look like a file name rather than a sentence?
bool looks_like_path(const std::string& s) {
    if (s.empty() || std::any_of(s.begin(), s.end(), [](unsigned char c) { return std::isspace(c); })) return false;
    auto ends_with = [&](const char* suffix) {
        const std::string x(suffix);
        return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    };
    return s.find('/') != std::string::npos || ends_with(".txt") || ends_with(".gz") || ends_with(".xz");
}

// What Tokenizer.train was given: files, or sentences in memory.
struct TrainingText {
    std::vector<std::string> files;
    std::vector<std::string> sentences;
    bool from_files = false;
};

TrainingText training_text(py::handle obj) {
    TrainingText t;
    if (is_path_like(obj)) {
        t.from_files = true;
        t.files.push_back(path_from_python(obj));
    } else {
        if (!py::isinstance<py::iterable>(obj) || py::isinstance<py::bytes>(obj))
            raise_type_error("Tokenizer.train: expected a file path, a list of file paths or a list of sentences, "
                             "got " + std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
        std::vector<std::string> items;
        bool all_paths = true, any_str = false;
        std::size_t i = 0;
        for (py::handle item : py::reinterpret_borrow<py::iterable>(obj)) {
            if (py::isinstance<py::str>(item)) {
                any_str = true;
                items.push_back(item.cast<std::string>());
            } else if (is_path_like(item)) {
                items.push_back(path_from_python(item));
            } else {
                raise_type_error("Tokenizer.train: item " + std::to_string(i) + " is a " +
                                 std::string(py::str(py::type::handle_of(item).attr("__name__"))) +
                                 "; expected str sentences or file paths");
            }
            if (py::isinstance<py::str>(item)) all_paths = false;
            ++i;
        }
        if (items.empty()) raise_value_error("Tokenizer.train: no files or sentences given");
        if (all_paths && !any_str) {
            t.from_files = true;
            t.files = std::move(items);
        } else {
            // str items: files when they exist (or all look like paths), else sentences.
            std::size_t existing = 0, path_like = 0;
            std::error_code ec;
            for (const auto& s : items) {
                existing += !s.empty() && s.size() < 4096 && std::filesystem::is_regular_file(s, ec);
                path_like += looks_like_path(s);
            }
            if (existing == items.size()) {
                t.from_files = true;
                t.files = std::move(items);
            } else if (existing > 0 || path_like == items.size()) {
                for (const auto& s : items)
                    if (!std::filesystem::is_regular_file(s, ec))
                        raise_file_not_found("Tokenizer.train: training file does not exist", s);
            } else {
                t.sentences = std::move(items);
            }
        }
    }
    for (const auto& f : t.files) require_file(f, "Tokenizer.train: training file");
    return t;
}

mlm::Tokenizer load_tokenizer(const std::string& path) {
    require_file(path, "tokenizer model");
    try {
        sync_threads();
        py::gil_scoped_release release;
        return mlm::Tokenizer::load(path);
    } catch (const std::runtime_error& e) {
        raise_value_error(e.what());
    }
}

std::string tokenizer_repr(const mlm::Tokenizer& t) {
    if (!t.loaded()) return "Tokenizer(<empty>)";
    return "Tokenizer(vocab_size=" + std::to_string(t.vocab_size()) + ", unk_id=" + std::to_string(t.unk_id()) +
           ", pad_id=" + std::to_string(t.pad_id()) + ", mask_id=" + std::to_string(t.mask_id()) +
           ", max_length=" + std::to_string(t.max_length()) + ")";
}

int max_length_arg(const mlm::Tokenizer& t, const std::optional<int>& max_length) {
    return max_length ? *max_length : t.max_length();
}

// The training options of Tokenizer.train and Tokenizer.train_from_sentences.
mlm::TokenizerTrainOptions train_options(int vocab_size, const std::string& model, bool lower_case,
                                         bool strip_accents, int unk_id, int pad_id, int mask_id,
                                         uint32_t seed, bool allow_smaller_vocab,
                                         std::size_t max_sentences, int max_sentence_bytes,
                                         double character_coverage, int num_threads) {
    mlm::TokenizerTrainOptions o;
    o.model = tokenizer_model_from_string(model);
    o.vocab_size = vocab_size;
    o.lower_case = lower_case;
    o.strip_accents = strip_accents;
    o.unk_id = unk_id;
    o.pad_id = pad_id;
    o.mask_id = mask_id;
    o.seed = seed;
    o.allow_smaller_vocab = allow_smaller_vocab;
    o.max_sentences = max_sentences;
    o.max_sentence_bytes = max_sentence_bytes;
    o.character_coverage = character_coverage;
    o.num_threads = num_threads;
    return o;
}

}  // namespace

void bind_tokenizer(py::module_& m) {
    py::class_<mlm::Tokenizer> cls(m, "Tokenizer", R"doc(
A BERT-like subword tokenizer: a sentencepiece model (unigram or BPE, lower-cased by default)
with the special pieces [UNK]=0, [PAD]=1, [MASK]=2.

    tok = pymlm.Tokenizer.train("data/wiki-train-30k.txt.xz", vocab_size=4096)
    tok.encode("Hello! How are [MASK]?")      # [..., 2, ...]: the literal [MASK] is one id
    tok.decode(ids)                            # "hello! how are [MASK]?"
    tok.save("tokenizer.model"); pymlm.Tokenizer.load("tokenizer.model")

Encodings are truncated to `max_length` ids (default 128, like the original). Instances are
immutable apart from `max_length`, picklable, and safe to use from several threads.)doc");

    cls.def(py::init([](const std::filesystem::path& path) { return load_tokenizer(path_string(path)); }),
            py::arg("path"), "Loads a tokenizer .model file (the same as Tokenizer.load(path)).");

    auto train = [](py::object files_or_sentences, int vocab_size, const std::string& model, bool lower_case,
                    bool strip_accents, int unk_id, int pad_id, int mask_id, uint32_t seed, bool allow_smaller_vocab,
                    std::size_t max_sentences, int max_sentence_bytes, double character_coverage, int num_threads,
                    int max_length) {
        const mlm::TokenizerTrainOptions o =
            train_options(vocab_size, model, lower_case, strip_accents, unk_id, pad_id, mask_id, seed,
                          allow_smaller_vocab, max_sentences, max_sentence_bytes, character_coverage, num_threads);
        const TrainingText text = training_text(files_or_sentences);
        mlm::Tokenizer tok;
        {
            sync_threads();
            py::gil_scoped_release release;
            tok = text.from_files ? mlm::Tokenizer::train(text.files, o)
                                  : mlm::Tokenizer::train_from_sentences(text.sentences, o);
        }
        tok.set_max_length(max_length);
        return tok;
    };
    cls.def_static("train", train, py::arg("files_or_sentences"), py::arg("vocab_size") = 8192, py::kw_only(),
                   py::arg("model") = "unigram", py::arg("lower_case") = true, py::arg("strip_accents") = false,
                   py::arg("unk_id") = 0, py::arg("pad_id") = 1, py::arg("mask_id") = 2, py::arg("seed") = 42,
                   py::arg("allow_smaller_vocab") = false, py::arg("max_sentences") = 0,
                   py::arg("max_sentence_bytes") = 4192, py::arg("character_coverage") = 0.9995,
                   py::arg("num_threads") = 1, py::arg("max_length") = mlm::Tokenizer::default_max_length,
                   R"doc(
Trains a tokenizer.

files_or_sentences: a text file (plain, .gz or .xz; one sentence per line), a list of files,
    or a list of sentences in memory. A list of str is taken as files when every item is an
    existing file (a missing one that looks like a path raises FileNotFoundError), else as
    sentences. Use train_from_files / train_from_sentences to say which explicitly.
vocab_size: pieces in the vocab, special ones included (the reference: 8192). With too little
    text for it, ValueError, unless allow_smaller_vocab makes the largest vocab it can.
model: "unigram" (default) or "bpe". lower_case: NFKC + case folding. strip_accents: BERT's
    uncased accent stripping. unk_id / pad_id / mask_id: the special ids. seed: sentencepiece's
    seed (used when max_sentences samples the input). max_sentences: use at most this many
    sentences (0: all). max_sentence_bytes: longer sentences are left out. character_coverage:
    share of the characters the vocab must cover. num_threads: sentencepiece trainer threads (1
    is deterministic). max_length: truncation length of the returned tokenizer's encodings.

Deterministic: the same text and options give byte-identical models. Releases the GIL.)doc");
    cls.def_static(
        "train_from_files",
        [train](const std::vector<std::filesystem::path>& files, int vocab_size, const std::string& model,
                bool lower_case, bool strip_accents, int unk_id, int pad_id, int mask_id, uint32_t seed,
                bool allow_smaller_vocab, std::size_t max_sentences, int max_sentence_bytes, double character_coverage,
                int num_threads, int max_length) {
            if (files.empty()) raise_value_error("Tokenizer.train_from_files: no files given");
            py::list paths;
            for (const auto& f : files) {
                require_file(path_string(f), "Tokenizer.train: training file");
                paths.append(py::cast(f));
            }
            return train(paths, vocab_size, model, lower_case, strip_accents, unk_id, pad_id, mask_id, seed,
                         allow_smaller_vocab, max_sentences, max_sentence_bytes, character_coverage, num_threads,
                         max_length);
        },
        py::arg("files"), py::arg("vocab_size") = 8192, py::kw_only(), py::arg("model") = "unigram",
        py::arg("lower_case") = true, py::arg("strip_accents") = false, py::arg("unk_id") = 0, py::arg("pad_id") = 1,
        py::arg("mask_id") = 2, py::arg("seed") = 42, py::arg("allow_smaller_vocab") = false,
        py::arg("max_sentences") = 0, py::arg("max_sentence_bytes") = 4192, py::arg("character_coverage") = 0.9995,
        py::arg("num_threads") = 1, py::arg("max_length") = mlm::Tokenizer::default_max_length,
        "Trains on every non-empty line of the files (plain, .gz or .xz). Options as in train().");
    cls.def_static(
        "train_from_sentences",
        [](const std::vector<std::string>& sentences, int vocab_size, const std::string& model, bool lower_case,
           bool strip_accents, int unk_id, int pad_id, int mask_id, uint32_t seed, bool allow_smaller_vocab,
           std::size_t max_sentences, int max_sentence_bytes, double character_coverage, int num_threads,
           int max_length) {
            const mlm::TokenizerTrainOptions o =
                train_options(vocab_size, model, lower_case, strip_accents, unk_id, pad_id, mask_id, seed,
                              allow_smaller_vocab, max_sentences, max_sentence_bytes, character_coverage, num_threads);
            mlm::Tokenizer tok;
            {
                sync_threads();
                py::gil_scoped_release release;
                tok = mlm::Tokenizer::train_from_sentences(sentences, o);
            }
            tok.set_max_length(max_length);
            return tok;
        },
        py::arg("sentences"), py::arg("vocab_size") = 8192, py::kw_only(), py::arg("model") = "unigram",
        py::arg("lower_case") = true, py::arg("strip_accents") = false, py::arg("unk_id") = 0, py::arg("pad_id") = 1,
        py::arg("mask_id") = 2, py::arg("seed") = 42, py::arg("allow_smaller_vocab") = false,
        py::arg("max_sentences") = 0, py::arg("max_sentence_bytes") = 4192, py::arg("character_coverage") = 0.9995,
        py::arg("num_threads") = 1, py::arg("max_length") = mlm::Tokenizer::default_max_length,
        "Trains on sentences in memory (empty strings are skipped). Options as in train().");

    cls.def_static(
        "load", [](const std::filesystem::path& path) { return load_tokenizer(path_string(path)); },
        py::arg("path"),
        "Loads a sentencepiece .model file made by Tokenizer.save (or tokenizer.model of a checkpoint). "
        "FileNotFoundError if it does not exist, ValueError if it is not a usable model.");
    cls.def_static(
        "from_bytes",
        [](const py::bytes& data) {
            try {
                return mlm::Tokenizer::from_serialized(std::string(data));
            } catch (const std::runtime_error& e) {
                raise_value_error(e.what());
            }
        },
        py::arg("data"), "A tokenizer from the bytes of a .model file (what to_bytes() returns).");
    cls.def(
        "save",
        [](const mlm::Tokenizer& t, const std::filesystem::path& path) {
            const std::string p = path_string(path);
            sync_threads();
            py::gil_scoped_release release;
            t.save(p);
        },
        py::arg("path"), "Writes the .model file (a standard sentencepiece model), atomically.");
    cls.def(
        "to_bytes", [](const mlm::Tokenizer& t) { return py::bytes(t.serialized()); },
        "The bytes of the .model file.");

    cls.def(
        "encode",
        [](const mlm::Tokenizer& t, const std::string& text, std::optional<int> max_length) {
            return t.encode(text, max_length_arg(t, max_length));
        },
        py::arg("text"), py::arg("max_length") = py::none(),
        "Text to a list of ids, truncated to max_length (default: the tokenizer's max_length; 0: no "
        "truncation). Each literal \"[MASK]\" becomes one mask id.");
    cls.def(
        "encode_batch",
        [](const mlm::Tokenizer& t, py::handle texts, std::optional<int> max_length) {
            if (py::isinstance<py::str>(texts))
                raise_type_error("encode_batch expects a list of str; use encode() for one text");
            const std::vector<std::string> v = strings_from_python(texts, "texts");
            const int n = max_length_arg(t, max_length);
            sync_threads();
            py::gil_scoped_release release;
            return t.encode_batch(v, n);
        },
        py::arg("texts"), py::arg("max_length") = py::none(),
        "Many texts at once (in parallel, without the GIL): a list of id lists, item i = encode(texts[i]).");
    cls.def("encode_pieces", [](const mlm::Tokenizer& t, const std::string& text) { return t.encode_pieces(text); },
            py::arg("text"), "The pieces of encode(text) as strings (\"▁hello\", \"!\", \"[MASK]\", ...).");
    cls.def(
        "decode",
        [](const mlm::Tokenizer& t, py::handle ids) {
            const std::vector<int32_t> v = ids_from_python(ids, "ids", t.vocab_size());
            return t.decode(v);
        },
        py::arg("ids"),
        "Ids (a list or 1-D integer array) to text. [MASK] is rendered as \"[MASK]\"; [PAD] and other "
        "control ids are dropped, so a padded row decodes like the unpadded one.");
    cls.def(
        "decode_batch",
        [](const mlm::Tokenizer& t, py::handle sequences) {
            const auto v = sequences_from_python(sequences, "sequences", t.vocab_size());
            std::vector<std::string> out;
            out.reserve(v.size());
            for (const auto& s : v) out.push_back(t.decode(s));
            return out;
        },
        py::arg("sequences"), "decode() of each sequence (a list of id lists, or a 2-D integer array of rows).");
    cls.def("id_to_piece", &mlm::Tokenizer::id_to_piece, py::arg("id"),
            "The piece of an id (\"▁the\"); OutOfRangeError outside [0, vocab_size).");
    cls.def(
        "piece_to_id", [](const mlm::Tokenizer& t, const std::string& piece) { return t.piece_to_id(piece); },
        py::arg("piece"), "The id of a piece, or unk_id when there is no such piece.");
    cls.def("is_special", &mlm::Tokenizer::is_special, py::arg("id"),
            "True for control pieces ([PAD], [MASK], [unused*], ...); never selected for masking.");
    cls.def(
        "is_unknown",
        [](const mlm::Tokenizer& t, int32_t id) {
            if (id < 0 || id >= t.vocab_size())
                throw std::out_of_range("is_unknown: id " + std::to_string(id) + " is outside the vocab [0, " +
                                        std::to_string(t.vocab_size()) + ")");
            return t.is_unknown(id);
        },
        py::arg("id"), "True for the [UNK] id.");
    cls.def(
        "get_vocab",
        [](const mlm::Tokenizer& t) {
            py::dict d;
            for (int32_t id = 0; id < t.vocab_size(); ++id) d[py::str(t.id_to_piece(id))] = id;
            return d;
        },
        "A dict piece -> id over the whole vocab (like Hugging Face tokenizers).");

    cls.def_property_readonly("vocab_size", &mlm::Tokenizer::vocab_size, "Number of ids, special ones included.");
    cls.def_property_readonly("unk_id", &mlm::Tokenizer::unk_id, "Id of [UNK].");
    cls.def_property_readonly("pad_id", &mlm::Tokenizer::pad_id, "Id of [PAD].");
    cls.def_property_readonly("mask_id", &mlm::Tokenizer::mask_id, "Id of [MASK].");
    cls.def_property_readonly(
        "unk_token", [](const mlm::Tokenizer& t) { return t.id_to_piece(t.unk_id()); }, "The [UNK] piece.");
    cls.def_property_readonly(
        "pad_token", [](const mlm::Tokenizer& t) { return t.id_to_piece(t.pad_id()); }, "The [PAD] piece.");
    cls.def_property_readonly(
        "mask_token", [](const mlm::Tokenizer& t) { return t.id_to_piece(t.mask_id()); }, "The [MASK] piece.");
    cls.def_property_readonly("strip_accents", &mlm::Tokenizer::strip_accents,
                              "Whether accents are stripped before encoding (fixed at training time).");
    cls.def_property(
        "max_length", &mlm::Tokenizer::max_length, &mlm::Tokenizer::set_max_length,
        "Encodings are truncated to this many ids (default 128; 0 or less: no truncation).");
    cls.def_property_readonly("fingerprint", &mlm::Tokenizer::fingerprint,
                              "64-bit hash of the model bytes: equal fingerprints, equal tokenizers.");
    cls.def("__len__", &mlm::Tokenizer::vocab_size);
    cls.def("__repr__", &tokenizer_repr);
    cls.def(
        "__eq__",
        [](const mlm::Tokenizer& a, const mlm::Tokenizer& b) {
            return a.serialized() == b.serialized() && a.max_length() == b.max_length();
        },
        py::is_operator());
    cls.def("__copy__", [](const mlm::Tokenizer& t) { return t; });
    cls.def("__deepcopy__", [](const mlm::Tokenizer& t, py::dict) { return t; }, py::arg("memo"));
    cls.def(py::pickle(
        [](const mlm::Tokenizer& t) { return py::make_tuple(py::bytes(t.serialized()), t.max_length()); },
        [](const py::tuple& state) {
            if (state.size() != 2) raise_value_error("Tokenizer: bad pickle state");
            mlm::Tokenizer t = mlm::Tokenizer::from_serialized(std::string(state[0].cast<py::bytes>()));
            t.set_max_length(state[1].cast<int>());
            return t;
        }));
    cls.attr("__hash__") = py::none();
}

}  // namespace pymlm
