// mlm/masked_lm.hpp — a trained model with its tokenizer: load, save, predict_mask, fill_mask.
//
// MaskedLM is what a user of the original notebook holds after training: an Encoder<float> and
// the Tokenizer it was trained with, loaded from (or saved to) a checkpoint directory
// (config.json, model.safetensors, tokenizer.model; see checkpoint.hpp). The command line
// (`mlm predict`, `mlm fill-mask`, `mlm eval`) and the Python module both use it.
//
//   auto lm = mlm::MaskedLM::load("runs/wiki");             // or runs/wiki/best
//   mlm::MaskPrediction p = lm.predict_mask("hello! how are you?", /*seed=*/7);
//   std::cout << mlm::format_prediction(p);
//   // masked: you predicted: you
//   // ACTUAL: hello! how are you?
//   // MASKED: hello! how are [MASK]?
//   //  MODEL: hello! how are you?
//   for (const auto& c : lm.fill_mask("the capital of france is [MASK].", 5)[0])
//       std::cout << c.score << " " << c.token_str << " " << c.sequence << "\n";
//   mlm::FillMaskResult two = lm.fill_mask("the [MASK] of france is [MASK].", 3);
//   std::cout << two.size() << " masks, best second: " << two[1][0].token_str << "\n";
//
// (examples/fill_mask.cpp and examples/predict_mask.cpp are whole programs doing this; the lines
// above are compiled and run by the test test_header_examples, see tests/CMakeLists.txt.)
//
// predict_mask follows the original's predict_mask: the sentence is tokenized (lower-cased,
// truncated to max_len), one token is replaced by [MASK] and the model's argmax fills it (over the
// vocab less control pieces such as [PAD] and [MASK], which no sentence holds). Which
// token: `position` (0-based index into the sentence's token ids) when given; otherwise, if the
// text contains "[MASK]", the first [MASK]; otherwise a random selectable (non-special) token
// chosen by `seed` with the rule of the single-mask evaluation (single_mask_position(seed, 0)).
// Other [MASK]s of the text stay masked (use fill_mask to predict several).
//
// fill_mask predicts every [MASK] of the text in one forward pass, each position independently
// of the others (every other [MASK] is still a [MASK] in the model's input, as in Hugging Face's
// fill-mask pipeline): the result has one candidate list per [MASK], in text order, each sorted by
// score (the softmax probability over the whole vocab; control pieces are never candidates).
// `sequence` is the text decoded with only that one [MASK] filled in. The result is a
// FillMaskResult, a vector that is safe to index as a temporary (see TemporarySafeVector), so the
// loop above is correct as written.
//
// Thread safety: every const member may be called from several threads at once; inference takes a
// workspace from a small internal pool (one per concurrent caller, reused afterwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "checkpoint.hpp"
#include "config.hpp"
#include "data.hpp"
#include "encoder.hpp"
#include "metrics.hpp"
#include "tokenizer.hpp"

namespace mlm {

struct TokenScore {
    int32_t id = 0;
    std::string token;         // readable: "paris" (decoded), or the piece of a special id "[PAD]"
    double probability = 0.0;  // softmax over the whole vocab
};

struct MaskPrediction {
    std::string sentence;             // the input as given (the ACTUAL line)
    std::vector<int32_t> input_ids;   // its token ids, before masking
    int position = -1;                // index into input_ids that was masked
    int32_t masked_id = 0;            // input_ids[position] (the mask id if the text had [MASK])
    std::string masked_token;         // its readable form ("[MASK]" if the text had [MASK])
    int32_t predicted_id = 0;         // argmax over the non-control vocab at the masked position
    std::string predicted_token;
    double predicted_probability = 0.0;
    std::string masked_text;          // decoded with [MASK] at the position (the MASKED line)
    std::string predicted_text;       // decoded with the prediction there (the MODEL line)
    bool correct = false;             // predicted_id == masked_id (false when the text had [MASK])
    std::vector<TokenScore> top_k;    // best first
};

// The original's four lines, each ending in '\n':
//   masked: X predicted: Y
//   ACTUAL: <sentence>
//   MASKED: <masked_text>
//    MODEL: <predicted_text>
std::string format_prediction(const MaskPrediction& prediction);

struct FillMaskCandidate {
    double score = 0.0;      // softmax probability of this token at this [MASK]
    int32_t token = 0;       // id
    std::string token_str;   // readable form of the token
    std::string sequence;    // the text (decoded) with this [MASK] filled by the token
};

// A std::vector whose elements are returned by value when the vector itself is a temporary.
// `lm.fill_mask(text)[0]` on a plain vector is a reference into a vector that dies at the end of
// the expression, so `for (const auto& c : lm.fill_mask(text)[0])` would loop over freed memory;
// here operator[], at, front and back of a temporary move the element out, and the loop runs over
// that copy, which lives as long as the loop. A named result indexes by reference, as any vector,
// and converts to the plain vector type (by move or copy). `Element` is what an element becomes
// when moved out (the vector one level down, so the rule holds for nested results too).
template <class T, class Element = T>
class TemporarySafeVector : public std::vector<T> {
public:
    using Base = std::vector<T>;
    using Base::Base;
    TemporarySafeVector() = default;
    TemporarySafeVector(Base elements) : Base(std::move(elements)) {}

