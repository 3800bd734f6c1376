// Tokenizer: the sentencepiece wrapper (see include/mlm/tokenizer.hpp).
#include <mlm/tokenizer.hpp>

#include <mlm/data.hpp>
#include <mlm/random.hpp>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <fstream>
#include <mutex>
#include <new>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

// Exported by libsentencepiece but not declared in its public header; the trainer's
// --minloglevel flag calls the same function.
namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}

namespace mlm {

namespace detail {
bool is_nonspacing_mark(uint32_t cp);
uint32_t stripped_letter(uint32_t cp);  // the base letter, or cp itself
}  // namespace detail

namespace {

constexpr const char* kMaskPiece = "[MASK]";
constexpr const char* kUnkPiece = "[UNK]";
constexpr const char* kPadPiece = "[PAD]";
constexpr const char* kStripAccentsMarker = "<mlm:strip_accents>";
constexpr const char kWordMarker[] = "\xE2\x96\x81";  // U+2581 "▁"

// Sentencepiece's seed and log level are process-wide.
std::mutex& sentencepiece_global_mutex() {
    static std::mutex m;
    return m;
}

void silence_sentencepiece() {
    static std::once_flag once;
    std::call_once(once, [] { sentencepiece::logging::SetMinLogLevel(100); });
}

bool starts_with_word_marker(const std::string& piece) {
    return piece.size() >= 3 && std::memcmp(piece.data(), kWordMarker, 3) == 0;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Length of the valid UTF-8 sequence at s[i..n), or 0 if it is not valid; sets cp.
std::size_t utf8_sequence(const unsigned char* s, std::size_t i, std::size_t n, uint32_t& cp) {
    const unsigned char c = s[i];
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    std::size_t len;
    uint32_t min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (i + len > n) return 0;
    for (std::size_t k = 1; k < len; ++k) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
    return len;
}

// The text sentencepiece sees: valid UTF-8, accents stripped if the model asks for it.
// Returns a view of `text` itself when nothing changes, else of `storage`.
std::string_view prepare_text(std::string_view text, bool strip, std::string& storage) {
    std::string sanitized;
    const bool changed = detail::sanitize_utf8(text, sanitized);
    if (changed) text = sanitized;
    if (strip) {
        storage = detail::strip_accents(text);
        return storage;
    }
    if (changed) {
        storage = std::move(sanitized);
        return storage;
    }
    return text;
}

std::string join(const std::vector<std::string>& parts, const char* sep) {
    std::string s;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i) s += sep;
        s += parts[i];
    }
    return s;
}

// Feeds sentencepiece's trainer. Errors of our own (a corrupt file) are kept and rethrown after
// training, so that no exception unwinds through sentencepiece.
class TrainingSentences : public sentencepiece::SentenceIterator {
public:
    // Exactly one of the two sources is used.
    TrainingSentences(const std::vector<std::string>* sentences, const std::vector<std::string>* files,
                      bool strip)
        : sentences_(sentences), files_(files), strip_(strip) {
        advance();
    }

    bool done() const override { return done_; }
    void Next() override { advance(); }
    const std::string& value() const override { return value_; }
    sentencepiece::util::Status status() const override {
        if (error_) return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInternal,
                                                       "reading the training text failed");
        return sentencepiece::util::Status();
    }

    std::exception_ptr error() const { return error_; }
    std::size_t count() const { return count_; }

private:
    void advance() {
        if (done_) return;
        try {
            std::string raw;
            if (!next_raw(raw)) {
                done_ = true;
                return;
            }
            std::string storage;
            const std::string_view text = prepare_text(raw, strip_, storage);
            value_.assign(text.data(), text.size());
            ++count_;
        } catch (...) {
            error_ = std::current_exception();
            done_ = true;
        }
    }

    bool next_raw(std::string& raw) {
        if (sentences_) {
            while (index_ < sentences_->size()) {
                const std::string& s = (*sentences_)[index_++];
                if (!s.empty()) {
                    raw = s;
                    return true;
                }
            }
            return false;
        }
        for (;;) {
            if (!reader_) {
                if (index_ >= files_->size()) return false;
                reader_ = std::make_unique<LineReader>((*files_)[index_++]);
            }
            if (reader_->next(raw)) return true;
            reader_.reset();
        }
    }

    const std::vector<std::string>* sentences_;
    const std::vector<std::string>* files_;
    bool strip_;
    std::unique_ptr<LineReader> reader_;
    std::size_t index_ = 0;
    std::string value_;
    bool done_ = false;
    std::size_t count_ = 0;
    std::exception_ptr error_;
};

void validate(const TokenizerTrainOptions& o) {
    auto fail = [](const std::string& what) {
        throw std::invalid_argument("TokenizerTrainOptions: " + what);
    };
    if (o.vocab_size < 8) fail("vocab_size must be at least 8, got " + std::to_string(o.vocab_size));
    for (auto [name, id] : {std::pair<const char*, int>{"unk_id", o.unk_id}, {"pad_id", o.pad_id},
                            {"mask_id", o.mask_id}}) {
        if (id < 0 || id >= o.vocab_size)
            fail(std::string(name) + " " + std::to_string(id) + " is outside the vocab [0, " +
                 std::to_string(o.vocab_size) + ")");
    }
    if (o.unk_id == o.pad_id || o.unk_id == o.mask_id || o.pad_id == o.mask_id)
        fail("unk_id, pad_id and mask_id must differ");
    if (std::max({o.unk_id, o.pad_id, o.mask_id}) + 2 > o.vocab_size)
        fail("the special ids leave no room for ordinary pieces in vocab_size " +
             std::to_string(o.vocab_size));
    if (!(o.character_coverage > 0.0 && o.character_coverage <= 1.0))
        fail("character_coverage must be in (0, 1], got " + std::to_string(o.character_coverage));
    if (o.max_sentence_bytes < 1) fail("max_sentence_bytes must be positive");
    if (o.num_threads < 1) fail("num_threads must be positive");
}

std::unordered_map<std::string, std::string> trainer_arguments(const TokenizerTrainOptions& o) {
    // Control pieces go to the lowest free ids in order: fill the ids below mask_id that unk and
    // pad leave free with [unusedN], so that [MASK] lands on mask_id.
    std::vector<std::string> control;
    int next_free = 0, unused = 0;
    for (;;) {
        while (next_free == o.unk_id || next_free == o.pad_id) ++next_free;
        if (next_free >= o.mask_id) break;
        control.push_back("[unused" + std::to_string(unused++) + "]");
        ++next_free;
    }
    control.push_back(kMaskPiece);
    if (o.strip_accents) control.push_back(kStripAccentsMarker);

    std::unordered_map<std::string, std::string> args = {
        {"model_type", o.model == TokenizerModel::bpe ? "bpe" : "unigram"},
        {"vocab_size", std::to_string(o.vocab_size)},
        {"character_coverage", std::to_string(o.character_coverage)},
        {"input_sentence_size", std::to_string(o.max_sentences)},
        {"shuffle_input_sentence", "true"},
        {"max_sentence_length", std::to_string(o.max_sentence_bytes)},
        {"num_threads", std::to_string(o.num_threads)},
        {"unk_id", std::to_string(o.unk_id)},
        {"pad_id", std::to_string(o.pad_id)},
        {"bos_id", "-1"},
        {"eos_id", "-1"},
        {"unk_piece", kUnkPiece},
        {"pad_piece", kPadPiece},
        {"control_symbols", join(control, ",")},
        {"hard_vocab_limit", o.allow_smaller_vocab ? "false" : "true"},
        {"normalization_rule_name", o.lower_case ? "nmt_nfkc_cf" : "nmt_nfkc"},
        {"minloglevel", "100"},
    };
    return args;
}

// "Vocabulary size too high (8192). Please set it to a value <= 325." -> 325, or -1.
long max_vocab_from_message(const std::string& message) {
    const std::string key = "value <= ";
    const auto pos = message.find(key);
    if (pos == std::string::npos) return -1;
    return std::strtol(message.c_str() + pos + key.size(), nullptr, 10);
}

// ---- the model without the dummy prefix -------------------------------------------------------
// Sentencepiece puts a word marker "▁" before the first piece of every text it encodes (the
// normalizer's add_dummy_prefix). Text glued to a [MASK] ("are [MASK]." ) must not get one, so
// encode() uses a second copy of the model with add_dummy_prefix = false for it. The copy is made
// by appending "add_dummy_prefix: false" (NormalizerSpec field 3, a varint) to the serialized
// normalizer_spec (ModelProto field 3): for a protobuf scalar field the last value read wins.

bool read_varint(const std::string& s, std::size_t& pos, uint64_t& value) {
    value = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
        const auto byte = static_cast<unsigned char>(s[pos++]);
        value |= static_cast<uint64_t>(byte & 0x7F) << shift;
        if (!(byte & 0x80)) return true;
    }
    return false;
}

