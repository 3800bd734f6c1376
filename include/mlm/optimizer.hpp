// mlm/optimizer.hpp — Adam / AdamW over flat buffers, learning-rate schedules, gradient clipping.
//
// Adam<T> updates one flat parameter buffer from one flat gradient buffer with the exact arithmetic
// of torch.optim.Adam (L2: weight decay added to the gradient) or torch.optim.AdamW (decoupled:
// p *= 1 - lr * weight_decay before the update). Its state — first moment m, second moment v, both
// laid out like the parameters, and the step count — is public for checkpoints. The learning rate
// and beta1 are arguments of every step, so a schedule (and OneCycleLR's momentum cycling) stays
// outside the optimizer. The schedules are pure functions of a 0-based step: the lr (and beta1)
// that optimizer step `step` uses.
//
//   mlm::ParameterLayout layout(config);
//   std::vector<float> params(layout.size()), grads(layout.size());
//   mlm::AdamOptions opt;                       // torch defaults: betas (0.9, 0.999), eps 1e-8
//   opt.weight_decay = 0.01;
//   opt.decay = mlm::WeightDecay::decoupled;    // AdamW; WeightDecay::l2 is torch.optim.Adam
//   opt.decay_weights_only = true;              // no decay for norm scales, biases, embeddings
//   mlm::Adam<float> adam(layout, opt);
//   mlm::OneCycleOptions one_cycle;             // torch.optim.lr_scheduler.OneCycleLR defaults
//   one_cycle.lr_max = 6e-4;
//   one_cycle.total_steps = n_steps;
//   mlm::LrSchedule schedule = mlm::OneCycleSchedule(one_cycle);
//   for (int64_t step = 0; step < n_steps; ++step) {
//       // forward, backward into grads
//       double norm = mlm::clip_grad_norm(grads, 1.0);
//       if (!std::isfinite(norm)) continue;      // skip the step (or lower the loss scale, stop)
//       adam.step(params, grads, schedule.lr(step), schedule.beta1(step).value_or(opt.beta1));
//   }
//
// Range of the schedules: steps are 0-based; a negative step throws std::out_of_range.
// OneCycleSchedule is defined on [0, total_steps] exactly like torch (the value at total_steps is
// what torch's scheduler computes after the final step; no optimizer step of a total_steps-long
// run uses it) and throws std::out_of_range past it, where torch raises ValueError. The warm-up
// schedules clamp instead: from total_steps on they return lr_min.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "fields.hpp"
#include "ops/common.hpp"

#include "parameters.hpp"

namespace mlm {

// ============================================================================================
// Adam / AdamW
// ============================================================================================

// How weight decay enters the update.
//   l2:        grad += weight_decay * p, then Adam                (torch.optim.Adam)
//   decoupled: p *= 1 - lr * weight_decay, then Adam on the grad  (torch.optim.AdamW)
enum class WeightDecay { l2, decoupled };

struct AdamOptions {
    double beta1 = 0.9;         // default for step() without a beta1; a schedule may override it
    double beta2 = 0.999;
    double eps = 1e-8;          // added to sqrt(v_hat), as torch does
    double weight_decay = 0.0;
    WeightDecay decay = WeightDecay::decoupled;
    // true: only TensorKind::weight tensors decay; norm scales, biases and embeddings do not
    // (torch: two param groups, the second with weight_decay 0).
    bool decay_weights_only = false;

