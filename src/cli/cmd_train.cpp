// mlm train: text files in, a checkpoint directory out (see include/mlm/trainer.hpp for the run
// directory's layout). Every TrainerConfig and ModelConfig knob is an option; --recipe sets the
// knobs of a training recipe (apply_recipe in trainer.hpp) and the options given override them;
// kDefaultRecipe is the one without --recipe. With --resume the stored run's configuration is used and only the
// options given on this command line are applied on top of it (the trainer refuses changes that
// would make the resumed run differ from an uninterrupted one).
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include <mlm/checkpoint.hpp>
#include <mlm/data.hpp>
#include <mlm/tokenizer.hpp>
#include <mlm/trainer.hpp>

#include "cli.hpp"

namespace mlm::cli {

namespace {

namespace fs = std::filesystem;

// The recipe of `mlm train` without --recipe.
constexpr Recipe kDefaultRecipe = Recipe::best;

// ---- Ctrl-C: the first asks the trainer to stop after the current step (and checkpoint), the
// second kills the program.
std::atomic<Trainer*> g_trainer{nullptr};
std::atomic<bool> g_interrupted{false};

extern "C" void on_sigint(int) {
    if (g_interrupted.exchange(true)) {
        std::signal(SIGINT, SIG_DFL);
        std::raise(SIGINT);
        return;
    }
    if (Trainer* t = g_trainer.load()) t->request_stop();
    const char msg[] = "\nmlm: stopping after this step and writing a checkpoint (Ctrl-C again to abort)\n";
    [[maybe_unused]] ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
}

// Options whose values can be copied from the parsed set onto another config (for --resume: only
// the options the user gave override the stored run's).
template <class Config>
class Knobs {
public:
    Config values;

