// The training loop (include/mlm/trainer.hpp): one train() call is a Trainer::Session, whose
// named steps collate a step's batches, run forward and backward, take the optimizer step, log,
// evaluate and checkpoint.
#include <mlm/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>

#include <mlm/checkpoint.hpp>

#include "run_directory.hpp"
#include "trainer_impl.hpp"

namespace mlm {

using detail::join_path;
using detail::ordered_json;

namespace {
constexpr uint64_t kDropoutStream = 0xd409u;  // dropout keys: random_u64(seed, kDropoutStream, step, micro-batch)
}  // namespace

// One train() call: its clocks, log file, moving averages and result.
struct Trainer::Session {
    using clock = std::chrono::steady_clock;

    Trainer& t;
    Impl& I;
    const TrainerConfig& c;
    const bool writing;
    const clock::time_point start = clock::now();
    clock::time_point last_checkpoint = start;
    std::ofstream log;
    double train_seconds = 0;  // this session's steps only (for the ETA)
    int64_t steps = 0;         // this session's
    double loss_avg = 0, tps_avg = 0;
    int consecutive_skips = 0;
    int64_t last_eval_step = -1;
    bool unsaved_best = false;  // a new best loss since the last checkpoint
    TrainResult result;

    explicit Session(Trainer& trainer)
        : t(trainer), I(*trainer.impl_), c(trainer.config_), writing(!trainer.config_.out_dir.empty()) {}

    double session_s() const { return std::chrono::duration<double>(clock::now() - start).count(); }
    double elapsed_s() const { return t.elapsed_before_ + session_s(); }
    void notice(Notice::Kind kind, const std::string& text) const {
        if (t.on_notice) t.on_notice({kind, text});
    }
    void write_log(const ordered_json& line) {
        if (log) log << line.dump() << "\n" << std::flush;
    }

    void open() {
        if (!writing) return;
        if (!I.resumed && t.step_ == 0) detail::start_new_run(c.out_dir, c.overwrite);
        const std::string path = join_path(c.out_dir, detail::kLogFile);
        log.open(path, std::ios::app);
        if (!log) throw CheckpointError("cannot open " + path + " for writing");
    }

    // The reason to stop before the next step, if there is one.
    std::optional<StopReason> stop_due() const {
        if ((c.epochs > 0 && t.epoch_ >= c.epochs) || (c.max_steps > 0 && t.step_ >= c.max_steps) ||
            (c.max_tokens > 0 && t.tokens_seen_ >= c.max_tokens) ||
            (c.max_total_time_s > 0 && elapsed_s() >= c.max_total_time_s))
            return StopReason::finished;
        if (c.max_time_s > 0 && session_s() >= c.max_time_s) return StopReason::max_time;
        if (t.stop_requested_.load()) return StopReason::stopped;
        return std::nullopt;
    }

    // A full checkpoint into out_dir, recording the run's elapsed time.
    void checkpoint() {
        if (!writing) return;
        const double before = t.elapsed_before_;
        t.elapsed_before_ = elapsed_s();
        try {
            t.write_checkpoint(c.out_dir, true);
        } catch (...) {
            t.elapsed_before_ = before;
            throw;
        }
        t.elapsed_before_ = before;
        last_checkpoint = clock::now();
        t.checkpoint_step_ = t.step_;
        unsaved_best = false;
    }

    bool checkpoint_due() const {
        return (c.checkpoint_every_steps > 0 && t.step_ % c.checkpoint_every_steps == 0) ||
               (c.checkpoint_every_minutes > 0 &&
                std::chrono::duration<double>(clock::now() - last_checkpoint).count() >= 60.0 * c.checkpoint_every_minutes);
    }