    // Throws std::invalid_argument naming the first field out of range (torch's checks).
    void validate() const {
        auto fail = [](const std::string& what) { throw std::invalid_argument("AdamOptions: " + what); };
        if (!(beta1 >= 0.0 && beta1 < 1.0)) fail("beta1 must be in [0, 1), got " + std::to_string(beta1));
        if (!(beta2 >= 0.0 && beta2 < 1.0)) fail("beta2 must be in [0, 1), got " + std::to_string(beta2));
        if (!(eps >= 0.0)) fail("eps must be >= 0, got " + std::to_string(eps));
        if (!(weight_decay >= 0.0))
            fail("weight_decay must be >= 0, got " + std::to_string(weight_decay));
    }
};

// A run of consecutive tensors that all decay or all do not: elements [begin, end).
struct DecayRange {
    std::size_t begin = 0, end = 0;
    bool decay = true;
};

namespace detail {

// Per-step scalars, already in T as torch's kernels use them (torch casts its Python doubles to the
// tensor's dtype).
template <class T>
struct AdamStepScalars {
    T beta1, one_minus_beta1, beta2, one_minus_beta2;
    T bias_correction2_sqrt, eps;
    T neg_step_size;   // -lr / bias_correction1
    T l2;              // weight_decay for WeightDecay::l2 on decaying ranges, else 0
    T keep;            // 1 - lr * weight_decay for WeightDecay::decoupled on decaying ranges, else 1
};

// One Adam update of n elements. Written in torch's operation order:
//   grad = g + l2 * p;  p = p * keep;
//   m = m * beta1 + (1 - beta1) * grad;  v = v * beta2 + (1 - beta2) * grad * grad;
//   p = p + (-step_size * m) / (sqrt(v) / sqrt(bias_correction2) + eps)
template <bool kL2, class T>
void adam_update(T* p, const T* g, T* m, T* v, std::ptrdiff_t n, const AdamStepScalars<T>& s) {
    mlm::detail::parallel_chunks(static_cast<std::size_t>(n), 32768, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) {
        T grad = g[i];
        if constexpr (kL2) grad = grad + s.l2 * p[i];
        const T pi = p[i] * s.keep;
        const T mi = m[i] * s.beta1 + s.one_minus_beta1 * grad;
        const T vi = v[i] * s.beta2 + s.one_minus_beta2 * grad * grad;
        m[i] = mi;
        v[i] = vi;
        const T denom = std::sqrt(vi) / s.bias_correction2_sqrt + s.eps;
        p[i] = pi + s.neg_step_size * mi / denom;
    }
    });
}

}  // namespace detail

// Adam (WeightDecay::l2) or AdamW (WeightDecay::decoupled) over flat buffers laid out like the
// tensors it was built from. T is float or double.
template <class T>
class Adam {
    static_assert(std::is_floating_point_v<T>, "Adam<T>: T must be float or double");

public:
    // tensors: the layout's size table; they must tile [0, size) in order (offset of each = sum of
    // the previous numel), which ParameterLayout guarantees.
    explicit Adam(const std::vector<TensorInfo>& tensors, const AdamOptions& options = {})
        : options_(options) {
        options_.validate();
        std::size_t offset = 0;
        for (const TensorInfo& t : tensors) {
            if (t.offset != offset)
                throw std::invalid_argument("Adam: tensor \"" + t.name + "\" starts at offset " +
                                            std::to_string(t.offset) + ", expected " +
                                            std::to_string(offset) +
                                            " (the tensors must tile the flat buffer in order)");
            const bool decay = !options_.decay_weights_only || t.kind == TensorKind::weight;
            if (t.numel > 0) {
                if (!ranges_.empty() && ranges_.back().decay == decay)
                    ranges_.back().end += t.numel;
                else
                    ranges_.push_back({offset, offset + t.numel, decay});
            }
            offset += t.numel;
        }
        size_ = offset;
        m_.assign(size_, T(0));
        v_.assign(size_, T(0));
    }
    explicit Adam(const ParameterLayout& layout, const AdamOptions& options = {})
        : Adam(layout.tensors(), options) {}
    // One buffer of `size` elements, all treated as TensorKind::weight.
    explicit Adam(std::size_t size, const AdamOptions& options = {})
        : Adam(std::vector<TensorInfo>{{"params", {static_cast<int64_t>(size)}, 0, size, TensorKind::weight}},
               options) {}

