// mlm/collator.hpp — masked-language-model masking: token sequences in, inputs and labels out.
//
// MaskingCollator selects each ordinary token with probability `mask_probability` (0.15) and
// replaces the selected ones by [MASK] (the original's 100%), or BERT's 80% [MASK] / 10% random
// token / 10% unchanged (MaskingOptions::bert()). The labels hold the original id at selected
// positions and -100 (mlm::ignore_label) elsewhere. Output is either the packed mlm::Batch the
// engine works on, or the original's padded [B, T] input ids and labels.
//
//   mlm::MaskingCollator collator(tokenizer, mlm::MaskingOptions{}, /*seed=*/1);
//   mlm::Batch batch;
//   collator.collate(corpus, batch_indices, epoch, batch);          // packed
//   mlm::PaddedBatch padded = collator.collate_padded(corpus, batch_indices, epoch, 128);
//
// Which tokens can be selected: every id that is not special — never [PAD], [MASK] or another
// control piece. [UNK] can be selected (it is a real, if uninformative, token of the text).
// Random replacements are drawn uniformly from the ids that are neither special nor [UNK].
//
// Whole-word masking (whole_word = true): a word is a selectable piece that starts with the
// word marker "▁" (or follows a non-selectable token) together with the selectable pieces without
// the marker that follow it; a word is selected with probability mask_probability and then all of
// its pieces are (each one then replaced by [MASK] / random / kept on its own draw). Punctuation
// glued to a word ("world" ",") belongs to that word, as sentencepiece splits it.
//
// Determinism: every draw is mlm::random_u64(seed, epoch, sample_index, position-and-purpose), so
// the masks of a sequence depend only on (seed, epoch, its global sample index) and never on the
// batch it is in or the number of threads. Callers pass each sequence's global index.
//
// A sequence with nothing selected has no targets; at_least_one (off by default, like the
// original) then selects its unit (token or word) with the smallest selection draw instead.
// MaskingOptions::single_mask() (probability 0 + at_least_one) masks exactly one uniformly chosen
// token per sequence: the single-mask accuracy evaluation.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch.hpp"
#include "data.hpp"
#include "fields.hpp"
#include "random.hpp"
#include "tokenizer.hpp"

namespace mlm {

struct MaskingOptions {
    double mask_probability = 0.15;  // selection probability of a token (a word with whole_word)
    double mask_fraction = 1.0;      // of the selected tokens: replaced by [MASK]
    double random_fraction = 0.0;    //   ... by a random ordinary token; the rest are kept
    bool whole_word = false;
    bool at_least_one = false;

    // BERT's 80/10/10 split.
    static MaskingOptions bert() {
        MaskingOptions o;
        o.mask_fraction = 0.8;
        o.random_fraction = 0.1;
        return o;
    }
    // Exactly one target per sequence, uniformly at random among its selectable tokens, replaced
    // by [MASK]: the single-mask evaluation.
    static MaskingOptions single_mask() {
        MaskingOptions o;
        o.mask_probability = 0.0;
        o.at_least_one = true;
        return o;
    }