    // Evaluates, adds the metrics to the log line, keeps the best model; true if a callback asks
    // to stop.
    bool evaluate(ordered_json& line) {
        if (I.valid_data.empty()) return false;
        EvalRecord rec;
        rec.step = t.step_;
        rec.epoch = t.epoch();
        rec.tokens = t.tokens_seen_;
        rec.metrics = t.evaluate();
        rec.elapsed_s = elapsed_s();
        I.last_eval = rec.metrics;
        last_eval_step = t.step_;
        if (std::isfinite(rec.metrics.loss) && rec.metrics.loss < t.best_val_loss_) {
            t.best_val_loss_ = rec.metrics.loss;
            t.best_step_ = t.step_;
            rec.best = true;
            unsaved_best = true;
            if (writing && c.save_best) {
                ordered_json info{{"step", t.step_}, {"epoch", rec.epoch}, {"tokens", t.tokens_seen_}};
                info["metrics"] = detail::metrics_to_json(rec.metrics);
                t.write_checkpoint(join_path(c.out_dir, detail::kBestDir), false, info.dump(2) + "\n");
            }
        }
        const ordered_json m = detail::metrics_to_json(rec.metrics);
        for (auto it = m.begin(); it != m.end(); ++it) line["val_" + it.key()] = it.value();
        line["val_best"] = rec.best;
        return t.on_eval && t.on_eval(rec);
    }

    // The step's batches: `grad_accum` consecutive batches of the epoch's plan (fewer at its end).
    int64_t collate(const std::vector<std::vector<std::size_t>>& plan, int64_t& step_tokens, int64_t& step_masked) {
        const int64_t k = std::min<int64_t>(c.grad_accum, static_cast<int64_t>(plan.size()) - t.batch_in_epoch_);
        step_tokens = step_masked = 0;
        for (int64_t i = 0; i < k; ++i) {
            Batch& b = I.micro[static_cast<std::size_t>(i)];
            I.collator->collate(I.train_data, plan[static_cast<std::size_t>(t.batch_in_epoch_ + i)],
                                static_cast<uint64_t>(t.epoch_), b);
            step_tokens += b.num_tokens();
            step_masked += b.num_targets();
        }
        return k;
    }

    // Forward and backward of the k batches: the gradient of the mean loss over all the step's
    // masked tokens (batch i weighted by its share M_i / M). NaN when a loss is not finite.
    double forward_backward(int64_t k, int64_t step_masked) {
        Encoder<float>& model = *I.model;
        model.zero_grad();
        double loss_sum = 0;
        for (int64_t i = 0; i < k && step_masked > 0; ++i) {
            Batch& b = I.micro[static_cast<std::size_t>(i)];
            if (b.num_targets() == 0) continue;
            ForwardOptions fo;
            fo.train = true;
            fo.dropout_key = random_u64(c.seed, kDropoutStream, static_cast<uint64_t>(t.step_), static_cast<uint64_t>(i));
            const float loss = model.forward(b, fo);
            if (!std::isfinite(loss)) return std::numeric_limits<double>::quiet_NaN();
            model.backward(static_cast<float>(b.num_targets()) / static_cast<float>(step_masked));
            loss_sum += static_cast<double>(loss) * b.num_targets();
        }
        return step_masked > 0 ? loss_sum / static_cast<double>(step_masked) : 0.0;
    }

    // The gradient norm (clipped when configured); NaN when it is not finite.
    double gradient_norm() {
        Encoder<float>& model = *I.model;
        return c.clip_grad_norm > 0 ? clip_grad_norm(model.gradients(), model.num_parameters(), c.clip_grad_norm)
                                    : grad_norm(model.gradients(), model.num_parameters());
    }

    // Time left to the end of the run or of a time budget (NaN: unknown).
    double eta_s() const {
        const double per_step = train_seconds / static_cast<double>(steps);
        double eta = t.total_steps_ > 0 ? per_step * static_cast<double>(t.total_steps_ - t.step_)
                                        : std::numeric_limits<double>::quiet_NaN();
        auto cap = [&](double budget, double used) {
            if (budget <= 0) return;
            const double left = std::max(0.0, budget - used);
            eta = std::isfinite(eta) ? std::min(eta, left) : left;
        };
        cap(c.max_time_s, session_s());
        cap(c.max_total_time_s, elapsed_s());
        return eta;
    }