    T& operator[](std::size_t i) & { return Base::operator[](i); }
    const T& operator[](std::size_t i) const& { return Base::operator[](i); }
    Element operator[](std::size_t i) && { return Element(std::move(Base::operator[](i))); }
    T& at(std::size_t i) & { return Base::at(i); }
    const T& at(std::size_t i) const& { return Base::at(i); }
    Element at(std::size_t i) && { return Element(std::move(Base::at(i))); }
    T& front() & { return Base::front(); }
    const T& front() const& { return Base::front(); }
    Element front() && { return Element(std::move(Base::front())); }
    T& back() & { return Base::back(); }
    const T& back() const& { return Base::back(); }
    Element back() && { return Element(std::move(Base::back())); }
};

// fill_mask of one text: one candidate list per [MASK], in text order.
using FillMaskResult = TemporarySafeVector<std::vector<FillMaskCandidate>>;
// fill_mask of many texts: one FillMaskResult per text.
using FillMaskResults = TemporarySafeVector<std::vector<std::vector<FillMaskCandidate>>, FillMaskResult>;

class MaskedLM {
public:
    // Takes a model and the tokenizer it was trained with; throws std::invalid_argument if the
    // tokenizer's vocab size or special ids differ from the model config's.
    MaskedLM(Encoder<float> model, Tokenizer tokenizer);
    // A freshly initialised model (weights from `seed`) for `tokenizer`.
    MaskedLM(const ModelConfig& config, Tokenizer tokenizer, uint64_t seed = 0);
    ~MaskedLM();
    MaskedLM(MaskedLM&&) noexcept;
    MaskedLM& operator=(MaskedLM&&) noexcept;

    // Loads a checkpoint directory. A missing directory or file, a corrupt file, or a tokenizer
    // whose vocab does not match config.json throws mlm::CheckpointError naming the problem.
    static MaskedLM load(const std::string& dir);
    // Writes config.json, model.safetensors and tokenizer.model into `dir` (atomically, see
    // checkpoint.hpp). Leaves any trainer state in the directory alone.
    void save(const std::string& dir) const;

    const ModelConfig& config() const { return model_->config(); }
    const Encoder<float>& model() const { return *model_; }
    Encoder<float>& model() { return *model_; }
    const Tokenizer& tokenizer() const { return tokenizer_; }

    // The tokenizer's ids for `text`, truncated to the model's max_len.
    std::vector<int32_t> encode(const std::string& text) const;
    // Readable form of one id: decoded ("paris"), or the piece for special ids ("[MASK]").
    std::string token_string(int32_t id) const;

    // See the file comment. position < 0: not given. top_k: entries of MaskPrediction::top_k.
    // Throws std::invalid_argument if the sentence has no token to mask, std::out_of_range if
    // `position` is outside its tokens.
    MaskPrediction predict_mask(const std::string& sentence, uint64_t seed = 0, int position = -1,
                                int top_k = 5) const;

    // See the file comment. `targets` (optional) restricts the candidates to these tokens (each
    // must be one token of the vocab: a piece such as "▁paris", or a word that encodes to a
    // single id); their scores are still the probabilities over the whole vocab. Throws
    // std::invalid_argument when the text holds no [MASK] (after truncation to max_len) or a
    // target is not a single token.
    FillMaskResult fill_mask(const std::string& text, int top_k = 5,
                             const std::vector<std::string>& targets = {}) const;
    // fill_mask for many texts: result[t] is fill_mask(texts[t], ...). The texts are packed into
    // batches of at most `batch_tokens` tokens, so a forward pass multiplies large matrices (one
    // text at a time multiplies ~30 rows); the results equal one-text calls up to float rounding
    // in the last bits of the scores. Errors (a text without [MASK], ...) name the text's index.
    FillMaskResults fill_mask(const std::vector<std::string>& texts, int top_k = 5,
                              const std::vector<std::string>& targets = {}, int batch_tokens = 4096) const;

    // Logits (rows.size(), V), row-major, at the given positions of one sequence of ids.
    std::vector<float> logits(const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) const;

    // evaluate() (metrics.hpp) of this model on a tokenized corpus, or on a text file (plain, .gz,
    // .xz) tokenized with max_length = max_len.
    EvalMetrics evaluate(const TokenizedCorpus& corpus, const EvalOptions& options = {}) const;
    EvalMetrics evaluate_file(const std::string& path, const EvalOptions& options = {}) const;

private:
    struct Pool;
    void check_vocab() const;
    std::vector<int32_t> fill_mask_candidates(const std::vector<std::string>& targets) const;
    std::vector<int32_t> mask_rows(const std::vector<int32_t>& ids, const std::string& text, const std::string& which) const;
    std::vector<FillMaskCandidate> fill_mask_row(const float* logits, std::vector<int32_t>& ids, int row,
                                                 const std::vector<int32_t>& candidates, int top_k) const;
    std::unique_ptr<Encoder<float>> model_;
    Tokenizer tokenizer_;
    VocabInfo vocab_;  // tokenizer_.vocab_info(), computed once
    std::unique_ptr<Pool> pool_;
};

}  // namespace mlm
