// mlm/trainer.hpp — the training loop: batches, optimizer, schedule, evaluation, checkpoints.
//
// Trainer runs masked-language-model pre-training of an Encoder<float> on a tokenized corpus.
// TrainerConfig's defaults are the original notebook's recipe: Adam (not AdamW, no weight
// decay), PyTorch OneCycleLR peaking at 6e-4 over the whole run (beta1 cycled 0.95 -> 0.85 -> 0.95),
// 128 sentences per batch, 100 epochs, 15% of the tokens masked. (Dropout 0.1 is a model knob,
// ModelConfig::dropout.) apply_recipe(Recipe::best, ...) sets the project's recipe instead, which
// trains a better model in the same time (docs/quality.md) and is what `mlm train` and
// pymlm.Trainer use unless told otherwise.
//
//   mlm::Tokenizer tok = mlm::Tokenizer::load("tokenizer.model");
//   mlm::ModelConfig model;                         // vocab_size must be tok.vocab_size()
//   mlm::TrainerConfig config;                      // the original recipe
//   mlm::apply_recipe(mlm::Recipe::best, model, config);   // or the project's
//   config.out_dir = "runs/wiki";
//   config.epochs = 3;
//   mlm::Trainer trainer(model, tok, config);
//   trainer.set_data(mlm::tokenize_file(tok, "train.txt.xz"), mlm::tokenize_file(tok, "valid.txt"));
//   trainer.on_step = [](const mlm::StepRecord& r) { return false; };   // true requests a stop
//   if (mlm::Trainer::has_state(config.out_dir)) trainer.resume();   // continue an interrupted run
//   mlm::TrainResult result = trainer.train();
//
// How long: the run ends at the first of `epochs`, `max_steps`, `max_tokens` (real tokens fed to
// the model) that is reached; 0 disables a limit. `max_time_s` is a budget for one session (one
// train() call, e.g. one resumed process): it stops the session, which then evaluates and writes a
// checkpoint, and a resumed session gets a new budget — so a long run is a chain of
// `mlm train ... --max-time 2h50m [--resume]` sessions. `max_total_time_s` is a budget for the
// whole run, over all its sessions (the elapsed time a checkpoint records): a resumed session stops
// when the run's total reaches it, and the run is then finished. The schedule's length (total_steps()) is
// the number of optimizer steps until the first of the epoch / step / token targets, computed
// exactly from the batch plans before training. With only time budgets there is no such number: the schedule then needs
// `schedule_steps` (an estimate), except the constant schedule, which needs none; a run that goes
// past the schedule's end continues at its last value.
//
// One optimizer step = `grad_accum` consecutive batches of the epoch's plan (fewer at the end of
// an epoch; steps never straddle epochs), their gradients summed with weights M_i / M (M_i masked
// tokens of batch i, M of the step), so the step's loss and gradient are those of one batch holding
// all of them (the mean over all masked tokens of the step).
//
// Determinism and exact resume: batch plans come from (seed, epoch) (Batcher), masks from (seed,
// epoch, sample index) (MaskingCollator), dropout from (seed, step, micro-batch), so nothing
// depends on a sequential random state. A resumed run therefore repeats the uninterrupted run bit
// for bit (losses and final weights) at the same thread count. (Caveat: the engine's last bits
// currently depend on the heap alignment of its workspace; until it aligns that itself, the `mlm`
// program and the tests fix glibc's mmap threshold so large buffers always share one alignment —
// see src/cli/main.cpp.)
//
// The run directory `out_dir` (nothing is written when it is empty):
//   config.json, model.safetensors, tokenizer.model   the latest model (a checkpoint MaskedLM loads)
//   trainer_state.safetensors                          parameters, Adam m and v ("param.<key>",
//                                                      "adam_m.<key>", "adam_v.<key>"), and the
//                                                      state JSON in its metadata ("trainer_state")
//   trainer_state.json                                 the same state JSON, for people
//   log.jsonl                                          one JSON object per step (see StepRecord)
//   best/                                              the model with the lowest validation loss
//                                                      (config.json, model.safetensors,
//                                                      tokenizer.model, metrics.json)
// A checkpoint (out_dir's files, or best/'s) is written as one change (CheckpointWriter in
// checkpoint.hpp): a crash or a kill at any moment leaves the previous checkpoint or the new one,
// whole, never a mix. trainer_state.safetensors is self-contained: a resume reads only it (and
// checks the model config and the tokenizer against it). Checkpoints are written every
// `checkpoint_every_steps` steps and/or every `checkpoint_every_minutes`, at the end of the run or
// of the session's time budget, and when stopped by a callback or request_stop() unless
// checkpoint_on_stop is false. A checkpoint with non-finite parameters is never written; a write
// that fails (disk full, permission denied) throws CheckpointError and leaves the previous one. A resumed run continues exactly where the checkpoint
// left off: steps done after it by a killed session are redone (and log.jsonl is cut back).
//
// Evaluation (held-out corpus of set_data, metrics.hpp): every `eval_every_steps` steps, or at the
// end of every epoch when it is 0, and at the end; the model with the lowest validation loss so far
// is written to out_dir/best (save_best).
//
// Non-finite loss or gradient norm: detected at the step where it appears; the step is not applied.
// on_non_finite = skip moves on to the next batch (up to max_non_finite_skips in a row, then
// stops); stop ends the run at once (TrainResult::stop_reason = non_finite). No NaN reaches the
// weights or a checkpoint either way, and a run stopped this way writes no checkpoint: the one in
// out_dir stays the last one written before the fault (TrainResult::checkpoint_step), as the
// weights that led to a NaN may be bad even where they are finite. A resume from it repeats the
// steps since; with on_non_finite = skip (a knob that may change on resume) a NaN that comes back
// is stepped over.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint.hpp"
#include "collator.hpp"
#include "config.hpp"
#include "data.hpp"
#include "encoder.hpp"
#include "metrics.hpp"
#include "optimizer.hpp"
#include "tokenizer.hpp"