void write_varint(std::string& out, uint64_t value) {
    while (value >= 0x80) {
        out += static_cast<char>((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out += static_cast<char>(value);
}

// The model bytes with add_dummy_prefix = false, or "" if they do not parse as expected.
std::string without_dummy_prefix(const std::string& model) {
    std::string out;
    out.reserve(model.size() + 8);
    std::size_t pos = 0;
    bool patched = false;
    while (pos < model.size()) {
        const std::size_t start = pos;
        uint64_t key, value;
        if (!read_varint(model, pos, key)) return "";
        const uint64_t field = key >> 3, wire = key & 7;
        if (wire == 0) {
            if (!read_varint(model, pos, value)) return "";
        } else if (wire == 1 || wire == 5) {
            pos += wire == 1 ? 8 : 4;
        } else if (wire == 2) {
            if (!read_varint(model, pos, value) || value > model.size() - pos) return "";
            if (field == 3) {  // normalizer_spec
                std::string spec = model.substr(pos, value);
                spec += '\x18';  // field 3, varint: add_dummy_prefix
                spec += '\x00';  // false
                write_varint(out, key);
                write_varint(out, spec.size());
                out += spec;
                pos += value;
                patched = true;
                continue;
            }
            pos += value;
        } else {
            return "";
        }
        if (pos > model.size()) return "";
        out.append(model, start, pos - start);
    }
    return patched ? out : "";
}

Tokenizer train_impl(const std::vector<std::string>* sentences, const std::vector<std::string>* files,
                     const TokenizerTrainOptions& options);

}  // namespace

// ---- Impl ------------------------------------------------------------------------------------

struct Tokenizer::Impl {
    sentencepiece::SentencePieceProcessor sp;
    sentencepiece::SentencePieceProcessor sp_glued;  // without the dummy prefix (see above)
    bool has_glued = false;
    std::string bytes;
    uint64_t fingerprint = 0;
    int vocab_size = 0;
    int32_t unk_id = 0, pad_id = 1, mask_id = 2;
    bool strip = false;
    std::vector<uint8_t> is_special, word_start;

    // Throws std::runtime_error with `what` (where the bytes came from) in the message.
    static std::unique_ptr<Impl> from_bytes(std::string bytes, const std::string& what) {
        silence_sentencepiece();
        auto impl = std::make_unique<Impl>();
        if (bytes.empty()) throw std::runtime_error("Tokenizer: " + what + " is empty, not a sentencepiece model");
        sentencepiece::util::Status status;
        try {
            status = impl->sp.LoadFromSerializedProto(bytes);
        } catch (const std::bad_alloc&) {
            throw;
        } catch (const std::exception& e) {
            // Sentencepiece reports most problems in its status, but the trie builder it uses
            // (darts) throws instead, e.g. for an empty piece.
            throw std::runtime_error("Tokenizer: " + what + " is not a valid sentencepiece model (" +
                                     e.what() + ")");
        }
        if (!status.ok())
            throw std::runtime_error("Tokenizer: " + what +
                                     " is not a valid sentencepiece model (" + status.ToString() + ")");
        const std::string glued = without_dummy_prefix(bytes);
        impl->has_glued = !glued.empty() && impl->sp_glued.LoadFromSerializedProto(glued).ok();
        impl->bytes = std::move(bytes);
        impl->fingerprint = detail::hash_bytes(impl->bytes.data(), impl->bytes.size());
        auto& sp = impl->sp;
        impl->vocab_size = sp.GetPieceSize();
        if (impl->vocab_size <= 0) throw std::runtime_error("Tokenizer: " + what + " has an empty vocabulary");
        impl->unk_id = sp.unk_id();
        impl->pad_id = sp.pad_id();
        const int mask = sp.PieceToId(kMaskPiece);
        // unk_id() looks up the trainer spec's unk_piece, which a damaged model may not hold:
        // then it is -1, and every table indexed by it would be read out of bounds.
        if (impl->unk_id < 0 || impl->unk_id >= impl->vocab_size)
            throw std::runtime_error("Tokenizer: " + what + " has no unknown piece; models for mlm are made by "
                                     "mlm::Tokenizer::train");
        if (impl->pad_id < 0)
            throw std::runtime_error("Tokenizer: " + what + " has no pad piece; models for mlm are made by "
                                     "mlm::Tokenizer::train");
        if (mask == impl->unk_id || sp.IdToPiece(mask) != kMaskPiece)
            throw std::runtime_error("Tokenizer: " + what + " has no [MASK] piece; models for mlm are made "
                                     "by mlm::Tokenizer::train");
        impl->mask_id = mask;
        const int marker = sp.PieceToId(kStripAccentsMarker);
        impl->strip = marker != impl->unk_id && sp.IdToPiece(marker) == kStripAccentsMarker;
        impl->is_special.assign(impl->vocab_size, 0);
        impl->word_start.assign(impl->vocab_size, 0);
        for (int id = 0; id < impl->vocab_size; ++id) {
            const bool special = sp.IsControl(id) || id == impl->mask_id || id == impl->pad_id;
            impl->is_special[id] = special;
            impl->word_start[id] = !special && !sp.IsUnknown(id) && starts_with_word_marker(sp.IdToPiece(id));
        }
        return impl;
    }
};

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Tokenizer::Tokenizer(const Tokenizer& other) : max_length_(other.max_length_) {
    if (other.impl_) impl_ = Impl::from_bytes(other.impl_->bytes, "a copied tokenizer");
}

Tokenizer& Tokenizer::operator=(const Tokenizer& other) {
    if (this != &other) {
        Tokenizer copy(other);
        *this = std::move(copy);
    }
    return *this;
}

const Tokenizer::Impl& Tokenizer::impl() const {
    if (!impl_) throw std::logic_error("Tokenizer: not trained or loaded yet");
    return *impl_;
}

// ---- training --------------------------------------------------------------------------------

namespace {

Tokenizer train_impl(const std::vector<std::string>* sentences, const std::vector<std::string>* files,
                     const TokenizerTrainOptions& options) {
    validate(options);
    const auto args = trainer_arguments(options);
    std::string model;
    TrainingSentences input(sentences, files, options.strip_accents);
    sentencepiece::util::Status status;
    {
        std::lock_guard<std::mutex> lock(sentencepiece_global_mutex());
        silence_sentencepiece();
        sentencepiece::SetRandomGeneratorSeed(options.seed);
        status = sentencepiece::SentencePieceTrainer::Train(args, &input, &model);
    }
    if (input.error()) std::rethrow_exception(input.error());
    const std::string source =
        files ? (files->size() == 1 ? "'" + files->front() + "'" : std::to_string(files->size()) + " files")
              : "the sentences";
    if (input.count() == 0)
        throw std::invalid_argument("Tokenizer::train: " + source + " hold no non-empty line to train on");
    if (!status.ok()) {
        const std::string message = status.ToString();
        const long most = max_vocab_from_message(message);
        if (most >= 0)
            throw std::invalid_argument(
                "Tokenizer::train: too little text for vocab_size " + std::to_string(options.vocab_size) +
                ": " + source + " (" + std::to_string(input.count()) +
                " sentences) give at most " + std::to_string(most) +
                " pieces; give more text, a vocab_size <= " + std::to_string(most) +
                ", or set allow_smaller_vocab");
        if (message.find("required_chars") != std::string::npos)
            throw std::invalid_argument("Tokenizer::train: vocab_size " + std::to_string(options.vocab_size) +
                                        " is smaller than the number of distinct characters to cover (" +
                                        message + "); raise vocab_size or lower character_coverage");
        throw std::runtime_error("Tokenizer::train: sentencepiece failed on " + source + ": " + message);
    }
    Tokenizer tok = Tokenizer::from_serialized(std::move(model));
    if (tok.unk_id() != options.unk_id || tok.pad_id() != options.pad_id || tok.mask_id() != options.mask_id)
        throw std::logic_error("Tokenizer::train: the special ids came out as unk " + std::to_string(tok.unk_id()) +
                               ", pad " + std::to_string(tok.pad_id()) + ", mask " + std::to_string(tok.mask_id()));
    return tok;
}

}  // namespace

Tokenizer Tokenizer::train(const std::vector<std::string>& files, const TokenizerTrainOptions& options) {
    if (files.empty()) throw std::invalid_argument("Tokenizer::train: no input files");
    return train_impl(nullptr, &files, options);
}

Tokenizer Tokenizer::train_from_sentences(const std::vector<std::string>& sentences,
                                          const TokenizerTrainOptions& options) {
    return train_impl(&sentences, nullptr, options);
}

// ---- load and save ---------------------------------------------------------------------------

Tokenizer Tokenizer::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("Tokenizer::load: cannot open '" + path + "': " + std::strerror(errno));
    std::ostringstream buffer;
    buffer << in.rdbuf();
    if (in.bad()) throw std::runtime_error("Tokenizer::load: cannot read '" + path + "'");
    return Tokenizer(Impl::from_bytes(buffer.str(), "'" + path + "'"));
}

Tokenizer Tokenizer::from_serialized(std::string bytes) {
    return Tokenizer(Impl::from_bytes(std::move(bytes), "the serialized model"));
}

void Tokenizer::save(const std::string& path) const {
    const std::string& bytes = impl().bytes;
    static std::atomic<unsigned> counter{0};
    const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error("Tokenizer::save: cannot write '" + tmp + "': " + std::strerror(errno));
        out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        out.flush();
        if (!out) {
            std::remove(tmp.c_str());
            throw std::runtime_error("Tokenizer::save: writing '" + tmp + "' failed");
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        throw std::runtime_error("Tokenizer::save: cannot rename '" + tmp + "' to '" + path + "': " + why);
    }
}

const std::string& Tokenizer::serialized() const { return impl().bytes; }
uint64_t Tokenizer::fingerprint() const { return impl().fingerprint; }
int Tokenizer::vocab_size() const { return impl().vocab_size; }
int32_t Tokenizer::unk_id() const { return impl().unk_id; }
int32_t Tokenizer::pad_id() const { return impl().pad_id; }
int32_t Tokenizer::mask_id() const { return impl().mask_id; }
bool Tokenizer::strip_accents() const { return impl().strip; }

// ---- encode and decode -----------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text) const { return encode(text, max_length_); }

std::vector<int32_t> Tokenizer::encode(std::string_view raw, int max_length) const {
    const Impl& m = impl();
    std::string storage;
    const std::string_view text = prepare_text(raw, m.strip, storage);
    std::vector<int32_t> ids;
    std::vector<int> part;
    auto encode_part = [&](std::string_view s, bool after_mask) {
        if (s.empty()) return;
        // Text glued to a preceding [MASK] continues its word: no word marker.
        const bool glued = after_mask && m.has_glued && !std::isspace(static_cast<unsigned char>(s.front()));
        const auto status = (glued ? m.sp_glued : m.sp).Encode(s, &part);
        if (!status.ok()) throw std::runtime_error("Tokenizer::encode: " + status.ToString());
        ids.insert(ids.end(), part.begin(), part.end());
    };
    // The literal [MASK] is spliced in at the id level: encoding it as text would give a stray
    // "▁" piece before it (and lower-casing would turn it into "[mask]").
    const std::string_view mask = kMaskPiece;
    std::size_t start = 0;
    for (;;) {
        const std::size_t hit = text.find(mask, start);
        if (hit == std::string_view::npos) {
            encode_part(text.substr(start), start > 0);
            break;
        }
        encode_part(text.substr(start, hit - start), start > 0);
        ids.push_back(m.mask_id);
        start = hit + mask.size();
    }
    if (max_length > 0 && ids.size() > static_cast<std::size_t>(max_length)) ids.resize(max_length);
    return ids;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts) const {
    return encode_batch(texts, max_length_);
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          int max_length) const {
    impl();
    std::vector<std::vector<int32_t>> out(texts.size());
    std::exception_ptr error;
    const long n = static_cast<long>(texts.size());
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 64)
#endif
    for (long i = 0; i < n; ++i) {
        try {
            out[i] = encode(texts[i], max_length);
        } catch (...) {
#ifdef _OPENMP
#pragma omp critical(mlm_encode_batch_error)
#endif
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
    return out;
}

std::vector<std::string> Tokenizer::encode_pieces(std::string_view text) const {
    std::vector<std::string> pieces;
    for (int32_t id : encode(text)) pieces.push_back(id_to_piece(id));
    return pieces;
}

std::string Tokenizer::decode(const int32_t* ids, std::size_t n) const {
    const Impl& m = impl();
    std::string out, part;
    std::vector<int> segment;
    auto flush = [&]() {
        if (segment.empty()) return;
        const auto status = m.sp.Decode(segment, &part);
        if (!status.ok()) throw std::runtime_error("Tokenizer::decode: " + status.ToString());
        // Sentencepiece drops the word marker's space at the start of what it decodes.
        if (!out.empty() && starts_with_word_marker(m.sp.IdToPiece(segment.front())) &&
            (part.empty() || part.front() != ' '))
            out += ' ';
        out += part;
        segment.clear();
    };
    for (std::size_t i = 0; i < n; ++i) {
        const int32_t id = ids[i];
        if (id < 0 || id >= m.vocab_size)
            throw std::out_of_range("Tokenizer::decode: id " + std::to_string(id) + " at position " +
                                    std::to_string(i) + " is outside the vocab [0, " +
                                    std::to_string(m.vocab_size) + ")");
        if (id == m.mask_id) {
            flush();
            out += out.empty() ? "[MASK]" : " [MASK]";
        } else if (!m.is_special[id]) {
            segment.push_back(id);
        }
    }
    flush();
    return out;
}

std::string Tokenizer::id_to_piece(int32_t id) const {
    const Impl& m = impl();
    if (id < 0 || id >= m.vocab_size)
        throw std::out_of_range("Tokenizer::id_to_piece: id " + std::to_string(id) +
                                " is outside the vocab [0, " + std::to_string(m.vocab_size) + ")");
    return m.sp.IdToPiece(id);
}

int32_t Tokenizer::piece_to_id(std::string_view piece) const { return impl().sp.PieceToId(piece); }

bool Tokenizer::is_special(int32_t id) const {
    const Impl& m = impl();
    return id >= 0 && id < m.vocab_size && m.is_special[id];
}

bool Tokenizer::is_unknown(int32_t id) const { return impl().sp.IsUnknown(id); }

VocabInfo Tokenizer::vocab_info() const {
    const Impl& m = impl();
    VocabInfo v;
    v.vocab_size = m.vocab_size;
    v.unk_id = m.unk_id;
    v.pad_id = m.pad_id;
    v.mask_id = m.mask_id;
    v.is_special = m.is_special;
    v.word_start = m.word_start;
    return v;
}

// ---- text helpers ----------------------------------------------------------------------------

namespace detail {

bool sanitize_utf8(std::string_view text, std::string& out) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    uint32_t cp;
    while (i < n) {  // fast path: find the first invalid byte
        if (s[i] < 0x80) { ++i; continue; }
        const std::size_t len = utf8_sequence(s, i, n, cp);
        if (len == 0) break;
        i += len;
    }
    if (i == n) return false;
    out.assign(text.data(), i);
    while (i < n) {
        const std::size_t len = utf8_sequence(s, i, n, cp);
        if (len == 0) {
            out += "\xEF\xBF\xBD";  // U+FFFD for this one byte
            ++i;
        } else {
            out.append(text.data() + i, len);
            i += len;
        }
    }
    return true;
}

std::string strip_accents(std::string_view text) {
    const auto* s = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::string out;
    out.reserve(n);
    std::size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            out += static_cast<char>(s[i++]);
            continue;
        }
        uint32_t cp;
        std::size_t len = utf8_sequence(s, i, n, cp);
        if (len == 0) {  // not valid UTF-8: keep the byte (sanitize_utf8 runs first)
            out += static_cast<char>(s[i++]);
            continue;
        }
        i += len;
        if (is_nonspacing_mark(cp)) continue;
        append_utf8(out, stripped_letter(cp));
    }
    return out;
}

