// The training loop, its checkpoints and its logs (see include/mlm/trainer.hpp).
#include <mlm/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <sys/ioctl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <mlm/checkpoint.hpp>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlm {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

// ============================================================================================
// enums <-> strings
// ============================================================================================

namespace {

template <class E, std::size_t N>
E enum_from_string(const char* what, const std::string& s, const std::pair<E, const char*> (&table)[N]) {
    std::string options;
    for (const auto& [value, name] : table) {
        if (s == name) return value;
        options += options.empty() ? std::string("\"") + name + "\"" : std::string(", \"") + name + "\"";
    }
    throw std::invalid_argument(std::string(what) + " must be one of " + options + ", got \"" + s + "\"");
}

template <class E, std::size_t N>
const char* enum_to_string(E e, const std::pair<E, const char*> (&table)[N]) {
    for (const auto& [value, name] : table)
        if (value == e) return name;
    return "?";
}

const std::pair<OptimizerKind, const char*> kOptimizers[] = {{OptimizerKind::adam, "adam"}, {OptimizerKind::adamw, "adamw"}};
const std::pair<ScheduleKind, const char*> kSchedules[] = {{ScheduleKind::one_cycle, "one_cycle"},
                                                           {ScheduleKind::constant, "constant"},
                                                           {ScheduleKind::warmup_linear, "warmup_linear"},
                                                           {ScheduleKind::warmup_cosine, "warmup_cosine"}};
const std::pair<NonFinitePolicy, const char*> kNonFinite[] = {{NonFinitePolicy::skip, "skip"}, {NonFinitePolicy::stop, "stop"}};
const std::pair<ProgressMode, const char*> kProgress[] = {{ProgressMode::automatic, "auto"},
                                                          {ProgressMode::bar, "bar"},
                                                          {ProgressMode::lines, "lines"},
                                                          {ProgressMode::none, "none"}};
const std::pair<StopReason, const char*> kStop[] = {{StopReason::finished, "finished"},
                                                    {StopReason::max_time, "max_time"},
                                                    {StopReason::stopped, "stopped"},
                                                    {StopReason::non_finite, "non_finite"}};
const std::pair<Recipe, const char*> kRecipes[] = {{Recipe::original, "original"}, {Recipe::best, "best"}};
const std::pair<BatcherOptions::Bucketing, const char*> kBucketing[] = {{BatcherOptions::Bucketing::automatic, "auto"},
                                                                        {BatcherOptions::Bucketing::on, "on"},
                                                                        {BatcherOptions::Bucketing::off, "off"}};

}  // namespace

const char* to_string(OptimizerKind k) { return enum_to_string(k, kOptimizers); }
const char* to_string(ScheduleKind k) { return enum_to_string(k, kSchedules); }
const char* to_string(NonFinitePolicy k) { return enum_to_string(k, kNonFinite); }
const char* to_string(ProgressMode k) { return enum_to_string(k, kProgress); }
const char* to_string(StopReason r) { return enum_to_string(r, kStop); }
OptimizerKind optimizer_kind_from_string(const std::string& s) { return enum_from_string("optimizer", s, kOptimizers); }
ScheduleKind schedule_kind_from_string(const std::string& s) { return enum_from_string("schedule", s, kSchedules); }
NonFinitePolicy non_finite_policy_from_string(const std::string& s) {
    return enum_from_string("on_non_finite", s, kNonFinite);
}
ProgressMode progress_mode_from_string(const std::string& s) { return enum_from_string("progress", s, kProgress); }
const char* to_string(Recipe r) { return enum_to_string(r, kRecipes); }
Recipe recipe_from_string(const std::string& s) { return enum_from_string("recipe", s, kRecipes); }

// ============================================================================================
// recipes
// ============================================================================================

void apply_recipe(Recipe recipe, ModelConfig& model, TrainerConfig& trainer) {
    // First the original's knobs, the structs' defaults: a recipe never inherits another's.
    const ModelConfig m0;
    model.dropout = m0.dropout;
    model.norm_placement = m0.norm_placement;
    const TrainerConfig t0;
    TrainerConfig& t = trainer;
    t.batch_size = t0.batch_size;
    t.batch_tokens = t0.batch_tokens;
    t.max_batch_sequences = t0.max_batch_sequences;
    t.bucketing = t0.bucketing;
    t.grad_accum = t0.grad_accum;
    t.optimizer = t0.optimizer;
    t.lr = t0.lr;
    t.beta1 = t0.beta1;
    t.beta2 = t0.beta2;
    t.eps = t0.eps;
    t.weight_decay = t0.weight_decay;
    t.decay_weights_only = t0.decay_weights_only;
    t.clip_grad_norm = t0.clip_grad_norm;
    t.schedule = t0.schedule;
    t.lr_min = t0.lr_min;
    t.warmup_steps = t0.warmup_steps;
    t.warmup_fraction = t0.warmup_fraction;
    t.pct_start = t0.pct_start;
    t.div_factor = t0.div_factor;
    t.final_div_factor = t0.final_div_factor;
    t.three_phase = t0.three_phase;
    t.anneal_linear = t0.anneal_linear;
    t.cycle_momentum = t0.cycle_momentum;
    t.base_momentum = t0.base_momentum;
    t.max_momentum = t0.max_momentum;
    t.masking = t0.masking;
    if (recipe == Recipe::original) return;

    model.dropout = 0.0f;
    model.norm_placement = NormPlacement::pre;
    t.batch_tokens = 4096;
    t.optimizer = OptimizerKind::adamw;
    t.weight_decay = 0.01;
    t.decay_weights_only = true;
    t.clip_grad_norm = 1.0;
    t.schedule = ScheduleKind::warmup_cosine;
    t.lr = 1e-3;
    t.warmup_fraction = 0.05;
    t.masking.mask_probability = 0.3;
}

// ============================================================================================
// TrainerConfig: validation and JSON
// ============================================================================================

