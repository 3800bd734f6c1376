// Trainer: a short real training run, exact resume, gradient accumulation, schedule lengths,
// non-finite handling, and the evaluation metrics on hand-made cases.
#include <doctest/doctest.h>

#include <mlm/masked_lm.hpp>
#include <mlm/metrics.hpp>
#include <mlm/trainer.hpp>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "checkpoint_faults.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

const std::string kTrainFile = std::string(MLM_SOURCE_DIR) + "/data/wiki-train-30k.txt.xz";
const std::string kValidFile = std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt";

// A fresh, empty directory under the system temp dir.
std::string temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("mlm_test_trainer_" + std::to_string(::getpid()) + "_" + name);
    fs::remove_all(p);
    fs::create_directories(p);
    return p.string();
}

std::vector<std::string> first_lines(const std::string& file, std::size_t n) {
    std::vector<std::string> lines = mlm::read_lines(file);
    if (lines.size() > n) lines.resize(n);
    return lines;
}

// A small tokenizer trained once on the held-out sample (fast, deterministic).
const mlm::Tokenizer& small_tokenizer() {
    static const mlm::Tokenizer tok = [] {
        mlm::TokenizerTrainOptions o;
        o.vocab_size = 500;
        o.character_coverage = 1.0;
        return mlm::Tokenizer::train_from_sentences(mlm::read_lines(kValidFile), o);
    }();
    return tok;
}

mlm::TokenizedCorpus sentences(const mlm::Tokenizer& tok, const std::string& file, std::size_t first, std::size_t n) {
    std::vector<std::string> lines = mlm::read_lines(file);
    REQUIRE(lines.size() >= first + n);
    return mlm::tokenize_sentences(tok, std::vector<std::string>(lines.begin() + first, lines.begin() + first + n), 128);
}

mlm::ModelConfig tiny_model(int vocab, float dropout) {
    mlm::ModelConfig c;
    c.vocab_size = vocab;
    c.dim = 32;
    c.n_heads = 2;
    c.n_layers = 2;
    c.dropout = dropout;
    return c;
}

mlm::TrainerConfig quiet_config() {
    mlm::TrainerConfig c;
    c.checkpoint_every_minutes = 0;
    return c;
}

std::vector<json> read_log(const std::string& dir) {
    std::ifstream in(dir + "/log.jsonl");
    std::vector<json> out;
    std::string line;
    while (std::getline(in, line))
        if (!line.empty()) out.push_back(json::parse(line));
    return out;
}

std::map<int64_t, json> steps_of(const std::vector<json>& log) {
    std::map<int64_t, json> out;
    for (const json& j : log)
        if (j.contains("loss")) out[j.at("step").get<int64_t>()] = j;
    return out;
}

