// The trainer (see include/mlm/trainer.hpp): construction and data, the schedule's length,
// checkpoints and resume. The run directory's files are run_directory.cpp's; the loop is
// trainer_loop.cpp's.
#include <mlm/trainer.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <stdexcept>

#include <mlm/checkpoint.hpp>
#include <mlm/threads.hpp>

#include "run_directory.hpp"
#include "trainer_impl.hpp"

namespace mlm {

namespace fs = std::filesystem;

namespace {

BatcherOptions batcher_options(const TrainerConfig& c) {
    BatcherOptions o;
    o.batch_size = c.batch_size;
    o.max_tokens = c.batch_tokens;
    o.max_sequences = c.max_batch_sequences;
    o.bucketing = c.bucketing;
    o.bucket_batches = c.bucket_batches;
    o.shuffle = true;
    o.drop_last = false;
    return o;
}

AdamOptions adam_options(const TrainerConfig& c) {
    AdamOptions a;
    a.beta1 = c.beta1;
    a.beta2 = c.beta2;
    a.eps = c.eps;
    a.weight_decay = c.weight_decay;
    a.decay = c.optimizer == OptimizerKind::adamw ? WeightDecay::decoupled : WeightDecay::l2;
    a.decay_weights_only = c.decay_weights_only;
    return a;
}

void check_tokenizer(const Tokenizer& tok, const ModelConfig& mc) {
    if (!tok.loaded()) throw std::invalid_argument("Trainer: the tokenizer is empty");
    if (tok.vocab_size() != mc.vocab_size)
        throw std::invalid_argument("Trainer: the tokenizer has " + std::to_string(tok.vocab_size()) +
                                    " ids but the model's vocab_size is " + std::to_string(mc.vocab_size) +
                                    " (set ModelConfig::vocab_size = tokenizer.vocab_size())");
    if (tok.pad_id() != mc.pad_id || tok.mask_id() != mc.mask_id || tok.unk_id() != mc.unk_id)
        throw std::invalid_argument("Trainer: the tokenizer's special ids differ from the model config's");
}

}  // namespace

Trainer::Trainer(const ModelConfig& model_config, Tokenizer tokenizer, const TrainerConfig& config)
    : config_(config), tokenizer_(std::move(tokenizer)), impl_(std::make_unique<Impl>()) {
    config_.validate();
    model_config.validate();
    check_tokenizer(tokenizer_, model_config);
    set_trainer_threads(config_.threads);
    impl_->model = std::make_unique<Encoder<float>>(model_config, config_.seed);
    impl_->adam = std::make_unique<Adam<float>>(impl_->model->layout(), adam_options(config_));
    impl_->collator = std::make_unique<MaskingCollator>(tokenizer_, config_.masking, config_.seed);
}

Trainer::Trainer(const Encoder<float>& model, Tokenizer tokenizer, const TrainerConfig& config)
    : config_(config), tokenizer_(std::move(tokenizer)), impl_(std::make_unique<Impl>()) {
    config_.validate();
    check_tokenizer(tokenizer_, model.config());
    set_trainer_threads(config_.threads);
    impl_->model = std::make_unique<Encoder<float>>(model);
    impl_->adam = std::make_unique<Adam<float>>(impl_->model->layout(), adam_options(config_));
    impl_->collator = std::make_unique<MaskingCollator>(tokenizer_, config_.masking, config_.seed);
}

Trainer::~Trainer() = default;

const Encoder<float>& Trainer::model() const { return *impl_->model; }
Encoder<float>& Trainer::model() { return *impl_->model; }
const ModelConfig& Trainer::model_config() const { return impl_->model->config(); }
const Adam<float>& Trainer::optimizer() const { return *impl_->adam; }
const TokenizedCorpus& Trainer::train_data() const { return impl_->train_data; }
const TokenizedCorpus& Trainer::valid_data() const { return impl_->valid_data; }

double Trainer::epoch() const {
    if (!impl_->batcher || batch_in_epoch_ == 0) return static_cast<double>(epoch_);
    const auto& plan = impl_->plan_for(epoch_);
    return plan.empty() ? static_cast<double>(epoch_)
                        : static_cast<double>(epoch_) + static_cast<double>(batch_in_epoch_) / static_cast<double>(plan.size());
}

void Trainer::set_data(TokenizedCorpus train, TokenizedCorpus valid) {
    if (train.empty()) throw std::invalid_argument("Trainer::set_data: the training corpus holds no sentence");
    const ModelConfig& mc = model_config();
    for (const TokenizedCorpus* c : {&train, &valid}) {
        const char* which = c == &train ? "training" : "held-out";
        for (std::size_t i = 0; i < c->size(); ++i) {
            if (c->length(i) > mc.max_len)
                throw std::invalid_argument(std::string("Trainer::set_data: ") + which + " sentence " + std::to_string(i) +
                                            " has " + std::to_string(c->length(i)) + " tokens, more than max_len " +
                                            std::to_string(mc.max_len) + " (tokenize with max_length = max_len)");
            if (c->length(i) == 0)
                throw std::invalid_argument(std::string("Trainer::set_data: ") + which + " sentence " +
                                            std::to_string(i) + " is empty");
        }
    }
    impl_->train_data = std::move(train);
    impl_->valid_data = std::move(valid);
    impl_->train_fingerprint = detail::corpus_fingerprint(impl_->train_data);
    impl_->valid_fingerprint = detail::corpus_fingerprint(impl_->valid_data);
    impl_->has_data = true;
    prepare();
}

void Trainer::prepare() {
    impl_->batcher = std::make_unique<Batcher>(impl_->train_data, batcher_options(config_), config_.seed);
    impl_->plan_epoch = -1;
    const int64_t derived = count_steps();
    total_steps_ = config_.schedule_steps > 0 ? config_.schedule_steps : derived;
    const int64_t T = total_steps_;
    const char* needs = "the schedule needs a length: with only a time budget (max_time_s, max_total_time_s), set schedule_steps "
                        "(an estimate of the steps the run will do) or use the constant schedule";
    switch (config_.schedule) {
        case ScheduleKind::constant: impl_->schedule.emplace(ConstantSchedule(config_.lr)); break;
        case ScheduleKind::one_cycle: {
            if (T == 0) throw std::invalid_argument(std::string("Trainer: ") + needs);
            OneCycleOptions o;
            o.lr_max = config_.lr;
            o.total_steps = T;
            o.pct_start = config_.pct_start;
            o.anneal = config_.anneal;
            o.div_factor = config_.div_factor;
            o.final_div_factor = config_.final_div_factor;
            o.three_phase = config_.three_phase;
            o.cycle_momentum = config_.cycle_momentum;
            o.base_momentum = config_.base_momentum;
            o.max_momentum = config_.max_momentum;
            try {
                impl_->schedule.emplace(OneCycleSchedule(o));
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument(std::string("Trainer: the run has ") + std::to_string(T) +
                                            " steps, too few for the one-cycle schedule: " + e.what());
            }
            break;
        }
        case ScheduleKind::warmup_linear:
        case ScheduleKind::warmup_cosine: {
            if (T == 0) throw std::invalid_argument(std::string("Trainer: ") + needs);
            int64_t warmup = config_.warmup_steps;
            if (warmup == 0 && config_.warmup_fraction > 0)
                warmup = static_cast<int64_t>(std::llround(config_.warmup_fraction * static_cast<double>(T)));
            warmup = std::min(warmup, T);
            if (config_.schedule == ScheduleKind::warmup_linear)
                impl_->schedule.emplace(WarmupLinearSchedule(config_.lr, config_.lr_min, warmup, T));
            else
                impl_->schedule.emplace(WarmupCosineSchedule(config_.lr, config_.lr_min, warmup, T));
            break;
        }
    }
}

// Optimizer steps until the first of the epoch / step / token targets (0: none is set).
int64_t Trainer::count_steps() const {
    const TrainerConfig& c = config_;
    const int64_t accum = c.grad_accum;
    const int64_t epoch_tokens = static_cast<int64_t>(impl_->train_data.num_tokens());
    if (c.epochs == 0 && c.max_tokens == 0) return c.max_steps;  // steps only, or time only (0)
    // Epochs whose plans matter: up to the epoch target and the epoch where the token target falls.
    int64_t n_epochs = c.epochs > 0 ? c.epochs : std::numeric_limits<int64_t>::max();
    const int64_t token_epoch = c.max_tokens > 0 ? (c.max_tokens - 1) / std::max<int64_t>(epoch_tokens, 1) : -1;
    if (token_epoch >= 0) n_epochs = std::min(n_epochs, token_epoch + 1);
    const bool bucketed = c.bucketing == BatcherOptions::Bucketing::on ||
                          (c.bucketing == BatcherOptions::Bucketing::automatic && c.batch_tokens > 0);
    const bool fixed_plan_size = c.batch_tokens == 0 && !bucketed;  // same number of batches every epoch
    auto steps_of = [&](std::size_t batches) { return (static_cast<int64_t>(batches) + accum - 1) / accum; };
    const int64_t fixed_steps = fixed_plan_size ? steps_of(impl_->batcher->epoch_batches(0).size()) : 0;

    int64_t total = 0;
    const int64_t chunk = 8;
    std::vector<int64_t> steps(static_cast<std::size_t>(chunk));
    for (int64_t e0 = 0; e0 < n_epochs; e0 += chunk) {
        const int64_t e1 = std::min(n_epochs, e0 + chunk);
        if (!fixed_plan_size) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int64_t e = e0; e < e1; ++e)
                steps[static_cast<std::size_t>(e - e0)] = steps_of(impl_->batcher->epoch_batches(static_cast<uint64_t>(e)).size());
        }
        for (int64_t e = e0; e < e1; ++e) {
            if (e == token_epoch) {
                // Walk this epoch's steps until the token target is reached.
                const auto plan = impl_->batcher->epoch_batches(static_cast<uint64_t>(e));
                int64_t tokens = e * epoch_tokens;
                for (std::size_t b = 0; b < plan.size(); b += static_cast<std::size_t>(accum)) {
                    for (std::size_t k = b; k < std::min(plan.size(), b + static_cast<std::size_t>(accum)); ++k)
                        for (std::size_t i : plan[k]) tokens += impl_->train_data.length(i);
                    ++total;
                    if (c.max_steps > 0 && total >= c.max_steps) return c.max_steps;
                    if (tokens >= c.max_tokens) return total;
                }
                return total;  // not reached: the epoch holds epoch_tokens tokens
            }
            total += fixed_plan_size ? fixed_steps : steps[static_cast<std::size_t>(e - e0)];
            if (c.max_steps > 0 && total >= c.max_steps) return c.max_steps;
        }
    }
    return total;
}