void TrainerConfig::validate() const {
    auto fail = [](const std::string& what) { throw std::invalid_argument("TrainerConfig: " + what); };
    if (epochs < 0 || max_steps < 0 || max_tokens < 0 || !(max_time_s >= 0) || !(max_total_time_s >= 0))
        fail("epochs, max_steps, max_tokens, max_time_s and max_total_time_s must be >= 0");
    if (epochs == 0 && max_steps == 0 && max_tokens == 0 && max_time_s == 0 && max_total_time_s == 0)
        fail("set at least one of epochs, max_steps, max_tokens, max_time_s, max_total_time_s (all are 0: the run "
             "would never end)");
    if (batch_tokens == 0 && batch_size == 0) fail("batch_size must be positive (or set batch_tokens)");
    if (grad_accum < 1) fail("grad_accum must be >= 1, got " + std::to_string(grad_accum));
    if (!(lr >= 0)) fail("lr must be >= 0, got " + std::to_string(lr));
    if (!(lr_min >= 0)) fail("lr_min must be >= 0, got " + std::to_string(lr_min));
    if (!(clip_grad_norm >= 0)) fail("clip_grad_norm must be >= 0 (0: off), got " + std::to_string(clip_grad_norm));
    if (warmup_steps < 0) fail("warmup_steps must be >= 0");
    if (!(warmup_fraction >= 0 && warmup_fraction <= 1)) fail("warmup_fraction must be in [0, 1]");
    if (schedule_steps < 0) fail("schedule_steps must be >= 0");
    if (eval_every_steps < 0 || checkpoint_every_steps < 0 || !(checkpoint_every_minutes >= 0))
        fail("eval_every_steps, checkpoint_every_steps and checkpoint_every_minutes must be >= 0");
    if (log_every_steps < 1) fail("log_every_steps must be >= 1");
    if (max_non_finite_skips < 1) fail("max_non_finite_skips must be >= 1");
    if (threads < 0) fail("threads must be >= 0 (0: the OpenMP default)");
    AdamOptions a;
    a.beta1 = beta1;
    a.beta2 = beta2;
    a.eps = eps;
    a.weight_decay = weight_decay;
    a.validate();
    masking.validate();
    eval.validate();
}