bool same_bits(const float* a, const float* b, std::size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

// ============================================================================================
// metrics
// ============================================================================================

TEST_CASE("MetricAccumulator: ranks with ties to the lower id, log-sum-exp loss") {
    const float logits[4] = {1.0f, 2.0f, 3.0f, 3.0f};
    CHECK(mlm::MetricAccumulator::rank(logits, 4, 2) == 0);
    CHECK(mlm::MetricAccumulator::rank(logits, 4, 3) == 1);
    CHECK(mlm::MetricAccumulator::rank(logits, 4, 1) == 2);
    CHECK(mlm::MetricAccumulator::rank(logits, 4, 0) == 3);
    mlm::MetricAccumulator acc(2);
    acc.add(logits, 4, 2);  // top-1
    acc.add(logits, 4, 3);  // top-2
    acc.add(logits, 4, 0);  // neither
    const double lse = std::log(std::exp(1.0) + std::exp(2.0) + 2 * std::exp(3.0));
    CHECK(acc.count() == 3);
    CHECK(acc.mean_loss() == doctest::Approx(((lse - 3) + (lse - 3) + (lse - 1)) / 3).epsilon(1e-12));
    CHECK(acc.accuracy() == doctest::Approx(1.0 / 3));
    CHECK(acc.topk_accuracy() == doctest::Approx(2.0 / 3));
    CHECK_THROWS_AS(acc.add(logits, 4, 4), std::out_of_range);
}

// A model forced to a known prediction: no blocks, zero positional embedding, every token
// embedding e0 except token X = 5 whose embedding is 10 e0. The final norm maps any row to
// sqrt(C) e0 = 2 e0 (C = 4), so the logits are 2 * E[v][0]: 20 for X, 2 for every other id.
TEST_CASE("evaluate: metrics of a model that always predicts token 5") {
    mlm::ModelConfig c;
    c.vocab_size = 8;
    c.dim = 4;
    c.n_heads = 1;
    c.n_layers = 0;
    c.max_len = 8;
    c.dropout = 0;
    mlm::Encoder<float> model(c, 0);
    float* E = model.parameters() + model.layout().find("embedding.class_embedding.weight").offset;
    float* P = model.parameters() + model.layout().find("embedding.pos_embedding.weight").offset;
    std::fill_n(E, 8 * 4, 0.0f);
    std::fill_n(P, 8 * 4, 0.0f);
    for (int v = 0; v < 8; ++v) E[v * 4] = v == 5 ? 10.0f : 1.0f;

    mlm::VocabInfo vocab;
    vocab.vocab_size = 8;
    vocab.unk_id = 0;
    vocab.pad_id = 1;
    vocab.mask_id = 2;
    vocab.is_special = {0, 1, 1, 0, 0, 0, 0, 0};  // [UNK] is an ordinary (selectable) token
    vocab.word_start.assign(8, 0);

    mlm::TokenizedCorpus corpus(8);
    const std::vector<std::vector<int32_t>> seqs = {{5, 5, 5}, {3, 4}, {5, 3, 6, 7}, {0, 5}, {1, 2}, {6}};
    for (const auto& s : seqs) corpus.append(s);

    // Expected values, written out from the logits (20 for id 5, 2 otherwise).
    const double loss_hit = std::log1p(7.0 * std::exp(-18.0));  // -log p(5)
    const double loss_miss = std::log(std::exp(18.0) + 7.0);    // -log p(other)
    auto rank = [](int32_t y) { return y == 5 ? 0 : 1 + y - (y > 5 ? 1 : 0); };  // ties to the lower id

    SUBCASE("every selectable token masked: loss and accuracy over all of them") {
        mlm::EvalOptions o;
        o.mask_probability = 1.0;
        o.single_mask = false;
        const mlm::EvalMetrics m = mlm::evaluate(model, vocab, corpus, o);
        int hits = 0, total = 0;
        double loss = 0;
        for (const auto& s : seqs)
            for (int32_t id : s) {
                if (id == 1 || id == 2) continue;  // [PAD] and [MASK] are never selected
                ++total;
                hits += id == 5;
                loss += id == 5 ? loss_hit : loss_miss;
            }
        CHECK(m.sentences == 6);
        CHECK(m.masked_tokens == total);
        CHECK(m.accuracy == doctest::Approx(static_cast<double>(hits) / total));
        CHECK(m.loss == doctest::Approx(loss / total).epsilon(1e-5));
        CHECK(std::isnan(m.single_mask_accuracy));
    }
    SUBCASE("single mask: one selectable token per sentence, argmax and top-5") {
        mlm::EvalOptions o;
        o.mlm = false;
        o.seed = 77;
        const mlm::EvalMetrics m = mlm::evaluate(model, vocab, corpus, o);
        int n = 0, top1 = 0, top5 = 0;
        double loss = 0;
        for (std::size_t i = 0; i < seqs.size(); ++i) {
            const int p = mlm::single_mask_position(seqs[i].data(), static_cast<int>(seqs[i].size()), vocab, 77, i);
            if (i == 4) {
                CHECK(p == -1);  // only [PAD] and [MASK]: nothing to mask
                continue;
            }
            REQUIRE(p >= 0);
            const int32_t y = seqs[i][static_cast<std::size_t>(p)];
            CHECK(y != 1);
            CHECK(y != 2);
            ++n;
            top1 += rank(y) == 0;
            top5 += rank(y) < 5;
            loss += y == 5 ? loss_hit : loss_miss;
        }
        CHECK(m.single_mask_sentences == n);
        CHECK(m.single_mask_accuracy == doctest::Approx(static_cast<double>(top1) / n));
        CHECK(m.single_mask_topk_accuracy == doctest::Approx(static_cast<double>(top5) / n));
        CHECK(m.single_mask_loss == doctest::Approx(loss / n).epsilon(1e-5));
        CHECK(std::isnan(m.loss));
    }
    SUBCASE("the same numbers for any batch packing") {
        mlm::EvalOptions a, b;
        b.batch_tokens = 3;
        const mlm::EvalMetrics ma = mlm::evaluate(model, vocab, corpus, a), mb = mlm::evaluate(model, vocab, corpus, b);
        CHECK(ma.loss == doctest::Approx(mb.loss));
        CHECK(ma.accuracy == mb.accuracy);
        CHECK(ma.single_mask_accuracy == mb.single_mask_accuracy);
    }
}

TEST_CASE("single_mask_position: uniform over the selectable positions, fixed by (seed, index)") {
    mlm::VocabInfo vocab;
    vocab.vocab_size = 10;
    vocab.is_special.assign(10, 0);
    vocab.is_special[1] = vocab.is_special[2] = 1;
    vocab.word_start.assign(10, 0);
    const std::vector<int32_t> ids = {1, 4, 2, 5, 6, 1};
    std::map<int, int> counts;
    for (uint64_t i = 0; i < 3000; ++i) {
        const int p = mlm::single_mask_position(ids.data(), 6, vocab, 9, i);
        CHECK(p == mlm::single_mask_position(ids.data(), 6, vocab, 9, i));
        ++counts[p];
    }
    CHECK(counts.size() == 3);
    for (int p : {1, 3, 4}) CHECK(counts[p] == doctest::Approx(1000).epsilon(0.1));
}

// ============================================================================================
// TrainerConfig
// ============================================================================================

TEST_CASE("TrainerConfig: defaults are the original recipe; JSON round trip; validation") {
    const mlm::TrainerConfig d;
    CHECK(d.optimizer == mlm::OptimizerKind::adam);
    CHECK(d.weight_decay == 0.0);
    CHECK(d.schedule == mlm::ScheduleKind::one_cycle);
    CHECK(d.lr == 6e-4);
    CHECK(d.batch_size == 128);
    CHECK(d.epochs == 100);
    CHECK(d.masking.mask_probability == 0.15);
    CHECK(mlm::ModelConfig().dropout == doctest::Approx(0.1));

    mlm::TrainerConfig c;
    c.optimizer = mlm::OptimizerKind::adamw;
    c.weight_decay = 0.01;
    c.decay_weights_only = true;
    c.schedule = mlm::ScheduleKind::warmup_cosine;
    c.warmup_steps = 100;
    c.batch_tokens = 4096;
    c.grad_accum = 3;
    c.seed = 0xfedcba9876543210ull;
    c.masking.whole_word = true;
    c.eval.seed = 99;
    c.out_dir = "runs/x";
    const mlm::TrainerConfig back = mlm::trainer_config_from_json(mlm::to_json(c));
    CHECK(mlm::to_json(back) == mlm::to_json(c));
    CHECK(back.seed == c.seed);
    CHECK_THROWS_WITH_AS(mlm::trainer_config_from_json(R"({"epochs": 3, "colour": 1})"), doctest::Contains("colour"),
                         std::invalid_argument);
    mlm::TrainerConfig bad;
    bad.epochs = 0;
    CHECK_THROWS_WITH_AS(bad.validate(), doctest::Contains("never end"), std::invalid_argument);
}

TEST_CASE("recipes: best and original set their knobs and only those; original is the defaults") {
    mlm::ModelConfig m;
    m.dim = 64;
    m.n_layers = 2;
    // knobs that are not a recipe's: size, length, seed, evaluation, output, threads
    auto with_run_knobs = [](mlm::TrainerConfig c) {
        c.epochs = 3;
        c.max_total_time_s = 600;
        c.seed = 7;
        c.eval_every_steps = 50;
        c.out_dir = "runs/x";
        c.threads = 2;
        return c;
    };
    mlm::TrainerConfig t = with_run_knobs(mlm::TrainerConfig());
    t.masking.mask_probability = 0.4;  // a recipe knob: every recipe sets it
    t.masking.whole_word = true;

    mlm::apply_recipe(mlm::Recipe::best, m, t);
    CHECK(m.norm_placement == mlm::NormPlacement::pre);
    CHECK(m.dropout == 0.0f);
    CHECK(t.optimizer == mlm::OptimizerKind::adamw);
    CHECK(t.weight_decay == 0.01);
    CHECK(t.decay_weights_only);
    CHECK(t.schedule == mlm::ScheduleKind::warmup_cosine);
    CHECK(t.lr == 1e-3);
    CHECK(t.warmup_fraction == 0.05);
    CHECK(t.clip_grad_norm == 1.0);
    CHECK(t.batch_tokens == 4096);
    CHECK(t.masking.mask_probability == 0.3);
    t.validate();
    m.validate();
    // the rest is left alone
    CHECK(m.dim == 64);
    CHECK(m.n_layers == 2);
    CHECK(t.epochs == 3);
    CHECK(t.max_total_time_s == 600);
    CHECK(t.seed == 7);
    CHECK(t.eval_every_steps == 50);
    CHECK(t.out_dir == "runs/x");
    CHECK(t.threads == 2);

    // original undoes every knob of best: the recipe part equals the defaults
    mlm::apply_recipe(mlm::Recipe::original, m, t);
    CHECK(mlm::to_json(t) == mlm::to_json(with_run_knobs(mlm::TrainerConfig())));
    CHECK(m.norm_placement == mlm::ModelConfig().norm_placement);
    CHECK(m.dropout == mlm::ModelConfig().dropout);

    CHECK(mlm::recipe_from_string("best") == mlm::Recipe::best);
    CHECK(std::string(mlm::to_string(mlm::Recipe::original)) == "original");
    CHECK_THROWS_WITH_AS(mlm::recipe_from_string("fast"), doctest::Contains("\"original\", \"best\""),
                         std::invalid_argument);
}

// ============================================================================================
// Schedule length
// ============================================================================================

TEST_CASE("total_steps: exact for epoch, step and token targets; time-only needs an estimate") {
    const mlm::Tokenizer& tok = small_tokenizer();
    const mlm::TokenizedCorpus train = sentences(tok, kValidFile, 0, 100);
    const mlm::ModelConfig mc = tiny_model(tok.vocab_size(), 0.0f);
    auto total = [&](mlm::TrainerConfig c) {
        mlm::Trainer t(mc, tok, c);
        t.set_data(train);
        return t.total_steps();
    };
    mlm::TrainerConfig c = quiet_config();
    c.batch_size = 16;  // 100 sentences: 7 batches per epoch
    c.grad_accum = 2;   // 4 steps per epoch (the last one with one batch)
    c.epochs = 3;
    CHECK(total(c) == 12);
    c.max_steps = 5;
    CHECK(total(c) == 5);
    c.max_steps = 0;
    c.max_tokens = static_cast<int64_t>(train.num_tokens());  // exactly one epoch
    CHECK(total(c) == 4);
    c.max_tokens += 1;  // one token into the second epoch
    CHECK(total(c) == 5);
    c.epochs = 1;  // the epoch target comes first
    CHECK(total(c) == 4);

    // token-budget batches: the count follows the (per-epoch) plans
    c = quiet_config();
    c.batch_tokens = 600;
    c.epochs = 2;
    {
        mlm::Batcher b(train, [] {
            mlm::BatcherOptions o;
            o.max_tokens = 600;
            return o;
        }(), c.seed);
        CHECK(total(c) == static_cast<int64_t>(b.epoch_batches(0).size() + b.epoch_batches(1).size()));
    }

    c = quiet_config();
    c.epochs = 0;
    c.max_time_s = 1;
    CHECK_THROWS_WITH_AS(total(c), doctest::Contains("schedule_steps"), std::invalid_argument);
    c.schedule_steps = 50;
    CHECK(total(c) == 50);
    c.schedule_steps = 0;
    c.schedule = mlm::ScheduleKind::constant;
    CHECK(total(c) == 0);
}

TEST_CASE("a time budget ends the run; the constant schedule needs no length") {
    const mlm::Tokenizer& tok = small_tokenizer();
    mlm::TrainerConfig c = quiet_config();
    c.epochs = 0;
    c.max_time_s = 0.5;
    c.schedule = mlm::ScheduleKind::constant;
    c.lr = 1e-3;
    c.batch_size = 8;
    mlm::Trainer t(tiny_model(tok.vocab_size(), 0.0f), tok, c);
    t.set_data(sentences(tok, kValidFile, 0, 64));
    const auto t0 = std::chrono::steady_clock::now();
    const mlm::TrainResult r = t.train();
    CHECK(r.stop_reason == mlm::StopReason::max_time);
    CHECK(r.steps >= 1);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 10.0);
}