namespace mlm {

enum class OptimizerKind { adam, adamw };          // adam: L2 decay (torch.optim.Adam), adamw: decoupled
enum class ScheduleKind { one_cycle, constant, warmup_linear, warmup_cosine };
enum class NonFinitePolicy { skip, stop };
enum class ProgressMode { automatic, bar, lines, none };  // automatic: a bar on a terminal, else lines

const char* to_string(OptimizerKind k);
const char* to_string(ScheduleKind k);
const char* to_string(NonFinitePolicy k);
const char* to_string(ProgressMode k);
OptimizerKind optimizer_kind_from_string(const std::string& s);
ScheduleKind schedule_kind_from_string(const std::string& s);
NonFinitePolicy non_finite_policy_from_string(const std::string& s);
ProgressMode progress_mode_from_string(const std::string& s);

struct TrainerConfig {
    // ---- how long (0: no limit; at least one must be set) ----
    int64_t epochs = 100;
    int64_t max_steps = 0;        // optimizer steps
    int64_t max_tokens = 0;       // real (unpadded) tokens fed to the model
    double max_time_s = 0;        // wall time of one session (train() call); see the file comment
    double max_total_time_s = 0;  // wall time of the whole run, over all its sessions

    // ---- batches ----
    std::size_t batch_size = 128;       // sentences per batch (when batch_tokens == 0)
    std::size_t batch_tokens = 0;       // > 0: token-budget batches of at most this many real tokens
    std::size_t max_batch_sequences = 0;  // token-budget mode: cap on sentences per batch (0: none)
    BatcherOptions::Bucketing bucketing = BatcherOptions::Bucketing::automatic;  // on in token mode
    int grad_accum = 1;                 // batches per optimizer step

    // ---- optimizer ----
    OptimizerKind optimizer = OptimizerKind::adam;
    double lr = 6e-4;                  // peak (one-cycle, warm-up schedules) or constant lr
    double beta1 = 0.9;                // when the schedule does not cycle it
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decay_weights_only = false;   // exempt norm scales, biases and embeddings from decay
    double clip_grad_norm = 0.0;       // > 0: clip the global gradient norm to this

    // ---- schedule ----
    ScheduleKind schedule = ScheduleKind::one_cycle;
    double lr_min = 0.0;               // warm-up schedules: final lr
    int64_t warmup_steps = 0;          // warm-up schedules; see warmup_fraction
    double warmup_fraction = 0.0;      // > 0 and warmup_steps == 0: warmup = fraction * total
    double pct_start = 0.3;            // one-cycle (torch's OneCycleLR arguments)
    double div_factor = 25.0;
    double final_div_factor = 1e4;
    bool three_phase = false;
    bool anneal_linear = false;        // false: cosine annealing
    bool cycle_momentum = true;
    double base_momentum = 0.85;
    double max_momentum = 0.95;
    int64_t schedule_steps = 0;        // > 0: the schedule's length instead of the derived one