namespace {

json masking_to_json(const MaskingOptions& m) {
    return json{{"mask_probability", m.mask_probability}, {"mask_fraction", m.mask_fraction},
                {"random_fraction", m.random_fraction},   {"whole_word", m.whole_word},
                {"at_least_one", m.at_least_one}};
}

json eval_to_json(const EvalOptions& e) {
    return json{{"seed", e.seed},
                {"mask_probability", e.mask_probability},
                {"max_sentences", e.max_sentences},
                {"batch_tokens", e.batch_tokens},
                {"top_k", e.top_k},
                {"mlm", e.mlm},
                {"single_mask", e.single_mask}};
}

json config_to_json(const TrainerConfig& c) {
    json j;
    j["epochs"] = c.epochs;
    j["max_steps"] = c.max_steps;
    j["max_tokens"] = c.max_tokens;
    j["max_time_s"] = c.max_time_s;
    j["max_total_time_s"] = c.max_total_time_s;
    j["batch_size"] = c.batch_size;
    j["batch_tokens"] = c.batch_tokens;
    j["max_batch_sequences"] = c.max_batch_sequences;
    j["bucketing"] = enum_to_string(c.bucketing, kBucketing);
    j["grad_accum"] = c.grad_accum;
    j["optimizer"] = to_string(c.optimizer);
    j["lr"] = c.lr;
    j["beta1"] = c.beta1;
    j["beta2"] = c.beta2;
    j["eps"] = c.eps;
    j["weight_decay"] = c.weight_decay;
    j["decay_weights_only"] = c.decay_weights_only;
    j["clip_grad_norm"] = c.clip_grad_norm;
    j["schedule"] = to_string(c.schedule);
    j["lr_min"] = c.lr_min;
    j["warmup_steps"] = c.warmup_steps;
    j["warmup_fraction"] = c.warmup_fraction;
    j["pct_start"] = c.pct_start;
    j["div_factor"] = c.div_factor;
    j["final_div_factor"] = c.final_div_factor;
    j["three_phase"] = c.three_phase;
    j["anneal_linear"] = c.anneal_linear;
    j["cycle_momentum"] = c.cycle_momentum;
    j["base_momentum"] = c.base_momentum;
    j["max_momentum"] = c.max_momentum;
    j["schedule_steps"] = c.schedule_steps;
    j["masking"] = masking_to_json(c.masking);
    j["seed"] = c.seed;
    j["eval_every_steps"] = c.eval_every_steps;
    j["eval_at_start"] = c.eval_at_start;
    j["eval"] = eval_to_json(c.eval);
    j["save_best"] = c.save_best;
    j["out_dir"] = c.out_dir;
    j["checkpoint_every_steps"] = c.checkpoint_every_steps;
    j["checkpoint_every_minutes"] = c.checkpoint_every_minutes;
    j["checkpoint_on_stop"] = c.checkpoint_on_stop;
    j["overwrite"] = c.overwrite;
    j["progress"] = to_string(c.progress);
    j["log_every_steps"] = c.log_every_steps;
    j["on_non_finite"] = to_string(c.on_non_finite);
    j["max_non_finite_skips"] = c.max_non_finite_skips;
    j["threads"] = c.threads;
    return j;
}

// Reads every key of `j` through `field(key, value)`; unknown keys are an error.
template <class F>
void for_each_key(const json& j, const std::string& where, F field) {
    if (!j.is_object()) throw std::invalid_argument(where + " must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it)
        if (!field(it.key(), it.value())) throw std::invalid_argument(where + ": unknown key \"" + it.key() + "\"");
}

template <class T>
T get_as(const json& v, const std::string& key) {
    try {
        return v.get<T>();
    } catch (const json::exception&) {
        throw std::invalid_argument("trainer config: \"" + key + "\" has the wrong type");
    }
}

TrainerConfig config_from_json(const json& j) {
    TrainerConfig c;
    for_each_key(j, "trainer config", [&](const std::string& k, const json& v) {
#define MLM_FIELD(name)                                        \
    if (k == #name) {                                          \
        c.name = get_as<decltype(c.name)>(v, k);              \
        return true;                                           \
    }
        MLM_FIELD(epochs) MLM_FIELD(max_steps) MLM_FIELD(max_tokens) MLM_FIELD(max_time_s) MLM_FIELD(max_total_time_s)
        MLM_FIELD(batch_size) MLM_FIELD(batch_tokens) MLM_FIELD(max_batch_sequences) MLM_FIELD(grad_accum)
        MLM_FIELD(lr) MLM_FIELD(beta1) MLM_FIELD(beta2) MLM_FIELD(eps) MLM_FIELD(weight_decay)
        MLM_FIELD(decay_weights_only) MLM_FIELD(clip_grad_norm) MLM_FIELD(lr_min) MLM_FIELD(warmup_steps)
        MLM_FIELD(warmup_fraction) MLM_FIELD(pct_start) MLM_FIELD(div_factor) MLM_FIELD(final_div_factor)
        MLM_FIELD(three_phase) MLM_FIELD(anneal_linear) MLM_FIELD(cycle_momentum) MLM_FIELD(base_momentum)
        MLM_FIELD(max_momentum) MLM_FIELD(schedule_steps) MLM_FIELD(seed) MLM_FIELD(eval_every_steps)
        MLM_FIELD(eval_at_start) MLM_FIELD(save_best) MLM_FIELD(out_dir) MLM_FIELD(checkpoint_every_steps)
        MLM_FIELD(checkpoint_every_minutes) MLM_FIELD(checkpoint_on_stop) MLM_FIELD(overwrite)
        MLM_FIELD(log_every_steps) MLM_FIELD(max_non_finite_skips) MLM_FIELD(threads)
#undef MLM_FIELD
        if (k == "bucketing") return c.bucketing = enum_from_string("bucketing", get_as<std::string>(v, k), kBucketing), true;
        if (k == "optimizer") return c.optimizer = optimizer_kind_from_string(get_as<std::string>(v, k)), true;
        if (k == "schedule") return c.schedule = schedule_kind_from_string(get_as<std::string>(v, k)), true;
        if (k == "progress") return c.progress = progress_mode_from_string(get_as<std::string>(v, k)), true;
        if (k == "on_non_finite") return c.on_non_finite = non_finite_policy_from_string(get_as<std::string>(v, k)), true;
        if (k == "masking") {
            for_each_key(v, "trainer config: masking", [&](const std::string& mk, const json& mv) {
                if (mk == "mask_probability") return c.masking.mask_probability = get_as<double>(mv, mk), true;
                if (mk == "mask_fraction") return c.masking.mask_fraction = get_as<double>(mv, mk), true;
                if (mk == "random_fraction") return c.masking.random_fraction = get_as<double>(mv, mk), true;
                if (mk == "whole_word") return c.masking.whole_word = get_as<bool>(mv, mk), true;
                if (mk == "at_least_one") return c.masking.at_least_one = get_as<bool>(mv, mk), true;
                return false;
            });
            return true;
        }
        if (k == "eval") {
            for_each_key(v, "trainer config: eval", [&](const std::string& ek, const json& ev) {
                if (ek == "seed") return c.eval.seed = get_as<uint64_t>(ev, ek), true;
                if (ek == "mask_probability") return c.eval.mask_probability = get_as<double>(ev, ek), true;
                if (ek == "max_sentences") return c.eval.max_sentences = get_as<std::size_t>(ev, ek), true;
                if (ek == "batch_tokens") return c.eval.batch_tokens = get_as<std::size_t>(ev, ek), true;
                if (ek == "top_k") return c.eval.top_k = get_as<int>(ev, ek), true;
                if (ek == "mlm") return c.eval.mlm = get_as<bool>(ev, ek), true;
                if (ek == "single_mask") return c.eval.single_mask = get_as<bool>(ev, ek), true;
                return false;
            });
            return true;
        }
        return false;
    });
    c.validate();
    return c;
}

// Knobs that may change when a run is resumed: they do not change what the run computes.
const char* const kRuntimeKeys[] = {"max_time_s",         "max_total_time_s", "eval_every_steps", "eval_at_start",
                                    "save_best",          "out_dir",          "checkpoint_every_steps",
                                    "checkpoint_every_minutes", "checkpoint_on_stop", "overwrite",
                                    "progress",           "log_every_steps",  "on_non_finite",
                                    "max_non_finite_skips", "threads"};

bool is_runtime_key(const std::string& k) {
    for (const char* r : kRuntimeKeys)
        if (k == r) return true;
    return false;
}

json metrics_to_json(const EvalMetrics& m) {
    auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    return json{{"sentences", m.sentences},
                {"masked_tokens", m.masked_tokens},
                {"loss", num(m.loss)},
                {"accuracy", num(m.accuracy)},
                {"perplexity", num(m.perplexity())},
                {"single_mask_sentences", m.single_mask_sentences},
                {"single_mask_accuracy", num(m.single_mask_accuracy)},
                {"single_mask_top" + std::to_string(m.top_k) + "_accuracy", num(m.single_mask_topk_accuracy)},
                {"single_mask_loss", num(m.single_mask_loss)},
                {"seconds", m.seconds}};
}

std::string hex64(uint64_t x) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
    return buf;
}

uint64_t corpus_fingerprint(const TokenizedCorpus& c) {
    uint64_t h = detail::hash_bytes(c.offsets().data(), c.offsets().size() * sizeof(uint64_t), 0x7c0a);
    if (c.compact()) h = detail::hash_bytes(c.ids16().data(), c.ids16().size() * sizeof(uint16_t), h);
    else h = detail::hash_bytes(c.ids32().data(), c.ids32().size() * sizeof(uint32_t), h);
    return h;
}

std::string join_path(const std::string& dir, const std::string& file) { return (fs::path(dir) / file).string(); }

// Equal JSON values, whatever the order of their objects' keys (ordered_json compares in order).
bool same_json(const json& a, const json& b) { return nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump()); }

constexpr const char* kStateTensors = "trainer_state.safetensors";
constexpr const char* kStateJson = "trainer_state.json";
constexpr const char* kLogFile = "log.jsonl";
constexpr const char* kBestDir = "best";
constexpr const char* kMetricsFile = "metrics.json";  // best/: the evaluation that made it the best
constexpr const char* kStateKey = "trainer_state";
constexpr const char* kCorruptStateHint =
    " (the file is damaged or was not written by mlm; restore the run directory from a copy, or start the run "
    "again with overwrite, --overwrite)";
constexpr uint64_t kDropoutStream = 0xd409u;  // dropout keys: random_u64(seed, kDropoutStream, step, micro-batch)

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "--:--";
    const long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

int terminal_width() {
    winsize w{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
    return 100;
}

int current_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace

std::string to_json(const TrainerConfig& config) { return config_to_json(config).dump(2) + "\n"; }

TrainerConfig trainer_config_from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        throw std::invalid_argument(std::string("trainer config is not valid JSON: ") + e.what());
    }
    return config_from_json(j);
}

// ============================================================================================
// Trainer
// ============================================================================================

