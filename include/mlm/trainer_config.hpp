// mlm/trainer_config.hpp — how a model is trained: TrainerConfig, its field table, the recipes.
//
// TrainerConfig holds every knob of a training run. Its fields are declared once, in the table
// after the struct (fields.hpp): the JSON of trainer_state.json, the check that a resumed run
// keeps the knobs that define it (Role::recipe and Role::run), apply_recipe's reset, the
// pymlm.TrainerConfig attributes and the `mlm train` options all come from it. A new knob is a
// member and a table row here, and the code in the trainer that uses it.
//
// The defaults are the original notebook's recipe: Adam (no weight decay), PyTorch OneCycleLR
// peaking at 6e-4 over the whole run (beta1 cycled 0.95 -> 0.85 -> 0.95), 128 sentences per
// batch, 100 epochs, 15% of the tokens masked. apply_recipe(Recipe::best, ...) sets the project's
// recipe instead, which trains a better model in the same time (docs/quality.md) and is what
// `mlm train` and pymlm.Trainer use unless told otherwise (kDefaultRecipe).
//
//   mlm::ModelConfig model;
//   mlm::TrainerConfig config;                              // the original recipe
//   mlm::apply_recipe(mlm::Recipe::best, model, config);   // or the project's
//   config.max_steps = 1000;
//   config.validate();                                      // std::invalid_argument naming the field
//   std::string json = mlm::to_json(config);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "collator.hpp"
#include "config.hpp"
#include "data.hpp"
#include "fields.hpp"
#include "metrics.hpp"
#include "optimizer.hpp"

namespace mlm {

enum class OptimizerKind { adam, adamw };          // adam: L2 decay (torch.optim.Adam), adamw: decoupled
enum class ScheduleKind { one_cycle, constant, warmup_linear, warmup_cosine };
enum class NonFinitePolicy { skip, stop };

inline const auto& enum_names(const OptimizerKind*) {
    static const EnumName<OptimizerKind> names[] = {{OptimizerKind::adam, "adam"}, {OptimizerKind::adamw, "adamw"}};
    return names;
}
inline const auto& enum_names(const ScheduleKind*) {
    static const EnumName<ScheduleKind> names[] = {{ScheduleKind::one_cycle, "one_cycle"},
                                                   {ScheduleKind::constant, "constant"},
                                                   {ScheduleKind::warmup_linear, "warmup_linear"},
                                                   {ScheduleKind::warmup_cosine, "warmup_cosine"}};
    return names;
}
inline const auto& enum_names(const NonFinitePolicy*) {
    static const EnumName<NonFinitePolicy> names[] = {{NonFinitePolicy::skip, "skip"}, {NonFinitePolicy::stop, "stop"}};
    return names;
}
inline const auto& enum_names(const BatcherOptions::Bucketing*) {
    using B = BatcherOptions::Bucketing;
    static const EnumName<B> names[] = {{B::automatic, "auto"}, {B::on, "on"}, {B::off, "off"}};
    return names;
}

inline const char* to_string(OptimizerKind k) { return enum_name(k); }
inline const char* to_string(ScheduleKind k) { return enum_name(k); }
inline const char* to_string(NonFinitePolicy k) { return enum_name(k); }
inline OptimizerKind optimizer_kind_from_string(const std::string& s) { return enum_from_name<OptimizerKind>(s, "optimizer"); }
inline ScheduleKind schedule_kind_from_string(const std::string& s) { return enum_from_name<ScheduleKind>(s, "schedule"); }
inline NonFinitePolicy non_finite_policy_from_string(const std::string& s) {
    return enum_from_name<NonFinitePolicy>(s, "on_non_finite");
}

struct TrainerConfig {
    // How long (0: no limit; at least one must be set). The run ends at the first of epochs,
    // max_steps, max_tokens reached; max_time_s ends one session (one train() call), which then
    // evaluates and checkpoints, and a resumed session gets a new budget; max_total_time_s is a
    // budget for the whole run over all its sessions.
    int64_t epochs = 100;
    int64_t max_steps = 0;
    int64_t max_tokens = 0;
    double max_time_s = 0;
    double max_total_time_s = 0;

    // batches
    std::size_t batch_size = 128;
    std::size_t batch_tokens = 0;
    std::size_t max_batch_sequences = 0;
    BatcherOptions::Bucketing bucketing = BatcherOptions::Bucketing::automatic;
    std::size_t bucket_batches = 64;
    int grad_accum = 1;

    // optimizer
    OptimizerKind optimizer = OptimizerKind::adam;
    double lr = 6e-4;
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    bool decay_weights_only = false;
    double clip_grad_norm = 0.0;

    // schedule
    ScheduleKind schedule = ScheduleKind::one_cycle;
    double lr_min = 0.0;
    int64_t warmup_steps = 0;
    double warmup_fraction = 0.0;
    double pct_start = 0.3;
    double div_factor = 25.0;
    double final_div_factor = 1e4;
    bool three_phase = false;
    AnnealStrategy anneal = AnnealStrategy::cos;
    bool cycle_momentum = true;
    double base_momentum = 0.85;
    double max_momentum = 0.95;
    int64_t schedule_steps = 0;