    void validate() const {
        auto fail = [](const std::string& what) { throw std::invalid_argument("MaskingOptions: " + what); };
        if (!(mask_probability >= 0.0 && mask_probability <= 1.0))
            fail("mask_probability must be in [0, 1], got " + std::to_string(mask_probability));
        if (!(mask_fraction >= 0.0 && random_fraction >= 0.0 && mask_fraction + random_fraction <= 1.0 + 1e-12))
            fail("mask_fraction and random_fraction must be >= 0 with a sum <= 1, got " +
                 std::to_string(mask_fraction) + " and " + std::to_string(random_fraction));
    }
};

inline const auto& fields(const MaskingOptions*) {
    using M = MaskingOptions;
    static const auto table = std::make_tuple(
        field(&M::mask_probability, "mask_probability", Role::recipe, "masking", "Share of the tokens selected for prediction"),
        field(&M::mask_fraction, "mask_fraction", Role::recipe, "masking", "Of the selected tokens: replaced by [MASK] (BERT: 0.8)"),
        field(&M::random_fraction, "random_fraction", Role::recipe, "masking",
              "Of the selected tokens: replaced by a random token (BERT: 0.1)"),
        field(&M::whole_word, "whole_word", Role::recipe, "masking", "Select whole words"),
        field(&M::at_least_one, "at_least_one", Role::recipe, "masking", "Mask at least one token per sentence"));
    return table;
}
MLM_CHECK_FIELD_TABLE(MaskingOptions);
inline bool operator==(const MaskingOptions& a, const MaskingOptions& b) { return fields_equal(a, b); }

// The original's padded layout: row-major (B, T), rows right-padded with pad_id.
struct PaddedBatch {
    int batch_size = 0;               // B
    int seq_len = 0;                  // T
    std::vector<int32_t> input_ids;   // (B, T) masked inputs, pad_id after each row's length
    std::vector<int32_t> labels;      // (B, T) original id at selected positions, else -100
    std::vector<int32_t> lengths;     // (B) real tokens per row

    Batch to_packed(int32_t pad_id) const {
        return Batch::from_padded(input_ids.data(), labels.data(), batch_size, seq_len, pad_id);
    }
};

class MaskingCollator {
public:
    MaskingCollator(VocabInfo vocab, const MaskingOptions& options = {}, uint64_t seed = 0)
        : vocab_(std::move(vocab)), options_(options), seed_(seed) {
        options_.validate();
        const int V = vocab_.vocab_size;
        if (V < 1) throw std::invalid_argument("MaskingCollator: vocab_size must be positive");
        if (vocab_.is_special.size() != static_cast<std::size_t>(V) ||
            vocab_.word_start.size() != static_cast<std::size_t>(V))
            throw std::invalid_argument("MaskingCollator: the vocab tables must have vocab_size (" +
                                        std::to_string(V) + ") entries");
        for (auto [name, id] : {std::pair<const char*, int32_t>{"pad_id", vocab_.pad_id},
                                {"mask_id", vocab_.mask_id}, {"unk_id", vocab_.unk_id}})
            if (id < 0 || id >= V)
                throw std::invalid_argument(std::string("MaskingCollator: ") + name + " " + std::to_string(id) +
                                            " is outside the vocab [0, " + std::to_string(V) + ")");
        vocab_.is_special[vocab_.pad_id] = 1;
        vocab_.is_special[vocab_.mask_id] = 1;
        for (int32_t id = 0; id < V; ++id)
            if (!vocab_.is_special[id] && id != vocab_.unk_id) random_pool_.push_back(id);
        if (options_.random_fraction > 0 && random_pool_.empty())
            throw std::invalid_argument("MaskingCollator: random replacement needs ordinary ids in the vocab");
    }

    MaskingCollator(const Tokenizer& tokenizer, const MaskingOptions& options = {}, uint64_t seed = 0)
        : MaskingCollator(tokenizer.vocab_info(), options, seed) {}

    const MaskingOptions& options() const { return options_; }
    const VocabInfo& vocab() const { return vocab_; }
    uint64_t seed() const { return seed_; }
    bool selectable(int32_t id) const {
        return id >= 0 && id < vocab_.vocab_size && !vocab_.is_special[id];
    }