    template <class Get>
    CLI::Option* option(CLI::App* app, const std::string& flags, Get get, const std::string& help) {
        CLI::Option* opt = app->add_option(flags, get(values), help)->capture_default_str();
        copies_.push_back({opt, [this, get](Config& dst) { get(dst) = get(values); }});
        return opt;
    }
    template <class Get>
    CLI::Option* flag(CLI::App* app, const std::string& flags, Get get, const std::string& help) {
        CLI::Option* opt = app->add_flag(flags, get(values), help);
        copies_.push_back({opt, [this, get](Config& dst) { get(dst) = get(values); }});
        return opt;
    }
    // A string option converted by `apply` into the config.
    CLI::Option* text(CLI::App* app, const std::string& flags, std::string& storage,
                      std::function<void(Config&, const std::string&)> apply, const std::string& help) {
        CLI::Option* opt = app->add_option(flags, storage, help)->capture_default_str();
        conversions_.push_back([&storage, apply, this]() { apply(values, storage); });
        copies_.push_back({opt, [&storage, apply](Config& dst) { apply(dst, storage); }});
        return opt;
    }
    // After parsing: converts the string options into `values`.
    void convert() {
        for (auto& f : conversions_) f();
    }
    // Applies the options given on the command line to `dst`.
    void apply_given(Config& dst) const {
        for (const auto& [opt, copy] : copies_)
            if (opt->count() > 0) copy(dst);
    }

private:
    std::vector<std::pair<CLI::Option*, std::function<void(Config&)>>> copies_;
    std::vector<std::function<void()>> conversions_;
};

struct TrainArgs {
    std::vector<std::string> train_files;
    std::string valid_file;
    std::string out;
    std::string tokenizer_path;
    std::size_t holdout = 2000;
    std::size_t max_sentences = 0;
    std::string cache_dir;
    bool no_cache = false;
    bool resume = false;
    // tokenizer training
    TokenizerTrainOptions tok;
    std::string tok_model = "unigram";
    // enum / duration options, as text
    std::string max_time = "0", max_total_time = "0";
    std::string optimizer, schedule, bucketing = "auto", progress = "auto", on_non_finite = "skip", norm_placement,
                anneal = "cos";
    std::string recipe;
    CLI::Option* recipe_opt = nullptr;
    Knobs<TrainerConfig> trainer;
    Knobs<ModelConfig> model;
    CLI::Option* vocab_size_opt = nullptr;
    CLI::Option *batch_size_opt = nullptr, *batch_tokens_opt = nullptr;
    CLI::Option *train_opt = nullptr, *valid_opt = nullptr, *holdout_opt = nullptr, *max_sentences_opt = nullptr,
                *cache_dir_opt = nullptr, *no_cache_opt = nullptr;
};

// OUT/data.json: the data options of a run, so that `mlm train --out OUT --resume` needs nothing else.
constexpr const char* kDataFile = "data.json";

void save_data_options(const TrainArgs& a) {
    nlohmann::ordered_json j;
    std::vector<std::string> train;
    for (const auto& f : a.train_files) train.push_back(fs::absolute(f).string());
    j["train"] = train;
    j["valid"] = a.valid_file.empty() ? std::string() : fs::absolute(a.valid_file).string();
    j["holdout"] = a.holdout;
    j["max_sentences"] = a.max_sentences;
    j["cache_dir"] = a.cache_dir.empty() ? std::string() : fs::absolute(a.cache_dir).string();
    j["no_cache"] = a.no_cache;
    write_file_atomic((fs::path(a.out) / kDataFile).string(), j.dump(2) + "\n");
}

// With --resume: the options not given on the command line come from OUT/data.json.
void load_data_options(TrainArgs& a) {
    const std::string path = (fs::path(a.out) / kDataFile).string();
    if (!fs::exists(path)) {
        if (a.train_files.empty())
            throw std::invalid_argument("--resume without --train: " + path + " is missing, so give the run's data options again");
        return;
    }
    try {
        const auto j = nlohmann::json::parse(read_file(path));
        if (a.train_opt->count() == 0) a.train_files = j.at("train").get<std::vector<std::string>>();
        if (a.valid_opt->count() == 0) a.valid_file = j.at("valid").get<std::string>();
        if (a.holdout_opt->count() == 0) a.holdout = j.at("holdout").get<std::size_t>();
        if (a.max_sentences_opt->count() == 0) a.max_sentences = j.at("max_sentences").get<std::size_t>();
        // (runs started before these were recorded keep the default: OUT/cache)
        if (a.cache_dir_opt->count() == 0 && a.no_cache_opt->count() == 0) {
            a.cache_dir = j.value("cache_dir", std::string());
            a.no_cache = j.value("no_cache", false);
        }
    } catch (const nlohmann::json::exception& e) {
        throw CheckpointError(path + ": not a valid record of the run's data options (" + e.what() +
                              "); give them again (--train, --valid, --holdout, --max-sentences)");
    }
}

// --batch-size asks for batches of that many sentences, so it turns off a recipe's (or the stored
// run's) token budget; with --batch-tokens as well it would be ignored, which is refused.
void apply_batch_options(const TrainArgs& a, TrainerConfig& c) {
    if (a.batch_size_opt->count() == 0) return;
    if (a.batch_tokens_opt->count() == 0) {
        c.batch_tokens = 0;
    } else if (c.batch_tokens > 0) {
        throw std::invalid_argument("--batch-size " + std::to_string(c.batch_size) + " and --batch-tokens " +
                                    std::to_string(c.batch_tokens) +
                                    ": give one (token-budget batches ignore --batch-size; cap their sentences "
                                    "with --max-batch-sequences)");
    }
}

std::string cache_path(const TrainArgs& a, const std::string& file) {
    const std::string dir = a.cache_dir.empty() ? (fs::path(a.out) / "cache").string() : a.cache_dir;
    // keyed by the file's canonical path, so that ../data/x and /abs/data/x share one cache file
    std::error_code ec;
    std::string abs = fs::weakly_canonical(fs::absolute(file, ec), ec).string();
    if (ec) abs = fs::absolute(file, ec).string();
    char hash[17];
    std::snprintf(hash, sizeof hash, "%016llx",
                  static_cast<unsigned long long>(detail::hash_bytes(abs.data(), abs.size())));
    return (fs::path(dir) / (fs::path(file).filename().string() + "-" + hash + ".tokens")).string();
}

TokenizedCorpus read_corpus(const TrainArgs& a, const Tokenizer& tok, const std::string& file, int max_len,
                            std::size_t max_sentences) {
    TokenizeOptions to;
    to.max_length = max_len;
    to.max_sentences = max_sentences;
    const auto t0 = std::chrono::steady_clock::now();
    TokenizedCorpus corpus;
    bool cached = false;
    if (a.no_cache) {
        corpus = tokenize_file(tok, file, to);
    } else {
        const std::string path = cache_path(a, file);
        fs::create_directories(fs::path(path).parent_path());
        corpus = load_or_tokenize(tok, file, path, to, &cached);
    }
    std::fprintf(stderr, "%s: %s sentences, %s tokens (%s, %.1f s)\n", file.c_str(),
                 with_commas(static_cast<int64_t>(corpus.size())).c_str(),
                 with_commas(static_cast<int64_t>(corpus.num_tokens())).c_str(), cached ? "cached" : "tokenized",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return corpus;
}

int run_train(TrainArgs& a) {
    a.trainer.convert();
    a.model.convert();
    const bool resume = a.resume;
    TrainerConfig config;
    ModelConfig model_config;
    Tokenizer tok;

    if (!resume && a.train_files.empty()) throw std::invalid_argument("--train is required (the training text files)");
    if (resume) {
        if (!Trainer::has_state(a.out))
            throw std::invalid_argument("--resume: " + a.out + " holds no trainer state (trainer_state.safetensors); "
                                        "start a new run without --resume");
        load_data_options(a);
        config = Trainer::load_config(a.out);
        config.out_dir = a.out;
        // The run's tokenizer and model config, checked against each other here so that a damaged
        // or mismatched file is named (the trainer then checks both against the trainer state).
        const std::string tok_file =
            a.tokenizer_path.empty() ? checkpoint_file(a.out, checkpoint_tokenizer_file) : a.tokenizer_path;
        try {
            tok = a.tokenizer_path.empty() ? Tokenizer::from_serialized(load_tokenizer_model(a.out))
                                           : Tokenizer::load(a.tokenizer_path);
        } catch (const CheckpointError&) {
            throw;
        } catch (const std::exception& e) {
            throw CheckpointError(tok_file + ": not a valid tokenizer model: " + e.what());
        }
        model_config = load_config(a.out);
        // --recipe and the options given override the stored run's; the trainer refuses any
        // change that would make the resumed run differ from an uninterrupted one
        if (a.recipe_opt->count() > 0) apply_recipe(recipe_from_string(a.recipe), model_config, config);
        a.trainer.apply_given(config);
        apply_batch_options(a, config);
        a.model.apply_given(model_config);
        if (tok.vocab_size() != model_config.vocab_size)
            throw CheckpointError("cannot resume the run in " + a.out + ": " + tok_file + " has " +
                                  std::to_string(tok.vocab_size()) + " ids but " +
                                  checkpoint_file(a.out, checkpoint_config_file) + " says vocab_size " +
                                  std::to_string(model_config.vocab_size) + "; the files come from different models");
        std::fprintf(stderr, "resuming the run in %s\n", a.out.c_str());
    } else {
        // the recipe's knobs, then the options given on the command line over them
        config = a.trainer.values;
        model_config = a.model.values;
        apply_recipe(recipe_from_string(a.recipe), model_config, config);
        a.trainer.apply_given(config);
        apply_batch_options(a, config);
        a.model.apply_given(model_config);
        config.out_dir = a.out;
        config.validate();
        if (Trainer::has_state(a.out) && !config.overwrite)
            throw std::invalid_argument(a.out + " already holds a training run: pass --resume to continue it, "
                                        "--overwrite to start a new one there, or choose another --out");
        if (!a.tokenizer_path.empty()) {
            tok = Tokenizer::load(a.tokenizer_path);
            if (a.vocab_size_opt->count() > 0 && a.tok.vocab_size != tok.vocab_size())
                throw std::invalid_argument("--vocab-size " + std::to_string(a.tok.vocab_size) + " differs from the " +
                                            std::to_string(tok.vocab_size()) + " ids of --tokenizer " + a.tokenizer_path);
            std::fprintf(stderr, "tokenizer %s: %d ids\n", a.tokenizer_path.c_str(), tok.vocab_size());
        } else {
            TokenizerTrainOptions to = a.tok;
            to.model = a.tok_model == "bpe" ? TokenizerModel::bpe : TokenizerModel::unigram;
            to.unk_id = model_config.unk_id;
            to.pad_id = model_config.pad_id;
            to.mask_id = model_config.mask_id;
            const auto t0 = std::chrono::steady_clock::now();
            std::fprintf(stderr, "training a %s tokenizer with %d ids on the training %s...\n", a.tok_model.c_str(),
                         to.vocab_size, a.max_sentences ? "sentences" : "files");
            if (a.max_sentences) {  // exactly the sentences the model will see
                std::vector<std::string> lines;
                std::string line;
                for (const std::string& file : a.train_files) {
                    LineReader reader(file);
                    while (lines.size() < a.max_sentences && reader.next(line)) lines.push_back(line);
                }
                tok = Tokenizer::train_from_sentences(lines, to);
            } else {
                tok = Tokenizer::train(a.train_files, to);
            }
            std::fprintf(stderr, "tokenizer: %d ids (%.1f s)\n", tok.vocab_size(),
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        }
        model_config.vocab_size = tok.vocab_size();
        model_config.validate();
        fs::create_directories(a.out);
        save_tokenizer_model(a.out, tok.serialized());
        save_data_options(a);
    }

    // ---- data
    TokenizedCorpus train(tok.vocab_size());
    for (const std::string& file : a.train_files) {
        const std::size_t left = a.max_sentences ? a.max_sentences - train.size() : 0;
        if (a.max_sentences && left == 0) break;
        const TokenizedCorpus part = read_corpus(a, tok, file, model_config.max_len, left);
        if (a.train_files.size() == 1) {
            train = part;
            break;
        }
        std::vector<int32_t> ids;
        for (std::size_t i = 0; i < part.size(); ++i) {
            ids.resize(static_cast<std::size_t>(part.length(i)));
            part.copy(i, ids.data());
            train.append(ids);
        }
    }
    TokenizedCorpus valid(tok.vocab_size());
    if (!a.valid_file.empty()) {
        valid = read_corpus(a, tok, a.valid_file, model_config.max_len, 0);
    } else if (a.holdout > 0) {
        const std::size_t n_valid = std::min(a.holdout, train.size() / 10);
        if (n_valid > 0) {
            const Split split = split_train_valid(train.size(), n_valid, config.seed);
            valid = train.subset(split.valid);
            train = train.subset(split.train);
            std::fprintf(stderr, "held out %s of the training sentences for evaluation (no --valid given)\n",
                         with_commas(static_cast<int64_t>(n_valid)).c_str());
        }
    }

    // ---- the run
    Trainer trainer(model_config, tok, config);
    trainer.set_data(std::move(train), std::move(valid));
    if (resume) trainer.resume();
    std::fprintf(stderr,
                 "model: %s parameters (dim %d, %d heads, %d layers, vocab %d, %s norm) | %d threads | %s steps%s\n",
                 with_commas(static_cast<int64_t>(trainer.model().num_parameters())).c_str(), model_config.dim,
                 model_config.n_heads, model_config.n_layers, model_config.vocab_size,
                 to_string(model_config.norm_placement), max_threads(),
                 trainer.total_steps() ? with_commas(trainer.total_steps()).c_str() : "unbounded",
                 resume ? (", from step " + with_commas(trainer.step())).c_str() : "");

    g_trainer.store(&trainer);
    auto previous = std::signal(SIGINT, on_sigint);
    TrainResult r;
    try {
        r = trainer.train();
    } catch (...) {
        g_trainer.store(nullptr);
        std::signal(SIGINT, previous);
        throw;
    }
    g_trainer.store(nullptr);
    std::signal(SIGINT, previous);

    std::printf("%s after %s steps (%.2f epochs, %s tokens) in %.1f s\n", to_string(r.stop_reason),
                with_commas(r.steps).c_str(), r.epochs, with_commas(r.tokens).c_str(), r.elapsed_s);
    const EvalMetrics& e = r.last_eval;
    if (std::isfinite(e.loss))
        std::printf("last evaluation: loss %.4f accuracy %.4f single-mask accuracy %.4f top-%d %.4f\n", e.loss, e.accuracy,
                    e.single_mask_accuracy, e.top_k, e.single_mask_topk_accuracy);
    if (std::isfinite(r.best_val_loss))
        std::printf("best validation loss %.4f at step %s%s\n", r.best_val_loss, with_commas(r.best_step).c_str(),
                    config.save_best ? (" (" + (fs::path(a.out) / "best").string() + ")").c_str() : "");
    if (r.checkpoint_step >= 0)
        std::printf("checkpoint: %s%s\n", a.out.c_str(),
                    r.stop_reason == StopReason::finished ? "" : " (continue with the same command and --resume)");
    else if (r.stop_reason != StopReason::non_finite)
        std::printf("no checkpoint written: the run ended (%s) before its first step\n", to_string(r.stop_reason));
    if (r.stop_reason == StopReason::non_finite) {
        const std::string saved =
            r.checkpoint_step >= 0
                ? "the checkpoint in " + a.out + " stays the one of step " + with_commas(r.checkpoint_step) +
                      ", written before; resume it with --on-non-finite skip to step over such batches, or start "
                      "again with a lower --lr"
                : "no checkpoint was written before; start again with a lower --lr or --on-non-finite skip";
        std::fprintf(stderr, "mlm: error: training stopped at step %s: the loss or the gradient became non-finite "
                     "(steps not applied: %s); %s\n",
                     with_commas(r.steps).c_str(), with_commas(r.skipped_steps).c_str(), saved.c_str());
        return 1;
    }
    if (r.stop_reason == StopReason::stopped && g_interrupted.load()) return 130;
    return 0;
}

}  // namespace

Command add_train_command(CLI::App& app) {
    auto args = std::make_shared<TrainArgs>();
    TrainArgs& a = *args;
    CLI::App* cmd = app.add_subcommand(
        "train", std::string("Pre-train an encoder with masked-language modeling: the reference model (dim 256, 8 heads, "
                             "6 layers), 100 epochs, and the ") + to_string(kDefaultRecipe) +
                     " recipe (--recipe; the defaults shown are its values)");
    auto& T = a.trainer;
    auto& M = a.model;
    // The defaults shown by --help: the default recipe's.
    apply_recipe(kDefaultRecipe, M.values, T.values);
    a.recipe = to_string(kDefaultRecipe);
    a.optimizer = to_string(T.values.optimizer);
    a.schedule = to_string(T.values.schedule);
    a.norm_placement = to_string(M.values.norm_placement);
    const std::string data = "Data", tokz = "Tokenizer (when --tokenizer is not given)", model = "Model",
                      length = "Run length (the first limit reached ends the run; 0: off)", batch = "Batches",
                      optim = "Optimizer", sched = "Schedule", mask = "Masking and randomness", evals = "Evaluation",
                      ckpt = "Checkpoints and logs";

    // data
    a.train_opt = cmd->add_option("--train", a.train_files,
                                  "Training text files, one sentence per line (plain, .gz or .xz); required, except "
                                  "with --resume, which reuses the run's data options (OUT/data.json)")
                      ->check(CLI::ExistingFile)
                      ->group(data);
    a.valid_opt = cmd->add_option("--valid", a.valid_file, "Held-out sentences for evaluation")->check(CLI::ExistingFile)->group(data);
    a.holdout_opt =
        cmd->add_option("--holdout", a.holdout, "Without --valid: hold out this many training sentences (at most 10%; 0: no evaluation)")
            ->capture_default_str()
            ->group(data);
    a.max_sentences_opt = cmd->add_option("--max-sentences", a.max_sentences, "Read at most this many training sentences (0: all)")
                              ->capture_default_str()
                              ->group(data);
    cmd->add_option("--out,-o", a.out, "Run directory: checkpoints, best/, log.jsonl")->required()->group(data);
    a.cache_dir_opt = cmd->add_option("--cache-dir", a.cache_dir, "Where to cache tokenized files (default: OUT/cache)")->group(data);
    a.no_cache_opt = cmd->add_flag("--no-cache", a.no_cache, "Do not cache tokenized files")->group(data);
    cmd->add_flag("--resume", a.resume, "Continue the run saved in --out (same data and settings; exact)")->group(data);
    T.option(cmd, "--threads", [](TrainerConfig& c) -> int& { return c.threads; }, "OpenMP threads (0: all cores)")->group(data);

    // tokenizer
    cmd->add_option("--tokenizer", a.tokenizer_path, "A trained tokenizer model (else one is trained on --train)")
        ->check(CLI::ExistingFile)
        ->group(tokz);
    a.vocab_size_opt = cmd->add_option("--vocab-size", a.tok.vocab_size, "Tokenizer vocab size")->capture_default_str()->group(tokz);
    cmd->add_option("--model-type", a.tok_model, "Tokenizer algorithm")
        ->check(CLI::IsMember({"unigram", "bpe"}))
        ->capture_default_str()
        ->group(tokz);
    cmd->add_flag("--lowercase,!--no-lowercase", a.tok.lower_case, "Lower-case the text (default: on)")->group(tokz);
    cmd->add_flag("--strip-accents,!--keep-accents", a.tok.strip_accents, "Remove accents (default: off)")->group(tokz);
    a.tok.max_sentences = 1000000;
    cmd->add_option("--tokenizer-sentences", a.tok.max_sentences, "Train the tokenizer on at most this many sentences (0: all)")
        ->capture_default_str()
        ->group(tokz);

    // recipe
    a.recipe_opt = cmd->add_option("--recipe", a.recipe,
                                   "How to train: original (the notebook's: reference block order, dropout 0.1, Adam, "
                                   "one-cycle lr 6e-4, batches of 128 sentences) or best (the project's: pre-norm, no "
                                   "dropout, AdamW, warm-up + cosine lr 1e-3, clipping, batches of 4,096 tokens, 30% "
                                   "masking); see docs/quality.md. The options below override its knobs")
                       ->check(CLI::IsMember({"original", "best"}))
                       ->capture_default_str()
                       ->group("Recipe");

    // model
    M.option(cmd, "--dim", [](ModelConfig& c) -> int& { return c.dim; }, "Model width")->group(model);
    M.option(cmd, "--heads", [](ModelConfig& c) -> int& { return c.n_heads; }, "Attention heads")->group(model);
    M.option(cmd, "--layers", [](ModelConfig& c) -> int& { return c.n_layers; }, "Encoder blocks")->group(model);
    M.option(cmd, "--ffn-mult", [](ModelConfig& c) -> int& { return c.ffn_mult; }, "Feed-forward width / dim")->group(model);
    M.option(cmd, "--max-len", [](ModelConfig& c) -> int& { return c.max_len; }, "Longest sequence (longer ones are truncated)")
        ->group(model);
    M.option(cmd, "--dropout", [](ModelConfig& c) -> float& { return c.dropout; }, "Dropout probability")->group(model);
    M.option(cmd, "--init-std", [](ModelConfig& c) -> float& { return c.init_std; }, "Std of the initial weights")->group(model);
    M.text(cmd, "--norm-placement", a.norm_placement,
           [](ModelConfig& c, const std::string& s) { c.norm_placement = norm_placement_from_string(s); },
           "reference: x = norm(x); x = x + f(x) (the original), pre: x = x + f(norm(x))")
        ->check(CLI::IsMember({"reference", "pre"}))
        ->group(model);

    // run length
    T.option(cmd, "--epochs", [](TrainerConfig& c) -> int64_t& { return c.epochs; }, "Epochs")->group(length);
    T.option(cmd, "--max-steps", [](TrainerConfig& c) -> int64_t& { return c.max_steps; }, "Optimizer steps")->group(length);
    T.option(cmd, "--max-tokens", [](TrainerConfig& c) -> int64_t& { return c.max_tokens; }, "Real tokens fed to the model")
        ->group(length);
    T.text(cmd, "--max-time", a.max_time, [](TrainerConfig& c, const std::string& s) { c.max_time_s = parse_duration(s); },
           "Wall time of this session (e.g. 3600, 90m, 2h50m): it then evaluates, checkpoints and exits; a --resume "
           "gets a new budget. With only this limit, set --schedule-steps or use --schedule constant")
        ->group(length);
    T.text(cmd, "--max-total-time", a.max_total_time,
           [](TrainerConfig& c, const std::string& s) { c.max_total_time_s = parse_duration(s); },
           "Wall time of the whole run, over all its --resume sessions (e.g. 2h): the run then evaluates, "
           "checkpoints and is finished. With only time limits, set --schedule-steps or use --schedule constant")
        ->group(length);

    // batches
    a.batch_size_opt = T.option(cmd, "--batch-size", [](TrainerConfig& c) -> std::size_t& { return c.batch_size; },
                                "Sentences per batch (given alone, it turns a recipe's --batch-tokens off)")
                           ->group(batch);
    a.batch_tokens_opt = T.option(cmd, "--batch-tokens", [](TrainerConfig& c) -> std::size_t& { return c.batch_tokens; },
             "Token-budget batches of at most this many real tokens, length-bucketed (e.g. 4096; 0: off)")
                             ->group(batch);
    T.option(cmd, "--max-batch-sequences", [](TrainerConfig& c) -> std::size_t& { return c.max_batch_sequences; },
             "With --batch-tokens: at most this many sentences per batch (0: no cap)")
        ->group(batch);
    T.text(cmd, "--bucketing", a.bucketing,
           [](TrainerConfig& c, const std::string& s) {
               c.bucketing = s == "on" ? BatcherOptions::Bucketing::on
                                       : s == "off" ? BatcherOptions::Bucketing::off : BatcherOptions::Bucketing::automatic;
           },
           "Length bucketing (auto: on with --batch-tokens)")
        ->check(CLI::IsMember({"auto", "on", "off"}))
        ->group(batch);
    T.option(cmd, "--grad-accum", [](TrainerConfig& c) -> int& { return c.grad_accum; }, "Batches per optimizer step")
        ->group(batch);

    // optimizer
    T.text(cmd, "--optimizer", a.optimizer,
           [](TrainerConfig& c, const std::string& s) { c.optimizer = optimizer_kind_from_string(s); },
           "adam (torch.optim.Adam: L2 decay) or adamw (decoupled decay)")
        ->check(CLI::IsMember({"adam", "adamw"}))
        ->group(optim);
    T.option(cmd, "--lr", [](TrainerConfig& c) -> double& { return c.lr; }, "Peak (or constant) learning rate")->group(optim);
    T.option(cmd, "--beta1", [](TrainerConfig& c) -> double& { return c.beta1; }, "Adam beta1 (when not cycled)")->group(optim);
    T.option(cmd, "--beta2", [](TrainerConfig& c) -> double& { return c.beta2; }, "Adam beta2")->group(optim);
    T.option(cmd, "--eps", [](TrainerConfig& c) -> double& { return c.eps; }, "Adam eps")->group(optim);
    T.option(cmd, "--weight-decay", [](TrainerConfig& c) -> double& { return c.weight_decay; }, "Weight decay")->group(optim);
    T.flag(cmd, "--decay-weights-only", [](TrainerConfig& c) -> bool& { return c.decay_weights_only; },
           "Exempt norm scales, biases and embeddings from weight decay")
        ->group(optim);
    T.option(cmd, "--clip-grad-norm", [](TrainerConfig& c) -> double& { return c.clip_grad_norm; },
             "Clip the global gradient norm to this (0: off)")
        ->group(optim);

    // schedule
    T.text(cmd, "--schedule", a.schedule,
           [](TrainerConfig& c, const std::string& s) { c.schedule = schedule_kind_from_string(s); },
           "one_cycle (PyTorch OneCycleLR over the whole run), constant, warmup_linear, warmup_cosine")
        ->check(CLI::IsMember({"one_cycle", "constant", "warmup_linear", "warmup_cosine"}))
        ->group(sched);
    T.option(cmd, "--lr-min", [](TrainerConfig& c) -> double& { return c.lr_min; }, "Warm-up schedules: final lr")->group(sched);
    T.option(cmd, "--warmup-steps", [](TrainerConfig& c) -> int64_t& { return c.warmup_steps; }, "Warm-up schedules: steps")
        ->group(sched);
    T.option(cmd, "--warmup-fraction", [](TrainerConfig& c) -> double& { return c.warmup_fraction; },
             "Warm-up schedules: warm-up share of the run (when --warmup-steps is 0)")
        ->group(sched);
    T.option(cmd, "--pct-start", [](TrainerConfig& c) -> double& { return c.pct_start; }, "One-cycle: share of rising steps")
        ->group(sched);
    T.option(cmd, "--div-factor", [](TrainerConfig& c) -> double& { return c.div_factor; }, "One-cycle: initial lr = lr / this")
        ->group(sched);
    T.option(cmd, "--final-div-factor", [](TrainerConfig& c) -> double& { return c.final_div_factor; },
             "One-cycle: final lr = initial lr / this")
        ->group(sched);
    T.flag(cmd, "--three-phase", [](TrainerConfig& c) -> bool& { return c.three_phase; }, "One-cycle: torch's three_phase")
        ->group(sched);
    T.text(cmd, "--anneal", a.anneal, [](TrainerConfig& c, const std::string& s) { c.anneal_linear = s == "linear"; },
           "One-cycle annealing")
        ->check(CLI::IsMember({"cos", "linear"}))
        ->group(sched);
    T.flag(cmd, "--cycle-momentum,!--no-cycle-momentum", [](TrainerConfig& c) -> bool& { return c.cycle_momentum; },
           "One-cycle: cycle beta1 between --max-momentum and --base-momentum (default: on)")
        ->group(sched);
    T.option(cmd, "--base-momentum", [](TrainerConfig& c) -> double& { return c.base_momentum; }, "One-cycle: beta1 at the peak")
        ->group(sched);
    T.option(cmd, "--max-momentum", [](TrainerConfig& c) -> double& { return c.max_momentum; },
             "One-cycle: beta1 at the start and end")
        ->group(sched);
    T.option(cmd, "--schedule-steps", [](TrainerConfig& c) -> int64_t& { return c.schedule_steps; },
             "The schedule's length instead of the one derived from the run length (0: derived)")
        ->group(sched);

    // masking and seed
    T.option(cmd, "--mask-prob", [](TrainerConfig& c) -> double& { return c.masking.mask_probability; },
             "Share of the tokens selected for prediction")
        ->group(mask);
    T.option(cmd, "--mask-fraction", [](TrainerConfig& c) -> double& { return c.masking.mask_fraction; },
             "Of the selected tokens: replaced by [MASK] (BERT: 0.8)")
        ->group(mask);
    T.option(cmd, "--random-fraction", [](TrainerConfig& c) -> double& { return c.masking.random_fraction; },
             "Of the selected tokens: replaced by a random token (BERT: 0.1)")
        ->group(mask);
    T.flag(cmd, "--whole-word", [](TrainerConfig& c) -> bool& { return c.masking.whole_word; }, "Whole-word masking")->group(mask);
    T.flag(cmd, "--at-least-one", [](TrainerConfig& c) -> bool& { return c.masking.at_least_one; },
           "Mask at least one token per sentence")
        ->group(mask);
    T.option(cmd, "--seed", [](TrainerConfig& c) -> uint64_t& { return c.seed; },
             "Seed of the initial weights, batch order, masks, dropout and the holdout split")
        ->group(mask);

    // evaluation
    T.option(cmd, "--eval-every", [](TrainerConfig& c) -> int64_t& { return c.eval_every_steps; },
             "Evaluate every N steps (0: at the end of every epoch)")
        ->group(evals);
    T.flag(cmd, "--eval-at-start", [](TrainerConfig& c) -> bool& { return c.eval_at_start; }, "Also evaluate before training")
        ->group(evals);
    T.option(cmd, "--eval-sentences", [](TrainerConfig& c) -> std::size_t& { return c.eval.max_sentences; },
             "Evaluate on the first N held-out sentences (0: all)")
        ->group(evals);
    T.option(cmd, "--eval-seed", [](TrainerConfig& c) -> uint64_t& { return c.eval.seed; }, "Seed of the evaluation masks")
        ->group(evals);
    T.flag(cmd, "--save-best,!--no-save-best", [](TrainerConfig& c) -> bool& { return c.save_best; },
           "Keep OUT/best, the model with the lowest validation loss (default: on)")
        ->group(evals);

    // checkpoints and logs
    T.option(cmd, "--checkpoint-every", [](TrainerConfig& c) -> int64_t& { return c.checkpoint_every_steps; },
             "Checkpoint every N steps (0: off)")
        ->group(ckpt);
    T.option(cmd, "--checkpoint-minutes", [](TrainerConfig& c) -> double& { return c.checkpoint_every_minutes; },
             "Checkpoint every M minutes (0: off)")
        ->group(ckpt);
    T.flag(cmd, "--checkpoint-on-stop,!--no-checkpoint-on-stop", [](TrainerConfig& c) -> bool& { return c.checkpoint_on_stop; },
           "Checkpoint when stopped by Ctrl-C (default: on; the end of the run and --max-time always checkpoint)")
        ->group(ckpt);
    T.flag(cmd, "--overwrite", [](TrainerConfig& c) -> bool& { return c.overwrite; },
           "Start a new run even if --out holds one")
        ->group(ckpt);
    T.text(cmd, "--progress", a.progress,
           [](TrainerConfig& c, const std::string& s) { c.progress = progress_mode_from_string(s); },
           "auto (a bar on a terminal, else lines), bar, lines, none")
        ->check(CLI::IsMember({"auto", "bar", "lines", "none"}))
        ->group(ckpt);
    T.option(cmd, "--log-every", [](TrainerConfig& c) -> int64_t& { return c.log_every_steps; },
             "Progress line every N steps (when not on a terminal); log.jsonl gets every step")
        ->group(ckpt);
    T.text(cmd, "--on-non-finite", a.on_non_finite,
           [](TrainerConfig& c, const std::string& s) { c.on_non_finite = non_finite_policy_from_string(s); },
           "A NaN/inf loss or gradient: skip the step, or stop (a run stopped by one writes no checkpoint: the "
           "last one written before stays)")
        ->check(CLI::IsMember({"skip", "stop"}))
        ->group(ckpt);
    T.option(cmd, "--max-non-finite-skips", [](TrainerConfig& c) -> int& { return c.max_non_finite_skips; },
             "Stop after this many skipped steps in a row")
        ->group(ckpt);

    return {cmd, [args]() { return run_train(*args); }};
}

}  // namespace mlm::cli