struct Trainer::Impl {
    std::unique_ptr<Encoder<float>> model;
    std::unique_ptr<Adam<float>> adam;
    std::optional<LrSchedule> schedule;
    std::unique_ptr<MaskingCollator> collator;
    std::unique_ptr<Batcher> batcher;
    TokenizedCorpus train_data, valid_data;
    bool has_data = false;
    uint64_t train_fingerprint = 0, valid_fingerprint = 0;
    std::vector<Batch> micro;                        // the batches of one step, reused
    std::vector<std::vector<std::size_t>> plan;      // the current epoch's batches
    int64_t plan_epoch = -1;
    EvalMetrics last_eval;
    bool resumed = false;

    const std::vector<std::vector<std::size_t>>& plan_for(int64_t epoch) {
        if (plan_epoch != epoch) {
            plan = batcher->epoch_batches(static_cast<uint64_t>(epoch));
            plan_epoch = epoch;
        }
        return plan;
    }
};

namespace {

BatcherOptions batcher_options(const TrainerConfig& c) {
    BatcherOptions o;
    o.batch_size = c.batch_size;
    o.max_tokens = c.batch_tokens;
    o.max_sequences = c.max_batch_sequences;
    o.bucketing = c.bucketing;
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

void set_threads(int threads) {
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;
#endif
}

}  // namespace

Trainer::Trainer(const ModelConfig& model_config, Tokenizer tokenizer, const TrainerConfig& config)
    : config_(config), tokenizer_(std::move(tokenizer)), impl_(std::make_unique<Impl>()) {
    config_.validate();
    model_config.validate();
    check_tokenizer(tokenizer_, model_config);
    set_threads(config_.threads);
    impl_->model = std::make_unique<Encoder<float>>(model_config, config_.seed);
    impl_->adam = std::make_unique<Adam<float>>(impl_->model->layout(), adam_options(config_));
    impl_->collator = std::make_unique<MaskingCollator>(tokenizer_, config_.masking, config_.seed);
}

Trainer::Trainer(const Encoder<float>& model, Tokenizer tokenizer, const TrainerConfig& config)
    : config_(config), tokenizer_(std::move(tokenizer)), impl_(std::make_unique<Impl>()) {
    config_.validate();
    check_tokenizer(tokenizer_, model.config());
    set_threads(config_.threads);
    impl_->model = std::make_unique<Encoder<float>>(model);
    impl_->adam = std::make_unique<Adam<float>>(impl_->model->layout(), adam_options(config_));
    impl_->collator = std::make_unique<MaskingCollator>(tokenizer_, config_.masking, config_.seed);
}

Trainer::~Trainer() = default;

const Encoder<float>& Trainer::model() const { return *impl_->model; }
Encoder<float>& Trainer::model() { return *impl_->model; }
const ModelConfig& Trainer::model_config() const { return impl_->model->config(); }
const Adam<float>& Trainer::optimizer() const { return *impl_->adam; }

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
    impl_->train_fingerprint = corpus_fingerprint(impl_->train_data);
    impl_->valid_fingerprint = corpus_fingerprint(impl_->valid_data);
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
            o.anneal = config_.anneal_linear ? AnnealStrategy::linear : AnnealStrategy::cos;
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

// ---- checkpoints ---------------------------------------------------------------------------

std::string Trainer::state_json() const {
    json j;
    j["format"] = "mlm-trainer-state";
    j["version"] = 1;
    j["step"] = step_;
    j["epoch"] = epoch_;
    j["batch_in_epoch"] = batch_in_epoch_;
    j["epoch_fraction"] = epoch();
    j["tokens_seen"] = tokens_seen_;
    j["elapsed_s"] = elapsed_before_;  // updated by train() before it writes
    j["best_val_loss"] = std::isfinite(best_val_loss_) ? json(best_val_loss_) : json(nullptr);
    j["best_step"] = best_step_;
    j["skipped_steps"] = skipped_steps_;
    j["total_steps"] = total_steps_;
    j["adam_step_count"] = impl_->adam->step_count();
    j["schedule"] = json{{"kind", to_string(config_.schedule)},
                         {"total_steps", total_steps_},
                         {"next_lr", current_lr()}};
    j["rng"] = json{{"kind", "counter-based"},
                    {"seed", config_.seed},
                    {"note", "every random draw is a hash of (seed, epoch, sample, position) or (seed, step, "
                             "micro-batch): there is no sequential generator state to save"}};
    j["threads"] = current_threads();
    j["train_data"] = json{{"sequences", impl_->train_data.size()},
                           {"tokens", impl_->train_data.num_tokens()},
                           {"fingerprint", hex64(impl_->train_fingerprint)}};
    j["valid_data"] = json{{"sequences", impl_->valid_data.size()},
                           {"tokens", impl_->valid_data.num_tokens()},
                           {"fingerprint", hex64(impl_->valid_fingerprint)}};
    j["tokenizer_fingerprint"] = hex64(tokenizer_.fingerprint());
    j["model_config"] = json::parse(to_json(model_config()));
    j["trainer_config"] = config_to_json(config_);
    if (std::isfinite(impl_->last_eval.loss)) j["last_eval"] = metrics_to_json(impl_->last_eval);
    return j.dump(2) + "\n";
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
        const std::string state = state_json();
        writer.stage(kStateTensors, [&](const std::string& path) {
            save_tensors(path, refs, {{"format", "pt"}, {kStateKey, state}});
        });
        writer.stage(kStateJson, state);
    }
    ModelSaveOptions options;
    options.tokenizer_model = tokenizer_.serialized();
    save_model(writer, m.config(), p, options);
    if (!metrics_json.empty()) writer.stage(kMetricsFile, metrics_json);
    writer.commit();
}

void Trainer::save_checkpoint(const std::string& dir) const {
    const std::string d = dir.empty() ? config_.out_dir : dir;
    if (d.empty()) throw std::invalid_argument("Trainer::save_checkpoint: no directory (out_dir is empty)");
    write_checkpoint(d, true);
}

bool Trainer::has_state(const std::string& dir) {
    std::error_code ec;
    return !dir.empty() && fs::is_regular_file(checkpoint_file(dir, kStateTensors), ec);
}

