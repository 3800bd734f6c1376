// mlm/data.hpp — text in, batches of sequence indices out.
//
// - LineReader: sentences read streaming, line by line, from plain, gzip or xz files (detected by
//   their first bytes, not their extension; compressed files are never decompressed to disk).
// - TokenizedCorpus: every sentence of a file tokenized (in parallel chunks) into one flat id
//   array (uint16 when the vocab fits, else uint32) plus offsets, with a binary cache file so a
//   second run does not tokenize again.
// - split_train_valid: a deterministic held-out split.
// - Batcher: per-epoch seeded shuffling and batching, by a fixed number of sequences or by a
//   token budget with length bucketing; every sequence appears exactly once per epoch.
//
//   mlm::LineReader reader("data/wiki-train-30k.txt.xz");
//   std::string line;
//   while (reader.next(line)) { /* one sentence */ }
//
//   auto corpus = mlm::load_or_tokenize(tok, "data/wiki-train-30k.txt.xz", "train.tokens");  // cached
//   auto split = mlm::split_train_valid(corpus.size(), /*n_valid=*/2000, /*seed=*/1);
//   mlm::BatcherOptions bo;
//   bo.max_tokens = 4096;                     // token budget, length-bucketed
//   mlm::Batcher batcher(corpus, split.train, bo, /*seed=*/1);
//   for (const auto& batch : batcher.epoch_batches(epoch))   // corpus indices
//       collator.collate(corpus, batch, epoch, packed);
//
// Lines: a trailing '\r' is stripped and empty lines are skipped (line_number() still counts
// them, so messages point at the physical line). A line longer than max_line_bytes (1 MiB) is
// an error naming the file and line, or is skipped with LongLinePolicy::skip. Bytes are passed
// through as they are: invalid UTF-8 is the tokenizer's business (it becomes [UNK]).
// A missing, unreadable, corrupt or truncated file throws std::runtime_error naming the file
// (and the line reached, for a corrupt compressed stream). Concatenated gzip members and xz
// streams are read as one file; anything else after the compressed data is an error. xz data
// whose decoder would need more than 256 MiB of memory (a dictionary larger than any xz preset
// uses; xz -9 needs 65 MiB) is refused the same way, before that memory is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer.hpp"

namespace mlm {

// ---- reading lines ---------------------------------------------------------------------------

enum class Compression { none, gzip, xz };
const char* to_string(Compression c);

// What the file holds, by its first bytes. Throws std::runtime_error if it cannot be opened, or
// holds bzip2 or zstd data, or its name ends in .gz/.xz but its content is not that format.
Compression detect_compression(const std::string& path);

enum class LongLinePolicy { error, skip };

struct LineReaderOptions {
    std::size_t max_line_bytes = std::size_t(1) << 20;
    LongLinePolicy long_lines = LongLinePolicy::error;
};

class LineReader {
public:
    explicit LineReader(const std::string& path, const LineReaderOptions& options = {});
    ~LineReader();
    LineReader(LineReader&&) noexcept;
    LineReader& operator=(LineReader&&) noexcept;

    // The next non-empty line (without '\n' or a trailing '\r'); false at the end of the file.
    bool next(std::string& line);
    // 1-based physical line number of the line last returned (0 before the first).
    std::size_t line_number() const;
    std::size_t skipped_long_lines() const;
    const std::string& path() const;
    Compression compression() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Every non-empty line of the file. Throws if it holds none.
std::vector<std::string> read_lines(const std::string& path, const LineReaderOptions& options = {});

// ---- tokenized corpus ------------------------------------------------------------------------

// Token sequences stored compactly: one flat id array (2 bytes per id when the vocab has at most
// 65,536 ids, else 4) and offsets. Sequence i is ids [offsets[i], offsets[i+1]).
class TokenizedCorpus {
public:
    explicit TokenizedCorpus(int vocab_size = 65536);

    int vocab_size() const { return vocab_size_; }
    bool compact() const { return vocab_size_ <= 65536; }  // ids stored as uint16
    std::size_t size() const { return offsets_.size() - 1; }
    bool empty() const { return size() == 0; }
    std::size_t num_tokens() const { return static_cast<std::size_t>(offsets_.back()); }
    int length(std::size_t i) const {  // unchecked: i < size()
        return static_cast<int>(offsets_[i + 1] - offsets_[i]);
    }
    std::vector<int32_t> lengths() const;
    const std::vector<uint64_t>& offsets() const { return offsets_; }

    // Copies sequence i into `out` (length(i) ids).
    void copy(std::size_t i, int32_t* out) const;
    std::vector<int32_t> sequence(std::size_t i) const;

    // Appends a sequence; ids must be in [0, vocab_size). Empty sequences are allowed here (the
    // builders below never make them).
    void append(const int32_t* ids, std::size_t n);
    void append(const std::vector<int32_t>& ids) { append(ids.data(), ids.size()); }
    void reserve(std::size_t sequences, std::size_t tokens);

