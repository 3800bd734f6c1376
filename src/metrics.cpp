// EvalMetrics as JSON (include/mlm/metrics.hpp).
#include <mlm/metrics.hpp>

#include <cmath>

#include <nlohmann/json.hpp>

namespace mlm {

std::string to_json(const EvalMetrics& m) {
    using json = nlohmann::ordered_json;
    auto num = [](double x) { return std::isfinite(x) ? json(x) : json(nullptr); };
    const json j{{"sentences", m.sentences},
                 {"masked_tokens", m.masked_tokens},
                 {"loss", num(m.loss)},
                 {"accuracy", num(m.accuracy)},
                 {"perplexity", num(m.perplexity())},
                 {"single_mask_sentences", m.single_mask_sentences},
                 {"single_mask_accuracy", num(m.single_mask_accuracy)},
                 {"single_mask_top" + std::to_string(m.top_k) + "_accuracy", num(m.single_mask_topk_accuracy)},
                 {"single_mask_loss", num(m.single_mask_loss)},
                 {"seconds", m.seconds}};
    return j.dump();
}

}  // namespace mlm
