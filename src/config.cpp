// config.json of a checkpoint: ModelConfig <-> JSON.
#include <mlm/config.hpp>

#include <cmath>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

namespace mlm {

std::string to_json(const ModelConfig& c) {
    nlohmann::ordered_json j;
    j["model_type"] = "mlm-encoder";
    j["vocab_size"] = c.vocab_size;
    j["dim"] = c.dim;
    j["n_heads"] = c.n_heads;
    j["n_layers"] = c.n_layers;
    j["ffn_mult"] = c.ffn_mult;
    j["max_len"] = c.max_len;
    j["dropout"] = c.dropout;
    j["norm_eps"] = c.norm_eps;
    j["unk_id"] = c.unk_id;
    j["pad_id"] = c.pad_id;
    j["mask_id"] = c.mask_id;
    j["norm_placement"] = to_string(c.norm_placement);
    j["init_std"] = c.init_std;
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
    ModelConfig c;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        const auto& v = it.value();
        auto need_int = [&]() {
            if (!v.is_number_integer())
                throw std::invalid_argument("config.json: \"" + key + "\" must be an integer");
            // get<int>() would wrap a larger number silently (99552965164 -> 768717356).
            const bool fits = v.is_number_unsigned()
                                  ? v.get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max())
                                  : v.get<int64_t>() >= std::numeric_limits<int>::min() &&
                                        v.get<int64_t>() <= std::numeric_limits<int>::max();
            if (!fits)
                throw std::invalid_argument("config.json: \"" + key + "\" is " + v.dump() +
                                            ", outside the range of an int");
            return v.get<int>();
        };
        auto need_number = [&]() {
            if (!v.is_number())
                throw std::invalid_argument("config.json: \"" + key + "\" must be a number");
            return v.get<double>();
        };
        auto need_float = [&]() {
            // A double beyond float's range has no float value (1e300 would become inf, which
            // validate() takes for a large positive init_std and to_json cannot write).
            const double d = need_number();
            if (!(std::fabs(d) <= std::numeric_limits<float>::max()))
                throw std::invalid_argument("config.json: \"" + key + "\" is " + v.dump() +
                                            ", outside the range of a float");
            return static_cast<float>(d);
        };
        if (key == "model_type") {
            if (!v.is_string() || v.get<std::string>() != "mlm-encoder")
                throw std::invalid_argument("config.json: model_type must be \"mlm-encoder\"");
        } else if (key == "vocab_size") c.vocab_size = need_int();
        else if (key == "dim") c.dim = need_int();
        else if (key == "n_heads") c.n_heads = need_int();
        else if (key == "n_layers") c.n_layers = need_int();
        else if (key == "ffn_mult") c.ffn_mult = need_int();
        else if (key == "max_len") c.max_len = need_int();
        else if (key == "dropout") c.dropout = need_float();
        else if (key == "norm_eps") c.norm_eps = need_number();
        else if (key == "unk_id") c.unk_id = need_int();
        else if (key == "pad_id") c.pad_id = need_int();
        else if (key == "mask_id") c.mask_id = need_int();
        else if (key == "init_std") c.init_std = need_float();
        else if (key == "norm_placement") {
            if (!v.is_string())
                throw std::invalid_argument("config.json: \"norm_placement\" must be a string");
            c.norm_placement = norm_placement_from_string(v.get<std::string>());
        } else {
            throw std::invalid_argument("config.json: unknown key \"" + key + "\"");
        }
    }
    c.validate();
    return c;
}

}  // namespace mlm