double Trainer::current_lr() const {
    if (!impl_->schedule) return config_.lr;
    const int64_t s = total_steps_ > 0 ? std::min(step_, total_steps_ - 1) : step_;
    return impl_->schedule->lr(s);
}

EvalMetrics Trainer::evaluate() const {
    if (impl_->valid_data.empty()) return EvalMetrics{};
    return mlm::evaluate(*impl_->model, tokenizer_.vocab_info(), impl_->valid_data, config_.eval);
}

// ---- checkpoints and resume ----------------------------------------------------------------

detail::RunState Trainer::state() const {
    detail::RunState s;
    s.step = step_;
    s.epoch = epoch_;
    s.batch_in_epoch = batch_in_epoch_;
    s.epoch_fraction = epoch();
    s.tokens_seen = tokens_seen_;
    s.elapsed_s = elapsed_before_;  // updated by train() before it writes
    s.best_val_loss = best_val_loss_;
    s.best_step = best_step_;
    s.skipped_steps = skipped_steps_;
    s.total_steps = total_steps_;
    s.adam_step_count = impl_->adam->step_count();
    s.next_lr = current_lr();
    s.threads = max_threads();
    s.model_config = model_config();
    s.trainer_config = config_;
    s.tokenizer_fingerprint = detail::hex64(tokenizer_.fingerprint());
    s.train_data = {impl_->train_data.size(), impl_->train_data.num_tokens(), detail::hex64(impl_->train_fingerprint)};
    s.valid_data = {impl_->valid_data.size(), impl_->valid_data.num_tokens(), detail::hex64(impl_->valid_fingerprint)};
    s.last_eval = impl_->last_eval;
    return s;
}

