// mlm/batch.hpp — the packed batch the engine works on.
//
// All real tokens of all sequences are concatenated into N rows; `offsets` holds
// [0, len0, len0+len1, ..., N]. Position-wise ops run on the N rows, attention runs per sequence
// over its own length, and the vocab-sized head runs only on the labelled rows `target_rows`
// (labels are `target_ids`; every other row is "ignore", the -100 of PyTorch).
//
//   mlm::Batch batch;
//   batch.add_sequence({5680, 10, 2, 2, 4541}, {-100, -100, 939, 1058, -100});
//   // or, from the original's padded [B, T] arrays (right-padded with pad_id):
//   auto packed = mlm::Batch::from_padded(input_ids.data(), labels.data(), B, T, /*pad_id=*/1);
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

namespace mlm {

constexpr int32_t ignore_label = -100;

struct Batch {
    std::vector<int32_t> tokens;       // (N) input ids, masked where the collator masked
    std::vector<int32_t> offsets{0};   // (B+1) sequence starts in `tokens`, last = N
    std::vector<int32_t> target_rows;  // (M) rows of `tokens` that carry a label, increasing
    std::vector<int32_t> target_ids;   // (M) the label (original id) of each target row

    int num_sequences() const { return static_cast<int>(offsets.size()) - 1; }
    int num_tokens() const { return static_cast<int>(tokens.size()); }
    int num_targets() const { return static_cast<int>(target_rows.size()); }
    int length(int b) const { return offsets[b + 1] - offsets[b]; }
    int max_length() const {
        int m = 0;
        for (int b = 0; b < num_sequences(); ++b) m = length(b) > m ? length(b) : m;
        return m;
    }

    // Empties the batch but keeps its capacity (no allocation when refilled to the same size).
    void clear() {
        tokens.clear();
        offsets.assign(1, 0);
        target_rows.clear();
        target_ids.clear();
    }

    // Appends one sequence. `labels` is empty (no targets) or as long as `ids`, with
    // ignore_label (-100) at rows without a target.
    void add_sequence(const int32_t* ids, std::size_t n, const int32_t* labels = nullptr) {
        if (n == 0) throw std::invalid_argument("Batch: a sequence must have at least one token");
        const int32_t base = static_cast<int32_t>(tokens.size());
        tokens.insert(tokens.end(), ids, ids + n);
        offsets.push_back(base + static_cast<int32_t>(n));
        if (labels) {
            for (std::size_t i = 0; i < n; ++i) {
                if (labels[i] == ignore_label) continue;
                if (labels[i] < 0)
                    throw std::invalid_argument("Batch: label " + std::to_string(labels[i]) +
                                                " is negative and not the ignore label -100");
                target_rows.push_back(base + static_cast<int32_t>(i));
                target_ids.push_back(labels[i]);
            }
        }
    }
    void add_sequence(const std::vector<int32_t>& ids, const std::vector<int32_t>& labels = {}) {
        if (!labels.empty() && labels.size() != ids.size())
            throw std::invalid_argument("Batch: labels (" + std::to_string(labels.size()) +
                                        ") and ids (" + std::to_string(ids.size()) +
                                        ") differ in length");
        add_sequence(ids.data(), ids.size(), labels.empty() ? nullptr : labels.data());
    }

    // Packs the original's padded layout: `input_ids` and `labels` are row-major (B, T), each
    // row right-padded with pad_id (labels may be null). A row's real tokens are those before its
    // first pad; a non-pad token after a pad is an error (packing would shift its position), as
    // is a label on a pad position or an all-pad row.
    static Batch from_padded(const int32_t* input_ids, const int32_t* labels, int B, int T,
                             int32_t pad_id) {
        Batch batch;
        assign_from_padded(batch, input_ids, labels, B, T, pad_id);
        return batch;
    }

    // The same into an existing batch, reusing its capacity.
    static void assign_from_padded(Batch& batch, const int32_t* input_ids, const int32_t* labels,
                                   int B, int T, int32_t pad_id) {
        if (B < 0 || T < 0) throw std::invalid_argument("Batch::from_padded: negative shape");
        batch.clear();
        for (int b = 0; b < B; ++b) {
            const int32_t* row = input_ids + static_cast<std::size_t>(b) * T;
            const int32_t* lab = labels ? labels + static_cast<std::size_t>(b) * T : nullptr;
            int n = 0;
            while (n < T && row[n] != pad_id) ++n;
            for (int t = n; t < T; ++t) {
                if (row[t] != pad_id)
                    throw std::invalid_argument(
                        "Batch::from_padded: row " + std::to_string(b) + " has a token after a pad "
                        "at position " + std::to_string(t) + "; only right padding is supported");
                if (lab && lab[t] != ignore_label)
                    throw std::invalid_argument("Batch::from_padded: row " + std::to_string(b) +
                                                " has a label at pad position " + std::to_string(t));
            }
            if (n == 0)
                throw std::invalid_argument("Batch::from_padded: row " + std::to_string(b) +
                                            " holds only padding");
            batch.add_sequence(row, static_cast<std::size_t>(n), lab);
        }
    }
};

}  // namespace mlm