    // One step with learning rate lr and first-moment decay beta1 (both may change every step).
    // params, grads: size() elements laid out like the tensors; grads are read only.
    void step(T* params, const T* grads, double lr, double beta1) {
        if (!(lr >= 0.0)) throw std::invalid_argument("Adam::step: lr must be >= 0, got " + std::to_string(lr));
        if (!(beta1 >= 0.0 && beta1 < 1.0))
            throw std::invalid_argument("Adam::step: beta1 must be in [0, 1), got " + std::to_string(beta1));
        ++step_count_;
        // torch: bias corrections with the current beta1 and the incremented step, in double.
        const double t = static_cast<double>(step_count_);
        const double bias_correction1 = 1.0 - std::pow(beta1, t);
        const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
        const double step_size = lr / bias_correction1;
        detail::AdamStepScalars<T> s;
        s.beta1 = T(beta1);
        s.one_minus_beta1 = T(1.0 - beta1);
        s.beta2 = T(options_.beta2);
        s.one_minus_beta2 = T(1.0 - options_.beta2);
        s.bias_correction2_sqrt = T(std::sqrt(bias_correction2));
        s.eps = T(options_.eps);
        s.neg_step_size = T(-step_size);
        const bool l2 = options_.decay == WeightDecay::l2 && options_.weight_decay != 0.0;
        for (const DecayRange& r : ranges_) {
            const bool decay = r.decay && options_.weight_decay != 0.0;
            s.l2 = T(decay && l2 ? options_.weight_decay : 0.0);
            s.keep = T(decay && !l2 ? 1.0 - lr * options_.weight_decay : 1.0);
            const auto n = static_cast<std::ptrdiff_t>(r.end - r.begin);
            if (decay && l2)
                detail::adam_update<true>(params + r.begin, grads + r.begin, m_.data() + r.begin,
                                          v_.data() + r.begin, n, s);
            else
                detail::adam_update<false>(params + r.begin, grads + r.begin, m_.data() + r.begin,
                                           v_.data() + r.begin, n, s);
        }
    }
    void step(T* params, const T* grads, double lr) { step(params, grads, lr, options_.beta1); }
    // The same on vectors, checking their sizes first.
    void step(std::vector<T>& params, const std::vector<T>& grads, double lr, double beta1) {
        if (params.size() != size_ || grads.size() != size_)
            throw std::invalid_argument("Adam::step: params has " + std::to_string(params.size()) +
                                        " and grads " + std::to_string(grads.size()) +
                                        " elements, the optimizer was built for " + std::to_string(size_));
        step(params.data(), grads.data(), lr, beta1);
    }
    void step(std::vector<T>& params, const std::vector<T>& grads, double lr) {
        step(params, grads, lr, options_.beta1);
    }

    std::size_t size() const { return size_; }
    const AdamOptions& options() const { return options_; }
    // Which element ranges decay (consecutive tensors with the same answer are merged).
    const std::vector<DecayRange>& decay_ranges() const { return ranges_; }

    // State, for checkpoints. m and v have size() elements in the parameters' layout; write into
    // them on resume but do not resize them. step_count is the number of steps taken so far (torch's
    // state["step"]); the next step uses step_count + 1 in its bias corrections.
    std::vector<T>& m() { return m_; }
    const std::vector<T>& m() const { return m_; }
    std::vector<T>& v() { return v_; }
    const std::vector<T>& v() const { return v_; }
    int64_t step_count() const { return step_count_; }
    void set_step_count(int64_t n) {
        if (n < 0) throw std::invalid_argument("Adam::set_step_count: negative step count " + std::to_string(n));
        step_count_ = n;
    }
    // Back to the state of a fresh optimizer: m = v = 0, no steps taken.
    void reset() {
        std::fill(m_.begin(), m_.end(), T(0));
        std::fill(v_.begin(), v_.end(), T(0));
        step_count_ = 0;
    }

private:
    AdamOptions options_;
    std::vector<DecayRange> ranges_;
    std::size_t size_ = 0;
    std::vector<T> m_, v_;
    int64_t step_count_ = 0;
};

// ============================================================================================
// Gradient clipping (torch.nn.utils.clip_grad_norm_ with norm_type 2)
// ============================================================================================

// The L2 norm of the whole gradient buffer, accumulated in double.
template <class T>
double grad_norm(const T* grads, std::size_t n) {
    // A fixed number of blocks summed in order: the result does not depend on the thread count.
    constexpr int blocks = 64;
    double partial[blocks] = {};
    const std::size_t per_block = (n + blocks - 1) / blocks;
    mlm::detail::parallel_for(n >= 32768 ? blocks : 1, [&](std::ptrdiff_t k) {
        const std::size_t b = n >= 32768 ? static_cast<std::size_t>(k) * per_block : 0;
        const std::size_t e = n >= 32768 ? std::min(n, b + per_block) : n;
        double sum = 0.0;
        for (std::size_t i = b; i < e; ++i) {
            const double g = static_cast<double>(grads[i]);
            sum += g * g;
        }
        partial[k] = sum;
    });
    double sum = 0.0;
    for (double x : partial) sum += x;
    return std::sqrt(sum);
}