TEST_CASE("a total time budget spans resumed sessions; a session budget does not reset it") {
    const mlm::Tokenizer& tok = small_tokenizer();
    const std::string dir = temp_dir("total_time");
    mlm::TrainerConfig c = quiet_config();
    c.epochs = 0;
    c.max_time_s = 0.25;       // each session
    c.max_total_time_s = 1.5;  // the run
    c.schedule = mlm::ScheduleKind::constant;
    c.lr = 1e-3;
    c.batch_size = 8;
    c.out_dir = dir;
    auto session = [&](bool resume) {
        mlm::Trainer t(tiny_model(tok.vocab_size(), 0.0f), tok, c);
        t.set_data(sentences(tok, kValidFile, 0, 64));
        if (resume) t.resume();
        return t.train();
    };
    const mlm::TrainResult first = session(false);
    REQUIRE(first.stop_reason == mlm::StopReason::max_time);  // the session's budget, not the run's
    CHECK(first.elapsed_s < c.max_total_time_s);
    mlm::TrainResult r = first;
    int sessions = 1;
    while (r.stop_reason == mlm::StopReason::max_time && sessions < 50) {
        r = session(true);
        ++sessions;
    }
    CHECK(r.stop_reason == mlm::StopReason::finished);
    CHECK(sessions >= 2);
    CHECK(r.elapsed_s >= c.max_total_time_s);
    CHECK(r.steps > first.steps);
    // The run is finished: resuming it again does no step.
    const mlm::TrainResult again = session(true);
    CHECK(again.stop_reason == mlm::StopReason::finished);
    CHECK(again.steps == r.steps);
    // A larger budget given on resume (a runtime knob) lets it go on.
    c.max_total_time_s = r.elapsed_s + 0.3;
    const mlm::TrainResult more = session(true);
    CHECK(more.steps > r.steps);
    fs::remove_all(dir);
}

