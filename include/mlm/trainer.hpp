// mlm/trainer.hpp — the training loop: batches, optimizer, schedule, evaluation, checkpoints.
//
// Trainer runs masked-language-model pre-training of an Encoder<float> on a tokenized corpus.
// Its knobs are a TrainerConfig (trainer_config.hpp: the field table, the recipes); a whole run
// (recipe, options, data files, holdout, resume) is assembled by assemble_run (run.hpp), which is
// what `mlm train` and pymlm.Trainer call. The library prints nothing: progress, evaluations and
// notices reach the caller through on_step, on_eval and on_notice.
//
//   mlm::Tokenizer tok = mlm::Tokenizer::load("tokenizer.model");
//   mlm::ModelConfig model;
//   model.vocab_size = tok.vocab_size();
//   mlm::TrainerConfig config;                      // the original recipe
//   mlm::apply_recipe(mlm::Recipe::best, model, config);   // or the project's
//   config.out_dir = "runs/wiki";
//   config.epochs = 3;
//   mlm::Trainer trainer(model, tok, config);
//   trainer.set_data(mlm::tokenize_file(tok, "train.txt.xz"), mlm::tokenize_file(tok, "valid.txt"));
//   trainer.on_step = [](const mlm::StepRecord& r) { return false; };   // true requests a stop
//   trainer.on_notice = [](const mlm::Notice& n) { std::cerr << n.text << "\n"; };
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
// for bit (losses and final weights). Nor do results depend on where the heap puts the engine's
// workspace: every buffer in it starts 64-byte aligned (workspace.hpp).
//
// The run directory `out_dir` (nothing is written when it is empty):
//   config.json, model.safetensors, tokenizer.model   the latest model (a checkpoint MaskedLM loads)
//   trainer_state.safetensors                          parameters, Adam m and v ("param.<key>",
//                                                      "adam_m.<key>", "adam_v.<key>"), and the
//                                                      state JSON in its metadata ("trainer_state")
//   trainer_state.json                                 the same state JSON, for people
//   log.jsonl                                          one JSON object per step (see StepRecord)
//   data.json                                          the data options of the run (run.hpp), when
//                                                      it was assembled from files
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
#include "trainer_config.hpp"

namespace mlm {

namespace detail {
struct RunState;  // the trainer state (src/run_directory.hpp)
}

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
    // For display: moving averages over this session's steps (weight 0.95; a skipped step leaves
    // the loss's), and the time left to the end of the run or of a time budget (NaN: unknown).
    double loss_smoothed = 0;
    double tokens_per_s_smoothed = 0;
    double eta_s = 0;
};

// Something the caller may want to tell the user: a resume on another thread count, a skipped
// non-finite step, a held-out split. The library prints nothing itself.
struct Notice {
    enum class Kind { info, warning };
    Kind kind = Kind::info;
    std::string text;
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
inline const auto& enum_names(const StopReason*) {
    static const EnumName<StopReason> names[] = {{StopReason::finished, "finished"},
                                                 {StopReason::max_time, "max_time"},
                                                 {StopReason::stopped, "stopped"},
                                                 {StopReason::non_finite, "non_finite"}};
    return names;
}
inline const char* to_string(StopReason r) { return enum_name(r); }

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

// Why a run stopped on a non-finite loss or gradient and what is left of it, as one sentence for
// the user ("" for other stops).
std::string non_finite_stop_message(const TrainResult& result, const std::string& out_dir);

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
    // time, checkpoint settings, threads, eval cadence: the Role::runtime fields) must equal the stored
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
    // Called with what the user may want to know (resume() and train() call it).
    std::function<void(const Notice&)> on_notice;

    const Encoder<float>& model() const;
    Encoder<float>& model();
    const Tokenizer& tokenizer() const { return tokenizer_; }
    const TrainerConfig& config() const { return config_; }
    const TokenizedCorpus& train_data() const;  // as given to set_data()
    const TokenizedCorpus& valid_data() const;
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
    struct Session;  // one train() call
    void prepare();  // after set_data: batcher, total steps, schedule
    int64_t count_steps() const;
    // with_state: the trainer state too; metrics_json: a metrics.json too (best/).
    void write_checkpoint(const std::string& dir, bool with_state, const std::string& metrics_json = "") const;
    detail::RunState state() const;

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