void Trainer::write_checkpoint(const std::string& dir, bool with_state, const std::string& metrics_json) const {
    const Encoder<float>& m = *impl_->model;
    const float* p = m.parameters();
    for (std::size_t i = 0; i < m.num_parameters(); ++i)
        if (!std::isfinite(p[i]))
            throw std::runtime_error("refusing to write a checkpoint to " + dir + ": the parameters hold a non-finite value");
    // One change: a crash leaves this checkpoint or the previous one, never parts of both.
    CheckpointWriter writer(dir);
    if (with_state) {
        const ParameterLayout& layout = m.layout();
        auto refs = layout_refs(layout, p, "param.");
        refs.merge(layout_refs(layout, impl_->adam->m().data(), "adam_m."));
        refs.merge(layout_refs(layout, impl_->adam->v().data(), "adam_v."));
        const std::string state = detail::state_to_json(this->state());
        writer.stage(detail::kStateTensors, [&](const std::string& path) {
            save_tensors(path, refs, {{"format", "pt"}, {detail::kStateKey, state}});
        });
        writer.stage(detail::kStateJson, state);
    }
    ModelSaveOptions options;
    options.tokenizer_model = tokenizer_.serialized();
    save_model(writer, m.config(), p, options);
    if (!metrics_json.empty()) writer.stage(detail::kMetricsFile, metrics_json);
    writer.commit();
}

