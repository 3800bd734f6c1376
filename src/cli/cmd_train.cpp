// mlm train: text files in, a checkpoint directory out (see include/mlm/trainer.hpp for the run
// directory's layout). The options are made from the field tables of ModelConfig, TrainerConfig
// and DataOptions (options.hpp), and the run is assembled by mlm::assemble_run (run.hpp), the
// same function pymlm.Trainer calls: this file parses, presents and handles Ctrl-C.
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <unistd.h>

#include <mlm/run.hpp>
#include <mlm/trainer.hpp>

#include "cli.hpp"
#include "options.hpp"
#include "progress.hpp"

namespace mlm::cli {

namespace {

namespace fs = std::filesystem;

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

struct TrainArgs {
    RunRequest request;  // model_options, trainer_options, data: filled by the options
    FieldOptionSet fields;
    std::string recipe;
    CLI::Option* recipe_opt = nullptr;
    bool resume = false;
    std::string tokenizer_path;
    TokenizerTrainOptions tok;
    std::string tok_model = "unigram";
    CLI::Option* vocab_size_opt = nullptr;
    std::string progress = "auto";
    int64_t log_every = 50;
};

// The program's established names for fields whose option is not --<field-name>.
OptionNaming naming() {
    OptionNaming n;
    n.names = {{"n_heads", "--heads"},
               {"n_layers", "--layers"},
               {"max_time_s", "--max-time"},
               {"max_total_time_s", "--max-total-time"},
               {"masking.mask_probability", "--mask-prob"},
               {"eval_every_steps", "--eval-every"},
               {"eval.max_sentences", "--eval-sentences"},
               {"eval.seed", "--eval-seed"},
               {"checkpoint_every_steps", "--checkpoint-every"},
               {"checkpoint_every_minutes", "--checkpoint-minutes"},
               {"out_dir", "--out,-o"}};
    n.group_prefixes = {{"masking", ""}, {"eval", "eval-"}};
    n.sections = {{"data", "Data"},
                  {"model", "Model"},
                  {"length", "Run length (the first limit reached ends the run; 0: off)"},
                  {"batches", "Batches"},
                  {"optimizer", "Optimizer"},
                  {"schedule", "Schedule"},
                  {"masking", "Masking and randomness"},
                  {"evaluation", "Evaluation"},
                  {"checkpoints", "Checkpoints and logs"},
                  {"failures", "Failures and threads"}};
    // The vocab size and the special ids are the tokenizer's.
    n.skip = {"vocab_size", "unk_id", "pad_id", "mask_id"};
    n.adjust = {{"train", [](CLI::Option* o) { o->check(CLI::ExistingFile); }},
                {"valid", [](CLI::Option* o) { o->check(CLI::ExistingFile); }},
                {"out_dir", [](CLI::Option* o) { o->required(); }}};
    return n;
}

void print_result(const TrainResult& r, const TrainerConfig& config) {
    std::printf("%s after %s steps (%.2f epochs, %s tokens) in %.1f s\n", to_string(r.stop_reason),
                with_commas(r.steps).c_str(), r.epochs, with_commas(r.tokens).c_str(), r.elapsed_s);
    const EvalMetrics& e = r.last_eval;
    if (std::isfinite(e.loss))
        std::printf("last evaluation: loss %.4f accuracy %.4f single-mask accuracy %.4f top-%d %.4f\n", e.loss, e.accuracy,
                    e.single_mask_accuracy, e.top_k, e.single_mask_topk_accuracy);
    if (std::isfinite(r.best_val_loss))
        std::printf("best validation loss %.4f at step %s%s\n", r.best_val_loss, with_commas(r.best_step).c_str(),
                    config.save_best ? (" (" + (fs::path(config.out_dir) / "best").string() + ")").c_str() : "");
    if (r.checkpoint_step >= 0)
        std::printf("checkpoint: %s%s\n", config.out_dir.c_str(),
                    r.stop_reason == StopReason::finished ? "" : " (continue with the same command and --resume)");
    else if (r.stop_reason != StopReason::non_finite)
        std::printf("no checkpoint written: the run ended (%s) before its first step\n", to_string(r.stop_reason));
}

int run_train(TrainArgs& a) {
    a.fields.finish();
    RunRequest& req = a.request;
    req.resume = a.resume;
    const std::string out = req.trainer_options.values.out_dir;
    // A resume keeps the run's recipe unless one is named.
    if (!a.resume || a.recipe_opt->count() > 0) req.recipe = recipe_from_string(a.recipe);
    if (!a.resume) {
        if (req.data.values.train.empty()) throw std::invalid_argument("--train is required (the training text files)");
        // Checked before a tokenizer is trained, so that a mistake costs nothing.
        RunRequest check = req;
        check.tokenizer_training.reset();
        resolve_configs(check, 0);
        if (Trainer::has_state(out) && !req.trainer_options.values.overwrite)
            throw std::invalid_argument(out + " already holds a training run: pass --resume to continue it, "
                                        "--overwrite to start a new one there, or choose another --out");
    }
    if (!a.tokenizer_path.empty()) {
        req.tokenizer = Tokenizer::load(a.tokenizer_path);
        if (a.vocab_size_opt->count() > 0 && a.tok.vocab_size != req.tokenizer->vocab_size())
            throw std::invalid_argument("--vocab-size " + std::to_string(a.tok.vocab_size) + " differs from the " +
                                        std::to_string(req.tokenizer->vocab_size()) + " ids of --tokenizer " +
                                        a.tokenizer_path);
        if (!a.resume) std::fprintf(stderr, "tokenizer %s: %d ids\n", a.tokenizer_path.c_str(), req.tokenizer->vocab_size());
    } else if (!a.resume) {
        a.tok.model = a.tok_model == "bpe" ? TokenizerModel::bpe : TokenizerModel::unigram;
        req.tokenizer_training = a.tok;
    }
    if (a.resume) std::fprintf(stderr, "resuming the run in %s\n", out.c_str());

    Progress progress(enum_from_name<ProgressMode>(a.progress, "--progress"), a.log_every);
    // Notices while the run is assembled (files read, a holdout, a resume on other threads) go to
    // stderr whatever the progress mode; during training they are progress lines.
    std::unique_ptr<Trainer> trainer =
        assemble_run(req, [](const Notice& n) { std::fprintf(stderr, "%s\n", n.text.c_str()); });
    trainer->on_notice = [&progress](const Notice& n) { progress.message(n.text); };
    const ModelConfig& mc = trainer->model_config();
    std::fprintf(stderr,
                 "model: %s parameters (dim %d, %d heads, %d layers, vocab %d, %s norm) | %d threads | %s steps%s\n",
                 with_commas(static_cast<int64_t>(trainer->model().num_parameters())).c_str(), mc.dim, mc.n_heads,
                 mc.n_layers, mc.vocab_size, to_string(mc.norm_placement), max_threads(),
                 trainer->total_steps() ? with_commas(trainer->total_steps()).c_str() : "unbounded",
                 a.resume ? (", from step " + with_commas(trainer->step())).c_str() : "");

    trainer->on_step = [&progress](const StepRecord& r) {
        progress.step(r);
        return false;
    };
    trainer->on_eval = [&progress](const EvalRecord& e) {
        progress.eval(e);
        return false;
    };
    g_trainer.store(trainer.get());
    auto previous = std::signal(SIGINT, on_sigint);
    TrainResult r;
    try {
        r = trainer->train();
    } catch (...) {
        g_trainer.store(nullptr);
        std::signal(SIGINT, previous);
        progress.finish();
        throw;
    }
    g_trainer.store(nullptr);
    std::signal(SIGINT, previous);
    progress.finish();

    print_result(r, trainer->config());
    if (r.stop_reason == StopReason::non_finite) {
        std::fprintf(stderr, "mlm: error: %s\n", non_finite_stop_message(r, trainer->config().out_dir).c_str());
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
    // The defaults shown by --help: the default recipe's.
    apply_recipe(kDefaultRecipe, a.request.model_options.values, a.request.trainer_options.values);
    a.recipe = to_string(kDefaultRecipe);
    const OptionNaming names = naming();

    a.fields.add(cmd, a.request.data, names);
    a.fields.add(cmd, a.request.trainer_options, names);  // --out, the run's length, batches, ...
    cmd->add_flag("--resume", a.resume, "Continue the run saved in --out (same data and settings; exact)")->group("Data");

    // tokenizer
    const std::string tokz = "Tokenizer (when --tokenizer is not given)";
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

    a.fields.add(cmd, a.request.model_options, names);

    // display
    const std::string ckpt = "Checkpoints and logs";
    cmd->add_option("--progress", a.progress, "auto (a bar on a terminal, else lines), bar, lines, none")
        ->check(CLI::IsMember({"auto", "bar", "lines", "none"}))
        ->capture_default_str()
        ->group(ckpt);
    cmd->add_option("--log-every", a.log_every, "Progress line every N steps (when not on a terminal); log.jsonl gets every step")
        ->check(CLI::PositiveNumber)
        ->capture_default_str()
        ->group(ckpt);

    return {cmd, [args]() { return run_train(*args); }};
}

}  // namespace mlm::cli