    // Masks one sequence of n ids: `out_ids` gets the inputs (may be `ids` itself), `out_labels`
    // the labels. Returns the number of selected positions. Ids outside the vocab throw.
    int mask_sequence(const int32_t* ids, int n, uint64_t epoch, uint64_t sample_index, int32_t* out_ids,
                      int32_t* out_labels) const {
        for (int i = 0; i < n; ++i)
            if (ids[i] < 0 || ids[i] >= vocab_.vocab_size)
                throw std::out_of_range("MaskingCollator: id " + std::to_string(ids[i]) + " at position " +
                                        std::to_string(i) + " of sample " + std::to_string(sample_index) +
                                        " is outside the vocab [0, " + std::to_string(vocab_.vocab_size) + ")");
        const double p = options_.mask_probability;
        int selected = 0;
        int best = -1;  // the unit with the smallest selection draw, for at_least_one
        double best_u = 2.0;
        bool word_selected = false, prev_selectable = false;
        for (int i = 0; i < n; ++i) {
            const int32_t id = ids[i];  // read before out_ids[i] is written: in place is fine
            out_labels[i] = ignore_label;
            if (!selectable(id)) {
                out_ids[i] = id;
                prev_selectable = false;
                continue;
            }
            bool select;
            if (!starts_unit(id, prev_selectable)) {
                select = word_selected;  // a continuation piece goes with its word
            } else {
                const double u = draw(epoch, sample_index, i, kSelect);
                select = u < p;
                word_selected = select;
                if (u < best_u) {
                    best_u = u;
                    best = i;
                }
            }
            prev_selectable = true;
            out_labels[i] = select ? id : ignore_label;
            out_ids[i] = select ? replacement(id, epoch, sample_index, i) : id;
            selected += select;
        }
        if (selected == 0 && options_.at_least_one && best >= 0) {
            // Nothing was replaced, so out_ids still holds the original ids.
            int i = best;
            do {
                out_labels[i] = out_ids[i];
                out_ids[i] = replacement(out_labels[i], epoch, sample_index, i);
                ++selected;
                ++i;
            } while (i < n && selectable(out_ids[i]) && !starts_unit(out_ids[i], true));
        }
        return selected;
    }

    // Packed batch of the sequences `sequences[k]` with global indices `sample_indices[k]`.
    void collate(const std::vector<std::vector<int32_t>>& sequences, const std::vector<uint64_t>& sample_indices,
                 uint64_t epoch, Batch& out) const {
        check_sizes(sequences.size(), sample_indices.size());
        out.clear();
        for (std::size_t k = 0; k < sequences.size(); ++k)
            append_packed(sequences[k].data(), sequences[k].size(), epoch, sample_indices[k], out);
    }

    // Packed batch of corpus sequences; each sequence's sample index is its corpus index.
    void collate(const TokenizedCorpus& corpus, const std::vector<std::size_t>& indices, uint64_t epoch,
                 Batch& out) const {
        out.clear();
        std::vector<int32_t>& ids = scratch_ids();
        for (std::size_t i : indices) {
            if (i >= corpus.size())
                throw std::out_of_range("MaskingCollator: index " + std::to_string(i) + " is outside the corpus (" +
                                        std::to_string(corpus.size()) + " sequences)");
            ids.resize(corpus.length(i));
            corpus.copy(i, ids.data());
            append_packed(ids.data(), ids.size(), epoch, i, out);
        }
    }

    // Padded (B, T) batch; T = max_len, or the longest sequence when max_len <= 0. A sequence
    // longer than max_len throws std::invalid_argument.
    PaddedBatch collate_padded(const std::vector<std::vector<int32_t>>& sequences,
                               const std::vector<uint64_t>& sample_indices, uint64_t epoch, int max_len = 0) const {
        check_sizes(sequences.size(), sample_indices.size());
        std::vector<int32_t> lengths;
        for (const auto& s : sequences) lengths.push_back(static_cast<int32_t>(s.size()));
        PaddedBatch out = padded_shape(lengths, max_len);
        for (std::size_t k = 0; k < sequences.size(); ++k)
            mask_sequence(sequences[k].data(), lengths[k], epoch, sample_indices[k],
                          out.input_ids.data() + k * out.seq_len, out.labels.data() + k * out.seq_len);
        return out;
    }

    PaddedBatch collate_padded(const TokenizedCorpus& corpus, const std::vector<std::size_t>& indices,
                               uint64_t epoch, int max_len = 0) const {
        std::vector<int32_t> lengths;
        for (std::size_t i : indices) {
            if (i >= corpus.size())
                throw std::out_of_range("MaskingCollator: index " + std::to_string(i) + " is outside the corpus");
            lengths.push_back(corpus.length(i));
        }
        PaddedBatch out = padded_shape(lengths, max_len);
        std::vector<int32_t>& ids = scratch_ids();
        for (std::size_t k = 0; k < indices.size(); ++k) {
            ids.resize(lengths[k]);
            corpus.copy(indices[k], ids.data());
            mask_sequence(ids.data(), lengths[k], epoch, indices[k], out.input_ids.data() + k * out.seq_len,
                          out.labels.data() + k * out.seq_len);
        }
        return out;
    }

private:
    enum Purpose : uint64_t { kSelect = 0, kReplace = 1, kRandomId = 2 };