    // ---- masking and randomness ----
    MaskingOptions masking;            // 15% of the tokens, all replaced by [MASK]
    uint64_t seed = 0;                 // initial weights, batch plans, masks, dropout

    // ---- evaluation (on the held-out corpus given to set_data) ----
    int64_t eval_every_steps = 0;      // 0: at the end of every epoch
    bool eval_at_start = false;
    EvalOptions eval;                  // fixed seed 1234, see metrics.hpp
    bool save_best = true;             // keep out_dir/best by validation loss

    // ---- checkpoints and logs ----
    std::string out_dir;               // empty: write nothing
    int64_t checkpoint_every_steps = 0;
    double checkpoint_every_minutes = 30.0;
    bool checkpoint_on_stop = true;
    bool overwrite = false;            // allow starting a new run in a directory that holds one
    ProgressMode progress = ProgressMode::automatic;
    int64_t log_every_steps = 50;      // progress lines when not on a terminal

    // ---- failures and threads ----
    NonFinitePolicy on_non_finite = NonFinitePolicy::skip;
    int max_non_finite_skips = 10;     // consecutive skipped steps before the run stops
    int threads = 0;                   // OpenMP threads; 0: leave the current setting

    // Throws std::invalid_argument naming the first bad field.
    void validate() const;
};

// Training recipes: the knobs that decide how a model learns — block order, dropout, optimizer,
// learning-rate schedule, batch size, masking — and nothing else (not the model's size, the run's
// length, the data, evaluation, checkpoints, threads or the seed).
//   original  the notebook's (docs/quality.md): the block order x = norm(x); x = x + f(x), dropout
//             0.1, Adam without decay, one-cycle lr peaking at 6e-4 (beta1 cycled), batches of 128
//             sentences, 15% of the tokens masked. The defaults of ModelConfig and TrainerConfig.
//   best      the project's, chosen by measurement (docs/quality.md): pre-norm, no dropout, AdamW
//             (decay 0.01 on weight matrices only), lr 1e-3 with a 5% linear warm-up then cosine
//             decay to 0, gradient norm clipped to 1, length-bucketed batches of 4,096 real tokens,
//             30% of the tokens masked (all replaced by [MASK]).
enum class Recipe { original, best };
const char* to_string(Recipe r);
Recipe recipe_from_string(const std::string& s);  // "original" or "best"; else std::invalid_argument
// Sets the recipe's knobs in `model` and `trainer` and leaves every other field as it is.
void apply_recipe(Recipe recipe, ModelConfig& model, TrainerConfig& trainer);

// JSON round trip (trainer_state.json). Unknown keys are an error, missing keys take defaults.
std::string to_json(const TrainerConfig& config);
TrainerConfig trainer_config_from_json(const std::string& json);

// What happened at one optimizer step (one line of log.jsonl).
struct StepRecord {
    int64_t step = 0;             // optimizer steps done, this one included (1-based)
    int64_t total_steps = 0;      // the schedule's length (0 if unbounded)
    double epoch = 0;             // fractional: epoch index + share of its batches done
    int64_t tokens = 0;           // real tokens seen so far
    int64_t step_tokens = 0;      // real tokens of this step
    int64_t step_masked = 0;      // masked tokens of this step
    double loss = 0;              // mean cross-entropy over the step's masked tokens
    double lr = 0;
    double beta1 = 0;
    double grad_norm = 0;         // before clipping
    double tokens_per_s = 0;      // this step's tokens / its duration
    double elapsed_s = 0;         // wall time of the run so far, over all its sessions
    bool skipped = false;         // non-finite loss or gradient: not applied
};

// One evaluation on the held-out corpus.
struct EvalRecord {
    int64_t step = 0;
    double epoch = 0;
    int64_t tokens = 0;
    double elapsed_s = 0;
    EvalMetrics metrics;
    bool best = false;            // lowest validation loss so far
};

enum class StopReason { finished, max_time, stopped, non_finite };
const char* to_string(StopReason r);

struct TrainResult {
    StopReason stop_reason = StopReason::finished;
    int64_t steps = 0;            // optimizer steps done in total (over all sessions)
    double epochs = 0;            // fractional
    int64_t tokens = 0;
    double last_loss = std::numeric_limits<double>::quiet_NaN();
    double best_val_loss = std::numeric_limits<double>::quiet_NaN();
    int64_t best_step = 0;
    EvalMetrics last_eval;        // the last evaluation (NaN fields when none ran)
    double elapsed_s = 0;
    int64_t skipped_steps = 0;
    int64_t checkpoint_step = -1;  // step of the newest checkpoint in out_dir (-1: none written)
};

class Trainer {
public:
    // A new run: the model is initialised from `model_config` and config.seed. The tokenizer's
    // vocab size and special ids must match the model config.
    Trainer(const ModelConfig& model_config, Tokenizer tokenizer, const TrainerConfig& config);
    // A new run that starts from given weights (fine-tuning, continued pre-training).
    Trainer(const Encoder<float>& model, Tokenizer tokenizer, const TrainerConfig& config);
    ~Trainer();
    Trainer(const Trainer&) = delete;
    Trainer& operator=(const Trainer&) = delete;

