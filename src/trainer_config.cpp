// TrainerConfig: validation, JSON and the recipes (include/mlm/trainer_config.hpp).
#include <mlm/trainer_config.hpp>

#include <stdexcept>

#include "fields_json.hpp"

namespace mlm {

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

std::string to_json(const TrainerConfig& config) { return detail::fields_to_json(config).dump(2) + "\n"; }

TrainerConfig trainer_config_from_json(const std::string& text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("trainer config is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument("trainer config must be a JSON object");
    // Knobs of earlier versions: progress and log_every_steps were display settings (now the
    // front ends' own); anneal_linear became anneal.
    j.erase("progress");
    j.erase("log_every_steps");
    if (j.contains("anneal_linear")) {
        if (!j["anneal_linear"].is_boolean())
            throw std::invalid_argument("trainer config: \"anneal_linear\" must be true or false");
        if (!j.contains("anneal")) j["anneal"] = j["anneal_linear"].get<bool>() ? "linear" : "cos";
        j.erase("anneal_linear");
    }
    TrainerConfig c;
    detail::fields_from_json(j, c, "trainer config");
    c.validate();
    return c;
}

void apply_recipe(Recipe recipe, ModelConfig& model, TrainerConfig& trainer) {
    // First the original's knobs, the structs' defaults: a recipe never inherits another's.
    reset_fields(model, Role::recipe);
    reset_fields(trainer, Role::recipe);
    if (recipe == Recipe::original) return;

    model.dropout = 0.0f;
    model.norm_placement = NormPlacement::pre;
    trainer.batch_tokens = 4096;
    trainer.optimizer = OptimizerKind::adamw;
    trainer.weight_decay = 0.01;
    trainer.decay_weights_only = true;
    trainer.clip_grad_norm = 1.0;
    trainer.schedule = ScheduleKind::warmup_cosine;
    trainer.lr = 1e-3;
    trainer.warmup_fraction = 0.05;
    trainer.masking.mask_probability = 0.3;
}

}  // namespace mlm