// Scales grads in place so that their global L2 norm is at most max_norm and returns the norm
// before clipping. Like torch, the factor is max_norm / (norm + 1e-6) and is applied whenever it is
// below 1 (so a norm within 1e-6 below max_norm is scaled by a hair, as torch does). A non-finite
// norm (a NaN or inf gradient) is returned and nothing is scaled — torch would scale by 0 or NaN;
// here the caller decides (skip the step, stop). max_norm must be > 0.
template <class T>
double clip_grad_norm(T* grads, std::size_t n, double max_norm) {
    if (!(max_norm > 0.0))
        throw std::invalid_argument("clip_grad_norm: max_norm must be > 0, got " + std::to_string(max_norm));
    const double norm = grad_norm(grads, n);
    if (!std::isfinite(norm)) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const T c = T(coef);
        mlm::detail::parallel_chunks(n, 32768, [&](std::size_t b, std::size_t e) {
            for (std::size_t i = b; i < e; ++i) grads[i] *= c;
        });
    }
    return norm;
}
template <class T>
double clip_grad_norm(std::vector<T>& grads, double max_norm) {
    return clip_grad_norm(grads.data(), grads.size(), max_norm);
}

// ============================================================================================
// Learning-rate schedules: lr (and, for one-cycle, beta1) of the optimizer step `step`, 0-based.
// Every schedule has  double lr(int64_t step) const  and  std::optional<double> beta1(int64_t) const
// (nullopt: the schedule leaves beta1 alone; use AdamOptions::beta1).
// ============================================================================================

namespace detail {
inline void check_step(const char* who, int64_t step) {
    if (step < 0)
        throw std::out_of_range(std::string(who) + ": step must be >= 0, got " + std::to_string(step));
}
inline void check_warmup(const char* who, double lr_max, double lr_min, int64_t warmup_steps,
                         int64_t total_steps) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(std::string(who) + ": " + what); };
    if (!(lr_max >= 0.0)) fail("lr_max must be >= 0, got " + std::to_string(lr_max));
    if (!(lr_min >= 0.0)) fail("lr_min must be >= 0, got " + std::to_string(lr_min));
    if (total_steps < 1) fail("total_steps must be >= 1, got " + std::to_string(total_steps));
    if (warmup_steps < 0 || warmup_steps > total_steps)
        fail("warmup_steps must be in [0, total_steps = " + std::to_string(total_steps) + "], got " +
             std::to_string(warmup_steps));
}
constexpr double kPi = 3.141592653589793238462643383279502884;  // == Python's math.pi as a double
// a * b rounded to a double before anything else uses it. The phase boundaries of OneCycleLR are
// float(pct_start * total_steps) - 1 in torch; a compiler contracting this into one fused
// multiply-add would move a boundary by an ulp and can flip which phase a step falls in.
inline double rounded_product(double a, double b) {
    volatile double product = a * b;
    return product;
}
}  // namespace detail

// The same lr at every step.
class ConstantSchedule {
public:
    explicit ConstantSchedule(double lr) : lr_(lr) {
        if (!(lr >= 0.0)) throw std::invalid_argument("ConstantSchedule: lr must be >= 0, got " + std::to_string(lr));
    }
    double lr(int64_t step) const {
        detail::check_step("ConstantSchedule", step);
        return lr_;
    }
    std::optional<double> beta1(int64_t) const { return std::nullopt; }

private:
    double lr_;
};

// Shared shape of the two warm-up schedules:
//   step < warmup_steps:      lr = lr_max * (step + 1) / warmup_steps   (step 0 already moves;
//                             the last warm-up step, warmup_steps - 1, is lr_max)
//   peak <= step < total:     decay from lr_max at peak = max(warmup_steps, 1) - 1 to lr_min at
//                             the last step total_steps - 1; progress = (step - peak) / (total - 1 - peak)
//   step >= total_steps:      lr_min (clamped)
// warmup_steps 0 and 1 are the same schedule: step 0 runs at lr_max.
namespace detail {
template <class Decay>
double warmup_then_decay(double lr_max, double lr_min, int64_t warmup_steps, int64_t total_steps,
                         int64_t step, Decay decay) {
    if (step >= total_steps) return lr_min;
    if (step < warmup_steps)
        return lr_max * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
    const int64_t peak = (warmup_steps > 0 ? warmup_steps : 1) - 1;
    const int64_t decay_steps = total_steps - 1 - peak;
    const double progress =
        decay_steps == 0 ? 0.0 : static_cast<double>(step - peak) / static_cast<double>(decay_steps);
    return decay(progress);
}
}  // namespace detail