void Trainer::save_checkpoint(const std::string& dir) const {
    const std::string d = dir.empty() ? config_.out_dir : dir;
    if (d.empty()) throw std::invalid_argument("Trainer::save_checkpoint: no directory (out_dir is empty)");
    write_checkpoint(d, true);
}

bool Trainer::has_state(const std::string& dir) {
    std::error_code ec;
    return !dir.empty() && fs::is_regular_file(checkpoint_file(dir, detail::kStateTensors), ec);
}

TrainerConfig Trainer::load_config(const std::string& dir) { return detail::read_state(dir).trainer_config; }

void Trainer::resume(const std::string& dir_arg) {
    const std::string dir = dir_arg.empty() ? config_.out_dir : dir_arg;
    if (dir.empty()) throw std::invalid_argument("Trainer::resume: no directory (out_dir is empty)");
    if (!impl_->has_data) throw std::logic_error("Trainer::resume: call set_data() first");
    // Everything is checked before anything is changed.
    const detail::RunState stored = detail::read_state(dir);
    const std::vector<std::string> diffs = detail::resume_differences(stored, state());
    if (!diffs.empty()) {
        std::string msg = "cannot resume the run in " + dir + " exactly: ";
        for (std::size_t i = 0; i < diffs.size(); ++i) msg += (i ? "; " : "") + diffs[i];
        throw std::invalid_argument(msg);
    }
    // Same data and settings: the stored position must be one of this run's.
    const std::string corrupt = checkpoint_file(dir, detail::kStateTensors) + ": corrupt trainer state: ";
    const std::string hint = " (the file is damaged or was not written by mlm; restore the run directory from a copy, "
                             "or start the run again with overwrite)";
    if (config_.max_steps > 0 && stored.step > config_.max_steps)
        throw CheckpointError(corrupt + "\"step\" is " + std::to_string(stored.step) + " but the run ends at step " +
                              std::to_string(config_.max_steps) + hint);
    if (config_.epochs > 0 && stored.epoch > config_.epochs)
        throw CheckpointError(corrupt + "\"epoch\" is " + std::to_string(stored.epoch) + " but the run ends after epoch " +
                              std::to_string(config_.epochs) + hint);
    const std::size_t plan_size = impl_->plan_for(stored.epoch).size();
    if (static_cast<uint64_t>(stored.batch_in_epoch) >= plan_size)
        throw CheckpointError(corrupt + "\"batch_in_epoch\" is " + std::to_string(stored.batch_in_epoch) + " but epoch " +
                              std::to_string(stored.epoch) + " has " + std::to_string(plan_size) + " batches" + hint);

    // Weights and Adam moments (validated before anything is written).
    const ParameterLayout& layout = impl_->model->layout();
    auto slots = layout_slots(layout, impl_->model->parameters(), "param.");
    slots.merge(layout_slots(layout, impl_->adam->m().data(), "adam_m."));
    slots.merge(layout_slots(layout, impl_->adam->v().data(), "adam_v."));
    load_tensors(checkpoint_file(dir, detail::kStateTensors), slots);
    impl_->adam->set_step_count(stored.adam_step_count);

    step_ = stored.step;
    epoch_ = stored.epoch;
    batch_in_epoch_ = stored.batch_in_epoch;
    tokens_seen_ = stored.tokens_seen;
    elapsed_before_ = stored.elapsed_s;
    best_val_loss_ = stored.best_val_loss;
    best_step_ = stored.best_step;
    skipped_steps_ = stored.skipped_steps;
    checkpoint_step_ = dir == config_.out_dir ? stored.step : -1;
    impl_->resumed = true;
    if (stored.threads > 0 && stored.threads != max_threads() && on_notice)
        on_notice({Notice::Kind::info, "the run used " + std::to_string(stored.threads) + " threads and continues with " +
                                           std::to_string(max_threads()) +
                                           ": losses stay close but are no longer bit-identical to an uninterrupted run"});
    detail::cut_log(dir, step_);
}

std::string non_finite_stop_message(const TrainResult& r, const std::string& out_dir) {
    if (r.stop_reason != StopReason::non_finite) return "";
    std::string saved;
    if (out_dir.empty())
        saved = "; nothing was written (no out_dir)";
    else if (r.checkpoint_step >= 0)
        saved = "; the checkpoint in " + out_dir + " stays the one of step " + std::to_string(r.checkpoint_step) +
                ", written before: resume it with on_non_finite = skip to step over such batches, or start again with "
                "a lower lr";
    else
        saved = "; no checkpoint was written before: start again with a lower lr, or with on_non_finite = skip";
    return "training stopped at step " + std::to_string(r.steps) +
           ": the loss or the gradient became non-finite (steps not applied: " + std::to_string(r.skipped_steps) + ")" +
           saved;
}

}  // namespace mlm