namespace {

json read_state(const std::string& dir) {
    const std::string path = checkpoint_file(dir, kStateTensors);
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw CheckpointError("cannot resume from " + dir + ": the directory does not exist");
    if (!fs::is_regular_file(path, ec))
        throw CheckpointError("cannot resume from " + dir + ": " + kStateTensors +
                              " is missing (no training run was checkpointed there)");
    const auto file = SafetensorsFile::open(path);
    const auto it = file.metadata().find(kStateKey);
    if (it == file.metadata().end())
        throw CheckpointError(path + ": no \"" + std::string(kStateKey) + "\" entry in the metadata" +
                              kCorruptStateHint);
    try {
        json j = json::parse(it->second);
        if (!j.is_object() || j.value("format", "") != "mlm-trainer-state")
            throw CheckpointError(path + ": the metadata is not an mlm trainer state" + kCorruptStateHint);
        return j;
    } catch (const json::exception& e) {
        throw CheckpointError(path + ": the trainer state metadata is not valid JSON: " + e.what() +
                              kCorruptStateHint);
    }
}

}  // namespace

TrainerConfig Trainer::load_config(const std::string& dir) {
    const json state = read_state(dir);
    const std::string corrupt = checkpoint_file(dir, kStateTensors) + ": corrupt trainer state: ";
    if (!state.contains("trainer_config"))
        throw CheckpointError(corrupt + "no \"trainer_config\" entry" + kCorruptStateHint);
    try {
        return config_from_json(state.at("trainer_config"));
    } catch (const std::exception& e) {
        throw CheckpointError(corrupt + e.what() + kCorruptStateHint);
    }
}

void Trainer::resume(const std::string& dir_arg) {
    const std::string dir = dir_arg.empty() ? config_.out_dir : dir_arg;
    if (dir.empty()) throw std::invalid_argument("Trainer::resume: no directory (out_dir is empty)");
    if (!impl_->has_data) throw std::logic_error("Trainer::resume: call set_data() first");
    const json state = read_state(dir);
    const std::string where = checkpoint_file(dir, kStateTensors);

    // The position in the run, checked before anything is changed: a damaged state is refused
    // with its problem named, never resumed at a wrong place.
    const std::string corrupt = where + ": corrupt trainer state: ";
    const std::string what_to_do = kCorruptStateHint;
    auto entry = [&](const char* key) -> const json& {
        if (!state.contains(key)) throw CheckpointError(corrupt + "no \"" + key + "\" entry" + what_to_do);
        return state.at(key);
    };
    auto integer = [&](const char* key, int64_t lo, int64_t hi) {
        const json& v = entry(key);
        if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
            throw CheckpointError(corrupt + "\"" + key + "\" is " + v.dump() + ", not an integer in [" +
                                  std::to_string(lo) + ", " + std::to_string(hi) + "]" + what_to_do);
        return v.get<int64_t>();
    };
    auto number = [&](const char* key, bool null_allowed) {
        const json& v = entry(key);
        if (null_allowed && v.is_null()) return std::numeric_limits<double>::infinity();
        if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
            throw CheckpointError(corrupt + "\"" + key + "\" is " + v.dump() + ", not a number >= 0" + what_to_do);
        return v.get<double>();
    };
    constexpr int64_t big = std::numeric_limits<int64_t>::max();
    const int64_t step = integer("step", 0, big);
    const int64_t epoch = integer("epoch", 0, big);
    const int64_t batch_in_epoch = integer("batch_in_epoch", 0, big);
    const int64_t tokens_seen = integer("tokens_seen", 0, big);
    const int64_t adam_step_count = integer("adam_step_count", 0, step);
    const int64_t best_step = integer("best_step", 0, step);
    const int64_t skipped_steps = integer("skipped_steps", 0, step);
    const double elapsed_s = number("elapsed_s", false);
    const double best_val_loss = number("best_val_loss", true);
    const int stored_threads = state.contains("threads") ? static_cast<int>(integer("threads", 1, 1 << 20)) : 0;

    std::vector<std::string> diffs;
    try {
        // the model and the tokenizer
        if (!same_json(json::parse(to_json(model_config())), state.at("model_config")))
            diffs.push_back("the model config differs (stored: " + state.at("model_config").dump() + ")");
        if (state.at("tokenizer_fingerprint").get<std::string>() != hex64(tokenizer_.fingerprint()))
            diffs.push_back("the tokenizer differs");
        // the run-defining knobs
        const json stored = state.at("trainer_config");
        const json now = config_to_json(config_);
        for (auto it = now.begin(); it != now.end(); ++it) {
            if (is_runtime_key(it.key())) continue;
            if (!stored.contains(it.key()) || !same_json(stored.at(it.key()), it.value()))
                diffs.push_back(it.key() + " is " + it.value().dump() + ", the run used " +
                                (stored.contains(it.key()) ? stored.at(it.key()).dump() : std::string("nothing")));
        }
        // the data
        if (state.at("train_data").at("fingerprint").get<std::string>() != hex64(impl_->train_fingerprint))
            diffs.push_back("the training sentences differ (" + std::to_string(impl_->train_data.size()) +
                            " now, " + state.at("train_data").at("sequences").dump() + " in the run)");
        if (state.at("valid_data").at("fingerprint").get<std::string>() != hex64(impl_->valid_fingerprint))
            diffs.push_back("the held-out sentences differ (" + std::to_string(impl_->valid_data.size()) +
                            " now, " + state.at("valid_data").at("sequences").dump() + " in the run)");
        if (diffs.empty() && state.at("total_steps").get<int64_t>() != total_steps_)
            diffs.push_back("the schedule length differs (" + std::to_string(total_steps_) + " now, " +
                            state.at("total_steps").dump() + " in the run)");
    } catch (const json::exception& e) {
        throw CheckpointError(corrupt + e.what() + what_to_do);
    }
    if (!diffs.empty()) {
        std::string msg = "cannot resume the run in " + dir + " exactly: ";
        for (std::size_t i = 0; i < diffs.size(); ++i) msg += (i ? "; " : "") + diffs[i];
        throw std::invalid_argument(msg);
    }
    // Same data and settings: the stored position must be one of this run's.
    if (config_.max_steps > 0 && step > config_.max_steps)
        throw CheckpointError(corrupt + "\"step\" is " + std::to_string(step) + " but the run ends at step " +
                              std::to_string(config_.max_steps) + what_to_do);
    if (config_.epochs > 0 && epoch > config_.epochs)
        throw CheckpointError(corrupt + "\"epoch\" is " + std::to_string(epoch) + " but the run ends after epoch " +
                              std::to_string(config_.epochs) + what_to_do);
    const std::size_t plan_size = impl_->plan_for(epoch).size();
    if (static_cast<uint64_t>(batch_in_epoch) >= plan_size)
        throw CheckpointError(corrupt + "\"batch_in_epoch\" is " + std::to_string(batch_in_epoch) + " but epoch " +
                              std::to_string(epoch) + " has " + std::to_string(plan_size) + " batches" + what_to_do);

    // Weights and Adam moments (validated before anything is written).
    const ParameterLayout& layout = impl_->model->layout();
    auto slots = layout_slots(layout, impl_->model->parameters(), "param.");
    slots.merge(layout_slots(layout, impl_->adam->m().data(), "adam_m."));
    slots.merge(layout_slots(layout, impl_->adam->v().data(), "adam_v."));
    load_tensors(where, slots);
    impl_->adam->set_step_count(adam_step_count);

    step_ = step;
    epoch_ = epoch;
    batch_in_epoch_ = batch_in_epoch;
    tokens_seen_ = tokens_seen;
    elapsed_before_ = elapsed_s;
    best_val_loss_ = best_val_loss;
    best_step_ = best_step;
    skipped_steps_ = skipped_steps;
    checkpoint_step_ = dir == config_.out_dir ? step : -1;
    impl_->resumed = true;
    if (stored_threads > 0 && stored_threads != current_threads())
        std::fprintf(stderr,
                     "mlm: note: the run used %d threads and continues with %d: losses stay close but are no "
                     "longer bit-identical to an uninterrupted run\n",
                     stored_threads, current_threads());

    // Cut log.jsonl back to the resumed step (a killed session may have logged later steps).
    const std::string log_path = join_path(dir, kLogFile);
    std::error_code ec;
    if (fs::is_regular_file(log_path, ec)) {
        std::ifstream in(log_path);
        std::string line, kept;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            try {
                const json rec = json::parse(line);
                if (rec.contains("step") && rec.at("step").get<int64_t>() <= step_) kept += line + "\n";
            } catch (const json::exception&) {
                // a torn last line: drop it
            }
        }
        write_file_atomic(log_path, kept);
    }
}

