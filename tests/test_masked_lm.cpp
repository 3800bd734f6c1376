// MaskedLM: checkpoint round trip and load errors, predict_mask (the original's four lines),
// fill_mask, concurrent inference.
//
// `test_masked_lm --write-torch-case=DIR` writes checkpoints of two small random models (both norm
// placements) and the logits of a few sentences at every position (DIR/<placement>/cases.safetensors:
// ids.<i> I32, logits.<i> F32) for tests/check_torch_logits.py, which loads the checkpoints into
// the PyTorch reference model and compares.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mlm/checkpoint.hpp>
#include <mlm/masked_lm.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <iterator>
#include <map>
#include <set>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const std::string kValidFile = std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt";

std::string temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("mlm_test_masked_lm_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

const mlm::Tokenizer& small_tokenizer() {
    static const mlm::Tokenizer tok = [] {
        mlm::TokenizerTrainOptions o;
        o.vocab_size = 500;
        o.character_coverage = 1.0;
        return mlm::Tokenizer::train_from_sentences(mlm::read_lines(kValidFile), o);
    }();
    return tok;
}

mlm::ModelConfig small_config(int vocab, mlm::NormPlacement placement = mlm::NormPlacement::reference) {
    mlm::ModelConfig c;
    c.vocab_size = vocab;
    c.dim = 32;
    c.n_heads = 4;
    c.n_layers = 2;
    c.norm_placement = placement;
    c.init_std = 0.3f;  // larger than the default so that the logits spread out
    return c;
}

const mlm::MaskedLM& small_model() {
    static const mlm::MaskedLM lm(small_config(small_tokenizer().vocab_size()), small_tokenizer(), 5);
    return lm;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

const char* const kSentences[] = {"hello! how are you?", "The larvae are black and flattened and feed on snails as well.",
                                  "the capital of france is [MASK].", "Throughout the year, the facility hosts a variety of programs."};

}  // namespace

// ============================================================================================
// checkpoints
// ============================================================================================

TEST_CASE("MaskedLM: save and load round trip") {
    const std::string dir = temp_dir("roundtrip");
    const mlm::MaskedLM& lm = small_model();
    lm.save(dir);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) CHECK(fs::exists(dir + "/" + f));
    const mlm::MaskedLM back = mlm::MaskedLM::load(dir);
    CHECK(mlm::to_json(back.config()) == mlm::to_json(lm.config()));
    CHECK(back.tokenizer().serialized() == lm.tokenizer().serialized());
    REQUIRE(back.model().num_parameters() == lm.model().num_parameters());
    CHECK(std::memcmp(back.model().parameters(), lm.model().parameters(), lm.model().num_parameters() * sizeof(float)) == 0);
    for (const char* s : kSentences) {
        const mlm::MaskPrediction a = lm.predict_mask(s, 3), b = back.predict_mask(s, 3);
        CHECK(a.predicted_id == b.predicted_id);
        CHECK(a.predicted_probability == b.predicted_probability);  // same weights: bit for bit
    }
    fs::remove_all(dir);
}

TEST_CASE("MaskedLM::load: clear errors for a missing or mismatched checkpoint") {
    CHECK_THROWS_WITH_AS(mlm::MaskedLM::load("/nonexistent/mlm/ckpt"), doctest::Contains("does not exist"),
                         mlm::CheckpointError);
    const std::string dir = temp_dir("errors");
    CHECK_THROWS_WITH_AS(mlm::MaskedLM::load(dir), doctest::Contains("config.json is missing"), mlm::CheckpointError);
    small_model().save(dir);
    fs::remove(dir + "/tokenizer.model");
    CHECK_THROWS_WITH_AS(mlm::MaskedLM::load(dir), doctest::Contains("tokenizer.model is missing"), mlm::CheckpointError);
    // a tokenizer of another vocab size
    mlm::TokenizerTrainOptions o;
    o.vocab_size = 300;
    const mlm::Tokenizer other = mlm::Tokenizer::train_from_sentences(mlm::read_lines(kValidFile), o);
    mlm::save_tokenizer_model(dir, other.serialized());
    CHECK_THROWS_WITH_AS(mlm::MaskedLM::load(dir), doctest::Contains("vocab_size 500"), mlm::CheckpointError);
    // a corrupt tokenizer
    mlm::save_tokenizer_model(dir, "not a model");
    CHECK_THROWS_WITH_AS(mlm::MaskedLM::load(dir), doctest::Contains("tokenizer"), mlm::CheckpointError);
    fs::remove_all(dir);
    // the constructor checks the vocab too
    CHECK_THROWS_WITH_AS(mlm::MaskedLM(small_config(400), small_tokenizer()), doctest::Contains("vocab_size is 400"),
                         std::invalid_argument);
}

