// mlm eval | predict | fill-mask: a checkpoint directory in, metrics or predictions out.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>

#include <nlohmann/json.hpp>

#include <mlm/masked_lm.hpp>
#include <mlm/metrics.hpp>

#include "cli.hpp"

namespace mlm::cli {

namespace {

using json = nlohmann::ordered_json;

// ---- eval ------------------------------------------------------------------------------------

struct EvalArgs {
    std::string checkpoint;
    std::string input;
    EvalOptions options;
    bool as_json = false;
    int threads = 0;
};

int run_eval(const EvalArgs& a) {
    set_threads(a.threads);
    const MaskedLM lm = MaskedLM::load(a.checkpoint);
    const EvalMetrics m = lm.evaluate_file(a.input, a.options);
    if (a.as_json) {
        json j{{"checkpoint", a.checkpoint}, {"input", a.input}};
        j.update(json::parse(to_json(m)));
        j["seed"] = a.options.seed;
        j["mask_probability"] = a.options.mask_probability;
        std::printf("%s\n", j.dump().c_str());
        return 0;
    }
    std::printf("checkpoint          %s\n", a.checkpoint.c_str());
    std::printf("input               %s (%s sentences)\n", a.input.c_str(), with_commas(m.sentences).c_str());
    if (a.options.mlm) {
        std::printf("mlm loss            %.6f (perplexity %.2f)\n", m.loss, m.perplexity());
        std::printf("masked accuracy     %.6f (%s masked tokens, p = %g, seed %llu)\n", m.accuracy,
                    with_commas(m.masked_tokens).c_str(), a.options.mask_probability,
                    static_cast<unsigned long long>(a.options.seed));
    }
    if (a.options.single_mask) {
        std::printf("single-mask acc     %.6f (%s sentences)\n", m.single_mask_accuracy,
                    with_commas(m.single_mask_sentences).c_str());
        std::printf("single-mask top-%d   %.6f\n", m.top_k, m.single_mask_topk_accuracy);
        std::printf("single-mask loss    %.6f\n", m.single_mask_loss);
    }
    std::printf("time                %.1f s\n", m.seconds);
    return 0;
}

// ---- predict ---------------------------------------------------------------------------------

struct PredictArgs {
    std::string checkpoint;
    std::vector<std::string> texts;
    uint64_t seed = 0;
    int position = -1;
    int top_k = 0;
    int threads = 0;
};

int run_predict(const PredictArgs& a, bool seed_given) {
    set_threads(a.threads);
    const MaskedLM lm = MaskedLM::load(a.checkpoint);
    // Without --seed every call masks a new random token, like the original.
    const uint64_t seed = seed_given ? a.seed : (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
    for (std::size_t i = 0; i < a.texts.size(); ++i) {
        const MaskPrediction p = lm.predict_mask(a.texts[i], seed, a.position, std::max(a.top_k, 1));
        if (i) std::printf("\n");
        std::fputs(format_prediction(p).c_str(), stdout);
        if (a.top_k > 0) {
            std::printf("top-%d:", a.top_k);
            for (const TokenScore& t : p.top_k) std::printf(" %s (%.4f)", t.token.c_str(), t.probability);
            std::printf("\n");
        }
    }
    return 0;
}

// ---- fill-mask -------------------------------------------------------------------------------

struct FillMaskArgs {
    std::string checkpoint;
    std::vector<std::string> texts;
    int top_k = 5;
    std::vector<std::string> targets;
    bool as_json = false;
    int threads = 0;
};

int run_fill_mask(const FillMaskArgs& a) {
    set_threads(a.threads);
    const MaskedLM lm = MaskedLM::load(a.checkpoint);
    json all = json::array();
    for (std::size_t t = 0; t < a.texts.size(); ++t) {
        const auto result = lm.fill_mask(a.texts[t], a.top_k, a.targets);
        if (a.as_json) {
            json per_text = json::array();
            for (const auto& candidates : result) {
                json list = json::array();
                for (const auto& c : candidates)
                    list.push_back({{"score", c.score}, {"token", c.token}, {"token_str", c.token_str}, {"sequence", c.sequence}});
                per_text.push_back(list);
            }
            all.push_back(per_text);
            continue;
        }
        if (t) std::printf("\n");
        for (std::size_t m = 0; m < result.size(); ++m) {
            if (result.size() > 1) std::printf("%s[MASK] %zu of %zu\n", m ? "\n" : "", m + 1, result.size());
            std::size_t width = 5;
            for (const auto& c : result[m]) width = std::max(width, c.token_str.size());
            std::printf("%-8s  %-*s  %s\n", "score", static_cast<int>(width), "token", "sequence");
            for (const auto& c : result[m])
                std::printf("%-8.4f  %-*s  %s\n", c.score, static_cast<int>(width), c.token_str.c_str(), c.sequence.c_str());
        }
    }
    // JSON: one entry per text; each a list per [MASK] (in text order) of candidates, best first.
    if (a.as_json) std::printf("%s\n", (a.texts.size() == 1 ? all[0] : all).dump().c_str());
    return 0;
}

}  // namespace

Command add_eval_command(CLI::App& app) {
    auto args = std::make_shared<EvalArgs>();
    EvalArgs& a = *args;
    CLI::App* cmd = app.add_subcommand(
        "eval", "Evaluate a checkpoint on held-out sentences: MLM loss and masked-token accuracy (fixed-seed "
                "masks), single-mask accuracy and its top-k (one random token per sentence)");
    cmd->add_option("--checkpoint,-c", a.checkpoint, "Checkpoint directory (a run's out dir, or its best/)")->required();
    cmd->add_option("--input,-i", a.input, "Text file, one sentence per line (plain, .gz or .xz)")
        ->required()
        ->check(CLI::ExistingFile);
    cmd->add_option("--max-sentences", a.options.max_sentences, "Evaluate the first N sentences only (0: all)")
        ->capture_default_str();
    cmd->add_option("--seed", a.options.seed, "Seed of the evaluation masks (the trainer uses the same default)")
        ->capture_default_str();
    cmd->add_option("--mask-prob", a.options.mask_probability, "Share of tokens masked for the MLM loss")->capture_default_str();
    cmd->add_option("--top-k", a.options.top_k, "k of the single-mask top-k accuracy")->capture_default_str();
    cmd->add_option("--batch-tokens", a.options.batch_tokens, "Tokens per evaluation batch")->capture_default_str();
    cmd->add_flag("--json", a.as_json, "Print one JSON object (full precision) instead of a table");
    cmd->add_option("--threads", a.threads, "OpenMP threads (0: all cores)")->capture_default_str();
    return {cmd, [args]() { return run_eval(*args); }};
}

Command add_predict_command(CLI::App& app) {
    auto args = std::make_shared<PredictArgs>();
    PredictArgs& a = *args;
    CLI::App* cmd = app.add_subcommand(
        "predict", "Mask one token of each sentence and predict it, in the original notebook's format:\n"
                   "  masked: X predicted: Y / ACTUAL: ... / MASKED: ... / MODEL: ...\n"
                   "The token is --position if given, else the text's first [MASK], else a random one (--seed)");
    cmd->add_option("--checkpoint,-c", a.checkpoint, "Checkpoint directory (a run's out dir, or its best/)")->required();
    cmd->add_option("text", a.texts, "Sentences")->required();
    CLI::Option* seed = cmd->add_option("--seed", a.seed, "Seed of the random position (default: a new one every run)");
    cmd->add_option("--position", a.position,
                    "Index of the token to mask, 0-based (see `mlm tokenizer encode`); -1: random")
        ->capture_default_str();
    cmd->add_option("--top-k", a.top_k, "Also print the k best candidates with their probabilities")->capture_default_str();
    cmd->add_option("--threads", a.threads, "OpenMP threads (0: all cores)")->capture_default_str();
    return {cmd, [args, seed]() { return run_predict(*args, seed->count() > 0); }};
}

Command add_fill_mask_command(CLI::App& app) {
    auto args = std::make_shared<FillMaskArgs>();
    FillMaskArgs& a = *args;
    CLI::App* cmd = app.add_subcommand(
        "fill-mask", "Predict every [MASK] of a text: scores (probabilities), tokens and the filled sentences. Several "
                     "[MASK]s are predicted independently, in one pass, each with the others still masked");
    cmd->add_option("--checkpoint,-c", a.checkpoint, "Checkpoint directory (a run's out dir, or its best/)")->required();
    cmd->add_option("text", a.texts, "Texts containing [MASK]")->required();
    cmd->add_option("--top-k,-k", a.top_k, "Candidates per [MASK]")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--targets", a.targets, "Only score these tokens (comma-separated; each must be one token)")
        ->delimiter(',');
    cmd->add_flag("--json", a.as_json,
                  "Print JSON: per [MASK] a list of {score, token, token_str, sequence} (a list per text when "
                  "several texts are given)");
    cmd->add_option("--threads", a.threads, "OpenMP threads (0: all cores)")->capture_default_str();
    return {cmd, [args]() { return run_fill_mask(*args); }};
}

}  // namespace mlm::cli
