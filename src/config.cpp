// config.json of a checkpoint: ModelConfig <-> JSON, from its field table (config.hpp).
#include <mlm/config.hpp>

#include "fields_json.hpp"

namespace mlm {

namespace {
constexpr const char* kModelType = "mlm-encoder";
}

std::string to_json(const ModelConfig& c) {
    detail::ordered_json j;
    j["model_type"] = kModelType;
    j.update(detail::fields_to_json(c));
    return j.dump(2) + "\n";
}

ModelConfig model_config_from_json(const std::string& text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        // Not only parse_error: a number too large for a double ("1e999") is out_of_range.
        throw std::invalid_argument(std::string("config.json is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument("config.json must hold a JSON object");
    if (j.contains("model_type")) {
        if (!j["model_type"].is_string() || j["model_type"].get<std::string>() != kModelType)
            throw std::invalid_argument(std::string("config.json: model_type must be \"") + kModelType + "\"");
        j.erase("model_type");
    }
    ModelConfig c;
    detail::fields_from_json(j, c, "config.json");
    c.validate();
    return c;
}

}  // namespace mlm