// ============================================================================================
// predict_mask
// ============================================================================================

TEST_CASE("predict_mask: the original's four lines") {
    const mlm::MaskedLM& lm = small_model();
    const mlm::Tokenizer& tok = lm.tokenizer();
    const std::string sentence = "hello! how are you?";
    const std::vector<int32_t> ids = lm.encode(sentence);
    int are = -1;
    for (int i = 0; i < static_cast<int>(ids.size()); ++i)
        if (tok.id_to_piece(ids[static_cast<std::size_t>(i)]) == "\xe2\x96\x81" "are") are = i;
    REQUIRE(are >= 0);

    const mlm::MaskPrediction p = lm.predict_mask(sentence, 0, are);
    CHECK(p.position == are);
    CHECK(p.masked_token == "are");
    CHECK(p.masked_text == "hello! how [MASK] you?");
    std::vector<int32_t> filled = ids;
    filled[static_cast<std::size_t>(are)] = p.predicted_id;
    CHECK(p.predicted_text == tok.decode(filled));
    CHECK(p.correct == (p.predicted_id == ids[static_cast<std::size_t>(are)]));
    const std::vector<std::string> lines = lines_of(mlm::format_prediction(p));
    REQUIRE(lines.size() == 4);
    CHECK(lines[0] == "masked: are predicted: " + p.predicted_token);
    CHECK(lines[1] == "ACTUAL: hello! how are you?");
    CHECK(lines[2] == "MASKED: hello! how [MASK] you?");
    CHECK(lines[3] == " MODEL: " + p.predicted_text);
    // top-k: best first, the first is the prediction, probabilities of a softmax
    REQUIRE(p.top_k.size() == 5);
    CHECK(p.top_k[0].id == p.predicted_id);
    CHECK(p.top_k[0].probability == doctest::Approx(p.predicted_probability));
    for (std::size_t k = 1; k < p.top_k.size(); ++k) CHECK(p.top_k[k].probability <= p.top_k[k - 1].probability);
    CHECK(p.top_k[0].probability < 1.0);
}

TEST_CASE("predict_mask: the position comes from --position, a [MASK] in the text, or the seed") {
    const mlm::MaskedLM& lm = small_model();
    const std::string s = kSentences[1];
    // a seed fixes the position; different seeds find different ones
    std::set<int> positions;
    for (uint64_t seed = 0; seed < 20; ++seed) {
        const mlm::MaskPrediction p = lm.predict_mask(s, seed);
        CHECK(p.position == lm.predict_mask(s, seed).position);
        CHECK_FALSE(lm.tokenizer().is_special(p.masked_id));
        CHECK(p.masked_text.find("[MASK]") != std::string::npos);
        CHECK(p.sentence == s);
        positions.insert(p.position);
    }
    CHECK(positions.size() >= 5);
    // a [MASK] in the text is filled
    const mlm::MaskPrediction m = lm.predict_mask("the capital of france is [MASK].", 123);
    CHECK(m.masked_id == lm.config().mask_id);
    CHECK(m.masked_token == "[MASK]");
    CHECK_FALSE(m.correct);
    CHECK(m.masked_text == "the capital of france is [MASK].");
    CHECK(m.predicted_text.find("[MASK]") == std::string::npos);
    // errors
    CHECK_THROWS_AS(lm.predict_mask(s, 0, 1000), std::out_of_range);
    CHECK_THROWS_AS(lm.predict_mask("", 0), std::invalid_argument);
    CHECK(lm.predict_mask("[MASK]", 0).position == 0);
}

