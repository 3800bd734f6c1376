// mlm/tokenizer.hpp — a BERT-like subword tokenizer: a sentencepiece model with [UNK] [PAD] [MASK].
//
// Tokenizer trains a sentencepiece model (unigram by default, or BPE) from text files (plain, .gz
// or .xz, read streaming) or from sentences in memory, and encodes, decodes, saves and loads it.
// The special pieces are `[UNK]=0 [PAD]=1 [MASK]=2` unless configured otherwise; `[PAD]` and
// `[MASK]` are control pieces, so they never come out of ordinary text, except that the literal
// `[MASK]` in raw text becomes exactly one mask id (see encode()).
//
//   mlm::TokenizerTrainOptions options;            // unigram, vocab 8192, lower-cased
//   options.vocab_size = 1000;
//   auto tok = mlm::Tokenizer::train({"data/wiki-valid-2k.txt"}, options);
//   std::vector<int32_t> ids = tok.encode("Hello! How are [MASK]?");   // ..., 2, ...
//   std::string text = tok.decode(ids);            // "hello! how are [MASK]?"
//   tok.save("tokenizer.model");                   // a standard sentencepiece .model file
//   auto again = mlm::Tokenizer::load("tokenizer.model");
//
// Normalization (fixed at training time and stored in the model, so a loaded tokenizer encodes
// exactly like the trained one):
//   - lower_case: sentencepiece's "nmt_nfkc_cf" rule: NFKC, Unicode case folding, whitespace
//     runs collapsed, control characters removed; without lower_case the rule is "nmt_nfkc".
//   - strip_accents: before that rule, every character whose canonical decomposition (NFD) holds
//     nonspacing marks (Unicode category Mn) is replaced by its decomposition without those marks
//     (é -> e, ǖ -> u, ά -> α), and every Mn character is removed — BERT's uncased normalizer,
//     including its side effect on scripts whose vowel signs are Mn (e.g. Devanagari). The table
//     is Unicode 14. This step is done by mlm, not by sentencepiece: the model file records it as
//     the control piece `<mlm:strip_accents>` and plain sentencepiece users of the file must strip
//     accents themselves.
// Invalid UTF-8 in text to encode is not an error: each invalid byte is replaced by U+FFFD, which
// sentencepiece's nmt normalization then removes, so invalid bytes vanish ("the \xFF city" encodes
// like "the city"). Training sees the same text.
//
// Training is deterministic: the same sentences and options give byte-identical model files
// (sentencepiece runs single-threaded with a fixed seed). Sentencepiece's seed and log level are
// process-wide, so trainings are serialized by a lock; its logging is silenced.
//
// The sentencepiece headers are not needed to use this header (pimpl).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hash.hpp"  // detail::hash_bytes (fingerprints)

namespace mlm {

enum class TokenizerModel { unigram, bpe };

struct TokenizerTrainOptions {
    TokenizerModel model = TokenizerModel::unigram;
    int vocab_size = 8192;
    bool lower_case = true;
    bool strip_accents = false;
    // Special ids: distinct and below vocab_size. Ids between them that no special piece takes
    // are filled with control pieces `[unused0]`, `[unused1]`, ... (like BERT's vocab).
    int unk_id = 0;
    int pad_id = 1;
    int mask_id = 2;
    // Sentencepiece's own seed (it shuffles when max_sentences samples the input).
    uint32_t seed = 42;
    // With too little text for vocab_size, training throws std::invalid_argument; with this
    // option it makes the largest vocab it can instead (see Tokenizer::vocab_size()).
    bool allow_smaller_vocab = false;
    // Use at most this many sentences (sampled by sentencepiece); 0: all of them.
    std::size_t max_sentences = 0;
    // Sentences longer than this many bytes are left out of training (sentencepiece's rule).
    int max_sentence_bytes = 4192;
    // Fraction of the characters in the text that the vocab must cover; rarer ones are [UNK].
    double character_coverage = 0.9995;
    // Sentencepiece trainer threads. 1 is deterministic; more is faster but may not be.
    int num_threads = 1;
};

// What the masking collator needs to know about a vocabulary: per-id tables.
struct VocabInfo {
    int vocab_size = 0;
    int32_t unk_id = 0;
    int32_t pad_id = 1;
    int32_t mask_id = 2;
    std::vector<uint8_t> is_special;  // (V) 1 for control pieces ([PAD], [MASK], [unused*], ...)
    std::vector<uint8_t> word_start;  // (V) 1 if the piece begins with the word marker "▁"
};

class Tokenizer {
public:
    static constexpr int default_max_length = 128;

