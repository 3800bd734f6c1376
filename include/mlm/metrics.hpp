// mlm/metrics.hpp — evaluation on held-out sentences, the same everywhere.
//
// One definition of every number the trainer logs, `mlm eval` prints and the Python API returns:
//   loss, accuracy      MLM loss (mean cross-entropy in nats over all masked tokens of the set,
//                       not a mean of per-sentence means) and masked-token accuracy (argmax ==
//                       label). The sentences are masked by the training collator's rule
//                       (MaskingCollator, each selectable token with p = mask_probability,
//                       replaced by [MASK]) with a FIXED seed and epoch 0, sample index = the
//                       sentence's index in the evaluated corpus: the same sentences always get
//                       the same masks, so numbers are comparable between runs and programs.
//   single_mask_*       one selectable (non-special) token per sentence, chosen by
//                       single_mask_position(seed, index), replaced by [MASK]; accuracy of the
//                       argmax over the whole vocab (the original notebook's predict_mask), its
//                       top-5 accuracy and its mean cross-entropy.
// Ranking: rank(y) = #{v : logit_v > logit_y} + #{v < y : logit_v == logit_y}, i.e. ties go to
// the lower id; top-k is correct when rank < k, argmax when rank == 0.
//
// Evaluation batches are the corpus in order, cut into packed batches of at most `batch_tokens`
// real tokens (a fixed rule: a different packing could change a float's last bit).
//
//   mlm::EvalOptions options;                       // seed 1234, p = 0.15, top-5
//   mlm::EvalMetrics m = mlm::evaluate(model, tokenizer.vocab_info(), valid_corpus, options);
//   std::cout << m.loss << " " << m.single_mask_accuracy << "\n";
//
// Thread-safe on a const model: evaluate() owns its inference workspace.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "batch.hpp"
#include "collator.hpp"
#include "data.hpp"
#include "encoder.hpp"
#include "fields.hpp"
#include "random.hpp"
#include "tokenizer.hpp"

namespace mlm {

struct EvalOptions {
    uint64_t seed = 1234;              // masks of the MLM and single-mask parts
    double mask_probability = 0.15;    // MLM part: the collator's selection probability
    std::size_t max_sentences = 0;     // evaluate the first N sentences only; 0: all
    std::size_t batch_tokens = 4096;   // packing of the evaluation batches
    int top_k = 5;                     // the single-mask top-k accuracy
    bool mlm = true;                   // compute loss / accuracy
    bool single_mask = true;           // compute the single-mask metrics

    void validate() const {
        auto fail = [](const std::string& what) { throw std::invalid_argument("EvalOptions: " + what); };
        if (!(mask_probability > 0.0 && mask_probability <= 1.0))
            fail("mask_probability must be in (0, 1], got " + std::to_string(mask_probability));
        if (batch_tokens < 1) fail("batch_tokens must be positive");
        if (top_k < 1) fail("top_k must be positive, got " + std::to_string(top_k));
    }
};

inline const auto& fields(const EvalOptions*) {
    using E = EvalOptions;
    static const auto table = std::make_tuple(
        field(&E::seed, "seed", Role::run, "evaluation", "Seed of the evaluation masks"),
        field(&E::mask_probability, "mask_probability", Role::run, "evaluation", "MLM part: share of the tokens masked"),
        field(&E::max_sentences, "max_sentences", Role::run, "evaluation", "Evaluate on the first N held-out sentences (0: all)"),
        field(&E::batch_tokens, "batch_tokens", Role::run, "evaluation", "Tokens per evaluation batch"),
        field(&E::top_k, "top_k", Role::run, "evaluation", "k of the single-mask top-k accuracy"),
        field(&E::mlm, "mlm", Role::run, "evaluation", "Compute the MLM loss and accuracy"),
        field(&E::single_mask, "single_mask", Role::run, "evaluation", "Compute the single-mask metrics"));
    return table;
}
MLM_CHECK_FIELD_TABLE(EvalOptions);
inline bool operator==(const EvalOptions& a, const EvalOptions& b) { return fields_equal(a, b); }

struct EvalMetrics {
    int64_t sentences = 0;               // sentences evaluated
    // MLM part (NaN when not computed or nothing was masked)
    int64_t masked_tokens = 0;
    double loss = std::numeric_limits<double>::quiet_NaN();      // nats per masked token
    double accuracy = std::numeric_limits<double>::quiet_NaN();  // argmax == label
    // single-mask part (NaN when not computed)
    int64_t single_mask_sentences = 0;   // sentences with at least one selectable token
    double single_mask_accuracy = std::numeric_limits<double>::quiet_NaN();
    double single_mask_topk_accuracy = std::numeric_limits<double>::quiet_NaN();
    double single_mask_loss = std::numeric_limits<double>::quiet_NaN();
    int top_k = 5;
    double seconds = 0;                  // wall time of the evaluation