// ============================================================================================
// fill_mask
// ============================================================================================

TEST_CASE("fill_mask: scores, tokens and filled sentences per [MASK]") {
    const mlm::MaskedLM& lm = small_model();
    const std::string text = "the capital of france is [MASK].";
    const auto result = lm.fill_mask(text, 5);
    REQUIRE(result.size() == 1);
    REQUIRE(result[0].size() == 5);
    double sum = 0;
    for (std::size_t k = 0; k < 5; ++k) {
        const mlm::FillMaskCandidate& c = result[0][k];
        CHECK(c.score > 0);
        CHECK(c.score <= 1);
        if (k) CHECK(c.score <= result[0][k - 1].score);
        sum += c.score;
        CHECK(c.token_str == lm.token_string(c.token));
        std::vector<int32_t> ids = lm.encode(text);
        for (int32_t& id : ids)
            if (id == lm.config().mask_id) id = c.token;
        CHECK(c.sequence == lm.tokenizer().decode(ids));
        CHECK(c.sequence.find("[MASK]") == std::string::npos);
    }
    CHECK(sum <= 1.0 + 1e-9);
    // the scores are the softmax the model computes
    const std::vector<int32_t> ids = lm.encode(text);
    const int row = static_cast<int>(std::find(ids.begin(), ids.end(), lm.config().mask_id) - ids.begin());
    const std::vector<float> logits = lm.logits(ids, {row});
    double z = 0;
    for (float l : logits) z += std::exp(static_cast<double>(l));
    CHECK(result[0][0].score == doctest::Approx(std::exp(static_cast<double>(logits[static_cast<std::size_t>(result[0][0].token)])) / z));

    // several masks: one list each, predicted independently (the other stays masked)
    const auto two = lm.fill_mask("[MASK] capital of france is [MASK].", 3);
    REQUIRE(two.size() == 2);
    for (const auto& list : two) {
        REQUIRE(list.size() == 3);
        for (const auto& c : list) CHECK(c.sequence.find("[MASK]") != std::string::npos);
    }
    // targets restrict the candidates; their scores are unchanged
    const std::string t0 = result[0][2].token_str, t1 = result[0][0].token_str;
    if (lm.tokenizer().encode(t0, 0).size() == 1 && lm.tokenizer().encode(t1, 0).size() == 1) {
        const auto restricted = lm.fill_mask(text, 5, {t0, t1});
        REQUIRE(restricted[0].size() == 2);
        CHECK(restricted[0][0].token == result[0][0].token);
        CHECK(restricted[0][0].score == result[0][0].score);
        CHECK(restricted[0][1].token == result[0][2].token);
    }
    CHECK_THROWS_WITH_AS(lm.fill_mask(text, 5, {"zzzqqqxxx"}), doctest::Contains("not a single token"), std::invalid_argument);
}

TEST_CASE("fill_mask on many texts: packed forward passes give the one-text results") {
    const mlm::MaskedLM& lm = small_model();
    std::vector<std::string> texts;
    for (int i = 0; i < 40; ++i)  // 40 texts of 7-16 tokens: more than the few-rows GEMM path
        texts.push_back(std::string(i % 3 ? "the [MASK] of" : "[MASK] capital of france is [MASK]") +
                        std::string(static_cast<std::size_t>(i % 5), ' ') + " the city number " + std::to_string(i) + ".");
    for (const int batch_tokens : {4096, 50, 1}) {  // one pass; a few texts per pass; one text per pass
        CAPTURE(batch_tokens);
        const auto batched = lm.fill_mask(texts, 4, {}, batch_tokens);
        REQUIRE(batched.size() == texts.size());
        for (std::size_t t = 0; t < texts.size(); ++t) {
            const auto one = lm.fill_mask(texts[t], 4);
            REQUIRE(batched[t].size() == one.size());
            for (std::size_t r = 0; r < one.size(); ++r) {
                REQUIRE(batched[t][r].size() == one[r].size());
                for (std::size_t k = 0; k < one[r].size(); ++k) {
                    // the same candidates; scores equal up to the rounding of another GEMM path
                    CHECK(batched[t][r][k].token == one[r][k].token);
                    CHECK(batched[t][r][k].sequence == one[r][k].sequence);
                    CHECK(batched[t][r][k].score == doctest::Approx(one[r][k].score).epsilon(1e-5));
                }
            }
        }
    }
    // errors name the text; nothing is computed before every text is checked
    const std::vector<std::string> bad = {"a [MASK] here.", "none here."};
    CHECK_THROWS_WITH_AS(lm.fill_mask(bad, 5), doctest::Contains("text 1: "), std::invalid_argument);
    CHECK_THROWS_AS(lm.fill_mask(texts, 5, {}, 0), std::invalid_argument);
    CHECK(lm.fill_mask(std::vector<std::string>{}, 5).empty());
}