    // Training sentences and (optionally empty) held-out sentences, tokenized with this
    // tokenizer and max_length <= max_len. Sentences longer than max_len are an error.
    void set_data(TokenizedCorpus train, TokenizedCorpus valid = TokenizedCorpus());

    // True when `dir` holds a trainer state to resume from.
    static bool has_state(const std::string& dir);
    // The TrainerConfig stored in dir's trainer state.
    static TrainerConfig load_config(const std::string& dir);
    // Continues the run saved in config.out_dir (or `dir`): parameters, Adam moments, step,
    // position in the data, tokens seen, best loss, elapsed time. Call after set_data() with the
    // same data; the run-defining knobs of the config (everything but how long to run in wall
    // time, checkpoint / log / progress settings, threads, eval cadence) must equal the stored
    // ones, and the model config too: otherwise std::invalid_argument lists the differences. A
    // damaged or incomplete trainer state throws CheckpointError naming the file and the problem;
    // either way nothing is changed (short of an I/O error while reading). log.jsonl is cut back
    // to the resumed step.
    void resume(const std::string& dir = "");

    // Runs until a target, the time budget, a stop request or a non-finite failure.
    TrainResult train();

    // Evaluates the current model on the held-out corpus (NaN metrics when there is none).
    EvalMetrics evaluate() const;

    // Writes a full checkpoint (model, tokenizer, trainer state) into `dir` (default out_dir), as one
    // change: CheckpointError if it fails, and the checkpoint already there stays.
    void save_checkpoint(const std::string& dir = "") const;

    // Asks a running train() to stop after the current step (thread- and signal-safe).
    void request_stop() { stop_requested_.store(true); }

    // Called after every step and every evaluation; returning true requests a stop.
    std::function<bool(const StepRecord&)> on_step;
    std::function<bool(const EvalRecord&)> on_eval;

    const Encoder<float>& model() const;
    Encoder<float>& model();
    const Tokenizer& tokenizer() const { return tokenizer_; }
    const TrainerConfig& config() const { return config_; }
    const ModelConfig& model_config() const;
    int64_t step() const { return step_; }
    double epoch() const;
    int64_t tokens_seen() const { return tokens_seen_; }
    // The schedule's length: exact for epoch / step / token targets; 0 before set_data().
    int64_t total_steps() const { return total_steps_; }
    // The learning rate the next step will use.
    double current_lr() const;
    const Adam<float>& optimizer() const;

private:
    struct Impl;
    void prepare();  // after set_data: batcher, total steps, schedule
    int64_t count_steps() const;
    // with_state: the trainer state too; metrics_json: a metrics.json too (best/).
    void write_checkpoint(const std::string& dir, bool with_state, const std::string& metrics_json = "") const;
    std::string state_json() const;

    TrainerConfig config_;
    Tokenizer tokenizer_;
    std::unique_ptr<Impl> impl_;

    // position of the run
    int64_t step_ = 0;
    int64_t epoch_ = 0;            // epoch of the next batch
    int64_t batch_in_epoch_ = 0;   // index of the next batch in that epoch's plan
    int64_t tokens_seen_ = 0;
    double elapsed_before_ = 0;    // wall time of earlier sessions
    double best_val_loss_ = std::numeric_limits<double>::infinity();
    int64_t best_step_ = 0;
    int64_t skipped_steps_ = 0;
    int64_t total_steps_ = 0;
    int64_t checkpoint_step_ = -1;  // step of the newest checkpoint in out_dir (-1: none yet)
    std::atomic<bool> stop_requested_{false};
};

}  // namespace mlm
