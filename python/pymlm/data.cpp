// pymlm data: read_lines, Corpus (mlm::TokenizedCorpus), MaskingCollator and MaskedBatch.
#include "common.hpp"

#include <mlm/collator.hpp>
#include <mlm/data.hpp>
#include <mlm/tokenizer.hpp>

#include <optional>

namespace pymlm {

namespace {

// A padded (B, T) masking result, as numpy arrays; a read-only mapping and an object at once:
// batch["input_ids"] and batch.input_ids are the same array.
struct MaskedBatch {
    py::array input_ids;  // (B, T) int64
    py::array labels;     // (B, T) int64, -100 where not masked
    py::array lengths;    // (B) int64, real tokens per row
    int64_t num_masked = 0;

    static std::vector<std::string> keys() { return {"input_ids", "labels", "lengths"}; }
    py::object get(const std::string& key) const {
        if (key == "input_ids") return input_ids;
        if (key == "labels") return labels;
        if (key == "lengths") return lengths;
        throw py::key_error(key);
    }
};

py::array to_int64_array(const std::vector<int32_t>& v, std::vector<py::ssize_t> shape) {
    std::vector<int64_t> w(v.begin(), v.end());
    return to_numpy(std::move(w), std::move(shape));
}

MaskedBatch to_masked_batch(const mlm::PaddedBatch& p) {
    MaskedBatch b;
    b.input_ids = to_int64_array(p.input_ids, {p.batch_size, p.seq_len});
    b.labels = to_int64_array(p.labels, {p.batch_size, p.seq_len});
    b.lengths = to_int64_array(p.lengths, {p.batch_size});
    for (int32_t y : p.labels) b.num_masked += y != mlm::ignore_label;
    return b;
}

// The collator of pymlm: mlm::MaskingCollator plus the tokenizer (to accept text), a default
// padding length, and a running sample index so successive calls draw fresh masks.
struct Collator {
    mlm::MaskingCollator collator;
    mlm::Tokenizer tokenizer;
    std::optional<int> max_length;
    uint64_t next_index = 0;
};

std::vector<std::vector<int32_t>> sequences_or_texts(const Collator& c, py::handle obj) {
    if (py::isinstance<py::str>(obj))
        raise_type_error("MaskingCollator: expected a list of sequences (or of texts), got one str; wrap it in "
                         "a list");
    if (py::isinstance<py::sequence>(obj) && !py::isinstance<py::array>(obj)) {
        const auto seq = py::reinterpret_borrow<py::sequence>(obj);
        if (seq.size() > 0 && py::isinstance<py::str>(seq[0])) {
            const std::vector<std::string> texts = strings_from_python(obj, "texts");
            const int n = c.max_length.value_or(c.tokenizer.max_length());
            sync_threads();
            py::gil_scoped_release release;
            return c.tokenizer.encode_batch(texts, n);
        }
    }
    return sequences_from_python(obj, "sequences", c.collator.vocab().vocab_size);
}

mlm::TokenizedCorpus corpus_from_file(const mlm::Tokenizer& tok, const std::string& path, int max_length,
                                      std::size_t max_sentences, const std::optional<std::string>& cache) {
    require_file(path, "text file");
    mlm::TokenizeOptions o;
    o.max_length = max_length;
    o.max_sentences = max_sentences;
    sync_threads();
    py::gil_scoped_release release;
    if (cache) return mlm::load_or_tokenize(tok, path, *cache, o);
    return mlm::tokenize_file(tok, path, o);
}

std::size_t corpus_index(const mlm::TokenizedCorpus& c, py::ssize_t i) {
    const auto n = static_cast<py::ssize_t>(c.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n)
        throw py::index_error("Corpus index " + std::to_string(i) + " is out of range (" + std::to_string(n) +
                              " sequences)");
    return static_cast<std::size_t>(i);
}

}  // namespace

void bind_data(py::module_& m) {
    m.def(
        "read_lines",
        [](const std::filesystem::path& path, std::size_t limit) {
            const std::string p = path_string(path);
            require_file(p, "text file");
            std::vector<std::string> out;
            {
                sync_threads();
                py::gil_scoped_release release;
                mlm::LineReader reader(p);
                std::string line;
                while ((limit == 0 || out.size() < limit) && reader.next(line)) out.push_back(line);
            }
            return out;
        },
        py::arg("path"), py::arg("limit") = 0,
        "The non-empty lines of a text file (plain, .gz or .xz, detected by content), at most `limit` "
        "of them (0: all).");

    // ---- Corpus --------------------------------------------------------------------------------
    py::class_<mlm::TokenizedCorpus> corpus(m, "Corpus", R"doc(
Tokenized sentences stored compactly (one flat id array + offsets): what Trainer trains on.

    train = pymlm.Corpus.from_file(tok, "data/wiki-train-30k.txt.xz")   # in parallel, no GIL
    len(train), train.num_tokens, train[0]                              # numpy int32 ids
    train, valid = train.split(0.05, seed=1)

Trainer also accepts file paths and lists of sentences and builds the Corpus itself.)doc");
    corpus.def(py::init([](py::handle sequences, int vocab_size) {
                   mlm::TokenizedCorpus c(vocab_size);
                   for (const auto& s : sequences_from_python(sequences, "sequences", vocab_size)) c.append(s);
                   return c;
               }),
               py::arg("sequences"), py::arg("vocab_size"),
               "A corpus from token id sequences (lists or integer arrays), each id in [0, vocab_size).");
    corpus.def_static(
        "from_file",
        [](const mlm::Tokenizer& tok, const std::filesystem::path& path, int max_length, std::size_t max_sentences,
           std::optional<std::filesystem::path> cache_path) {
            std::optional<std::string> cache;
            if (cache_path) cache = path_string(*cache_path);
            return corpus_from_file(tok, path_string(path), max_length, max_sentences, cache);
        },
        py::arg("tokenizer"), py::arg("path"), py::arg("max_length") = 128, py::arg("max_sentences") = 0,
        py::arg("cache_path") = py::none(),
        "Tokenizes every non-empty line of a text file (plain, .gz or .xz) in parallel, truncating to "
        "max_length ids (use the model's max_len). max_sentences: stop after that many lines (0: all). "
        "cache_path: reuse (or write) a binary cache of the result. Lines that encode to nothing are "
        "dropped (counted in dropped_empty). Releases the GIL.");
    corpus.def_static(
        "from_sentences",
        [](const mlm::Tokenizer& tok, py::handle sentences, int max_length) {
            const std::vector<std::string> v = strings_from_python(sentences, "sentences");
            sync_threads();
            py::gil_scoped_release release;
            return mlm::tokenize_sentences(tok, v, max_length);
        },
        py::arg("tokenizer"), py::arg("sentences"), py::arg("max_length") = 128,
        "Tokenizes sentences in memory (in parallel, without the GIL); empty encodings are dropped.");
    corpus.def("__len__", &mlm::TokenizedCorpus::size);
    corpus.def(
        "__getitem__",
        [](const mlm::TokenizedCorpus& c, py::ssize_t i) {
            std::vector<int32_t> ids = c.sequence(corpus_index(c, i));
            const auto n = static_cast<py::ssize_t>(ids.size());
            return to_numpy(std::move(ids), {n});
        },
        py::arg("index"), "Sequence i as a numpy int32 array (a copy).");
    corpus.def(
        "__iter__",
        [](const mlm::TokenizedCorpus& c) {
            py::list out;
            for (std::size_t i = 0; i < c.size(); ++i) {
                std::vector<int32_t> ids = c.sequence(i);
                const auto n = static_cast<py::ssize_t>(ids.size());
                out.append(to_numpy(std::move(ids), {n}));
            }
            return py::iter(out);
        },
        "Iterates over the sequences (numpy int32 arrays).");
    corpus.def_property_readonly("num_tokens", &mlm::TokenizedCorpus::num_tokens, "Total ids over all sequences.");
    corpus.def_property_readonly("vocab_size", &mlm::TokenizedCorpus::vocab_size,
                                 "Ids are below this (the tokenizer's vocab size).");
    corpus.def_readonly("dropped_empty", &mlm::TokenizedCorpus::dropped_empty,
                        "Lines dropped by from_file / from_sentences because they encoded to no ids.");
    corpus.def(
        "lengths",
        [](const mlm::TokenizedCorpus& c) {
            std::vector<int32_t> l = c.lengths();
            const auto n = static_cast<py::ssize_t>(l.size());
            return to_numpy(std::move(l), {n});
        },
        "Length of every sequence, a numpy int32 array.");
    corpus.def(
        "subset",
        [](const mlm::TokenizedCorpus& c, const std::vector<py::ssize_t>& indices) {
            std::vector<std::size_t> idx;
            idx.reserve(indices.size());
            for (py::ssize_t i : indices) idx.push_back(corpus_index(c, i));
            return c.subset(idx);
        },
        py::arg("indices"), "The sequences at `indices`, in that order, as a new Corpus.");
    corpus.def(
        "split",
        [](const mlm::TokenizedCorpus& c, py::handle valid, uint64_t seed) {
            mlm::Split s;
            if (py::isinstance<py::float_>(valid)) {
                const double f = valid.cast<double>();
                if (!(f >= 0.0 && f <= 1.0)) raise_value_error("Corpus.split: a fraction must be in [0, 1]");
                s = mlm::split_train_valid_fraction(c.size(), f, seed);
            } else {
                if (!py::isinstance<py::int_>(valid))
                    raise_type_error("Corpus.split: valid must be a number of sequences (int) or a fraction "
                                     "(float)");
                const auto n = valid.cast<py::ssize_t>();
                if (n < 0 || static_cast<std::size_t>(n) > c.size())
                    raise_value_error("Corpus.split: cannot hold out " + std::to_string(n) + " of " +
                                      std::to_string(c.size()) + " sequences");
                s = mlm::split_train_valid(c.size(), static_cast<std::size_t>(n), seed);
            }
            return py::make_tuple(c.subset(s.train), c.subset(s.valid));
        },
        py::arg("valid"), py::arg("seed") = 0,
        "(train, valid): holds out `valid` sequences (an int) or that fraction (a float), chosen by seed.");
    corpus.def("__repr__", [](const mlm::TokenizedCorpus& c) {
        return "Corpus(" + std::to_string(c.size()) + " sequences, " + std::to_string(c.num_tokens()) +
               " tokens, vocab_size=" + std::to_string(c.vocab_size()) + ")";
    });

    // ---- MaskedBatch -----------------------------------------------------------------------------
    py::class_<MaskedBatch>(m, "MaskedBatch", R"doc(
A masked, padded batch like the original's sample: numpy int64 arrays

    input_ids  (B, T)  masked inputs, right-padded with pad_id
    labels     (B, T)  the original id at masked positions, -100 everywhere else
    lengths    (B,)    real tokens per row

Both batch["input_ids"] and batch.input_ids work; dict(batch) and **batch too.)doc")
        .def_readonly("input_ids", &MaskedBatch::input_ids, "(B, T) int64: masked inputs, pad_id after each row.")
        .def_readonly("labels", &MaskedBatch::labels, "(B, T) int64: original ids where masked, else -100.")
        .def_readonly("lengths", &MaskedBatch::lengths, "(B,) int64: real tokens per row.")
        .def_readonly("num_masked", &MaskedBatch::num_masked, "Positions with a label (not -100).")
        .def("__getitem__", &MaskedBatch::get, py::arg("key"))
        .def("keys", [](const MaskedBatch&) { return MaskedBatch::keys(); }, "The keys: input_ids, labels, lengths.")
        .def(
            "items",
            [](const MaskedBatch& b) {
                py::list out;
                for (const auto& k : MaskedBatch::keys()) out.append(py::make_tuple(k, b.get(k)));
                return out;
            },
            "(key, array) pairs.")
        .def(
            "__contains__", [](const MaskedBatch&, const py::object& k) {
                if (!py::isinstance<py::str>(k)) return false;
                const auto s = k.cast<std::string>();
                return s == "input_ids" || s == "labels" || s == "lengths";
            })
        .def("__iter__", [](const MaskedBatch&) { return py::iter(py::cast(MaskedBatch::keys())); })
        .def("__len__", [](const MaskedBatch&) { return 3; })
        .def("__repr__", [](const MaskedBatch& b) {
            return "MaskedBatch(input_ids=<" + std::to_string(b.input_ids.shape(0)) + "x" +
                   std::to_string(b.input_ids.shape(1)) + " int64>, labels=<" + std::to_string(b.labels.shape(0)) +
                   "x" + std::to_string(b.labels.shape(1)) + " int64>, num_masked=" + std::to_string(b.num_masked) +
                   ")";
        });

    // ---- MaskingCollator ---------------------------------------------------------------------------
    py::class_<Collator>(m, "MaskingCollator", R"doc(
Masked-language-model masking, like the original's collate function: each ordinary token is
selected with probability mask_prob (0.15) and replaced by [MASK]; labels hold the original id
at selected positions and -100 elsewhere. [PAD], [MASK] and other control ids are never selected.

    collator = pymlm.MaskingCollator(tok, mask_prob=0.15, max_length=128)
    batch = collator([tok.encode(s) for s in sentences])    # or collator(sentences)
    batch.input_ids, batch.labels                           # numpy (B, 128)

BERT's 80/10/10 variant: mask_fraction=0.8, random_fraction=0.1. whole_word: select whole
words. at_least_one: a sequence where nothing was selected gets one target anyway.

Masks are deterministic in (seed, epoch, sample index): each call uses the next sample indices
(0, 1, 2, ... over the collator's life) unless `sample_indices` is given, so successive calls
give fresh masks and a new collator with the same seed repeats them.)doc")
        .def(py::init([](const mlm::Tokenizer& tokenizer, double mask_prob, double mask_fraction,
                         double random_fraction, bool whole_word, bool at_least_one, uint64_t seed,
                         std::optional<int> max_length) {
                 mlm::MaskingOptions o;
                 o.mask_probability = mask_prob;
                 o.mask_fraction = mask_fraction;
                 o.random_fraction = random_fraction;
                 o.whole_word = whole_word;
                 o.at_least_one = at_least_one;
                 if (max_length && *max_length < 1)
                     raise_value_error("MaskingCollator: max_length must be positive or None, got " +
                                       std::to_string(*max_length));
                 return Collator{mlm::MaskingCollator(tokenizer, o, seed), tokenizer, max_length, 0};
             }),
             py::arg("tokenizer"), py::arg("mask_prob") = 0.15, py::kw_only(), py::arg("mask_fraction") = 1.0,
             py::arg("random_fraction") = 0.0, py::arg("whole_word") = false, py::arg("at_least_one") = false,
             py::arg("seed") = 0, py::arg("max_length") = py::none(),
             "mask_prob: selection probability. mask_fraction / random_fraction: of the selected tokens, the "
             "share replaced by [MASK] / by a random ordinary token (the rest stay). max_length: pad every "
             "batch to this length (the original: 128); None pads to the batch's longest sequence.")
        .def(
            "__call__",
            [](Collator& c, py::handle sequences, uint64_t epoch, std::optional<std::vector<uint64_t>> sample_indices,
               std::optional<int> max_length) {
                const auto seqs = sequences_or_texts(c, sequences);
                if (seqs.empty()) raise_value_error("MaskingCollator: no sequences given");
                for (std::size_t k = 0; k < seqs.size(); ++k)
                    if (seqs[k].empty())
                        raise_value_error("MaskingCollator: sequence " + std::to_string(k) + " is empty");
                std::vector<uint64_t> idx;
                if (sample_indices) {
                    if (sample_indices->size() != seqs.size())
                        raise_value_error("MaskingCollator: " + std::to_string(seqs.size()) + " sequences but " +
                                          std::to_string(sample_indices->size()) + " sample_indices");
                    idx = *sample_indices;
                } else {
                    for (std::size_t k = 0; k < seqs.size(); ++k) idx.push_back(c.next_index + k);
                }
                const int len = max_length ? *max_length : c.max_length.value_or(0);
                mlm::PaddedBatch p;
                {
                    sync_threads();
                    py::gil_scoped_release release;
                    p = c.collator.collate_padded(seqs, idx, epoch, len);
                }
                if (!sample_indices) c.next_index += seqs.size();
                return to_masked_batch(p);
            },
            py::arg("sequences"), py::kw_only(), py::arg("epoch") = 0, py::arg("sample_indices") = py::none(),
            py::arg("max_length") = py::none(),
            "Masks and pads a batch. sequences: a list of id sequences (lists or integer arrays), a 2-D "
            "integer array, or a list of texts (encoded with the tokenizer). Returns a MaskedBatch. A "
            "sequence longer than max_length is a ValueError.")
        .def(
            "mask",
            [](const Collator& c, py::handle ids, uint64_t epoch, uint64_t sample_index) {
                std::vector<int32_t> v = ids_from_python(ids, "ids", c.collator.vocab().vocab_size);
                const auto n = static_cast<py::ssize_t>(v.size());
                std::vector<int32_t> labels(v.size());
                c.collator.mask_sequence(v.data(), static_cast<int>(v.size()), epoch, sample_index, v.data(),
                                         labels.data());
                return py::make_tuple(to_int64_array(v, {n}), to_int64_array(labels, {n}));
            },
            py::arg("ids"), py::kw_only(), py::arg("epoch") = 0, py::arg("sample_index") = 0,
            "Masks one sequence without padding: (input_ids, labels) as 1-D int64 arrays, drawn from (seed, "
            "epoch, sample_index).")
        .def_property_readonly(
            "mask_prob", [](const Collator& c) { return c.collator.options().mask_probability; },
            "Selection probability of a token.")
        .def_property_readonly(
            "mask_fraction", [](const Collator& c) { return c.collator.options().mask_fraction; },
            "Share of the selected tokens replaced by [MASK].")
        .def_property_readonly(
            "random_fraction", [](const Collator& c) { return c.collator.options().random_fraction; },
            "Share of the selected tokens replaced by a random ordinary token.")
        .def_property_readonly(
            "whole_word", [](const Collator& c) { return c.collator.options().whole_word; },
            "Whether whole words are selected.")
        .def_property_readonly(
            "at_least_one", [](const Collator& c) { return c.collator.options().at_least_one; },
            "Whether every sequence gets at least one target.")
        .def_property_readonly("seed", [](const Collator& c) { return c.collator.seed(); }, "Seed of the masks.")
        .def_property_readonly(
            "max_length", [](const Collator& c) { return c.max_length; },
            "Padding length of every batch, or None (the batch's longest sequence).")
        .def_readwrite("next_index", &Collator::next_index,
                       "Sample index of the next sequence when sample_indices is not given.")
        .def_property_readonly(
            "pad_id", [](const Collator& c) { return c.collator.vocab().pad_id; }, "Padding id.")
        .def_property_readonly(
            "mask_id", [](const Collator& c) { return c.collator.vocab().mask_id; }, "[MASK] id.")
        .def("__repr__", [](const Collator& c) {
            const auto& o = c.collator.options();
            std::string r = "MaskingCollator(mask_prob=" + std::string(py::str(py::float_(o.mask_probability)));
            if (o.mask_fraction != 1.0 || o.random_fraction != 0.0)
                r += ", mask_fraction=" + std::string(py::str(py::float_(o.mask_fraction))) +
                     ", random_fraction=" + std::string(py::str(py::float_(o.random_fraction)));
            if (o.whole_word) r += ", whole_word=True";
            if (o.at_least_one) r += ", at_least_one=True";
            r += ", seed=" + std::to_string(c.collator.seed());
            if (c.max_length) r += ", max_length=" + std::to_string(*c.max_length);
            return r + ")";
        });
}

}  // namespace pymlm