    void smooth(StepRecord& r) {
        const double a = 0.95;
        loss_avg = steps == 1 ? r.loss : a * loss_avg + (1 - a) * (std::isfinite(r.loss) ? r.loss : loss_avg);
        tps_avg = steps == 1 ? r.tokens_per_s : a * tps_avg + (1 - a) * r.tokens_per_s;
        r.loss_smoothed = loss_avg;
        r.tokens_per_s_smoothed = tps_avg;
    }

    static ordered_json log_line(const StepRecord& r) {
        auto finite = [](double x) { return std::isfinite(x) ? ordered_json(x) : ordered_json(nullptr); };
        ordered_json line{{"step", r.step},         {"epoch", r.epoch},   {"tokens", r.tokens},
                          {"loss", r.skipped ? ordered_json(nullptr) : ordered_json(r.loss)},
                          {"lr", r.lr},             {"beta1", r.beta1},   {"grad_norm", finite(r.grad_norm)},
                          {"tokens_per_s", r.tokens_per_s}, {"elapsed_s", r.elapsed_s},
                          {"step_tokens", r.step_tokens},   {"masked", r.step_masked}};
        if (r.skipped) line["skipped"] = true;
        return line;
    }

    // A skipped non-finite step: true when the run gives up.
    bool handle_non_finite(const StepRecord& r) {
        const bool give_up = c.on_non_finite == NonFinitePolicy::stop || consecutive_skips >= c.max_non_finite_skips;
        std::string what_stays;
        if (give_up && writing)
            what_stays = t.checkpoint_step_ >= 0 ? " (the checkpoint in " + c.out_dir + " stays the one of step " +
                                                       std::to_string(t.checkpoint_step_) + ")"
                                                 : " (no checkpoint was written before)";
        notice(Notice::Kind::warning, "step " + std::to_string(r.step) + ": non-finite " +
                                          (std::isfinite(r.loss) ? "gradient norm" : "loss") + ", step not applied" +
                                          (give_up ? "; stopping" + what_stays : "; skipped"));
        return give_up;
    }

    // One optimizer step with its log line, evaluation and checkpoint. Returns the reason to
    // stop when the step ended the run (a non-finite failure).
    std::optional<StopReason> step(const std::vector<std::vector<std::size_t>>& plan) {
        const auto t0 = clock::now();
        int64_t step_tokens = 0, step_masked = 0;
        const int64_t k = collate(plan, step_tokens, step_masked);
        const double loss = forward_backward(k, step_masked);
        const bool has_targets = step_masked > 0;
        double norm = 0;
        bool finite = std::isfinite(loss);
        if (finite && has_targets) {
            norm = gradient_norm();
            finite = std::isfinite(norm);
        }
        const int64_t sched_step = t.total_steps_ > 0 ? std::min(t.step_, t.total_steps_ - 1) : t.step_;
        const double lr = I.schedule->lr(sched_step);
        const double beta1 = I.schedule->beta1(sched_step).value_or(c.beta1);
        if (finite && has_targets) {
            I.adam->step(I.model->parameters(), I.model->gradients(), lr, beta1);
            consecutive_skips = 0;
        } else if (!finite) {
            ++t.skipped_steps_;
            ++consecutive_skips;
        }

        // advance
        ++t.step_;
        t.batch_in_epoch_ += k;
        t.tokens_seen_ += step_tokens;
        const double dt = std::chrono::duration<double>(clock::now() - t0).count();
        train_seconds += dt;
        ++steps;
        StepRecord rec;
        rec.step = t.step_;
        rec.total_steps = t.total_steps_;
        rec.epoch = static_cast<double>(t.epoch_) + static_cast<double>(t.batch_in_epoch_) / static_cast<double>(plan.size());
        rec.tokens = t.tokens_seen_;
        rec.step_tokens = step_tokens;
        rec.step_masked = step_masked;
        rec.loss = loss;
        rec.lr = lr;
        rec.beta1 = beta1;
        rec.grad_norm = norm;
        rec.tokens_per_s = dt > 0 ? static_cast<double>(step_tokens) / dt : 0.0;
        rec.elapsed_s = elapsed_s();
        rec.skipped = !finite;
        smooth(rec);
        rec.eta_s = eta_s();
        result.last_loss = loss;
        const bool epoch_done = t.batch_in_epoch_ >= static_cast<int64_t>(plan.size());
        if (epoch_done) {
            ++t.epoch_;
            t.batch_in_epoch_ = 0;
        }

        ordered_json line = log_line(rec);
        bool stop = t.on_step && t.on_step(rec);
        if (!finite && handle_non_finite(rec)) {
            write_log(line);
            return StopReason::non_finite;
        }
        const bool eval_due = c.eval_every_steps > 0 ? t.step_ % c.eval_every_steps == 0 : epoch_done;
        if (eval_due) stop = evaluate(line) || stop;
        write_log(line);
        if (checkpoint_due()) checkpoint();
        if (stop) t.stop_requested_.store(true);
        return std::nullopt;
    }