    double draw(uint64_t epoch, uint64_t sample_index, int position, Purpose purpose) const {
        return bits_to_unit(random_u64(seed_, epoch, sample_index, (static_cast<uint64_t>(position) << 2) | purpose));
    }

    // Does a selectable token start a unit: a token, or with whole_word a word?
    bool starts_unit(int32_t id, bool prev_selectable) const {
        return !options_.whole_word || !prev_selectable || vocab_.word_start[id];
    }

    int32_t replacement(int32_t id, uint64_t epoch, uint64_t sample_index, int i) const {
        const double u = draw(epoch, sample_index, i, kReplace);
        if (u < options_.mask_fraction) return vocab_.mask_id;
        if (u < options_.mask_fraction + options_.random_fraction) {
            const uint64_t bits = random_u64(seed_, epoch, sample_index, (static_cast<uint64_t>(i) << 2) | kRandomId);
            const auto k = static_cast<std::size_t>((static_cast<__uint128_t>(bits) * random_pool_.size()) >> 64);
            return random_pool_[k];
        }
        return id;
    }

    void append_packed(const int32_t* ids, std::size_t n, uint64_t epoch, uint64_t sample_index, Batch& out) const {
        if (n == 0)
            throw std::invalid_argument("MaskingCollator: sample " + std::to_string(sample_index) + " is empty");
        std::vector<int32_t>& labels = scratch_labels();
        labels.resize(n);
        const std::size_t base = out.tokens.size();
        out.tokens.resize(base + n);
        mask_sequence(ids, static_cast<int>(n), epoch, sample_index, out.tokens.data() + base, labels.data());
        out.offsets.push_back(static_cast<int32_t>(base + n));
        for (std::size_t i = 0; i < n; ++i) {
            if (labels[i] == ignore_label) continue;
            out.target_rows.push_back(static_cast<int32_t>(base + i));
            out.target_ids.push_back(labels[i]);
        }
    }

    PaddedBatch padded_shape(const std::vector<int32_t>& lengths, int max_len) const {
        PaddedBatch out;
        out.batch_size = static_cast<int>(lengths.size());
        int longest = 0;
        for (std::size_t k = 0; k < lengths.size(); ++k) {
            if (max_len > 0 && lengths[k] > max_len)
                throw std::invalid_argument("MaskingCollator: sequence " + std::to_string(k) + " has " +
                                            std::to_string(lengths[k]) + " tokens, more than max_len " +
                                            std::to_string(max_len));
            longest = std::max(longest, lengths[k]);
        }
        out.seq_len = max_len > 0 ? max_len : longest;
        out.input_ids.assign(static_cast<std::size_t>(out.batch_size) * out.seq_len, vocab_.pad_id);
        out.labels.assign(out.input_ids.size(), ignore_label);
        out.lengths = lengths;
        return out;
    }

    static void check_sizes(std::size_t sequences, std::size_t indices) {
        if (sequences != indices)
            throw std::invalid_argument("MaskingCollator: " + std::to_string(sequences) + " sequences but " +
                                        std::to_string(indices) + " sample indices");
    }

    // Per-thread scratch, so collating allocates nothing once warmed up.
    static std::vector<int32_t>& scratch_ids() {
        thread_local std::vector<int32_t> v;
        return v;
    }
    static std::vector<int32_t>& scratch_labels() {
        thread_local std::vector<int32_t> v;
        return v;
    }

    VocabInfo vocab_;
    MaskingOptions options_;
    uint64_t seed_;
    std::vector<int32_t> random_pool_;
};

}  // namespace mlm