// A loop straight over an element of a temporary result (the usage example of masked_lm.hpp)
// iterates a moved-out copy, not a reference into the destroyed result; under AddressSanitizer a
// plain std::vector here is a heap-use-after-free.
static_assert(std::is_same_v<decltype(std::declval<mlm::FillMaskResult>()[0]), std::vector<mlm::FillMaskCandidate>>);
static_assert(std::is_same_v<decltype(std::declval<mlm::FillMaskResult&>()[0]), std::vector<mlm::FillMaskCandidate>&>);
static_assert(std::is_same_v<decltype(std::declval<const mlm::FillMaskResult&>()[0]),
                             const std::vector<mlm::FillMaskCandidate>&>);
static_assert(std::is_same_v<decltype(std::declval<mlm::FillMaskResults>()[0]), mlm::FillMaskResult>);
static_assert(std::is_same_v<decltype(std::declval<mlm::FillMaskResults>().at(0).front()),
                             std::vector<mlm::FillMaskCandidate>>);

TEST_CASE("fill_mask: looping over an element of the temporary result is safe and sees the result") {
    const mlm::MaskedLM& lm = small_model();
    const std::string text = "the [MASK] of france is [MASK].";
    const mlm::FillMaskResult named = lm.fill_mask(text, 4);
    REQUIRE(named.size() == 2);
    std::vector<std::string> looped;
    for (const auto& c : lm.fill_mask(text, 4)[1]) looped.push_back(c.sequence);
    for (const auto& c : lm.fill_mask(text, 4).back()) looped.push_back(c.sequence);
    for (const auto& c : lm.fill_mask(std::vector<std::string>{"a [MASK].", text}, 4)[1][1]) looped.push_back(c.sequence);
    REQUIRE(looped.size() == 12);
    for (std::size_t k = 0; k < 12; ++k) CHECK(looped[k] == named[1][k % 4].sequence);
    // a result converts to the plain vectors the callers before it used
    std::vector<std::vector<mlm::FillMaskCandidate>> plain = lm.fill_mask(text, 4);
    CHECK(plain.size() == 2);
    std::vector<std::vector<std::vector<mlm::FillMaskCandidate>>> plain_texts = lm.fill_mask(std::vector<std::string>{text}, 4);
    CHECK(plain_texts.at(0).size() == 2);
    CHECK_THROWS_AS(lm.fill_mask(text, 4).at(2), std::out_of_range);
}

TEST_CASE("predictions never name a control piece ([PAD], [MASK], ...)") {
    const mlm::MaskedLM& lm = small_model();
    const mlm::Tokenizer& tok = lm.tokenizer();
    const int V = tok.vocab_size();
    int specials = 0;
    for (int id = 0; id < V; ++id) specials += tok.is_special(id) ? 1 : 0;
    REQUIRE(specials >= 2);  // at least [PAD] and [MASK]
    // Ask for every candidate: all ordinary ids come back, no control id does.
    const auto fill = lm.fill_mask("the river flows [MASK] the city.", V);
    REQUIRE(fill.size() == 1);
    CHECK(static_cast<int>(fill[0].size()) == V - specials);
    for (const auto& c : fill[0]) CHECK_FALSE(tok.is_special(c.token));
    const mlm::MaskPrediction p = lm.predict_mask("the river flows through the city.", 3, -1, V);
    CHECK(static_cast<int>(p.top_k.size()) == V - specials);
    for (const auto& t : p.top_k) CHECK_FALSE(tok.is_special(t.id));
    CHECK_FALSE(tok.is_special(p.predicted_id));
}