    // The end: a final evaluation and checkpoint. A non-finite stop writes nothing: the checkpoint
    // on disk stays the last one written before the fault, since the weights that led to it may be
    // bad even where they are finite.
    void finish(StopReason reason) {
        result.stop_reason = reason;
        if ((reason == StopReason::finished || reason == StopReason::max_time) && last_eval_step != t.step_ && t.step_ > 0 &&
            !I.valid_data.empty()) {
            ordered_json line{{"step", t.step_}, {"epoch", t.epoch()}, {"tokens", t.tokens_seen_},
                              {"elapsed_s", elapsed_s()}, {"final", true}};
            evaluate(line);
            write_log(line);
        }
        const bool save = reason == StopReason::non_finite ? false : reason != StopReason::stopped || c.checkpoint_on_stop;
        if (save && (t.checkpoint_step_ != t.step_ || unsaved_best) && t.step_ > 0) checkpoint();

        t.elapsed_before_ = elapsed_s();
        result.steps = t.step_;
        result.epochs = t.epoch();
        result.tokens = t.tokens_seen_;
        result.best_val_loss = std::isfinite(t.best_val_loss_) ? t.best_val_loss_ : std::numeric_limits<double>::quiet_NaN();
        result.best_step = t.best_step_;
        result.last_eval = I.last_eval;
        result.elapsed_s = t.elapsed_before_;
        result.skipped_steps = t.skipped_steps_;
        result.checkpoint_step = writing ? t.checkpoint_step_ : -1;
        I.resumed = true;  // a second train() call continues this run
    }
};

TrainResult Trainer::train() {
    if (!impl_->has_data) throw std::logic_error("Trainer::train: call set_data() first");
    set_trainer_threads(config_.threads);
    stop_requested_.store(false);
    Session s(*this);
    s.open();
    if (config_.eval_at_start && step_ == 0 && !impl_->resumed) {
        ordered_json line{{"step", 0}, {"epoch", 0.0}, {"tokens", 0}, {"elapsed_s", s.elapsed_s()}};
        const bool stop = s.evaluate(line);
        s.write_log(line);
        if (stop) stop_requested_.store(true);
    }
    if (static_cast<int64_t>(impl_->micro.size()) < config_.grad_accum)
        impl_->micro.resize(static_cast<std::size_t>(config_.grad_accum));

    std::optional<StopReason> reason;
    while (!(reason = s.stop_due())) {
        const auto& plan = impl_->plan_for(epoch_);
        if (batch_in_epoch_ >= static_cast<int64_t>(plan.size())) {  // an empty plan, or a stale position
            ++epoch_;
            batch_in_epoch_ = 0;
            continue;
        }
        if ((reason = s.step(plan))) break;
    }
    s.finish(*reason);
    return s.result;
}

}  // namespace mlm