    Tokenizer();  // empty: every use but loaded() throws std::logic_error
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    Tokenizer(const Tokenizer& other);
    Tokenizer& operator=(const Tokenizer& other);

    // Trains on every non-empty line of `files` (plain, .gz or .xz, detected by content).
    static Tokenizer train(const std::vector<std::string>& files,
                           const TokenizerTrainOptions& options = {});
    // Trains on sentences in memory (empty strings are skipped).
    static Tokenizer train_from_sentences(const std::vector<std::string>& sentences,
                                          const TokenizerTrainOptions& options = {});

    // Loads a .model file; a missing, unreadable or corrupt file throws std::runtime_error.
    static Tokenizer load(const std::string& path);
    // Loads the serialized model bytes (what serialized() returns; the content of a .model file).
    static Tokenizer from_serialized(std::string bytes);

    // Writes the .model file (to a temporary file, then renamed into place).
    void save(const std::string& path) const;
    const std::string& serialized() const;
    // 64-bit hash of serialized(): identifies the tokenizer (for caches).
    uint64_t fingerprint() const;

    bool loaded() const { return impl_ != nullptr; }
    int vocab_size() const;
    int32_t unk_id() const;
    int32_t pad_id() const;
    int32_t mask_id() const;
    bool strip_accents() const;

    // Encodings are truncated to max_length ids (default 128; <= 0: no truncation).
    int max_length() const { return max_length_; }
    void set_max_length(int max_length) { max_length_ = max_length; }

    // Text to ids. Each literal "[MASK]" (exact, case-sensitive) becomes one mask id, whatever
    // the spaces around it (never a stray "▁" piece before it). The text between masks is encoded
    // piece by piece; text glued to a preceding [MASK] ("are [MASK]." or "[MASK]able") continues
    // the masked word, so its first piece has no word marker "▁", while text after a space
    // starts a new word. The empty string (or only whitespace) gives no ids. Thread-safe.
    std::vector<int32_t> encode(std::string_view text) const;
    std::vector<int32_t> encode(std::string_view text, int max_length) const;
    // Many texts at once, in parallel over texts with OpenMP; result i is encode(texts[i]).
    std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts) const;
    std::vector<std::vector<int32_t>> encode_batch(const std::vector<std::string>& texts,
                                                   int max_length) const;
    // The pieces of encode(text) as strings ("▁hello", "!", "[MASK]", ...).
    std::vector<std::string> encode_pieces(std::string_view text) const;

    // Ids to readable text. [MASK] is rendered as "[MASK]" (after a space unless it starts the
    // text, glued to a following piece without the word marker: "are [MASK]?"); [PAD] and other
    // control ids are dropped; [UNK] is sentencepiece's " ⁇ ". Ids outside the vocab throw
    // std::out_of_range.
    std::string decode(const int32_t* ids, std::size_t n) const;
    std::string decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }

    // The piece of an id ("▁the"); std::out_of_range outside [0, vocab_size).
    std::string id_to_piece(int32_t id) const;
    // The id of a piece, or unk_id() when there is no such piece.
    int32_t piece_to_id(std::string_view piece) const;
    bool is_special(int32_t id) const;  // a control piece: [PAD], [MASK], [unused*], ...
    bool is_unknown(int32_t id) const;

    VocabInfo vocab_info() const;

private:
    struct Impl;
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    const Impl& impl() const;
    std::unique_ptr<Impl> impl_;
    int max_length_ = default_max_length;
};

namespace detail {
// Replaces every byte that is not part of a valid UTF-8 sequence (overlong forms, surrogates and
// code points above U+10FFFF are invalid) by U+FFFD. Returns false if the text was already valid
// (and then leaves `out` untouched).
bool sanitize_utf8(std::string_view text, std::string& out);
// BERT-style accent stripping (see the file comment); the input must be valid UTF-8.
std::string strip_accents(std::string_view text);
}  // namespace detail

}  // namespace mlm