// Linear warm-up, then linear decay to lr_min at the last step.
class WarmupLinearSchedule {
public:
    WarmupLinearSchedule(double lr_max, double lr_min, int64_t warmup_steps, int64_t total_steps)
        : lr_max_(lr_max), lr_min_(lr_min), warmup_steps_(warmup_steps), total_steps_(total_steps) {
        detail::check_warmup("WarmupLinearSchedule", lr_max, lr_min, warmup_steps, total_steps);
    }
    double lr(int64_t step) const {
        detail::check_step("WarmupLinearSchedule", step);
        return detail::warmup_then_decay(lr_max_, lr_min_, warmup_steps_, total_steps_, step,
                                         [&](double progress) { return lr_max_ + (lr_min_ - lr_max_) * progress; });
    }
    std::optional<double> beta1(int64_t) const { return std::nullopt; }

private:
    double lr_max_, lr_min_;
    int64_t warmup_steps_, total_steps_;
};

// Linear warm-up, then cosine decay to lr_min at the last step:
//   lr = lr_min + (lr_max - lr_min) * 0.5 * (1 + cos(pi * progress))
class WarmupCosineSchedule {
public:
    WarmupCosineSchedule(double lr_max, double lr_min, int64_t warmup_steps, int64_t total_steps)
        : lr_max_(lr_max), lr_min_(lr_min), warmup_steps_(warmup_steps), total_steps_(total_steps) {
        detail::check_warmup("WarmupCosineSchedule", lr_max, lr_min, warmup_steps, total_steps);
    }
    double lr(int64_t step) const {
        detail::check_step("WarmupCosineSchedule", step);
        return detail::warmup_then_decay(lr_max_, lr_min_, warmup_steps_, total_steps_, step, [&](double progress) {
            return lr_min_ + (lr_max_ - lr_min_) * 0.5 * (1.0 + std::cos(detail::kPi * progress));
        });
    }
    std::optional<double> beta1(int64_t) const { return std::nullopt; }

private:
    double lr_max_, lr_min_;
    int64_t warmup_steps_, total_steps_;
};

enum class AnnealStrategy { cos, linear };
inline const auto& enum_names(const AnnealStrategy*) {
    static const EnumName<AnnealStrategy> names[] = {{AnnealStrategy::cos, "cos"}, {AnnealStrategy::linear, "linear"}};
    return names;
}

// torch.optim.lr_scheduler.OneCycleLR's arguments, with its defaults (max_lr is lr_max here).
struct OneCycleOptions {
    double lr_max = 1e-3;
    int64_t total_steps = 0;              // required
    double pct_start = 0.3;               // share of the steps spent rising
    AnnealStrategy anneal = AnnealStrategy::cos;
    double div_factor = 25.0;             // initial lr = lr_max / div_factor
    double final_div_factor = 1e4;        // min lr = initial lr / final_div_factor
    bool three_phase = false;             // rise, fall back to the initial lr, then anneal to min lr
    bool cycle_momentum = true;           // beta1 moves inversely to the lr
    double base_momentum = 0.85;          // beta1 at the peak lr
    double max_momentum = 0.95;           // beta1 at the start (and end)
};