TEST_CASE("fill_mask: a text without [MASK] is an error naming it") {
    const mlm::MaskedLM& lm = small_model();
    CHECK_THROWS_WITH_AS(lm.fill_mask("the capital of france is paris.", 5), doctest::Contains("[MASK]"),
                         std::invalid_argument);
    CHECK_THROWS_AS(lm.fill_mask("a [mask] in lower case is not a mask", 5), std::invalid_argument);
    CHECK_THROWS_AS(lm.fill_mask("[MASK]", 0), std::invalid_argument);
}

namespace {

// Everything one round of inference calls returns, compared exactly: the same weights and inputs
// must give the same bits whichever thread runs them and whatever runs beside it.
struct InferenceResults {
    std::vector<mlm::MaskPrediction> predictions;
    std::vector<std::vector<std::vector<mlm::FillMaskCandidate>>> fills;
    std::vector<std::vector<float>> logits;
};

bool same(const mlm::MaskPrediction& a, const mlm::MaskPrediction& b) {
    if (a.position != b.position || a.predicted_id != b.predicted_id ||
        a.predicted_probability != b.predicted_probability || a.predicted_text != b.predicted_text ||
        a.top_k.size() != b.top_k.size())
        return false;
    for (std::size_t k = 0; k < a.top_k.size(); ++k)
        if (a.top_k[k].id != b.top_k[k].id || a.top_k[k].probability != b.top_k[k].probability) return false;
    return true;
}

bool same(const std::vector<std::vector<mlm::FillMaskCandidate>>& a,
          const std::vector<std::vector<mlm::FillMaskCandidate>>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t m = 0; m < a.size(); ++m) {
        if (a[m].size() != b[m].size()) return false;
        for (std::size_t k = 0; k < a[m].size(); ++k)
            if (a[m][k].token != b[m][k].token || a[m][k].score != b[m][k].score ||
                a[m][k].sequence != b[m][k].sequence)
                return false;
    }
    return true;
}

// Inputs of different lengths (a workspace shared by mistake would be resized under another
// caller) and several [MASK]s.
const char* const kThreadTexts[] = {
    "hello! how are you?",
    "The larvae are black and flattened and feed on snails as well.",
    "the capital of france is [MASK].",
    "[MASK] the year, the facility hosts a variety of programs and [MASK] events for the community.",
    "a",
    "Throughout the year, the facility hosts a variety of programs, concerts, lectures and exhibitions "
    "that draw visitors from the whole region and beyond, many of them for the first time.",
};

// Call i of a thread's sequence: predict_mask, fill_mask (texts with a [MASK]) and logits of
// every position, for input i.
void infer(const mlm::MaskedLM& lm, std::size_t i, InferenceResults& out) {
    const std::string text = kThreadTexts[i];
    out.predictions[i] = lm.predict_mask(text, 9 + i, -1, 5);
    if (text.find("[MASK]") != std::string::npos) out.fills[i] = lm.fill_mask(text, 5);
    const std::vector<int32_t> ids = lm.encode(text);
    std::vector<int32_t> rows(ids.size());
    for (std::size_t r = 0; r < rows.size(); ++r) rows[r] = static_cast<int32_t>(r);
    out.logits[i] = lm.logits(ids, rows);
}

}  // namespace