// ---- the loop ------------------------------------------------------------------------------

namespace {

// Progress on stderr: a bar redrawn in place on a terminal, or plain lines.
class Progress {
public:
    Progress(ProgressMode mode, int64_t log_every) : log_every_(log_every) {
        if (mode == ProgressMode::automatic) mode = isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines;
        mode_ = mode;
    }

    void step(const StepRecord& r, double eta_s) {
        if (mode_ == ProgressMode::none) return;
        const double a = 0.95;
        loss_ema_ = ema_n_ == 0 ? r.loss : a * loss_ema_ + (1 - a) * (std::isfinite(r.loss) ? r.loss : loss_ema_);
        tps_ema_ = ema_n_ == 0 ? r.tokens_per_s : a * tps_ema_ + (1 - a) * r.tokens_per_s;
        ++ema_n_;
        const auto now = std::chrono::steady_clock::now();
        if (mode_ == ProgressMode::bar) {
            const bool last = r.total_steps > 0 && r.step >= r.total_steps;
            if (!last && ema_n_ > 1 && std::chrono::duration<double>(now - last_draw_).count() < 0.2) return;
            last_draw_ = now;
            char buf[256];
            std::string count = r.total_steps > 0 ? std::to_string(r.step) + "/" + std::to_string(r.total_steps)
                                                  : std::to_string(r.step);
            const double pct = r.total_steps > 0 ? 100.0 * r.step / r.total_steps : 0.0;
            std::snprintf(buf, sizeof buf, "step %s %5.1f%% | ep %.2f | loss %.4f | lr %.2e | %.0f tok/s | %s < %s",
                          count.c_str(), pct, r.epoch, loss_ema_, r.lr, tps_ema_, format_duration(r.elapsed_s).c_str(),
                          format_duration(eta_s).c_str());
            std::string line(buf);
            const std::size_t width = static_cast<std::size_t>(terminal_width() - 1);
            if (line.size() > width) line.resize(width);
            line.resize(std::max(line.size(), drawn_), ' ');
            drawn_ = std::min(line.size(), width);
            std::fprintf(stderr, "\r%s", line.c_str());
            std::fflush(stderr);
        } else if (r.step == 1 || r.step % log_every_ == 0 || (r.total_steps > 0 && r.step == r.total_steps)) {
            std::fprintf(stderr,
                         "step %lld%s epoch %.2f loss %.4f lr %.3e grad_norm %.3f %.0f tok/s elapsed %s eta %s%s\n",
                         static_cast<long long>(r.step),
                         r.total_steps > 0 ? ("/" + std::to_string(r.total_steps)).c_str() : "", r.epoch, loss_ema_, r.lr,
                         r.grad_norm, tps_ema_, format_duration(r.elapsed_s).c_str(), format_duration(eta_s).c_str(),
                         r.skipped ? " (skipped: non-finite)" : "");
            std::fflush(stderr);
        }
    }

    void message(const std::string& text) {
        if (mode_ == ProgressMode::none) return;
        clear();
        std::fprintf(stderr, "%s\n", text.c_str());
        std::fflush(stderr);
    }

    void finish() {
        if (mode_ == ProgressMode::bar && drawn_) {
            std::fprintf(stderr, "\n");
            drawn_ = 0;
        }
    }

private:
    void clear() {
        if (mode_ == ProgressMode::bar && drawn_) {
            std::fprintf(stderr, "\r%s\r", std::string(drawn_, ' ').c_str());
            drawn_ = 0;
        }
    }
    ProgressMode mode_;
    int64_t log_every_;
    double loss_ema_ = 0, tps_ema_ = 0;
    int64_t ema_n_ = 0;
    std::size_t drawn_ = 0;
    std::chrono::steady_clock::time_point last_draw_{};
};

std::string format_eval(const EvalRecord& e) {
    char buf[320];
    const EvalMetrics& m = e.metrics;
    std::snprintf(buf, sizeof buf,
                  "eval step %lld (epoch %.2f): loss %.4f accuracy %.4f | single-mask accuracy %.4f top-%d %.4f "
                  "(%lld sentences, %.1f s)%s",
                  static_cast<long long>(e.step), e.epoch, m.loss, m.accuracy, m.single_mask_accuracy, m.top_k,
                  m.single_mask_topk_accuracy, static_cast<long long>(m.sentences), m.seconds, e.best ? " best" : "");
    return buf;
}

}  // namespace

