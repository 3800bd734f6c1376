// MaskedLM: checkpoint load/save, predict_mask, fill_mask (see include/mlm/masked_lm.hpp).
#include <mlm/masked_lm.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <stdexcept>

#include <mlm/checkpoint.hpp>

namespace mlm {

// Inference workspaces, one per concurrent caller; handed out and returned under a lock.
struct MaskedLM::Pool {
    std::mutex mutex;
    std::vector<std::unique_ptr<InferenceWorkspace<float>>> free;

    class Lease {
    public:
        explicit Lease(Pool& pool) : pool_(pool) {
            std::lock_guard<std::mutex> lock(pool_.mutex);
            if (!pool_.free.empty()) {
                ws_ = std::move(pool_.free.back());
                pool_.free.pop_back();
            } else {
                ws_ = std::make_unique<InferenceWorkspace<float>>();
            }
        }
        ~Lease() {
            std::lock_guard<std::mutex> lock(pool_.mutex);
            if (pool_.free.size() < 8) pool_.free.push_back(std::move(ws_));
        }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        InferenceWorkspace<float>& get() { return *ws_; }

    private:
        Pool& pool_;
        std::unique_ptr<InferenceWorkspace<float>> ws_;
    };
};

namespace {

std::string trim(std::string s) {
    const auto not_space = [](unsigned char ch) { return !std::isspace(ch); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
    s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
    return s;
}

// Softmax probabilities of a row of logits, in double.
std::vector<double> softmax(const float* logits, int V) {
    std::vector<double> p(static_cast<std::size_t>(V));
    const double max = *std::max_element(logits, logits + V);
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += p[v] = std::exp(static_cast<double>(logits[v]) - max);
    for (double& x : p) x /= sum;
    return p;
}

// The k best ids of `candidates` by probability (ties: lower id first).
std::vector<int32_t> best_ids(const std::vector<double>& prob, std::vector<int32_t> candidates, int k) {
    const auto better = [&](int32_t a, int32_t b) { return prob[a] > prob[b] || (prob[a] == prob[b] && a < b); };
    const std::size_t n = std::min(candidates.size(), static_cast<std::size_t>(std::max(k, 0)));
    std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(n), candidates.end(), better);
    candidates.resize(n);
    return candidates;
}

// Every id a prediction may name: the whole vocab except control pieces ([PAD], [MASK], ...),
// which no sentence holds. Probabilities stay the softmax over the whole vocab.
std::vector<int32_t> predictable_ids(const Tokenizer& tokenizer, int V) {
    std::vector<int32_t> ids;
    ids.reserve(static_cast<std::size_t>(V));
    for (int32_t id = 0; id < V; ++id)
        if (!tokenizer.is_special(id)) ids.push_back(id);
    return ids;
}

}  // namespace

MaskedLM::MaskedLM(Encoder<float> model, Tokenizer tokenizer)
    : model_(std::make_unique<Encoder<float>>(model)), tokenizer_(std::move(tokenizer)),
      pool_(std::make_unique<Pool>()) {
    check_vocab();
    tokenizer_.set_max_length(config().max_len);
    vocab_ = tokenizer_.vocab_info();
}

MaskedLM::MaskedLM(const ModelConfig& config, Tokenizer tokenizer, uint64_t seed)
    : model_(std::make_unique<Encoder<float>>(config, seed)), tokenizer_(std::move(tokenizer)),
      pool_(std::make_unique<Pool>()) {
    check_vocab();
    tokenizer_.set_max_length(config.max_len);
    vocab_ = tokenizer_.vocab_info();
}

MaskedLM::~MaskedLM() = default;
MaskedLM::MaskedLM(MaskedLM&&) noexcept = default;
MaskedLM& MaskedLM::operator=(MaskedLM&&) noexcept = default;

void MaskedLM::check_vocab() const {
    if (!tokenizer_.loaded()) throw std::invalid_argument("MaskedLM: the tokenizer is empty");
    const ModelConfig& c = config();
    if (tokenizer_.vocab_size() != c.vocab_size)
        throw std::invalid_argument("MaskedLM: the tokenizer has " + std::to_string(tokenizer_.vocab_size()) +
                                    " ids but the model's vocab_size is " + std::to_string(c.vocab_size));
    if (tokenizer_.pad_id() != c.pad_id || tokenizer_.mask_id() != c.mask_id || tokenizer_.unk_id() != c.unk_id)
        throw std::invalid_argument(
            "MaskedLM: the tokenizer's special ids (unk " + std::to_string(tokenizer_.unk_id()) + ", pad " +
            std::to_string(tokenizer_.pad_id()) + ", mask " + std::to_string(tokenizer_.mask_id()) +
            ") differ from the model config's (unk " + std::to_string(c.unk_id) + ", pad " +
            std::to_string(c.pad_id) + ", mask " + std::to_string(c.mask_id) + ")");
}

MaskedLM MaskedLM::load(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw CheckpointError("no checkpoint at " + dir + ": the directory does not exist");
    const ModelConfig config = load_config(dir);
    Tokenizer tokenizer;
    try {
        tokenizer = Tokenizer::from_serialized(load_tokenizer_model(dir));
    } catch (const CheckpointError&) {
        throw;
    } catch (const std::exception& e) {
        throw CheckpointError(dir + "/" + checkpoint_tokenizer_file + ": not a valid tokenizer model: " + e.what());
    }
    if (tokenizer.vocab_size() != config.vocab_size)
        throw CheckpointError("checkpoint " + dir + ": tokenizer.model has " + std::to_string(tokenizer.vocab_size()) +
                              " ids but config.json says vocab_size " + std::to_string(config.vocab_size) +
                              "; the files come from different models");
    Encoder<float> model(config, 0);
    load_model_params(dir, config, model.parameters());
    try {
        return MaskedLM(std::move(model), std::move(tokenizer));
    } catch (const std::invalid_argument& e) {
        throw CheckpointError("checkpoint " + dir + ": " + e.what());
    }
}

void MaskedLM::save(const std::string& dir) const {
    ModelSaveOptions options;
    options.tokenizer_model = tokenizer_.serialized();
    save_model(dir, config(), model_->parameters(), options);
}

std::vector<int32_t> MaskedLM::encode(const std::string& text) const {
    return tokenizer_.encode(text, config().max_len);
}

std::string MaskedLM::token_string(int32_t id) const {
    if (id < 0 || id >= config().vocab_size)
        throw std::out_of_range("token id " + std::to_string(id) + " is outside the vocab [0, " +
                                std::to_string(config().vocab_size) + ")");
    if (tokenizer_.is_special(id)) return tokenizer_.id_to_piece(id);
    return trim(tokenizer_.decode(&id, 1));
}

std::vector<float> MaskedLM::logits(const std::vector<int32_t>& ids, const std::vector<int32_t>& rows) const {
    if (ids.empty()) throw std::invalid_argument("MaskedLM::logits: no token ids");
    Batch batch;
    batch.add_sequence(ids);
    std::vector<float> out(rows.size() * static_cast<std::size_t>(config().vocab_size));
    if (rows.empty()) return out;
    Pool::Lease lease(*pool_);
    model_->logits(out.data(), batch, rows.data(), static_cast<int>(rows.size()), lease.get());
    return out;
}

MaskPrediction MaskedLM::predict_mask(const std::string& sentence, uint64_t seed, int position, int top_k) const {
    const int V = config().vocab_size;
    const int32_t mask_id = config().mask_id;
    MaskPrediction p;
    p.sentence = sentence;
    p.input_ids = encode(sentence);
    const int n = static_cast<int>(p.input_ids.size());
    if (n == 0) throw std::invalid_argument("predict_mask: the sentence has no tokens");
    if (position >= 0) {
        if (position >= n)
            throw std::out_of_range("predict_mask: position " + std::to_string(position) +
                                    " is outside the sentence's " + std::to_string(n) + " tokens [0, " +
                                    std::to_string(n) + ")");
        p.position = position;
    } else {
        const auto it = std::find(p.input_ids.begin(), p.input_ids.end(), mask_id);
        if (it != p.input_ids.end()) {
            p.position = static_cast<int>(it - p.input_ids.begin());
        } else {
            p.position = single_mask_position(p.input_ids.data(), n, vocab_, seed, 0);
            if (p.position < 0)
                throw std::invalid_argument("predict_mask: the sentence has no ordinary token to mask");
        }
    }
    p.masked_id = p.input_ids[static_cast<std::size_t>(p.position)];
    p.masked_token = token_string(p.masked_id);

    std::vector<int32_t> masked = p.input_ids;
    masked[static_cast<std::size_t>(p.position)] = mask_id;
    const std::vector<float> row = logits(masked, {p.position});
    const std::vector<double> prob = softmax(row.data(), V);
    const std::vector<int32_t> best = best_ids(prob, predictable_ids(tokenizer_, V), std::max(top_k, 1));
    p.predicted_id = best.front();
    p.predicted_token = token_string(p.predicted_id);
    p.predicted_probability = prob[static_cast<std::size_t>(p.predicted_id)];
    p.correct = p.masked_id != mask_id && p.predicted_id == p.masked_id;
    for (int k = 0; k < top_k && k < static_cast<int>(best.size()); ++k)
        p.top_k.push_back({best[k], token_string(best[k]), prob[static_cast<std::size_t>(best[k])]});
    p.masked_text = tokenizer_.decode(masked);
    std::vector<int32_t> filled = masked;
    filled[static_cast<std::size_t>(p.position)] = p.predicted_id;
    p.predicted_text = tokenizer_.decode(filled);
    return p;
}

std::string format_prediction(const MaskPrediction& p) {
    return "masked: " + p.masked_token + " predicted: " + p.predicted_token + "\n" +
           "ACTUAL: " + p.sentence + "\n" +
           "MASKED: " + p.masked_text + "\n" +
           " MODEL: " + p.predicted_text + "\n";
}

// The ids fill_mask may propose: every predictable id, or the given targets (each one token).
std::vector<int32_t> MaskedLM::fill_mask_candidates(const std::vector<std::string>& targets) const {
    const int V = config().vocab_size;
    if (targets.empty()) return predictable_ids(tokenizer_, V);
    std::vector<int32_t> candidates;
    for (const std::string& target : targets) {
        int32_t id = -1;
        const std::vector<int32_t> enc = tokenizer_.encode(target, 0);
        if (enc.size() == 1) id = enc[0];
        else if (tokenizer_.piece_to_id(target) != tokenizer_.unk_id() || target == tokenizer_.id_to_piece(tokenizer_.unk_id()))
            id = tokenizer_.piece_to_id(target);
        if (id < 0)
            throw std::invalid_argument("fill_mask: target \"" + target + "\" is not a single token of the vocab (it encodes to " +
                                        std::to_string(enc.size()) + " tokens)");
        if (std::find(candidates.begin(), candidates.end(), id) == candidates.end()) candidates.push_back(id);
    }
    return candidates;
}

// Positions of the [MASK] ids of `ids` (the encoded `text`); throws when there is none. `which`
// names the text in the message ("" for a single text, "text 3: " for a list).
std::vector<int32_t> MaskedLM::mask_rows(const std::vector<int32_t>& ids, const std::string& text,
                                         const std::string& which) const {
    std::vector<int32_t> rows;
    for (int i = 0; i < static_cast<int>(ids.size()); ++i)
        if (ids[static_cast<std::size_t>(i)] == config().mask_id) rows.push_back(i);
    if (rows.empty()) {
        const bool truncated = text.find("[MASK]") != std::string::npos;
        throw std::invalid_argument(
            "fill_mask: " + which +
            (truncated ? "every [MASK] of the text lies beyond the model's " + std::to_string(config().max_len) +
                             " tokens and was truncated away"
                       : "the text must contain at least one [MASK] token (e.g. \"the capital of france is "
                         "[MASK].\")"));
    }
    return rows;
}

// The top_k candidates at one [MASK] (`row` of `ids`) from its logits; `ids` is returned as given.
std::vector<FillMaskCandidate> MaskedLM::fill_mask_row(const float* logits, std::vector<int32_t>& ids, int row,
                                                       const std::vector<int32_t>& candidates, int top_k) const {
    const std::vector<double> prob = softmax(logits, config().vocab_size);
    std::vector<FillMaskCandidate> out;
    const int32_t was = ids[static_cast<std::size_t>(row)];
    for (int32_t id : best_ids(prob, candidates, top_k)) {
        ids[static_cast<std::size_t>(row)] = id;
        out.push_back({prob[static_cast<std::size_t>(id)], id, token_string(id), tokenizer_.decode(ids)});
    }
    ids[static_cast<std::size_t>(row)] = was;
    return out;
}

FillMaskResult MaskedLM::fill_mask(const std::string& text, int top_k, const std::vector<std::string>& targets) const {
    if (top_k < 1) throw std::invalid_argument("fill_mask: top_k must be positive, got " + std::to_string(top_k));
    const std::vector<int32_t> candidates = fill_mask_candidates(targets);
    std::vector<int32_t> ids = encode(text);
    const std::vector<int32_t> rows = mask_rows(ids, text, "");
    const std::vector<float> all = logits(ids, rows);
    FillMaskResult out(rows.size());
    for (std::size_t r = 0; r < rows.size(); ++r)
        out[r] = fill_mask_row(all.data() + r * static_cast<std::size_t>(config().vocab_size), ids, rows[r],
                               candidates, top_k);
    return out;
}

FillMaskResults MaskedLM::fill_mask(const std::vector<std::string>& texts, int top_k,
                                   const std::vector<std::string>& targets, int batch_tokens) const {
    if (top_k < 1) throw std::invalid_argument("fill_mask: top_k must be positive, got " + std::to_string(top_k));
    if (batch_tokens < 1)
        throw std::invalid_argument("fill_mask: batch_tokens must be positive, got " + std::to_string(batch_tokens));
    const std::vector<int32_t> candidates = fill_mask_candidates(targets);
    const std::size_t n = texts.size();
    std::vector<std::vector<int32_t>> ids(n), rows(n);
    for (std::size_t t = 0; t < n; ++t) {  // every text is checked before any work is done
        ids[t] = encode(texts[t]);
        rows[t] = mask_rows(ids[t], texts[t], "text " + std::to_string(t) + ": ");
    }
    const int V = config().vocab_size;
    // At most this many [MASK] rows per forward pass: their logits are (rows, V) floats.
    constexpr std::size_t max_rows = 1024;
    FillMaskResults out(n);
    Pool::Lease lease(*pool_);
    Batch batch;
    std::vector<int32_t> batch_rows;
    std::vector<float> logits;
    std::size_t first = 0;
    while (first < n) {
        // texts [first, last) in one packed batch (no padding: sequences are concatenated)
        std::size_t last = first, tokens = 0, masks = 0;
        while (last < n && (last == first || (tokens + ids[last].size() <= static_cast<std::size_t>(batch_tokens) &&
                                              masks + rows[last].size() <= max_rows))) {
            tokens += ids[last].size();
            masks += rows[last].size();
            ++last;
        }
        batch.clear();
        batch_rows.clear();
        for (std::size_t t = first; t < last; ++t) {
            const int offset = batch.num_tokens();
            batch.add_sequence(ids[t]);
            for (int32_t r : rows[t]) batch_rows.push_back(offset + r);
        }
        logits.resize(batch_rows.size() * static_cast<std::size_t>(V));
        model_->logits(logits.data(), batch, batch_rows.data(), static_cast<int>(batch_rows.size()), lease.get());
        std::size_t at = 0;  // index of the text's first row in batch_rows
        for (std::size_t t = first; t < last; ++t) {
            out[t].resize(rows[t].size());
            for (std::size_t r = 0; r < rows[t].size(); ++r)
                out[t][r] = fill_mask_row(logits.data() + (at + r) * static_cast<std::size_t>(V), ids[t], rows[t][r],
                                          candidates, top_k);
            at += rows[t].size();
        }
        first = last;
    }
    return out;
}

EvalMetrics MaskedLM::evaluate(const TokenizedCorpus& corpus, const EvalOptions& options) const {
    return mlm::evaluate(*model_, vocab_, corpus, options);
}

EvalMetrics MaskedLM::evaluate_file(const std::string& path, const EvalOptions& options) const {
    TokenizeOptions to;
    to.max_length = config().max_len;  // the whole file: the first N sentences are those of evaluate()
    return evaluate(tokenize_file(tokenizer_, path, to), options);
}

}  // namespace mlm