uint64_t hash_bytes(const void* data, std::size_t n, uint64_t seed) {
    const auto* p = static_cast<const unsigned char*>(data);
    // Four independent lanes so the multiply chains overlap; then fold.
    uint64_t h[4] = {mix64(seed ^ 0x243f6a8885a308d3ull), mix64(seed ^ 0x13198a2e03707344ull),
                     mix64(seed ^ 0xa4093822299f31d0ull), mix64(seed ^ 0x082efa98ec4e6c89ull)};
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        for (int k = 0; k < 4; ++k) {
            uint64_t w;
            std::memcpy(&w, p + i + 8 * k, 8);
            h[k] = mix64(h[k] ^ w);
        }
    }
    uint64_t tail = 0, r = mix64(h[0] ^ mix64(h[1] ^ mix64(h[2] ^ mix64(h[3]))));
    for (int shift = 0; i < n; ++i, shift += 8) {
        tail |= static_cast<uint64_t>(p[i]) << (shift % 64);
        if (shift % 64 == 56) { r = mix64(r ^ tail); tail = 0; }
    }
    return mix64(r ^ tail ^ static_cast<uint64_t>(n));
}

}  // namespace detail

}  // namespace mlm

// ---- Unicode data for strip_accents ----------------------------------------------------------
// Generated from Python 3.11's unicodedata (Unicode 14.0.0):
//   kStrippedLetters: every code point c, not itself Mn, whose NFD holds Mn characters and
//     leaves exactly one character b without them: {c, b} (é -> e). Sorted by c.
//   kNonspacingMarks: the ranges [first, last] of category Mn.
//
//   pairs = [(cp, ord(s)) for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
//            and category(chr(cp)) != 'Mn'
//            and any(category(x) == 'Mn' for x in (d := normalize('NFD', chr(cp))))
//            and len(s := ''.join(x for x in d if category(x) != 'Mn')) == 1]
namespace mlm::detail {
namespace {
constexpr uint32_t kStrippedLetters[][2] = {
    {0xC0, 0x41}, {0xC1, 0x41}, {0xC2, 0x41}, {0xC3, 0x41}, {0xC4, 0x41}, {0xC5, 0x41},
    {0xC7, 0x43}, {0xC8, 0x45}, {0xC9, 0x45}, {0xCA, 0x45}, {0xCB, 0x45}, {0xCC, 0x49},
    {0xCD, 0x49}, {0xCE, 0x49}, {0xCF, 0x49}, {0xD1, 0x4E}, {0xD2, 0x4F}, {0xD3, 0x4F},
    {0xD4, 0x4F}, {0xD5, 0x4F}, {0xD6, 0x4F}, {0xD9, 0x55}, {0xDA, 0x55}, {0xDB, 0x55},
    {0xDC, 0x55}, {0xDD, 0x59}, {0xE0, 0x61}, {0xE1, 0x61}, {0xE2, 0x61}, {0xE3, 0x61},
    {0xE4, 0x61}, {0xE5, 0x61}, {0xE7, 0x63}, {0xE8, 0x65}, {0xE9, 0x65}, {0xEA, 0x65},
    {0xEB, 0x65}, {0xEC, 0x69}, {0xED, 0x69}, {0xEE, 0x69}, {0xEF, 0x69}, {0xF1, 0x6E},
    {0xF2, 0x6F}, {0xF3, 0x6F}, {0xF4, 0x6F}, {0xF5, 0x6F}, {0xF6, 0x6F}, {0xF9, 0x75},
    {0xFA, 0x75}, {0xFB, 0x75}, {0xFC, 0x75}, {0xFD, 0x79}, {0xFF, 0x79}, {0x100, 0x41},
    {0x101, 0x61}, {0x102, 0x41}, {0x103, 0x61}, {0x104, 0x41}, {0x105, 0x61}, {0x106, 0x43},
    {0x107, 0x63}, {0x108, 0x43}, {0x109, 0x63}, {0x10A, 0x43}, {0x10B, 0x63}, {0x10C, 0x43},
    {0x10D, 0x63}, {0x10E, 0x44}, {0x10F, 0x64}, {0x112, 0x45}, {0x113, 0x65}, {0x114, 0x45},
    {0x115, 0x65}, {0x116, 0x45}, {0x117, 0x65}, {0x118, 0x45}, {0x119, 0x65}, {0x11A, 0x45},
    {0x11B, 0x65}, {0x11C, 0x47}, {0x11D, 0x67}, {0x11E, 0x47}, {0x11F, 0x67}, {0x120, 0x47},
    {0x121, 0x67}, {0x122, 0x47}, {0x123, 0x67}, {0x124, 0x48}, {0x125, 0x68}, {0x128, 0x49},
    {0x129, 0x69}, {0x12A, 0x49}, {0x12B, 0x69}, {0x12C, 0x49}, {0x12D, 0x69}, {0x12E, 0x49},
    {0x12F, 0x69}, {0x130, 0x49}, {0x134, 0x4A}, {0x135, 0x6A}, {0x136, 0x4B}, {0x137, 0x6B},
    {0x139, 0x4C}, {0x13A, 0x6C}, {0x13B, 0x4C}, {0x13C, 0x6C}, {0x13D, 0x4C}, {0x13E, 0x6C},
    {0x143, 0x4E}, {0x144, 0x6E}, {0x145, 0x4E}, {0x146, 0x6E}, {0x147, 0x4E}, {0x148, 0x6E},
    {0x14C, 0x4F}, {0x14D, 0x6F}, {0x14E, 0x4F}, {0x14F, 0x6F}, {0x150, 0x4F}, {0x151, 0x6F},
    {0x154, 0x52}, {0x155, 0x72}, {0x156, 0x52}, {0x157, 0x72}, {0x158, 0x52}, {0x159, 0x72},
    {0x15A, 0x53}, {0x15B, 0x73}, {0x15C, 0x53}, {0x15D, 0x73}, {0x15E, 0x53}, {0x15F, 0x73},
    {0x160, 0x53}, {0x161, 0x73}, {0x162, 0x54}, {0x163, 0x74}, {0x164, 0x54}, {0x165, 0x74},
    {0x168, 0x55}, {0x169, 0x75}, {0x16A, 0x55}, {0x16B, 0x75}, {0x16C, 0x55}, {0x16D, 0x75},
    {0x16E, 0x55}, {0x16F, 0x75}, {0x170, 0x55}, {0x171, 0x75}, {0x172, 0x55}, {0x173, 0x75},
    {0x174, 0x57}, {0x175, 0x77}, {0x176, 0x59}, {0x177, 0x79}, {0x178, 0x59}, {0x179, 0x5A},
    {0x17A, 0x7A}, {0x17B, 0x5A}, {0x17C, 0x7A}, {0x17D, 0x5A}, {0x17E, 0x7A}, {0x1A0, 0x4F},
    {0x1A1, 0x6F}, {0x1AF, 0x55}, {0x1B0, 0x75}, {0x1CD, 0x41}, {0x1CE, 0x61}, {0x1CF, 0x49},
    {0x1D0, 0x69}, {0x1D1, 0x4F}, {0x1D2, 0x6F}, {0x1D3, 0x55}, {0x1D4, 0x75}, {0x1D5, 0x55},
    {0x1D6, 0x75}, {0x1D7, 0x55}, {0x1D8, 0x75}, {0x1D9, 0x55}, {0x1DA, 0x75}, {0x1DB, 0x55},
    {0x1DC, 0x75}, {0x1DE, 0x41}, {0x1DF, 0x61}, {0x1E0, 0x41}, {0x1E1, 0x61}, {0x1E2, 0xC6},
    {0x1E3, 0xE6}, {0x1E6, 0x47}, {0x1E7, 0x67}, {0x1E8, 0x4B}, {0x1E9, 0x6B}, {0x1EA, 0x4F},
    {0x1EB, 0x6F}, {0x1EC, 0x4F}, {0x1ED, 0x6F}, {0x1EE, 0x1B7}, {0x1EF, 0x292}, {0x1F0, 0x6A},
    {0x1F4, 0x47}, {0x1F5, 0x67}, {0x1F8, 0x4E}, {0x1F9, 0x6E}, {0x1FA, 0x41}, {0x1FB, 0x61},
    {0x1FC, 0xC6}, {0x1FD, 0xE6}, {0x1FE, 0xD8}, {0x1FF, 0xF8}, {0x200, 0x41}, {0x201, 0x61},
    {0x202, 0x41}, {0x203, 0x61}, {0x204, 0x45}, {0x205, 0x65}, {0x206, 0x45}, {0x207, 0x65},
    {0x208, 0x49}, {0x209, 0x69}, {0x20A, 0x49}, {0x20B, 0x69}, {0x20C, 0x4F}, {0x20D, 0x6F},
    {0x20E, 0x4F}, {0x20F, 0x6F}, {0x210, 0x52}, {0x211, 0x72}, {0x212, 0x52}, {0x213, 0x72},
    {0x214, 0x55}, {0x215, 0x75}, {0x216, 0x55}, {0x217, 0x75}, {0x218, 0x53}, {0x219, 0x73},
    {0x21A, 0x54}, {0x21B, 0x74}, {0x21E, 0x48}, {0x21F, 0x68}, {0x226, 0x41}, {0x227, 0x61},
    {0x228, 0x45}, {0x229, 0x65}, {0x22A, 0x4F}, {0x22B, 0x6F}, {0x22C, 0x4F}, {0x22D, 0x6F},
    {0x22E, 0x4F}, {0x22F, 0x6F}, {0x230, 0x4F}, {0x231, 0x6F}, {0x232, 0x59}, {0x233, 0x79},
    {0x385, 0xA8}, {0x386, 0x391}, {0x388, 0x395}, {0x389, 0x397}, {0x38A, 0x399}, {0x38C, 0x39F},
    {0x38E, 0x3A5}, {0x38F, 0x3A9}, {0x390, 0x3B9}, {0x3AA, 0x399}, {0x3AB, 0x3A5}, {0x3AC, 0x3B1},
    {0x3AD, 0x3B5}, {0x3AE, 0x3B7}, {0x3AF, 0x3B9}, {0x3B0, 0x3C5}, {0x3CA, 0x3B9}, {0x3CB, 0x3C5},
    {0x3CC, 0x3BF}, {0x3CD, 0x3C5}, {0x3CE, 0x3C9}, {0x3D3, 0x3D2}, {0x3D4, 0x3D2}, {0x400, 0x415},
    {0x401, 0x415}, {0x403, 0x413}, {0x407, 0x406}, {0x40C, 0x41A}, {0x40D, 0x418}, {0x40E, 0x423},
    {0x419, 0x418}, {0x439, 0x438}, {0x450, 0x435}, {0x451, 0x435}, {0x453, 0x433}, {0x457, 0x456},
    {0x45C, 0x43A}, {0x45D, 0x438}, {0x45E, 0x443}, {0x476, 0x474}, {0x477, 0x475}, {0x4C1, 0x416},
    {0x4C2, 0x436}, {0x4D0, 0x410}, {0x4D1, 0x430}, {0x4D2, 0x410}, {0x4D3, 0x430}, {0x4D6, 0x415},
    {0x4D7, 0x435}, {0x4DA, 0x4D8}, {0x4DB, 0x4D9}, {0x4DC, 0x416}, {0x4DD, 0x436}, {0x4DE, 0x417},
    {0x4DF, 0x437}, {0x4E2, 0x418}, {0x4E3, 0x438}, {0x4E4, 0x418}, {0x4E5, 0x438}, {0x4E6, 0x41E},
    {0x4E7, 0x43E}, {0x4EA, 0x4E8}, {0x4EB, 0x4E9}, {0x4EC, 0x42D}, {0x4ED, 0x44D}, {0x4EE, 0x423},
    {0x4EF, 0x443}, {0x4F0, 0x423}, {0x4F1, 0x443}, {0x4F2, 0x423}, {0x4F3, 0x443}, {0x4F4, 0x427},
    {0x4F5, 0x447}, {0x4F8, 0x42B}, {0x4F9, 0x44B}, {0x622, 0x627}, {0x623, 0x627}, {0x624, 0x648},
    {0x625, 0x627}, {0x626, 0x64A}, {0x6C0, 0x6D5}, {0x6C2, 0x6C1}, {0x6D3, 0x6D2}, {0x929, 0x928},
    {0x931, 0x930}, {0x934, 0x933}, {0x958, 0x915}, {0x959, 0x916}, {0x95A, 0x917}, {0x95B, 0x91C},
    {0x95C, 0x921}, {0x95D, 0x922}, {0x95E, 0x92B}, {0x95F, 0x92F}, {0x9DC, 0x9A1}, {0x9DD, 0x9A2},
    {0x9DF, 0x9AF}, {0xA33, 0xA32}, {0xA36, 0xA38}, {0xA59, 0xA16}, {0xA5A, 0xA17}, {0xA5B, 0xA1C},
    {0xA5E, 0xA2B}, {0xB48, 0xB47}, {0xB5C, 0xB21}, {0xB5D, 0xB22}, {0xCC0, 0xCD5}, {0xCC7, 0xCD5},
    {0xCC8, 0xCD6}, {0xCCA, 0xCC2}, {0xDDA, 0xDD9}, {0xF43, 0xF42}, {0xF4D, 0xF4C}, {0xF52, 0xF51},
    {0xF57, 0xF56}, {0xF5C, 0xF5B}, {0xF69, 0xF40}, {0x1026, 0x1025}, {0x1B3B, 0x1B35}, {0x1B3D, 0x1B35},
    {0x1B43, 0x1B35}, {0x1E00, 0x41}, {0x1E01, 0x61}, {0x1E02, 0x42}, {0x1E03, 0x62}, {0x1E04, 0x42},
    {0x1E05, 0x62}, {0x1E06, 0x42}, {0x1E07, 0x62}, {0x1E08, 0x43}, {0x1E09, 0x63}, {0x1E0A, 0x44},
    {0x1E0B, 0x64}, {0x1E0C, 0x44}, {0x1E0D, 0x64}, {0x1E0E, 0x44}, {0x1E0F, 0x64}, {0x1E10, 0x44},
    {0x1E11, 0x64}, {0x1E12, 0x44}, {0x1E13, 0x64}, {0x1E14, 0x45}, {0x1E15, 0x65}, {0x1E16, 0x45},
    {0x1E17, 0x65}, {0x1E18, 0x45}, {0x1E19, 0x65}, {0x1E1A, 0x45}, {0x1E1B, 0x65}, {0x1E1C, 0x45},
    {0x1E1D, 0x65}, {0x1E1E, 0x46}, {0x1E1F, 0x66}, {0x1E20, 0x47}, {0x1E21, 0x67}, {0x1E22, 0x48},
    {0x1E23, 0x68}, {0x1E24, 0x48}, {0x1E25, 0x68}, {0x1E26, 0x48}, {0x1E27, 0x68}, {0x1E28, 0x48},
    {0x1E29, 0x68}, {0x1E2A, 0x48}, {0x1E2B, 0x68}, {0x1E2C, 0x49}, {0x1E2D, 0x69}, {0x1E2E, 0x49},
    {0x1E2F, 0x69}, {0x1E30, 0x4B}, {0x1E31, 0x6B}, {0x1E32, 0x4B}, {0x1E33, 0x6B}, {0x1E34, 0x4B},
    {0x1E35, 0x6B}, {0x1E36, 0x4C}, {0x1E37, 0x6C}, {0x1E38, 0x4C}, {0x1E39, 0x6C}, {0x1E3A, 0x4C},
    {0x1E3B, 0x6C}, {0x1E3C, 0x4C}, {0x1E3D, 0x6C}, {0x1E3E, 0x4D}, {0x1E3F, 0x6D}, {0x1E40, 0x4D},
    {0x1E41, 0x6D}, {0x1E42, 0x4D}, {0x1E43, 0x6D}, {0x1E44, 0x4E}, {0x1E45, 0x6E}, {0x1E46, 0x4E},
    {0x1E47, 0x6E}, {0x1E48, 0x4E}, {0x1E49, 0x6E}, {0x1E4A, 0x4E}, {0x1E4B, 0x6E}, {0x1E4C, 0x4F},
    {0x1E4D, 0x6F}, {0x1E4E, 0x4F}, {0x1E4F, 0x6F}, {0x1E50, 0x4F}, {0x1E51, 0x6F}, {0x1E52, 0x4F},
    {0x1E53, 0x6F}, {0x1E54, 0x50}, {0x1E55, 0x70}, {0x1E56, 0x50}, {0x1E57, 0x70}, {0x1E58, 0x52},
    {0x1E59, 0x72}, {0x1E5A, 0x52}, {0x1E5B, 0x72}, {0x1E5C, 0x52}, {0x1E5D, 0x72}, {0x1E5E, 0x52},
    {0x1E5F, 0x72}, {0x1E60, 0x53}, {0x1E61, 0x73}, {0x1E62, 0x53}, {0x1E63, 0x73}, {0x1E64, 0x53},
    {0x1E65, 0x73}, {0x1E66, 0x53}, {0x1E67, 0x73}, {0x1E68, 0x53}, {0x1E69, 0x73}, {0x1E6A, 0x54},
    {0x1E6B, 0x74}, {0x1E6C, 0x54}, {0x1E6D, 0x74}, {0x1E6E, 0x54}, {0x1E6F, 0x74}, {0x1E70, 0x54},
    {0x1E71, 0x74}, {0x1E72, 0x55}, {0x1E73, 0x75}, {0x1E74, 0x55}, {0x1E75, 0x75}, {0x1E76, 0x55},
    {0x1E77, 0x75}, {0x1E78, 0x55}, {0x1E79, 0x75}, {0x1E7A, 0x55}, {0x1E7B, 0x75}, {0x1E7C, 0x56},
    {0x1E7D, 0x76}, {0x1E7E, 0x56}, {0x1E7F, 0x76}, {0x1E80, 0x57}, {0x1E81, 0x77}, {0x1E82, 0x57},
    {0x1E83, 0x77}, {0x1E84, 0x57}, {0x1E85, 0x77}, {0x1E86, 0x57}, {0x1E87, 0x77}, {0x1E88, 0x57},
    {0x1E89, 0x77}, {0x1E8A, 0x58}, {0x1E8B, 0x78}, {0x1E8C, 0x58}, {0x1E8D, 0x78}, {0x1E8E, 0x59},
    {0x1E8F, 0x79}, {0x1E90, 0x5A}, {0x1E91, 0x7A}, {0x1E92, 0x5A}, {0x1E93, 0x7A}, {0x1E94, 0x5A},
    {0x1E95, 0x7A}, {0x1E96, 0x68}, {0x1E97, 0x74}, {0x1E98, 0x77}, {0x1E99, 0x79}, {0x1E9B, 0x17F},
    {0x1EA0, 0x41}, {0x1EA1, 0x61}, {0x1EA2, 0x41}, {0x1EA3, 0x61}, {0x1EA4, 0x41}, {0x1EA5, 0x61},
    {0x1EA6, 0x41}, {0x1EA7, 0x61}, {0x1EA8, 0x41}, {0x1EA9, 0x61}, {0x1EAA, 0x41}, {0x1EAB, 0x61},
    {0x1EAC, 0x41}, {0x1EAD, 0x61}, {0x1EAE, 0x41}, {0x1EAF, 0x61}, {0x1EB0, 0x41}, {0x1EB1, 0x61},
    {0x1EB2, 0x41}, {0x1EB3, 0x61}, {0x1EB4, 0x41}, {0x1EB5, 0x61}, {0x1EB6, 0x41}, {0x1EB7, 0x61},
    {0x1EB8, 0x45}, {0x1EB9, 0x65}, {0x1EBA, 0x45}, {0x1EBB, 0x65}, {0x1EBC, 0x45}, {0x1EBD, 0x65},
    {0x1EBE, 0x45}, {0x1EBF, 0x65}, {0x1EC0, 0x45}, {0x1EC1, 0x65}, {0x1EC2, 0x45}, {0x1EC3, 0x65},
    {0x1EC4, 0x45}, {0x1EC5, 0x65}, {0x1EC6, 0x45}, {0x1EC7, 0x65}, {0x1EC8, 0x49}, {0x1EC9, 0x69},
    {0x1ECA, 0x49}, {0x1ECB, 0x69}, {0x1ECC, 0x4F}, {0x1ECD, 0x6F}, {0x1ECE, 0x4F}, {0x1ECF, 0x6F},
    {0x1ED0, 0x4F}, {0x1ED1, 0x6F}, {0x1ED2, 0x4F}, {0x1ED3, 0x6F}, {0x1ED4, 0x4F}, {0x1ED5, 0x6F},
    {0x1ED6, 0x4F}, {0x1ED7, 0x6F}, {0x1ED8, 0x4F}, {0x1ED9, 0x6F}, {0x1EDA, 0x4F}, {0x1EDB, 0x6F},
    {0x1EDC, 0x4F}, {0x1EDD, 0x6F}, {0x1EDE, 0x4F}, {0x1EDF, 0x6F}, {0x1EE0, 0x4F}, {0x1EE1, 0x6F},
    {0x1EE2, 0x4F}, {0x1EE3, 0x6F}, {0x1EE4, 0x55}, {0x1EE5, 0x75}, {0x1EE6, 0x55}, {0x1EE7, 0x75},
    {0x1EE8, 0x55}, {0x1EE9, 0x75}, {0x1EEA, 0x55}, {0x1EEB, 0x75}, {0x1EEC, 0x55}, {0x1EED, 0x75},
    {0x1EEE, 0x55}, {0x1EEF, 0x75}, {0x1EF0, 0x55}, {0x1EF1, 0x75}, {0x1EF2, 0x59}, {0x1EF3, 0x79},
    {0x1EF4, 0x59}, {0x1EF5, 0x79}, {0x1EF6, 0x59}, {0x1EF7, 0x79}, {0x1EF8, 0x59}, {0x1EF9, 0x79},
    {0x1F00, 0x3B1}, {0x1F01, 0x3B1}, {0x1F02, 0x3B1}, {0x1F03, 0x3B1}, {0x1F04, 0x3B1}, {0x1F05, 0x3B1},
    {0x1F06, 0x3B1}, {0x1F07, 0x3B1}, {0x1F08, 0x391}, {0x1F09, 0x391}, {0x1F0A, 0x391}, {0x1F0B, 0x391},
    {0x1F0C, 0x391}, {0x1F0D, 0x391}, {0x1F0E, 0x391}, {0x1F0F, 0x391}, {0x1F10, 0x3B5}, {0x1F11, 0x3B5},
    {0x1F12, 0x3B5}, {0x1F13, 0x3B5}, {0x1F14, 0x3B5}, {0x1F15, 0x3B5}, {0x1F18, 0x395}, {0x1F19, 0x395},
    {0x1F1A, 0x395}, {0x1F1B, 0x395}, {0x1F1C, 0x395}, {0x1F1D, 0x395}, {0x1F20, 0x3B7}, {0x1F21, 0x3B7},
    {0x1F22, 0x3B7}, {0x1F23, 0x3B7}, {0x1F24, 0x3B7}, {0x1F25, 0x3B7}, {0x1F26, 0x3B7}, {0x1F27, 0x3B7},
    {0x1F28, 0x397}, {0x1F29, 0x397}, {0x1F2A, 0x397}, {0x1F2B, 0x397}, {0x1F2C, 0x397}, {0x1F2D, 0x397},
    {0x1F2E, 0x397}, {0x1F2F, 0x397}, {0x1F30, 0x3B9}, {0x1F31, 0x3B9}, {0x1F32, 0x3B9}, {0x1F33, 0x3B9},
    {0x1F34, 0x3B9}, {0x1F35, 0x3B9}, {0x1F36, 0x3B9}, {0x1F37, 0x3B9}, {0x1F38, 0x399}, {0x1F39, 0x399},
    {0x1F3A, 0x399}, {0x1F3B, 0x399}, {0x1F3C, 0x399}, {0x1F3D, 0x399}, {0x1F3E, 0x399}, {0x1F3F, 0x399},
    {0x1F40, 0x3BF}, {0x1F41, 0x3BF}, {0x1F42, 0x3BF}, {0x1F43, 0x3BF}, {0x1F44, 0x3BF}, {0x1F45, 0x3BF},
    {0x1F48, 0x39F}, {0x1F49, 0x39F}, {0x1F4A, 0x39F}, {0x1F4B, 0x39F}, {0x1F4C, 0x39F}, {0x1F4D, 0x39F},
    {0x1F50, 0x3C5}, {0x1F51, 0x3C5}, {0x1F52, 0x3C5}, {0x1F53, 0x3C5}, {0x1F54, 0x3C5}, {0x1F55, 0x3C5},
    {0x1F56, 0x3C5}, {0x1F57, 0x3C5}, {0x1F59, 0x3A5}, {0x1F5B, 0x3A5}, {0x1F5D, 0x3A5}, {0x1F5F, 0x3A5},
    {0x1F60, 0x3C9}, {0x1F61, 0x3C9}, {0x1F62, 0x3C9}, {0x1F63, 0x3C9}, {0x1F64, 0x3C9}, {0x1F65, 0x3C9},
    {0x1F66, 0x3C9}, {0x1F67, 0x3C9}, {0x1F68, 0x3A9}, {0x1F69, 0x3A9}, {0x1F6A, 0x3A9}, {0x1F6B, 0x3A9},
    {0x1F6C, 0x3A9}, {0x1F6D, 0x3A9}, {0x1F6E, 0x3A9}, {0x1F6F, 0x3A9}, {0x1F70, 0x3B1}, {0x1F71, 0x3B1},
    {0x1F72, 0x3B5}, {0x1F73, 0x3B5}, {0x1F74, 0x3B7}, {0x1F75, 0x3B7}, {0x1F76, 0x3B9}, {0x1F77, 0x3B9},
    {0x1F78, 0x3BF}, {0x1F79, 0x3BF}, {0x1F7A, 0x3C5}, {0x1F7B, 0x3C5}, {0x1F7C, 0x3C9}, {0x1F7D, 0x3C9},
    {0x1F80, 0x3B1}, {0x1F81, 0x3B1}, {0x1F82, 0x3B1}, {0x1F83, 0x3B1}, {0x1F84, 0x3B1}, {0x1F85, 0x3B1},
    {0x1F86, 0x3B1}, {0x1F87, 0x3B1}, {0x1F88, 0x391}, {0x1F89, 0x391}, {0x1F8A, 0x391}, {0x1F8B, 0x391},
    {0x1F8C, 0x391}, {0x1F8D, 0x391}, {0x1F8E, 0x391}, {0x1F8F, 0x391}, {0x1F90, 0x3B7}, {0x1F91, 0x3B7},
    {0x1F92, 0x3B7}, {0x1F93, 0x3B7}, {0x1F94, 0x3B7}, {0x1F95, 0x3B7}, {0x1F96, 0x3B7}, {0x1F97, 0x3B7},
    {0x1F98, 0x397}, {0x1F99, 0x397}, {0x1F9A, 0x397}, {0x1F9B, 0x397}, {0x1F9C, 0x397}, {0x1F9D, 0x397},
    {0x1F9E, 0x397}, {0x1F9F, 0x397}, {0x1FA0, 0x3C9}, {0x1FA1, 0x3C9}, {0x1FA2, 0x3C9}, {0x1FA3, 0x3C9},
    {0x1FA4, 0x3C9}, {0x1FA5, 0x3C9}, {0x1FA6, 0x3C9}, {0x1FA7, 0x3C9}, {0x1FA8, 0x3A9}, {0x1FA9, 0x3A9},
    {0x1FAA, 0x3A9}, {0x1FAB, 0x3A9}, {0x1FAC, 0x3A9}, {0x1FAD, 0x3A9}, {0x1FAE, 0x3A9}, {0x1FAF, 0x3A9},
    {0x1FB0, 0x3B1}, {0x1FB1, 0x3B1}, {0x1FB2, 0x3B1}, {0x1FB3, 0x3B1}, {0x1FB4, 0x3B1}, {0x1FB6, 0x3B1},
    {0x1FB7, 0x3B1}, {0x1FB8, 0x391}, {0x1FB9, 0x391}, {0x1FBA, 0x391}, {0x1FBB, 0x391}, {0x1FBC, 0x391},
    {0x1FC1, 0xA8}, {0x1FC2, 0x3B7}, {0x1FC3, 0x3B7}, {0x1FC4, 0x3B7}, {0x1FC6, 0x3B7}, {0x1FC7, 0x3B7},
    {0x1FC8, 0x395}, {0x1FC9, 0x395}, {0x1FCA, 0x397}, {0x1FCB, 0x397}, {0x1FCC, 0x397}, {0x1FCD, 0x1FBF},
    {0x1FCE, 0x1FBF}, {0x1FCF, 0x1FBF}, {0x1FD0, 0x3B9}, {0x1FD1, 0x3B9}, {0x1FD2, 0x3B9}, {0x1FD3, 0x3B9},
    {0x1FD6, 0x3B9}, {0x1FD7, 0x3B9}, {0x1FD8, 0x399}, {0x1FD9, 0x399}, {0x1FDA, 0x399}, {0x1FDB, 0x399},
    {0x1FDD, 0x1FFE}, {0x1FDE, 0x1FFE}, {0x1FDF, 0x1FFE}, {0x1FE0, 0x3C5}, {0x1FE1, 0x3C5}, {0x1FE2, 0x3C5},
    {0x1FE3, 0x3C5}, {0x1FE4, 0x3C1}, {0x1FE5, 0x3C1}, {0x1FE6, 0x3C5}, {0x1FE7, 0x3C5}, {0x1FE8, 0x3A5},
    {0x1FE9, 0x3A5}, {0x1FEA, 0x3A5}, {0x1FEB, 0x3A5}, {0x1FEC, 0x3A1}, {0x1FED, 0xA8}, {0x1FEE, 0xA8},
    {0x1FF2, 0x3C9}, {0x1FF3, 0x3C9}, {0x1FF4, 0x3C9}, {0x1FF6, 0x3C9}, {0x1FF7, 0x3C9}, {0x1FF8, 0x39F},
    {0x1FF9, 0x39F}, {0x1FFA, 0x3A9}, {0x1FFB, 0x3A9}, {0x1FFC, 0x3A9}, {0x212B, 0x41}, {0x219A, 0x2190},
    {0x219B, 0x2192}, {0x21AE, 0x2194}, {0x21CD, 0x21D0}, {0x21CE, 0x21D4}, {0x21CF, 0x21D2}, {0x2204, 0x2203},
    {0x2209, 0x2208}, {0x220C, 0x220B}, {0x2224, 0x2223}, {0x2226, 0x2225}, {0x2241, 0x223C}, {0x2244, 0x2243},
    {0x2247, 0x2245}, {0x2249, 0x2248}, {0x2260, 0x3D}, {0x2262, 0x2261}, {0x226D, 0x224D}, {0x226E, 0x3C},
    {0x226F, 0x3E}, {0x2270, 0x2264}, {0x2271, 0x2265}, {0x2274, 0x2272}, {0x2275, 0x2273}, {0x2278, 0x2276},
    {0x2279, 0x2277}, {0x2280, 0x227A}, {0x2281, 0x227B}, {0x2284, 0x2282}, {0x2285, 0x2283}, {0x2288, 0x2286},
    {0x2289, 0x2287}, {0x22AC, 0x22A2}, {0x22AD, 0x22A8}, {0x22AE, 0x22A9}, {0x22AF, 0x22AB}, {0x22E0, 0x227C},
    {0x22E1, 0x227D}, {0x22E2, 0x2291}, {0x22E3, 0x2292}, {0x22EA, 0x22B2}, {0x22EB, 0x22B3}, {0x22EC, 0x22B4},
    {0x22ED, 0x22B5}, {0x2ADC, 0x2ADD}, {0x304C, 0x304B}, {0x304E, 0x304D}, {0x3050, 0x304F}, {0x3052, 0x3051},
    {0x3054, 0x3053}, {0x3056, 0x3055}, {0x3058, 0x3057}, {0x305A, 0x3059}, {0x305C, 0x305B}, {0x305E, 0x305D},
    {0x3060, 0x305F}, {0x3062, 0x3061}, {0x3065, 0x3064}, {0x3067, 0x3066}, {0x3069, 0x3068}, {0x3070, 0x306F},
    {0x3071, 0x306F}, {0x3073, 0x3072}, {0x3074, 0x3072}, {0x3076, 0x3075}, {0x3077, 0x3075}, {0x3079, 0x3078},
    {0x307A, 0x3078}, {0x307C, 0x307B}, {0x307D, 0x307B}, {0x3094, 0x3046}, {0x309E, 0x309D}, {0x30AC, 0x30AB},
    {0x30AE, 0x30AD}, {0x30B0, 0x30AF}, {0x30B2, 0x30B1}, {0x30B4, 0x30B3}, {0x30B6, 0x30B5}, {0x30B8, 0x30B7},
    {0x30BA, 0x30B9}, {0x30BC, 0x30BB}, {0x30BE, 0x30BD}, {0x30C0, 0x30BF}, {0x30C2, 0x30C1}, {0x30C5, 0x30C4},
    {0x30C7, 0x30C6}, {0x30C9, 0x30C8}, {0x30D0, 0x30CF}, {0x30D1, 0x30CF}, {0x30D3, 0x30D2}, {0x30D4, 0x30D2},
    {0x30D6, 0x30D5}, {0x30D7, 0x30D5}, {0x30D9, 0x30D8}, {0x30DA, 0x30D8}, {0x30DC, 0x30DB}, {0x30DD, 0x30DB},
    {0x30F4, 0x30A6}, {0x30F7, 0x30EF}, {0x30F8, 0x30F0}, {0x30F9, 0x30F1}, {0x30FA, 0x30F2}, {0x30FE, 0x30FD},
    {0xFB1D, 0x5D9}, {0xFB1F, 0x5F2}, {0xFB2A, 0x5E9}, {0xFB2B, 0x5E9}, {0xFB2C, 0x5E9}, {0xFB2D, 0x5E9},
    {0xFB2E, 0x5D0}, {0xFB2F, 0x5D0}, {0xFB30, 0x5D0}, {0xFB31, 0x5D1}, {0xFB32, 0x5D2}, {0xFB33, 0x5D3},
    {0xFB34, 0x5D4}, {0xFB35, 0x5D5}, {0xFB36, 0x5D6}, {0xFB38, 0x5D8}, {0xFB39, 0x5D9}, {0xFB3A, 0x5DA},
    {0xFB3B, 0x5DB}, {0xFB3C, 0x5DC}, {0xFB3E, 0x5DE}, {0xFB40, 0x5E0}, {0xFB41, 0x5E1}, {0xFB43, 0x5E3},
    {0xFB44, 0x5E4}, {0xFB46, 0x5E6}, {0xFB47, 0x5E7}, {0xFB48, 0x5E8}, {0xFB49, 0x5E9}, {0xFB4A, 0x5EA},
    {0xFB4B, 0x5D5}, {0xFB4C, 0x5D1}, {0xFB4D, 0x5DB}, {0xFB4E, 0x5E4}, {0x1109A, 0x11099}, {0x1109C, 0x1109B},
    {0x110AB, 0x110A5}, {0x114BB, 0x114B9},
};

constexpr uint32_t kNonspacingMarks[][2] = {
    {0x300, 0x36F}, {0x483, 0x487}, {0x591, 0x5BD}, {0x5BF, 0x5BF}, {0x5C1, 0x5C2},
    {0x5C4, 0x5C5}, {0x5C7, 0x5C7}, {0x610, 0x61A}, {0x64B, 0x65F}, {0x670, 0x670},
    {0x6D6, 0x6DC}, {0x6DF, 0x6E4}, {0x6E7, 0x6E8}, {0x6EA, 0x6ED}, {0x711, 0x711},
    {0x730, 0x74A}, {0x7A6, 0x7B0}, {0x7EB, 0x7F3}, {0x7FD, 0x7FD}, {0x816, 0x819},
    {0x81B, 0x823}, {0x825, 0x827}, {0x829, 0x82D}, {0x859, 0x85B}, {0x898, 0x89F},
    {0x8CA, 0x8E1}, {0x8E3, 0x902}, {0x93A, 0x93A}, {0x93C, 0x93C}, {0x941, 0x948},
    {0x94D, 0x94D}, {0x951, 0x957}, {0x962, 0x963}, {0x981, 0x981}, {0x9BC, 0x9BC},
    {0x9C1, 0x9C4}, {0x9CD, 0x9CD}, {0x9E2, 0x9E3}, {0x9FE, 0x9FE}, {0xA01, 0xA02},
    {0xA3C, 0xA3C}, {0xA41, 0xA42}, {0xA47, 0xA48}, {0xA4B, 0xA4D}, {0xA51, 0xA51},
    {0xA70, 0xA71}, {0xA75, 0xA75}, {0xA81, 0xA82}, {0xABC, 0xABC}, {0xAC1, 0xAC5},
    {0xAC7, 0xAC8}, {0xACD, 0xACD}, {0xAE2, 0xAE3}, {0xAFA, 0xAFF}, {0xB01, 0xB01},
    {0xB3C, 0xB3C}, {0xB3F, 0xB3F}, {0xB41, 0xB44}, {0xB4D, 0xB4D}, {0xB55, 0xB56},
    {0xB62, 0xB63}, {0xB82, 0xB82}, {0xBC0, 0xBC0}, {0xBCD, 0xBCD}, {0xC00, 0xC00},
    {0xC04, 0xC04}, {0xC3C, 0xC3C}, {0xC3E, 0xC40}, {0xC46, 0xC48}, {0xC4A, 0xC4D},
    {0xC55, 0xC56}, {0xC62, 0xC63}, {0xC81, 0xC81}, {0xCBC, 0xCBC}, {0xCBF, 0xCBF},
    {0xCC6, 0xCC6}, {0xCCC, 0xCCD}, {0xCE2, 0xCE3}, {0xD00, 0xD01}, {0xD3B, 0xD3C},
    {0xD41, 0xD44}, {0xD4D, 0xD4D}, {0xD62, 0xD63}, {0xD81, 0xD81}, {0xDCA, 0xDCA},
    {0xDD2, 0xDD4}, {0xDD6, 0xDD6}, {0xE31, 0xE31}, {0xE34, 0xE3A}, {0xE47, 0xE4E},
    {0xEB1, 0xEB1}, {0xEB4, 0xEBC}, {0xEC8, 0xECD}, {0xF18, 0xF19}, {0xF35, 0xF35},
    {0xF37, 0xF37}, {0xF39, 0xF39}, {0xF71, 0xF7E}, {0xF80, 0xF84}, {0xF86, 0xF87},
    {0xF8D, 0xF97}, {0xF99, 0xFBC}, {0xFC6, 0xFC6}, {0x102D, 0x1030}, {0x1032, 0x1037},
    {0x1039, 0x103A}, {0x103D, 0x103E}, {0x1058, 0x1059}, {0x105E, 0x1060}, {0x1071, 0x1074},
    {0x1082, 0x1082}, {0x1085, 0x1086}, {0x108D, 0x108D}, {0x109D, 0x109D}, {0x135D, 0x135F},
    {0x1712, 0x1714}, {0x1732, 0x1733}, {0x1752, 0x1753}, {0x1772, 0x1773}, {0x17B4, 0x17B5},
    {0x17B7, 0x17BD}, {0x17C6, 0x17C6}, {0x17C9, 0x17D3}, {0x17DD, 0x17DD}, {0x180B, 0x180D},
    {0x180F, 0x180F}, {0x1885, 0x1886}, {0x18A9, 0x18A9}, {0x1920, 0x1922}, {0x1927, 0x1928},
    {0x1932, 0x1932}, {0x1939, 0x193B}, {0x1A17, 0x1A18}, {0x1A1B, 0x1A1B}, {0x1A56, 0x1A56},
    {0x1A58, 0x1A5E}, {0x1A60, 0x1A60}, {0x1A62, 0x1A62}, {0x1A65, 0x1A6C}, {0x1A73, 0x1A7C},
    {0x1A7F, 0x1A7F}, {0x1AB0, 0x1ABD}, {0x1ABF, 0x1ACE}, {0x1B00, 0x1B03}, {0x1B34, 0x1B34},
    {0x1B36, 0x1B3A}, {0x1B3C, 0x1B3C}, {0x1B42, 0x1B42}, {0x1B6B, 0x1B73}, {0x1B80, 0x1B81},
    {0x1BA2, 0x1BA5}, {0x1BA8, 0x1BA9}, {0x1BAB, 0x1BAD}, {0x1BE6, 0x1BE6}, {0x1BE8, 0x1BE9},
    {0x1BED, 0x1BED}, {0x1BEF, 0x1BF1}, {0x1C2C, 0x1C33}, {0x1C36, 0x1C37}, {0x1CD0, 0x1CD2},
    {0x1CD4, 0x1CE0}, {0x1CE2, 0x1CE8}, {0x1CED, 0x1CED}, {0x1CF4, 0x1CF4}, {0x1CF8, 0x1CF9},
    {0x1DC0, 0x1DFF}, {0x20D0, 0x20DC}, {0x20E1, 0x20E1}, {0x20E5, 0x20F0}, {0x2CEF, 0x2CF1},
    {0x2D7F, 0x2D7F}, {0x2DE0, 0x2DFF}, {0x302A, 0x302D}, {0x3099, 0x309A}, {0xA66F, 0xA66F},
    {0xA674, 0xA67D}, {0xA69E, 0xA69F}, {0xA6F0, 0xA6F1}, {0xA802, 0xA802}, {0xA806, 0xA806},
    {0xA80B, 0xA80B}, {0xA825, 0xA826}, {0xA82C, 0xA82C}, {0xA8C4, 0xA8C5}, {0xA8E0, 0xA8F1},
    {0xA8FF, 0xA8FF}, {0xA926, 0xA92D}, {0xA947, 0xA951}, {0xA980, 0xA982}, {0xA9B3, 0xA9B3},
    {0xA9B6, 0xA9B9}, {0xA9BC, 0xA9BD}, {0xA9E5, 0xA9E5}, {0xAA29, 0xAA2E}, {0xAA31, 0xAA32},
    {0xAA35, 0xAA36}, {0xAA43, 0xAA43}, {0xAA4C, 0xAA4C}, {0xAA7C, 0xAA7C}, {0xAAB0, 0xAAB0},
    {0xAAB2, 0xAAB4}, {0xAAB7, 0xAAB8}, {0xAABE, 0xAABF}, {0xAAC1, 0xAAC1}, {0xAAEC, 0xAAED},
    {0xAAF6, 0xAAF6}, {0xABE5, 0xABE5}, {0xABE8, 0xABE8}, {0xABED, 0xABED}, {0xFB1E, 0xFB1E},
    {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0x101FD, 0x101FD}, {0x102E0, 0x102E0}, {0x10376, 0x1037A},
    {0x10A01, 0x10A03}, {0x10A05, 0x10A06}, {0x10A0C, 0x10A0F}, {0x10A38, 0x10A3A}, {0x10A3F, 0x10A3F},
    {0x10AE5, 0x10AE6}, {0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
    {0x11001, 0x11001}, {0x11038, 0x11046}, {0x11070, 0x11070}, {0x11073, 0x11074}, {0x1107F, 0x11081},
    {0x110B3, 0x110B6}, {0x110B9, 0x110BA}, {0x110C2, 0x110C2}, {0x11100, 0x11102}, {0x11127, 0x1112B},
    {0x1112D, 0x11134}, {0x11173, 0x11173}, {0x11180, 0x11181}, {0x111B6, 0x111BE}, {0x111C9, 0x111CC},
    {0x111CF, 0x111CF}, {0x1122F, 0x11231}, {0x11234, 0x11234}, {0x11236, 0x11237}, {0x1123E, 0x1123E},
    {0x112DF, 0x112DF}, {0x112E3, 0x112EA}, {0x11300, 0x11301}, {0x1133B, 0x1133C}, {0x11340, 0x11340},
    {0x11366, 0x1136C}, {0x11370, 0x11374}, {0x11438, 0x1143F}, {0x11442, 0x11444}, {0x11446, 0x11446},
    {0x1145E, 0x1145E}, {0x114B3, 0x114B8}, {0x114BA, 0x114BA}, {0x114BF, 0x114C0}, {0x114C2, 0x114C3},
    {0x115B2, 0x115B5}, {0x115BC, 0x115BD}, {0x115BF, 0x115C0}, {0x115DC, 0x115DD}, {0x11633, 0x1163A},
    {0x1163D, 0x1163D}, {0x1163F, 0x11640}, {0x116AB, 0x116AB}, {0x116AD, 0x116AD}, {0x116B0, 0x116B5},
    {0x116B7, 0x116B7}, {0x1171D, 0x1171F}, {0x11722, 0x11725}, {0x11727, 0x1172B}, {0x1182F, 0x11837},
    {0x11839, 0x1183A}, {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943}, {0x119D4, 0x119D7},
    {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38}, {0x11A3B, 0x11A3E},
    {0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B}, {0x11A8A, 0x11A96}, {0x11A98, 0x11A99},
    {0x11C30, 0x11C36}, {0x11C38, 0x11C3D}, {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0},
    {0x11CB2, 0x11CB3}, {0x11CB5, 0x11CB6}, {0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D},
    {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91}, {0x11D95, 0x11D95}, {0x11D97, 0x11D97},
    {0x11EF3, 0x11EF4}, {0x16AF0, 0x16AF4}, {0x16B30, 0x16B36}, {0x16F4F, 0x16F4F}, {0x16F8F, 0x16F92},
    {0x16FE4, 0x16FE4}, {0x1BC9D, 0x1BC9E}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46}, {0x1D167, 0x1D169},
    {0x1D17B, 0x1D182}, {0x1D185, 0x1D18B}, {0x1D1AA, 0x1D1AD}, {0x1D242, 0x1D244}, {0x1DA00, 0x1DA36},
    {0x1DA3B, 0x1DA6C}, {0x1DA75, 0x1DA75}, {0x1DA84, 0x1DA84}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF},
    {0x1E000, 0x1E006}, {0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024}, {0x1E026, 0x1E02A},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E8D0, 0x1E8D6}, {0x1E944, 0x1E94A},
    {0xE0100, 0xE01EF},
};
}  // namespace

bool is_nonspacing_mark(uint32_t cp) {
    if (cp < 0x300) return false;
    const auto* end = std::end(kNonspacingMarks);
    const auto* it = std::upper_bound(std::begin(kNonspacingMarks), end, cp,
                                      [](uint32_t c, const uint32_t (&r)[2]) { return c < r[0]; });
    return it != std::begin(kNonspacingMarks) && cp <= (*(it - 1))[1];
}

uint32_t stripped_letter(uint32_t cp) {
    if (cp < 0xC0) return cp;
    const auto* end = std::end(kStrippedLetters);
    const auto* it = std::lower_bound(std::begin(kStrippedLetters), end, cp,
                                      [](const uint32_t (&p)[2], uint32_t c) { return p[0] < c; });
    return it != end && (*it)[0] == cp ? (*it)[1] : cp;
}

}  // namespace mlm::detail