TrainResult Trainer::train() {
    if (!impl_->has_data) throw std::logic_error("Trainer::train: call set_data() first");
    set_threads(config_.threads);
    Impl& I = *impl_;
    Encoder<float>& model = *I.model;
    const std::string& out = config_.out_dir;
    const bool writing = !out.empty();
    stop_requested_.store(false);

    if (writing && !I.resumed && step_ == 0) {
        if (has_state(out) && !config_.overwrite)
            throw std::invalid_argument("the directory " + out + " already holds a training run; resume it, or pass "
                                        "overwrite (--overwrite) or another output directory");
        std::error_code ec;
        fs::create_directories(out, ec);
        if (!fs::is_directory(out)) throw CheckpointError("cannot create the output directory " + out);
        recover_checkpoint(out);  // so that an interrupted write of the old run cannot come back later
        // A new run starts a new log; with overwrite, the old run's state and best model go too.
        for (const char* f : {kLogFile, kStateTensors, kStateJson}) fs::remove(join_path(out, f), ec);
        fs::remove_all(join_path(out, kBestDir), ec);
    }
    std::ofstream log;
    if (writing) {
        log.open(join_path(out, kLogFile), std::ios::app);
        if (!log) throw CheckpointError("cannot open " + join_path(out, kLogFile) + " for writing");
    }

    using clock = std::chrono::steady_clock;
    const auto session_start = clock::now();
    auto session = [&]() { return std::chrono::duration<double>(clock::now() - session_start).count(); };
    auto elapsed = [&]() { return elapsed_before_ + session(); };
    auto last_checkpoint = session_start;
    double train_seconds = 0;  // this session, steps only (for the ETA)
    int64_t session_steps = 0;
    Progress progress(config_.progress, config_.log_every_steps);

    TrainResult result;
    int consecutive_skips = 0;
    int64_t last_eval_step = -1;
    bool unsaved_best = false;  // a new best loss since the last checkpoint

    // A full checkpoint into out_dir; state_json() records the run's elapsed time.
    auto checkpoint = [&]() {
        if (!writing) return;
        const double before = elapsed_before_;
        elapsed_before_ = elapsed();
        try {
            write_checkpoint(out, true);
        } catch (...) {
            elapsed_before_ = before;
            throw;
        }
        elapsed_before_ = before;
        last_checkpoint = clock::now();
        checkpoint_step_ = step_;
        unsaved_best = false;
    };

    // Evaluates, logs, keeps the best model; returns true if a callback asked to stop.
    auto run_eval = [&](json* line) -> bool {
        if (I.valid_data.empty()) return false;
        EvalRecord rec;
        rec.step = step_;
        rec.epoch = epoch();
        rec.tokens = tokens_seen_;
        rec.metrics = evaluate();
        rec.elapsed_s = elapsed();
        I.last_eval = rec.metrics;
        last_eval_step = step_;
        if (std::isfinite(rec.metrics.loss) && rec.metrics.loss < best_val_loss_) {
            best_val_loss_ = rec.metrics.loss;
            best_step_ = step_;
            rec.best = true;
            unsaved_best = true;
            if (writing && config_.save_best) {
                json info = json{{"step", step_}, {"epoch", rec.epoch}, {"tokens", tokens_seen_}};
                info["metrics"] = metrics_to_json(rec.metrics);
                write_checkpoint(join_path(out, kBestDir), false, info.dump(2) + "\n");
            }
        }
        if (line) {
            const json m = metrics_to_json(rec.metrics);
            for (auto it = m.begin(); it != m.end(); ++it) (*line)["val_" + it.key()] = it.value();
            (*line)["val_best"] = rec.best;
        }
        progress.message(format_eval(rec));
        return on_eval && on_eval(rec);
    };

    if (config_.eval_at_start && step_ == 0 && !I.resumed) {
        json line{{"step", 0}, {"epoch", 0.0}, {"tokens", 0}, {"elapsed_s", elapsed()}};
        const bool stop = run_eval(&line);
        if (log) log << line.dump() << "\n" << std::flush;
        if (stop) stop_requested_.store(true);
    }

    const int64_t accum = config_.grad_accum;
    if (static_cast<int64_t>(I.micro.size()) < accum) I.micro.resize(static_cast<std::size_t>(accum));

    while (true) {
        // ---- targets and stops, checked before every step
        if ((config_.epochs > 0 && epoch_ >= config_.epochs) || (config_.max_steps > 0 && step_ >= config_.max_steps) ||
            (config_.max_tokens > 0 && tokens_seen_ >= config_.max_tokens) ||
            (config_.max_total_time_s > 0 && elapsed() >= config_.max_total_time_s)) {
            result.stop_reason = StopReason::finished;
            break;
        }
        if (config_.max_time_s > 0 && session() >= config_.max_time_s) {
            result.stop_reason = StopReason::max_time;
            break;
        }
        if (stop_requested_.load()) {
            result.stop_reason = StopReason::stopped;
            break;
        }

        const auto& plan = I.plan_for(epoch_);
        if (batch_in_epoch_ >= static_cast<int64_t>(plan.size())) {  // an empty plan, or a stale position
            ++epoch_;
            batch_in_epoch_ = 0;
            continue;
        }
        const auto t0 = clock::now();

        // ---- the step's batches
        const int64_t k = std::min<int64_t>(accum, static_cast<int64_t>(plan.size()) - batch_in_epoch_);
        int64_t step_tokens = 0, step_masked = 0;
        for (int64_t i = 0; i < k; ++i) {
            Batch& b = I.micro[static_cast<std::size_t>(i)];
            I.collator->collate(I.train_data, plan[static_cast<std::size_t>(batch_in_epoch_ + i)],
                                static_cast<uint64_t>(epoch_), b);
            step_tokens += b.num_tokens();
            step_masked += b.num_targets();
        }

        // ---- forward and backward: the gradient of the mean loss over all masked tokens
        model.zero_grad();
        double loss_sum = 0;
        bool finite = true;
        for (int64_t i = 0; i < k && step_masked > 0; ++i) {
            Batch& b = I.micro[static_cast<std::size_t>(i)];
            if (b.num_targets() == 0) continue;
            ForwardOptions fo;
            fo.train = true;
            fo.dropout_key = random_u64(config_.seed, kDropoutStream, static_cast<uint64_t>(step_), static_cast<uint64_t>(i));
            const float loss = model.forward(b, fo);
            if (!std::isfinite(loss)) {
                finite = false;
                loss_sum = std::numeric_limits<double>::quiet_NaN();
                break;
            }
            model.backward(static_cast<float>(b.num_targets()) / static_cast<float>(step_masked));
            loss_sum += static_cast<double>(loss) * b.num_targets();
        }
        const double loss = step_masked > 0 ? loss_sum / static_cast<double>(step_masked) : 0.0;

        double norm = 0;
        if (finite && step_masked > 0) {
            norm = config_.clip_grad_norm > 0 ? clip_grad_norm(model.gradients(), model.num_parameters(), config_.clip_grad_norm)
                                              : grad_norm(model.gradients(), model.num_parameters());
            finite = std::isfinite(norm);
        }
        const int64_t sched_step = total_steps_ > 0 ? std::min(step_, total_steps_ - 1) : step_;
        const double lr = I.schedule->lr(sched_step);
        const double beta1 = I.schedule->beta1(sched_step).value_or(config_.beta1);
        if (finite && step_masked > 0) {
            I.adam->step(model.parameters(), model.gradients(), lr, beta1);
            consecutive_skips = 0;
        } else if (!finite) {
            ++skipped_steps_;
            ++consecutive_skips;
        }

        // ---- advance
        ++step_;
        batch_in_epoch_ += k;
        tokens_seen_ += step_tokens;
        const double dt = std::chrono::duration<double>(clock::now() - t0).count();
        train_seconds += dt;
        ++session_steps;
        StepRecord rec;
        rec.step = step_;
        rec.total_steps = total_steps_;
        rec.epoch = static_cast<double>(epoch_) + static_cast<double>(batch_in_epoch_) / static_cast<double>(plan.size());
        rec.tokens = tokens_seen_;
        rec.step_tokens = step_tokens;
        rec.step_masked = step_masked;
        rec.loss = loss;
        rec.lr = lr;
        rec.beta1 = beta1;
        rec.grad_norm = norm;
        rec.tokens_per_s = dt > 0 ? static_cast<double>(step_tokens) / dt : 0.0;
        rec.elapsed_s = elapsed();
        rec.skipped = !finite;
        result.last_loss = loss;
        const bool epoch_done = batch_in_epoch_ >= static_cast<int64_t>(plan.size());
        if (epoch_done) {
            ++epoch_;
            batch_in_epoch_ = 0;
        }

        json line{{"step", rec.step},           {"epoch", rec.epoch},         {"tokens", rec.tokens},
                  {"loss", finite ? json(rec.loss) : json(nullptr)}, {"lr", rec.lr}, {"beta1", rec.beta1},
                  {"grad_norm", std::isfinite(norm) ? json(norm) : json(nullptr)},
                  {"tokens_per_s", rec.tokens_per_s}, {"elapsed_s", rec.elapsed_s},
                  {"step_tokens", rec.step_tokens},   {"masked", rec.step_masked}};
        if (!finite) line["skipped"] = true;

        const double per_step = train_seconds / static_cast<double>(session_steps);
        double eta = total_steps_ > 0 ? per_step * static_cast<double>(total_steps_ - step_)
                                      : std::numeric_limits<double>::quiet_NaN();
        if (config_.max_time_s > 0) {
            const double left = std::max(0.0, config_.max_time_s - session());
            eta = std::isfinite(eta) ? std::min(eta, left) : left;
        }
        if (config_.max_total_time_s > 0) {
            const double left = std::max(0.0, config_.max_total_time_s - elapsed());
            eta = std::isfinite(eta) ? std::min(eta, left) : left;
        }
        progress.step(rec, eta);
        bool stop = on_step && on_step(rec);

        if (!finite) {
            const bool give_up = config_.on_non_finite == NonFinitePolicy::stop ||
                                 consecutive_skips >= config_.max_non_finite_skips;
            std::string what_stays;
            if (give_up && writing)
                what_stays = checkpoint_step_ >= 0 ? " (the checkpoint in " + out + " stays the one of step " +
                                                         std::to_string(checkpoint_step_) + ")"
                                                   : " (no checkpoint was written before)";
            progress.message("step " + std::to_string(step_) + ": non-finite " +
                             (std::isfinite(loss) ? "gradient norm" : "loss") + ", step not applied" +
                             (give_up ? "; stopping" + what_stays : "; skipped"));
            if (give_up) {
                if (log) log << line.dump() << "\n" << std::flush;
                result.stop_reason = StopReason::non_finite;
                break;
            }
        }

        // ---- evaluation, log line, checkpoint
        const bool eval_due = config_.eval_every_steps > 0 ? step_ % config_.eval_every_steps == 0 : epoch_done;
        if (eval_due) stop = run_eval(&line) || stop;
        if (log) log << line.dump() << "\n" << std::flush;
        const bool ckpt_due =
            (config_.checkpoint_every_steps > 0 && step_ % config_.checkpoint_every_steps == 0) ||
            (config_.checkpoint_every_minutes > 0 &&
             std::chrono::duration<double>(clock::now() - last_checkpoint).count() >= 60.0 * config_.checkpoint_every_minutes);
        if (ckpt_due) checkpoint();
        if (stop) stop_requested_.store(true);
    }

    // ---- the end: a final evaluation and checkpoint
    if (result.stop_reason == StopReason::finished || result.stop_reason == StopReason::max_time) {
        if (last_eval_step != step_ && step_ > 0) {
            json line{{"step", step_}, {"epoch", epoch()}, {"tokens", tokens_seen_}, {"elapsed_s", elapsed()}, {"final", true}};
            const bool had_valid = !I.valid_data.empty();
            run_eval(&line);
            if (log && had_valid) log << line.dump() << "\n" << std::flush;
        }
    }
    // A non-finite stop writes nothing: the checkpoint on disk stays the last one written before
    // the fault, since the weights that led to it may be bad even where they are finite.
    const bool save_now = result.stop_reason == StopReason::non_finite ? false
                          : result.stop_reason != StopReason::stopped || config_.checkpoint_on_stop;
    if (save_now && (checkpoint_step_ != step_ || unsaved_best) && step_ > 0) checkpoint();
    progress.finish();

    elapsed_before_ = elapsed();
    result.steps = step_;
    result.epochs = epoch();
    result.tokens = tokens_seen_;
    result.best_val_loss = std::isfinite(best_val_loss_) ? best_val_loss_ : std::numeric_limits<double>::quiet_NaN();
    result.best_step = best_step_;
    result.last_eval = I.last_eval;
    result.elapsed_s = elapsed_before_;
    result.skipped_steps = skipped_steps_;
    result.checkpoint_step = writing ? checkpoint_step_ : -1;
    I.resumed = true;  // a second train() call continues this run
    return result;
}

}  // namespace mlm