// torch's OneCycleLR, evaluated for any step in [0, total_steps] with the same floating-point
// arithmetic (phase ends at float(pct_start * total_steps) - 1, float(2 * pct_start * total_steps)
// - 2 and total_steps - 1; each phase interpolates from the previous phase's end). Steps past
// total_steps throw std::out_of_range (torch raises ValueError).
class OneCycleSchedule {
public:
    explicit OneCycleSchedule(const OneCycleOptions& options) : options_(options) {
        auto fail = [](const std::string& what) { throw std::invalid_argument("OneCycleSchedule: " + what); };
        const OneCycleOptions& o = options_;
        if (o.total_steps < 1) fail("total_steps must be >= 1, got " + std::to_string(o.total_steps));
        if (!(o.pct_start >= 0.0 && o.pct_start <= 1.0))
            fail("pct_start must be in [0, 1], got " + std::to_string(o.pct_start));
        if (!(o.lr_max >= 0.0)) fail("lr_max must be >= 0, got " + std::to_string(o.lr_max));
        if (!(o.div_factor > 0.0)) fail("div_factor must be > 0, got " + std::to_string(o.div_factor));
        if (!(o.final_div_factor > 0.0))
            fail("final_div_factor must be > 0, got " + std::to_string(o.final_div_factor));
        if (o.cycle_momentum && !(o.base_momentum >= 0.0 && o.base_momentum < 1.0 &&
                                  o.max_momentum >= 0.0 && o.max_momentum < 1.0))
            fail("base_momentum and max_momentum must be in [0, 1)");

        const double initial_lr = o.lr_max / o.div_factor;
        const double min_lr = initial_lr / o.final_div_factor;
        const double total = static_cast<double>(o.total_steps);
        const double rise_end = detail::rounded_product(o.pct_start, total) - 1.0;
        if (rise_end == 0.0)
            fail("pct_start * total_steps == 1 leaves the rising phase no length (torch divides by zero "
                 "here); change pct_start or total_steps");
        if (o.three_phase) {
            phases_ = {{rise_end, initial_lr, o.lr_max, o.max_momentum, o.base_momentum},
                       {detail::rounded_product(2.0 * o.pct_start, total) - 2.0, o.lr_max, initial_lr, o.base_momentum, o.max_momentum},
                       {total - 1.0, initial_lr, min_lr, o.max_momentum, o.max_momentum}};
        } else {
            phases_ = {{rise_end, initial_lr, o.lr_max, o.max_momentum, o.base_momentum},
                       {total - 1.0, o.lr_max, min_lr, o.base_momentum, o.max_momentum}};
        }
    }

    double lr(int64_t step) const {
        const Where w = locate(step);
        return anneal(w.phase->start_lr, w.phase->end_lr, w.pct);
    }
    // The cycled beta1, or nullopt when cycle_momentum is off.
    std::optional<double> beta1(int64_t step) const {
        if (!options_.cycle_momentum) {
            locate(step);  // same range checks as lr()
            return std::nullopt;
        }
        const Where w = locate(step);
        return anneal(w.phase->start_momentum, w.phase->end_momentum, w.pct);
    }
    const OneCycleOptions& options() const { return options_; }

private:
    struct Phase {
        double end_step, start_lr, end_lr, start_momentum, end_momentum;
    };
    struct Where {
        const Phase* phase;
        double pct;
    };

    Where locate(int64_t step) const {
        detail::check_step("OneCycleSchedule", step);
        if (step > options_.total_steps)
            throw std::out_of_range("OneCycleSchedule: step " + std::to_string(step) + " is past total_steps " +
                                    std::to_string(options_.total_steps) +
                                    " (torch's OneCycleLR raises here too); make total_steps cover the whole run");
        const double s = static_cast<double>(step);
        double start_step = 0.0;
        for (std::size_t i = 0; i < phases_.size(); ++i) {
            const Phase& phase = phases_[i];
            if (s <= phase.end_step || i + 1 == phases_.size()) {
                const double length = phase.end_step - start_step;
                if (length == 0.0)
                    throw std::out_of_range("OneCycleSchedule: step " + std::to_string(step) +
                                            " falls in a phase of zero length (torch divides by zero here)");
                return {&phase, (s - start_step) / length};
            }
            start_step = phase.end_step;
        }
        return {&phases_.back(), 1.0};  // not reached: the last phase always matches
    }

    double anneal(double start, double end, double pct) const {
        if (options_.anneal == AnnealStrategy::cos) {
            const double cos_out = std::cos(detail::kPi * pct) + 1.0;
            return end + (start - end) / 2.0 * cos_out;
        }
        return (end - start) * pct + start;
    }

    OneCycleOptions options_;
    std::vector<Phase> phases_;
};

// Any of the schedules above behind one type, for a trainer configured at run time.
class LrSchedule {
public:
    LrSchedule(ConstantSchedule s) : s_(std::move(s)) {}
    LrSchedule(WarmupLinearSchedule s) : s_(std::move(s)) {}
    LrSchedule(WarmupCosineSchedule s) : s_(std::move(s)) {}
    LrSchedule(OneCycleSchedule s) : s_(std::move(s)) {}

    double lr(int64_t step) const {
        return std::visit([step](const auto& s) { return s.lr(step); }, s_);
    }
    std::optional<double> beta1(int64_t step) const {
        return std::visit([step](const auto& s) { return s.beta1(step); }, s_);
    }

private:
    std::variant<ConstantSchedule, WarmupLinearSchedule, WarmupCosineSchedule, OneCycleSchedule> s_;
};

}  // namespace mlm