TEST_CASE("inference from several threads at once gives the serial results") {
    const mlm::MaskedLM& lm = small_model();
    constexpr std::size_t n_inputs = std::size(kThreadTexts);
    const auto fresh = [] {
        InferenceResults r;
        r.predictions.resize(n_inputs);
        r.fills.resize(n_inputs);
        r.logits.resize(n_inputs);
        return r;
    };
    InferenceResults serial = fresh();
    for (std::size_t i = 0; i < n_inputs; ++i) infer(lm, i, serial);

    // More threads than the pool keeps workspaces for (8), so workspaces are also made and
    // dropped while others run. Each thread starts at another input, so different inputs (and
    // sizes) run side by side; a spin barrier makes them start together.
    constexpr int n_threads = 10, rounds = 6;
    std::atomic<int> arrived{0};
    std::vector<int> mismatches(n_threads, 0);
    std::vector<std::string> errors(n_threads);
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t)
        threads.emplace_back([&, t] {
            arrived.fetch_add(1);
            while (arrived.load() < n_threads) std::this_thread::yield();
            try {
                InferenceResults mine = fresh();
                for (int round = 0; round < rounds; ++round)
                    for (std::size_t j = 0; j < n_inputs; ++j) {
                        const std::size_t i = (j + static_cast<std::size_t>(t)) % n_inputs;
                        infer(lm, i, mine);
                        mismatches[static_cast<std::size_t>(t)] +=
                            !same(mine.predictions[i], serial.predictions[i]) || !same(mine.fills[i], serial.fills[i]) ||
                            mine.logits[i] != serial.logits[i];
                    }
            } catch (const std::exception& e) {
                errors[static_cast<std::size_t>(t)] = e.what();
            }
        });
    for (auto& th : threads) th.join();
    for (int t = 0; t < n_threads; ++t) {
        CAPTURE(t);
        CHECK(errors[static_cast<std::size_t>(t)] == "");
        CHECK(mismatches[static_cast<std::size_t>(t)] == 0);
    }
}

TEST_CASE("MaskedLM::evaluate is mlm::evaluate; evaluate_file reads the file as it is") {
    const mlm::MaskedLM& lm = small_model();
    mlm::EvalOptions o;
    o.max_sentences = 50;
    mlm::TokenizeOptions to;
    to.max_length = lm.config().max_len;
    const mlm::TokenizedCorpus corpus = mlm::tokenize_file(lm.tokenizer(), kValidFile, to);
    const mlm::EvalMetrics a = lm.evaluate(corpus, o), b = mlm::evaluate(lm.model(), lm.tokenizer().vocab_info(), corpus, o),
                           c = lm.evaluate_file(kValidFile, o);
    CHECK(a.sentences == 50);
    CHECK(a.loss == b.loss);
    CHECK(a.loss == c.loss);
    CHECK(a.single_mask_accuracy == c.single_mask_accuracy);
    CHECK(a.accuracy >= 0);
    CHECK(a.accuracy <= 1);
}

// ============================================================================================
// the torch comparison's C++ half
// ============================================================================================

namespace {

int write_torch_case(const std::string& dir) {
    const mlm::Tokenizer& tok = small_tokenizer();
    for (auto placement : {mlm::NormPlacement::reference, mlm::NormPlacement::pre}) {
        const std::string out = (fs::path(dir) / mlm::to_string(placement)).string();
        fs::create_directories(out);
        const mlm::MaskedLM lm(small_config(tok.vocab_size(), placement), tok, 17);
        lm.save(out);
        std::vector<std::vector<int32_t>> ids;
        std::vector<std::vector<float>> logits;
        std::map<std::string, mlm::TensorRef> refs;
        for (const char* s : kSentences) {
            ids.push_back(lm.encode(s));
            std::vector<int32_t> rows(ids.back().size());
            for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
            logits.push_back(lm.logits(ids.back(), rows));
        }
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const auto n = static_cast<int64_t>(ids[i].size());
            refs["ids." + std::to_string(i)] = mlm::tensor_ref(ids[i].data(), {n});
            refs["logits." + std::to_string(i)] = mlm::tensor_ref(logits[i].data(), {n, lm.config().vocab_size});
        }
        mlm::save_tensors(out + "/cases.safetensors", refs);
        std::cout << "wrote " << out << "\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string flag = "--write-torch-case=";
    for (int i = 1; i < argc; ++i)
        if (std::strncmp(argv[i], flag.c_str(), flag.size()) == 0) {
            try {
                return write_torch_case(argv[i] + flag.size());
            } catch (const std::exception& e) {
                std::cerr << "test_masked_lm: " << e.what() << "\n";
                return 1;
            }
        }
    doctest::Context context(argc, argv);
    return context.run();
}