    double perplexity() const { return std::exp(loss); }
};

// Running sums of cross-entropy, top-1 and top-k hits over rows of logits.
// The metrics as a JSON object (NaN as null; the top-k accuracy named by its k,
// "single_mask_top5_accuracy"): log.jsonl, best/metrics.json, `mlm eval --json`. Compiled part.
std::string to_json(const EvalMetrics& metrics);

class MetricAccumulator {
public:
    explicit MetricAccumulator(int top_k = 5) : top_k_(top_k) {}

    // One row: logits (V) and its label. Cross-entropy in double (log-sum-exp).
    void add(const float* logits, int V, int32_t label) {
        if (label < 0 || label >= V)
            throw std::out_of_range("MetricAccumulator: label " + std::to_string(label) +
                                    " is outside the vocab [0, " + std::to_string(V) + ")");
        const double max = *std::max_element(logits, logits + V);
        double sum = 0.0;
        for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(logits[v]) - max);
        loss_sum_ += max + std::log(sum) - static_cast<double>(logits[label]);
        const int r = rank(logits, V, label);
        top1_ += r == 0;
        topk_ += r < top_k_;
        ++count_;
    }

    // rank of `label`: how many ids come before it when sorting by logit descending, id ascending.
    static int rank(const float* logits, int V, int32_t label) {
        const float y = logits[label];
        int r = 0;
        for (int v = 0; v < V; ++v) r += logits[v] > y || (logits[v] == y && v < label);
        return r;
    }

    int64_t count() const { return count_; }
    double mean_loss() const { return count_ ? loss_sum_ / count_ : std::numeric_limits<double>::quiet_NaN(); }
    double accuracy() const { return count_ ? static_cast<double>(top1_) / count_ : std::numeric_limits<double>::quiet_NaN(); }
    double topk_accuracy() const { return count_ ? static_cast<double>(topk_) / count_ : std::numeric_limits<double>::quiet_NaN(); }

private:
    int top_k_;
    double loss_sum_ = 0.0;
    int64_t top1_ = 0, topk_ = 0, count_ = 0;
};

// The position masked in the single-mask evaluation (and by predict_mask without a position):
// one of the selectable (non-special, see VocabInfo::is_special) positions of ids[0..n), chosen
// by (seed, sample_index). -1 when no position is selectable.
inline int single_mask_position(const int32_t* ids, int n, const VocabInfo& vocab, uint64_t seed,
                                uint64_t sample_index) {
    auto selectable = [&](int32_t id) {
        return id >= 0 && id < vocab.vocab_size && id != vocab.pad_id && id != vocab.mask_id &&
               !vocab.is_special[static_cast<std::size_t>(id)];
    };
    int count = 0;
    for (int i = 0; i < n; ++i) count += selectable(ids[i]);
    if (count == 0) return -1;
    const uint64_t bits = random_u64(seed, 0x5157ull /* "single mask" */, sample_index);
    int k = static_cast<int>((static_cast<__uint128_t>(bits) * static_cast<uint64_t>(count)) >> 64);
    for (int i = 0; i < n; ++i)
        if (selectable(ids[i]) && k-- == 0) return i;
    return -1;  // not reached
}