// ============================================================================================
// A real (short) training run on the bundled sample
// ============================================================================================

TEST_CASE("training on the bundled sample: the validation loss falls well below ln(vocab)") {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<std::string> lines = first_lines(kTrainFile, 1500);  // from the .xz file as it is
    mlm::TokenizerTrainOptions o;
    o.vocab_size = 1000;
    const mlm::Tokenizer tok = mlm::Tokenizer::train_from_sentences(lines, o);
    mlm::TokenizedCorpus train = mlm::tokenize_sentences(tok, lines, 128);
    mlm::TokenizeOptions to;
    to.max_sentences = 300;
    mlm::TokenizedCorpus valid = mlm::tokenize_file(tok, kValidFile, to);

    mlm::ModelConfig mc;
    mc.vocab_size = tok.vocab_size();
    mc.dim = 64;
    mc.n_heads = 4;
    mc.n_layers = 2;
    mc.dropout = 0.0f;
    mlm::TrainerConfig c = quiet_config();
    c.epochs = 2;
    c.batch_tokens = 2048;
    c.lr = 3e-3;
    c.eval_at_start = true;
    c.out_dir = temp_dir("sample");
    mlm::Trainer trainer(mc, tok, c);
    trainer.set_data(std::move(train), std::move(valid));
    std::vector<mlm::EvalRecord> evals;
    int64_t steps_seen = 0;
    trainer.on_eval = [&](const mlm::EvalRecord& e) {
        evals.push_back(e);
        return false;
    };
    trainer.on_step = [&](const mlm::StepRecord& r) {
        CHECK(r.step == ++steps_seen);
        CHECK(std::isfinite(r.loss));
        CHECK(r.lr > 0);
        return false;
    };
    const mlm::TrainResult r = trainer.train();
    const double lnV = std::log(static_cast<double>(tok.vocab_size()));
    MESSAGE("steps " << r.steps << ", val loss " << evals.front().metrics.loss << " -> " << r.best_val_loss
                     << " (ln V = " << lnV << "), single-mask accuracy " << r.last_eval.single_mask_accuracy << ", "
                     << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s");
    CHECK(r.stop_reason == mlm::StopReason::finished);
    CHECK(r.steps == trainer.total_steps());
    CHECK(r.epochs == doctest::Approx(2.0));
    REQUIRE(evals.size() == 3);  // at the start and after each epoch
    CHECK(evals.front().metrics.loss > lnV - 0.3);  // untrained: about the uniform guess
    CHECK(r.best_val_loss < lnV - 0.75);            // well below it
    CHECK(evals.back().metrics.loss < evals.front().metrics.loss - 0.75);
    for (const auto& e : evals) {
        CHECK(e.metrics.accuracy >= 0.0);
        CHECK(e.metrics.accuracy <= 1.0);
        CHECK(e.metrics.single_mask_topk_accuracy >= e.metrics.single_mask_accuracy);
    }
    // the run directory
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "trainer_state.safetensors",
                          "trainer_state.json", "log.jsonl", "best/config.json", "best/model.safetensors",
                          "best/tokenizer.model", "best/metrics.json"})
        CHECK_MESSAGE(fs::exists(c.out_dir + "/" + f), f);
    const auto log = read_log(c.out_dir);
    CHECK(steps_of(log).size() == static_cast<std::size_t>(r.steps));
    CHECK(log.front().at("step") == 0);  // the evaluation at the start
    CHECK(log.front().contains("val_loss"));
    for (const char* k : {"step", "epoch", "tokens", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s"})
        CHECK_MESSAGE(log.at(1).contains(k), k);
    // the best model loads and evaluates to the logged loss
    const mlm::MaskedLM best = mlm::MaskedLM::load(c.out_dir + "/best");
    mlm::TokenizeOptions to2;
    to2.max_sentences = 300;
    const mlm::EvalMetrics again = best.evaluate(mlm::tokenize_file(best.tokenizer(), kValidFile, to2));
    CHECK(again.loss == doctest::Approx(r.best_val_loss).epsilon(1e-9));
    const json state = json::parse(mlm::read_file(c.out_dir + "/trainer_state.json"));
    CHECK(state.at("step") == r.steps);
    CHECK(state.at("trainer_config").at("lr") == 3e-3);
    fs::remove_all(c.out_dir);
}

// ============================================================================================
// Exact resume
// ============================================================================================

namespace {

// A tiny run with dropout, token-budget batches (bucketed), gradient accumulation, clipping, the
// one-cycle schedule, periodic evaluation and more than one epoch in 12 steps.
struct ResumeRun {
    const mlm::Tokenizer& tok = small_tokenizer();
    mlm::TokenizedCorpus train = sentences(tok, kValidFile, 0, 120);
    mlm::TokenizedCorpus valid = sentences(tok, kValidFile, 1000, 40);
    mlm::ModelConfig mc = tiny_model(tok.vocab_size(), 0.1f);
    mlm::TrainerConfig config(const std::string& dir) const {
        mlm::TrainerConfig c = quiet_config();
        c.epochs = 0;
        c.max_steps = 12;
        c.batch_tokens = 600;
        c.grad_accum = 2;
        c.clip_grad_norm = 0.5;
        c.lr = 2e-3;
        c.eval_every_steps = 4;
        c.seed = 11;
        c.out_dir = dir;
        return c;
    }
    std::unique_ptr<mlm::Trainer> make(const mlm::TrainerConfig& c) const {
        auto t = std::make_unique<mlm::Trainer>(mc, tok, c);
        t->set_data(train, valid);
        return t;
    }
};

void check_same_run(const std::string& a_dir, const std::string& b_dir, const mlm::Trainer& a, const mlm::Trainer& b) {
    const auto la = steps_of(read_log(a_dir)), lb = steps_of(read_log(b_dir));
    REQUIRE(la.size() == 12);
    REQUIRE(lb.size() == 12);
    for (const auto& [step, ja] : la) {
        const json& jb = lb.at(step);
        CAPTURE(step);
        CHECK(ja.at("loss").get<double>() == jb.at("loss").get<double>());  // bit for bit
        CHECK(ja.at("grad_norm").get<double>() == jb.at("grad_norm").get<double>());
        CHECK(ja.at("lr").get<double>() == jb.at("lr").get<double>());
        CHECK(ja.at("tokens").get<int64_t>() == jb.at("tokens").get<int64_t>());
        CHECK(ja.at("epoch").get<double>() == jb.at("epoch").get<double>());
        CHECK(ja.contains("val_loss") == jb.contains("val_loss"));
        if (ja.contains("val_loss")) CHECK(ja.at("val_loss").get<double>() == jb.at("val_loss").get<double>());
    }
    const std::size_t n = a.model().num_parameters();
    CHECK(same_bits(a.model().parameters(), b.model().parameters(), n));
    CHECK(same_bits(a.optimizer().m().data(), b.optimizer().m().data(), n));
    CHECK(same_bits(a.optimizer().v().data(), b.optimizer().v().data(), n));
    CHECK(a.optimizer().step_count() == b.optimizer().step_count());
    // and the final checkpoints on disk
    const mlm::MaskedLM ma = mlm::MaskedLM::load(a_dir), mb = mlm::MaskedLM::load(b_dir);
    CHECK(same_bits(ma.model().parameters(), mb.model().parameters(), n));
    CHECK(same_bits(ma.model().parameters(), a.model().parameters(), n));
}

}  // namespace

TEST_CASE("resume: an interrupted run gives the same losses and final weights, bit for bit") {
    ResumeRun run;
    const std::string a_dir = temp_dir("resume_a");
    auto a = run.make(run.config(a_dir));
    const mlm::TrainResult ra = a->train();
    REQUIRE(ra.stop_reason == mlm::StopReason::finished);
    REQUIRE(ra.steps == 12);
    REQUIRE(ra.epochs > 1.0);  // the run crosses an epoch boundary

    SUBCASE("stopped by a callback (checkpoint on stop), then resumed") {
        const std::string b_dir = temp_dir("resume_b");
        {
            auto b1 = run.make(run.config(b_dir));
            b1->on_step = [](const mlm::StepRecord& r) { return r.step == 5; };
            const mlm::TrainResult r1 = b1->train();
            CHECK(r1.stop_reason == mlm::StopReason::stopped);
            CHECK(r1.steps == 5);
        }
        CHECK(mlm::Trainer::has_state(b_dir));
        auto b2 = run.make(run.config(b_dir));
        b2->resume();
        CHECK(b2->step() == 5);
        const mlm::TrainResult r2 = b2->train();
        CHECK(r2.stop_reason == mlm::StopReason::finished);
        CHECK(r2.steps == 12);
        CHECK(r2.best_val_loss == ra.best_val_loss);
        check_same_run(a_dir, b_dir, *a, *b2);
        fs::remove_all(b_dir);
    }
    SUBCASE("killed after a periodic checkpoint (later steps logged but not saved), then resumed") {
        const std::string c_dir = temp_dir("resume_c");
        {
            mlm::TrainerConfig cc = run.config(c_dir);
            cc.checkpoint_every_steps = 3;
            cc.checkpoint_on_stop = false;  // like a kill: the state on disk is the one of step 6
            auto c1 = run.make(cc);
            c1->on_step = [](const mlm::StepRecord& r) { return r.step == 8; };
            CHECK(c1->train().steps == 8);
        }
        CHECK(steps_of(read_log(c_dir)).size() == 8);
        auto c2 = run.make(run.config(c_dir));  // a different checkpoint cadence is allowed
        c2->resume();
        CHECK(c2->step() == 6);
        CHECK(steps_of(read_log(c_dir)).size() == 6);  // the log is cut back to the saved step
        c2->train();
        check_same_run(a_dir, c_dir, *a, *c2);
        fs::remove_all(c_dir);
    }
    SUBCASE("a resume with different data or settings is refused with the differences named") {
        const std::string d_dir = temp_dir("resume_d");
        {
            auto d1 = run.make(run.config(d_dir));
            d1->on_step = [](const mlm::StepRecord& r) { return r.step == 2; };
            d1->train();
        }
        mlm::TrainerConfig other = run.config(d_dir);
        other.lr = 1e-3;
        other.max_steps = 20;
        auto d2 = run.make(other);
        CHECK_THROWS_WITH_AS(d2->resume(), doctest::Contains("lr is"), std::invalid_argument);
        auto d3 = std::make_unique<mlm::Trainer>(run.mc, run.tok, run.config(d_dir));
        d3->set_data(sentences(run.tok, kValidFile, 0, 119), run.valid);
        CHECK_THROWS_WITH_AS(d3->resume(), doctest::Contains("training sentences differ"), std::invalid_argument);
        // starting a new run over it needs overwrite
        auto d4 = run.make(run.config(d_dir));
        CHECK_THROWS_WITH_AS(d4->train(), doctest::Contains("already holds a training run"), std::invalid_argument);
        auto d5 = run.make(run.config(d_dir + "/nowhere"));
        CHECK_THROWS_WITH_AS(d5->resume(), doctest::Contains("does not exist"), mlm::CheckpointError);
        fs::remove_all(d_dir);
    }
    fs::remove_all(a_dir);
}

// ============================================================================================
// Gradient accumulation
// ============================================================================================

TEST_CASE("gradient accumulation: 2 batches of 8 make the same step as one batch of 16") {
    const mlm::Tokenizer& tok = small_tokenizer();
    const mlm::TokenizedCorpus train = sentences(tok, kValidFile, 0, 64);
    auto run = [&](std::size_t batch, int accum) {
        mlm::TrainerConfig c = quiet_config();
        c.epochs = 0;
        c.max_steps = 3;
        c.batch_size = batch;
        c.grad_accum = accum;
        c.schedule = mlm::ScheduleKind::constant;
        c.lr = 1e-3;
        auto t = std::make_unique<mlm::Trainer>(tiny_model(tok.vocab_size(), 0.0f), tok, c);
        t->set_data(train);
        std::vector<double> losses;
        t->on_step = [&](const mlm::StepRecord& r) {
            losses.push_back(r.loss);
            return false;
        };
        t->train();
        return std::make_pair(losses, std::vector<float>(t->model().parameters(), t->model().parameters() + t->model().num_parameters()));
    };
    const auto [l16, p16] = run(16, 1);
    const auto [l8, p8] = run(8, 2);
    REQUIRE(l16.size() == 3);
    REQUIRE(l8.size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(l8[i] == doctest::Approx(l16[i]).epsilon(1e-5));
    double max_diff = 0;
    for (std::size_t i = 0; i < p16.size(); ++i) max_diff = std::max(max_diff, std::abs(double(p16[i]) - p8[i]));
    CHECK(max_diff < 1e-5);
}

// ============================================================================================
// Non-finite losses
// ============================================================================================

TEST_CASE("non-finite loss: detected at its step, never applied, never checkpointed") {
    const mlm::Tokenizer& tok = small_tokenizer();
    const mlm::TokenizedCorpus train = sentences(tok, kValidFile, 0, 64);
    auto make = [&](mlm::TrainerConfig c) {
        c.epochs = 0;
        c.max_steps = 6;
        c.batch_size = 16;
        auto t = std::make_unique<mlm::Trainer>(tiny_model(tok.vocab_size(), 0.0f), tok, c);
        t->set_data(train);
        return t;
    };
    auto ln_f = [](mlm::Trainer& t) { return t.model().parameters() + t.model().layout().find("ln_f.scale").offset; };

    SUBCASE("skip: a transient NaN skips one step and the run goes on") {
        mlm::TrainerConfig c = quiet_config();
        c.out_dir = temp_dir("nan_skip");
        auto t = make(c);
        float saved = 0;
        std::vector<bool> skipped;
        t->on_step = [&](const mlm::StepRecord& r) {
            skipped.push_back(r.skipped);
            if (r.step == 2) {  // poison the weights: step 3 computes a NaN loss
                saved = *ln_f(*t);
                *ln_f(*t) = std::numeric_limits<float>::quiet_NaN();
            }
            if (r.step == 3) *ln_f(*t) = saved;  // and heal them
            return false;
        };
        const mlm::TrainResult r = t->train();
        CHECK(r.stop_reason == mlm::StopReason::finished);
        CHECK(r.skipped_steps == 1);
        REQUIRE(skipped.size() == 6);
        CHECK(skipped[2]);  // step 3 saw the NaN
        CHECK_FALSE(skipped[3]);
        const auto log = read_log(c.out_dir);
        CHECK(log.at(2).at("skipped") == true);
        CHECK(log.at(2).at("loss").is_null());
        const mlm::MaskedLM lm = mlm::MaskedLM::load(c.out_dir);
        for (std::size_t i = 0; i < lm.model().num_parameters(); ++i) REQUIRE(std::isfinite(lm.model().parameters()[i]));
        fs::remove_all(c.out_dir);
    }
    SUBCASE("stop: the run ends at the bad step; no checkpoint holds a NaN") {
        mlm::TrainerConfig c = quiet_config();
        c.on_non_finite = mlm::NonFinitePolicy::stop;
        c.out_dir = temp_dir("nan_stop");
        auto t = make(c);
        *ln_f(*t) = std::numeric_limits<float>::quiet_NaN();
        const mlm::TrainResult r = t->train();
        CHECK(r.stop_reason == mlm::StopReason::non_finite);
        CHECK(r.steps == 1);
        CHECK_FALSE(fs::exists(c.out_dir + "/model.safetensors"));
        CHECK_FALSE(fs::exists(c.out_dir + "/trainer_state.safetensors"));
        CHECK_THROWS_WITH_AS(t->save_checkpoint(), doctest::Contains("non-finite"), std::runtime_error);
        fs::remove_all(c.out_dir);
    }
    SUBCASE("skip gives up after max_non_finite_skips in a row") {
        mlm::TrainerConfig c = quiet_config();
        c.max_non_finite_skips = 3;
        auto t = make(c);
        *ln_f(*t) = std::numeric_limits<float>::infinity();
        const mlm::TrainResult r = t->train();
        CHECK(r.stop_reason == mlm::StopReason::non_finite);
        CHECK(r.steps == 3);
        CHECK(r.skipped_steps == 3);
    }
}

// ============================================================================================
// Faults: a corrupt trainer state, a NaN with checkpoints on disk, a failed write, best/ vs latest
// ============================================================================================

namespace {

// Every file of a run directory but log.jsonl (relative path -> bytes).
std::map<std::string, std::string> checkpoint_files(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename() != "log.jsonl")
            out[fs::relative(e.path(), dir).string()] = mlm::read_file(e.path().string());
    return out;
}

std::vector<float> params_of(const mlm::Trainer& t) {
    return std::vector<float>(t.model().parameters(), t.model().parameters() + t.model().num_parameters());
}

// A tiny run that checkpoints after every step.
struct FaultRun {
    const mlm::Tokenizer& tok = small_tokenizer();
    mlm::TokenizedCorpus train = sentences(tok, kValidFile, 0, 96);
    mlm::TokenizedCorpus valid = sentences(tok, kValidFile, 1000, 32);
    mlm::ModelConfig mc = tiny_model(tok.vocab_size(), 0.0f);
    mlm::TrainerConfig config(const std::string& dir, mlm::NonFinitePolicy policy = mlm::NonFinitePolicy::skip) const {
        mlm::TrainerConfig c = quiet_config();
        c.epochs = 0;
        c.max_steps = 8;
        c.batch_size = 16;
        c.lr = 2e-3;
        c.eval_every_steps = 2;
        c.checkpoint_every_steps = 1;
        c.on_non_finite = policy;
        c.seed = 4;
        c.out_dir = dir;
        return c;
    }
    std::unique_ptr<mlm::Trainer> make(const mlm::TrainerConfig& c) const {
        auto t = std::make_unique<mlm::Trainer>(mc, tok, c);
        t->set_data(train, valid);
        return t;
    }
    // Trains `steps` steps into dir (a checkpoint after each) and returns the trainer.
    std::unique_ptr<mlm::Trainer> run_until(const mlm::TrainerConfig& c, int64_t steps) const {
        auto t = make(c);
        t->on_step = [steps](const mlm::StepRecord& r) { return r.step == steps; };
        t->train();
        REQUIRE(t->step() == steps);
        t->on_step = nullptr;
        return t;
    }
};

}  // namespace

TEST_CASE("a corrupt trainer state: resume throws CheckpointError naming the file and the problem, and changes nothing") {
    FaultRun run;
    const std::string good = temp_dir("state_good");
    run.run_until(run.config(good), 3);
    int cases = 0;
    for (const faults::Corruption& c : faults::corruptions()) {
        if (c.file != "trainer_state.safetensors") continue;
        CAPTURE(c.name);
        const std::string dir = temp_dir("state_case" + std::to_string(cases++));
        fs::remove_all(dir);
        fs::copy(good, dir, fs::copy_options::recursive);
        c.apply(dir);
        auto t = run.make(run.config(dir));
        const std::vector<float> before = params_of(*t);
        std::string message = "<no exception>";
        try {
            t->resume();
        } catch (const mlm::CheckpointError& e) {
            message = e.what();
        } catch (const std::exception& e) {
            message = std::string("<not a CheckpointError> ") + e.what();
        }
        INFO("message: " << message);
        CHECK(message.find(dir + "/trainer_state.safetensors") == 0);
        CHECK(message.find(c.problem) != std::string::npos);
        CHECK(t->step() == 0);  // nothing of the damaged state was taken
        CHECK(params_of(*t) == before);
        CHECK(t->optimizer().step_count() == 0);
        fs::remove_all(dir);
    }
    CHECK(cases == 5);
    // Not damage: the same state JSON with its keys in another order (rewritten by another tool).
    faults::rewrite(good + "/trainer_state.safetensors", [](auto&, auto& metadata) {
        metadata["trainer_state"] = json::parse(metadata.at("trainer_state")).dump();  // sorted keys
    });
    auto t = run.make(run.config(good));
    t->resume();
    CHECK(t->step() == 3);
    fs::remove_all(good);
}

TEST_CASE("a NaN at step k with a checkpoint after every step: detected at k; stop keeps the checkpoint of k-1, skip goes on") {
    FaultRun run;
    constexpr int64_t k = 4;
    auto ln_f = [](mlm::Trainer& t) { return t.model().parameters() + t.model().layout().find("ln_f.scale").offset; };

    SUBCASE("stop: the run ends at step k and the files on disk stay those of step k-1, bit for bit") {
        const std::string dir = temp_dir("nan_k_stop");
        auto t = run.run_until(run.config(dir, mlm::NonFinitePolicy::stop), k - 1);
        const auto saved = checkpoint_files(dir);
        const std::vector<float> good = params_of(*t);
        *ln_f(*t) = std::numeric_limits<float>::quiet_NaN();  // step k computes a NaN loss
        std::vector<mlm::StepRecord> records;
        t->on_step = [&](const mlm::StepRecord& r) {
            records.push_back(r);
            return false;
        };
        const mlm::TrainResult r = t->train();
        CHECK(r.stop_reason == mlm::StopReason::non_finite);
        CHECK(r.steps == k);
        CHECK(r.checkpoint_step == k - 1);
        REQUIRE(records.size() == 1);
        CHECK(records[0].step == k);
        CHECK(records[0].skipped);
        CHECK(std::isnan(records[0].loss));
        CHECK(checkpoint_files(dir) == saved);
        const auto log = read_log(dir);
        CHECK(log.back().at("step") == k);
        CHECK(log.back().at("skipped") == true);
        // The checkpoint loads, as a model and as a run to resume, with the weights of step k-1.
        const mlm::MaskedLM lm = mlm::MaskedLM::load(dir);
        CHECK(same_bits(lm.model().parameters(), good.data(), good.size()));
        auto again = run.make(run.config(dir, mlm::NonFinitePolicy::skip));  // the policy may change on resume
        again->resume();
        CHECK(again->step() == k - 1);
        CHECK(same_bits(again->model().parameters(), good.data(), good.size()));
        fs::remove_all(dir);
    }
    SUBCASE("skip: step k is not applied and the run goes on to the end") {
        const std::string dir = temp_dir("nan_k_skip");
        auto t = run.run_until(run.config(dir, mlm::NonFinitePolicy::skip), k - 1);
        const std::vector<float> good = params_of(*t);
        const float scale = *ln_f(*t);
        *ln_f(*t) = std::numeric_limits<float>::quiet_NaN();
        std::vector<mlm::StepRecord> records;
        t->on_step = [&](const mlm::StepRecord& r) {
            records.push_back(r);
            if (r.step == k) {
                // Nothing of step k was applied: the weights are those of step k-1 (but the NaN).
                *ln_f(*t) = scale;
                CHECK(params_of(*t) == good);
                CHECK(t->optimizer().step_count() == k - 1);
            }
            return false;
        };
        const mlm::TrainResult r = t->train();
        CHECK(r.stop_reason == mlm::StopReason::finished);
        CHECK(r.steps == 8);
        CHECK(r.skipped_steps == 1);
        CHECK(r.checkpoint_step == 8);
        REQUIRE(records.size() == 8 - (k - 1));
        for (const auto& rec : records) {
            CAPTURE(rec.step);
            CHECK(rec.skipped == (rec.step == k));
        }
        CHECK(t->optimizer().step_count() == 7);
        const mlm::MaskedLM lm = mlm::MaskedLM::load(dir);
        CHECK(same_bits(lm.model().parameters(), t->model().parameters(), t->model().num_parameters()));
        CHECK(steps_of(read_log(dir)).at(k).at("skipped") == true);
        fs::remove_all(dir);
    }
}

TEST_CASE("a checkpoint that cannot be written (file size limit, like a full disk): train() throws, the previous one stays") {
    FaultRun run;
    const std::string dir = temp_dir("write_fails");
    auto t = run.make(run.config(dir));
    std::map<std::string, std::string> saved;
    std::optional<faults::FileSizeLimit> limit;
    t->on_step = [&](const mlm::StepRecord& r) {
        if (r.step == 3) {  // after step 3 is computed and logged, before its checkpoint
            saved = checkpoint_files(dir);
            limit.emplace(16384);  // the log's next lines fit; no checkpoint file does
        }
        return false;
    };
    std::string message = "<no exception>";
    try {
        t->train();
    } catch (const mlm::CheckpointError& e) {
        message = e.what();
    }
    limit.reset();
    INFO("message: " << message);
    CHECK(message.find("cannot write the checkpoint in " + dir + ": ") == 0);
    CHECK(message.find("File too large") != std::string::npos);
    CHECK(message.find("the checkpoint already there is unchanged") != std::string::npos);
    CHECK(t->step() == 3);
    REQUIRE(!saved.empty());
    CHECK(checkpoint_files(dir) == saved);  // bit for bit, no staged file left
    auto again = run.make(run.config(dir));
    again->resume();
    CHECK(again->step() == 2);
    CHECK(again->train().steps == 8);  // and the run can go on
    fs::remove_all(dir);
}

TEST_CASE("a corrupt best/ does not stop the latest checkpoint from loading or resuming, nor the other way round") {
    FaultRun run;
    const std::string dir = temp_dir("best_vs_latest");
    {
        mlm::TrainerConfig c = run.config(dir);
        c.max_steps = 4;
        run.make(c)->train();
    }
    REQUIRE(mlm::is_checkpoint(dir + "/best"));
    const auto good = checkpoint_files(dir);
    auto truncate = [](const std::string& path) {
        const std::string b = mlm::read_file(path);
        faults::write_bytes(path, b.substr(0, b.size() / 2));
    };
    auto load_error = [](const std::string& d) -> std::string {
        try {
            mlm::MaskedLM::load(d);
        } catch (const mlm::CheckpointError& e) {
            return e.what();
        }
        return "<no CheckpointError>";
    };
    auto resumes = [&]() {
        mlm::TrainerConfig c = run.config(dir);
        c.max_steps = 4;
        auto t = run.make(c);
        t->resume();
        return t->step() == 4;
    };

    truncate(dir + "/best/model.safetensors");
    const std::string best_error = load_error(dir + "/best");
    CHECK_MESSAGE(best_error.find(dir + "/best/model.safetensors: ") == 0, best_error);
    CHECK(best_error.find("truncated") != std::string::npos);
    CHECK(mlm::MaskedLM::load(dir).model().num_parameters() > 0);
    CHECK(resumes());

    faults::write_bytes(dir + "/best/model.safetensors", good.at("best/model.safetensors"));
    truncate(dir + "/model.safetensors");
    const std::string latest_error = load_error(dir);
    CHECK_MESSAGE(latest_error.find(dir + "/model.safetensors: ") == 0, latest_error);
    CHECK(mlm::MaskedLM::load(dir + "/best").model().num_parameters() > 0);
    CHECK(resumes());  // the trainer state is self-contained
    fs::remove_all(dir);
}