    // The sequences at `indices`, in that order.
    TokenizedCorpus subset(const std::vector<std::size_t>& indices) const;

    // Raw storage (for the cache file).
    const std::vector<uint16_t>& ids16() const { return ids16_; }
    const std::vector<uint32_t>& ids32() const { return ids32_; }

    // Rebuilds a corpus from its storage (the cache file, numpy arrays): `ids16` when
    // vocab_size <= 65536, else `ids32` (the other one empty); offsets start at 0, never decrease
    // and end at the number of ids. Throws std::invalid_argument if they do not fit together.
    static TokenizedCorpus from_storage(int vocab_size, std::vector<uint16_t> ids16,
                                        std::vector<uint32_t> ids32, std::vector<uint64_t> offsets);

    // Lines the builder dropped because they encoded to no ids (whitespace or control only).
    std::size_t dropped_empty = 0;

private:
    int vocab_size_;
    std::vector<uint16_t> ids16_;
    std::vector<uint32_t> ids32_;
    std::vector<uint64_t> offsets_{0};
};

struct TokenizeOptions {
    int max_length = 128;               // ids per sentence (truncated); <= 0: no truncation
    std::size_t max_sentences = 0;      // stop after this many lines; 0: all
    std::size_t chunk_lines = 1 << 14;  // lines read, then encoded in parallel, at a time
    LineReaderOptions reader;
};

// Tokenizes every non-empty line of a file, in parallel chunks, in file order. Lines that encode
// to no ids are dropped and counted in `dropped_empty`. Throws if the file holds no sentence.
TokenizedCorpus tokenize_file(const Tokenizer& tokenizer, const std::string& path,
                              const TokenizeOptions& options = {});
TokenizedCorpus tokenize_sentences(const Tokenizer& tokenizer,
                                   const std::vector<std::string>& sentences, int max_length = 128);

// tokenize_file with a cache: if `cache_path` holds a cache made from the same source file (same
// size and modification time), the same tokenizer (hash of its model bytes) and the same
// options, it is loaded; otherwise the file is tokenized and the cache (re)written atomically
// (temporary file + rename). A corrupt or stale cache is rebuilt, never an error.
TokenizedCorpus load_or_tokenize(const Tokenizer& tokenizer, const std::string& path,
                                 const std::string& cache_path, const TokenizeOptions& options = {},
                                 bool* loaded_from_cache = nullptr);

// ---- splitting and batching ------------------------------------------------------------------

struct Split {
    std::vector<std::size_t> train;  // increasing
    std::vector<std::size_t> valid;  // increasing
};
// Holds out n_valid of the indices [0, n), chosen by seed. Throws if n_valid > n.
Split split_train_valid(std::size_t n, std::size_t n_valid, uint64_t seed);
// Holds out round(n * valid_fraction), fraction in [0, 1].
Split split_train_valid_fraction(std::size_t n, double valid_fraction, uint64_t seed);

struct BatcherOptions {
    // Fixed-count mode (max_tokens == 0): batch_size sequences per batch.
    std::size_t batch_size = 128;
    // Token-budget mode (max_tokens > 0): each batch holds as many sequences as fit in
    // max_tokens real (unpadded) tokens, at most max_sequences of them (0: no cap). A sequence
    // longer than the budget forms a batch of its own.
    std::size_t max_tokens = 0;
    std::size_t max_sequences = 0;
    // Length bucketing: the shuffled order is cut into windows of bucket_batches batches' worth
    // of sequences (in token-budget mode: max_tokens / mean length sequences per batch), each
    // window is sorted by length and cut into batches, then the batch order is shuffled.
    // automatic: on in token-budget mode, off in fixed-count mode (the original's random batches).
    enum class Bucketing { automatic, on, off };
    Bucketing bucketing = Bucketing::automatic;
    std::size_t bucket_batches = 64;
    bool shuffle = true;     // false: file order (and no batch shuffle), for evaluation
    bool drop_last = false;  // fixed-count mode: drop a last batch smaller than batch_size
};

// Plans the batches of an epoch: lists of sequence indices. Deterministic from (seed, epoch).
class Batcher {
public:
    // Sequences `ids[i]` with lengths `lengths[i]`; the batches hold values of `ids`.
    Batcher(std::vector<std::size_t> ids, std::vector<int32_t> lengths,
            const BatcherOptions& options, uint64_t seed);
    // All sequences of a corpus, or the ones at `indices` (e.g. a split's train part).
    Batcher(const TokenizedCorpus& corpus, const BatcherOptions& options, uint64_t seed);
    Batcher(const TokenizedCorpus& corpus, const std::vector<std::size_t>& indices,
            const BatcherOptions& options, uint64_t seed);

    std::vector<std::vector<std::size_t>> epoch_batches(uint64_t epoch) const;
    std::size_t num_sequences() const { return ids_.size(); }
    const BatcherOptions& options() const { return options_; }

private:
    std::vector<std::size_t> ids_;
    std::vector<int32_t> lengths_;
    BatcherOptions options_;
    uint64_t seed_;
};

}  // namespace mlm