namespace detail {

// Consecutive corpus indices [0, n) cut into runs of at most `budget` tokens (at least one each).
inline std::vector<std::vector<std::size_t>> eval_batches(const TokenizedCorpus& corpus, std::size_t n,
                                                          std::size_t budget) {
    std::vector<std::vector<std::size_t>> out;
    std::vector<std::size_t> cur;
    std::size_t tokens = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t len = static_cast<std::size_t>(corpus.length(i));
        if (len == 0) continue;
        if (!cur.empty() && tokens + len > budget) {
            out.push_back(std::move(cur));
            cur.clear();
            tokens = 0;
        }
        cur.push_back(i);
        tokens += len;
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

}  // namespace detail

// Evaluates `model` on the sentences of `corpus` (see the file comment for the definitions).
// `vocab` must describe the model's vocabulary (Tokenizer::vocab_info()).
inline EvalMetrics evaluate(const Encoder<float>& model, const VocabInfo& vocab, const TokenizedCorpus& corpus,
                            const EvalOptions& options = {}) {
    options.validate();
    const ModelConfig& c = model.config();
    if (vocab.vocab_size != c.vocab_size)
        throw std::invalid_argument("evaluate: the tokenizer has " + std::to_string(vocab.vocab_size) +
                                    " ids but the model's vocab_size is " + std::to_string(c.vocab_size));
    const auto t0 = std::chrono::steady_clock::now();
    const std::size_t n = options.max_sentences ? std::min(options.max_sentences, corpus.size()) : corpus.size();
    for (std::size_t i = 0; i < n; ++i)
        if (corpus.length(i) > c.max_len)
            throw std::invalid_argument("evaluate: sentence " + std::to_string(i) + " has " +
                                        std::to_string(corpus.length(i)) + " tokens, more than the model's max_len " +
                                        std::to_string(c.max_len) + " (tokenize with max_length = max_len)");
    const int V = c.vocab_size;
    const auto batches = detail::eval_batches(corpus, n, options.batch_tokens);

    EvalMetrics out;
    out.top_k = options.top_k;
    for (const auto& b : batches) out.sentences += static_cast<int64_t>(b.size());

    InferenceWorkspace<float> ws;
    std::vector<float> logits;
    Batch batch;

    if (options.mlm) {
        MaskingOptions mo;
        mo.mask_probability = options.mask_probability;
        MaskingCollator collator(vocab, mo, options.seed);
        MetricAccumulator acc(options.top_k);
        for (const auto& b : batches) {
            collator.collate(corpus, b, /*epoch=*/0, batch);
            const int M = batch.num_targets();
            if (M == 0) continue;
            logits.resize(static_cast<std::size_t>(M) * V);
            model.logits(logits.data(), batch, batch.target_rows.data(), M, ws);
            for (int m = 0; m < M; ++m) acc.add(logits.data() + static_cast<std::size_t>(m) * V, V, batch.target_ids[m]);
        }
        out.masked_tokens = acc.count();
        out.loss = acc.mean_loss();
        out.accuracy = acc.accuracy();
    }

    if (options.single_mask) {
        MetricAccumulator acc(options.top_k);
        std::vector<int32_t> ids, rows, labels;
        for (const auto& b : batches) {
            batch.clear();
            rows.clear();
            labels.clear();
            for (std::size_t i : b) {
                ids.resize(static_cast<std::size_t>(corpus.length(i)));
                corpus.copy(i, ids.data());
                const int p = single_mask_position(ids.data(), static_cast<int>(ids.size()), vocab, options.seed, i);
                if (p < 0) continue;
                rows.push_back(batch.num_tokens() + p);
                labels.push_back(ids[static_cast<std::size_t>(p)]);
                ids[static_cast<std::size_t>(p)] = vocab.mask_id;
                batch.add_sequence(ids);
            }
            const int R = static_cast<int>(rows.size());
            if (R == 0) continue;
            logits.resize(static_cast<std::size_t>(R) * V);
            model.logits(logits.data(), batch, rows.data(), R, ws);
            for (int r = 0; r < R; ++r) acc.add(logits.data() + static_cast<std::size_t>(r) * V, V, labels[r]);
        }
        out.single_mask_sentences = acc.count();
        out.single_mask_accuracy = acc.accuracy();
        out.single_mask_topk_accuracy = acc.topk_accuracy();
        out.single_mask_loss = acc.mean_loss();
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

}  // namespace mlm