    // masking and randomness
    MaskingOptions masking;
    uint64_t seed = 0;

    // evaluation (on the held-out corpus)
    int64_t eval_every_steps = 0;
    bool eval_at_start = false;
    EvalOptions eval;
    bool save_best = true;

    // checkpoints
    std::string out_dir;
    int64_t checkpoint_every_steps = 0;
    double checkpoint_every_minutes = 30.0;
    bool checkpoint_on_stop = true;
    bool overwrite = false;

    // failures and threads
    NonFinitePolicy on_non_finite = NonFinitePolicy::skip;
    int max_non_finite_skips = 10;
    int threads = 0;

    // Throws std::invalid_argument naming the first bad field.
    void validate() const;
};

inline const auto& fields(const TrainerConfig*) {
    using C = TrainerConfig;
    constexpr Role recipe = Role::recipe, run = Role::run, runtime = Role::runtime;
    static const auto table = std::make_tuple(
        field(&C::epochs, "epochs", run, "length", "Epochs (0: no epoch limit)"),
        field(&C::max_steps, "max_steps", run, "length", "Optimizer steps (0: no limit)"),
        field(&C::max_tokens, "max_tokens", run, "length", "Real tokens fed to the model (0: no limit)"),
        field(&C::max_time_s, "max_time_s", runtime, "length",
              "Wall time of one session (one train() call; 0: none): it then evaluates, checkpoints and stops, and a "
              "resumed session gets a new budget. With only time limits, set schedule_steps or use the constant "
              "schedule",
              Unit::seconds),
        field(&C::max_total_time_s, "max_total_time_s", runtime, "length",
              "Wall time of the whole run, over all its resumed sessions (0: none)", Unit::seconds),

        field(&C::batch_size, "batch_size", recipe, "batches",
              "Sentences per batch (when batch_tokens is 0; given alone, it turns a recipe's batch_tokens off)"),
        field(&C::batch_tokens, "batch_tokens", recipe, "batches",
              "Token-budget batches of at most this many real tokens, length-bucketed (e.g. 4096; 0: off)"),
        field(&C::max_batch_sequences, "max_batch_sequences", recipe, "batches",
              "Token-budget batches: at most this many sentences each (0: no cap)"),
        field(&C::bucketing, "bucketing", recipe, "batches", "Length bucketing (auto: on with batch_tokens)"),
        field(&C::bucket_batches, "bucket_batches", recipe, "batches",
              "Length bucketing: windows of this many batches' worth of shuffled sentences are sorted by length, then "
              "cut into batches (more: lengths more alike within a batch, batches less random)"),
        field(&C::grad_accum, "grad_accum", recipe, "batches", "Batches per optimizer step"),

        field(&C::optimizer, "optimizer", recipe, "optimizer", "adam (torch.optim.Adam: L2 decay) or adamw (decoupled decay)"),
        field(&C::lr, "lr", recipe, "optimizer", "Peak (one-cycle, warm-up schedules) or constant learning rate"),
        field(&C::beta1, "beta1", recipe, "optimizer", "Adam beta1 (when the schedule does not cycle it)"),
        field(&C::beta2, "beta2", recipe, "optimizer", "Adam beta2"),
        field(&C::eps, "eps", recipe, "optimizer", "Adam epsilon"),
        field(&C::weight_decay, "weight_decay", recipe, "optimizer", "Weight decay"),
        field(&C::decay_weights_only, "decay_weights_only", recipe, "optimizer",
              "Exempt norm scales, biases and embeddings from weight decay"),
        field(&C::clip_grad_norm, "clip_grad_norm", recipe, "optimizer", "Clip the global gradient norm to this (0: off)"),

        field(&C::schedule, "schedule", recipe, "schedule",
              "one_cycle (PyTorch OneCycleLR over the whole run), constant, warmup_linear, warmup_cosine"),
        field(&C::lr_min, "lr_min", recipe, "schedule", "Warm-up schedules: final learning rate"),
        field(&C::warmup_steps, "warmup_steps", recipe, "schedule", "Warm-up schedules: warm-up steps"),
        field(&C::warmup_fraction, "warmup_fraction", recipe, "schedule",
              "Warm-up schedules: warm-up share of the run (when warmup_steps is 0)"),
        field(&C::pct_start, "pct_start", recipe, "schedule", "One-cycle: share of the run spent rising"),
        field(&C::div_factor, "div_factor", recipe, "schedule", "One-cycle: initial lr = lr / div_factor"),
        field(&C::final_div_factor, "final_div_factor", recipe, "schedule", "One-cycle: final lr = initial lr / final_div_factor"),
        field(&C::three_phase, "three_phase", recipe, "schedule", "One-cycle: torch's three_phase"),
        field(&C::anneal, "anneal", recipe, "schedule", "One-cycle annealing: cos or linear (torch's anneal_strategy)"),
        field(&C::cycle_momentum, "cycle_momentum", recipe, "schedule",
              "One-cycle: cycle beta1 between max_momentum and base_momentum"),
        field(&C::base_momentum, "base_momentum", recipe, "schedule", "One-cycle: beta1 at the peak"),
        field(&C::max_momentum, "max_momentum", recipe, "schedule", "One-cycle: beta1 at the start and the end"),
        field(&C::schedule_steps, "schedule_steps", run, "schedule",
              "The schedule's length instead of the one derived from the run's length (0: derived)"),

        field(&C::masking, "masking", recipe, "masking", "How the training batches are masked"),
        field(&C::seed, "seed", run, "masking", "Seed of the initial weights, batch order, masks, dropout and the holdout split"),

        field(&C::eval_every_steps, "eval_every_steps", runtime, "evaluation", "Evaluate every N steps (0: at the end of every epoch)"),
        field(&C::eval_at_start, "eval_at_start", runtime, "evaluation", "Also evaluate before the first step"),
        field(&C::eval, "eval", run, "evaluation", "How the held-out sentences are evaluated"),
        field(&C::save_best, "save_best", runtime, "evaluation", "Keep out_dir/best, the model with the lowest validation loss"),

        field(&C::out_dir, "out_dir", runtime, "checkpoints", "Run directory: checkpoints, best/, log.jsonl (empty: write nothing)"),
        field(&C::checkpoint_every_steps, "checkpoint_every_steps", runtime, "checkpoints", "Checkpoint every N steps (0: off)"),
        field(&C::checkpoint_every_minutes, "checkpoint_every_minutes", runtime, "checkpoints", "Checkpoint every M minutes (0: off)"),
        field(&C::checkpoint_on_stop, "checkpoint_on_stop", runtime, "checkpoints",
              "Checkpoint when stopped early (an interrupt, a callback; the end of the run and a time budget always "
              "checkpoint)"),
        field(&C::overwrite, "overwrite", runtime, "checkpoints", "Start a new run even if out_dir holds one"),

        field(&C::on_non_finite, "on_non_finite", runtime, "failures",
              "A NaN/inf loss or gradient: skip the step, or stop (a run stopped by one writes no checkpoint: the last "
              "one written before stays)"),
        field(&C::max_non_finite_skips, "max_non_finite_skips", runtime, "failures", "Stop after this many skipped steps in a row"),
        field(&C::threads, "threads", runtime, "failures", "OpenMP threads (0: leave the current setting)"));
    return table;
}
MLM_CHECK_FIELD_TABLE(TrainerConfig);

inline bool operator==(const TrainerConfig& a, const TrainerConfig& b) { return fields_equal(a, b); }
inline bool operator!=(const TrainerConfig& a, const TrainerConfig& b) { return !(a == b); }

// JSON (trainer_state.json). Unknown keys are an error, missing keys take the defaults; keys of
// knobs that earlier versions had ("progress", "log_every_steps", "anneal_linear") are read too.
std::string to_json(const TrainerConfig& config);
TrainerConfig trainer_config_from_json(const std::string& json);

// Training recipes: the knobs with Role::recipe in the tables — block order and dropout
// (ModelConfig), batches, optimizer, learning-rate schedule, masking — and nothing else (not the
// model's size, the run's length, the data, evaluation, checkpoints, threads or the seed).
//   original  the notebook's (docs/quality.md): the block order x = norm(x); x = x + f(x), dropout
//             0.1, Adam without decay, one-cycle lr peaking at 6e-4 (beta1 cycled), batches of 128
//             sentences, 15% of the tokens masked. The defaults of ModelConfig and TrainerConfig.
//   best      the project's, chosen by measurement (docs/quality.md): pre-norm, no dropout, AdamW
//             (decay 0.01 on weight matrices only), lr 1e-3 with a 5% linear warm-up then cosine
//             decay to 0, gradient norm clipped to 1, length-bucketed batches of 4,096 real tokens,
//             30% of the tokens masked (all replaced by [MASK]).
enum class Recipe { original, best };
inline const auto& enum_names(const Recipe*) {
    static const EnumName<Recipe> names[] = {{Recipe::original, "original"}, {Recipe::best, "best"}};
    return names;
}
inline const char* to_string(Recipe r) { return enum_name(r); }
inline Recipe recipe_from_string(const std::string& s) { return enum_from_name<Recipe>(s, "recipe"); }

// The recipe of `mlm train` and pymlm.Trainer when none is named.
constexpr Recipe kDefaultRecipe = Recipe::best;

// Sets the recipe's knobs in `model` and `trainer` (first every Role::recipe field to its
// default, the original's, so that a recipe never inherits another's) and leaves every other
// field as it is.
void apply_recipe(Recipe recipe, ModelConfig& model, TrainerConfig& trainer);

}  // namespace mlm
