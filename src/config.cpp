// config.json of a checkpoint: ModelConfig <-> JSON.
#include <mlm/config.hpp>

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
    } catch (const nlohmann::json::parse_error& e) {
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
            return v.get<int>();
        };
        auto need_number = [&]() {
            if (!v.is_number())
                throw std::invalid_argument("config.json: \"" + key + "\" must be a number");
            return v.get<double>();
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
        else if (key == "dropout") c.dropout = static_cast<float>(need_number());
        else if (key == "norm_eps") c.norm_eps = need_number();
        else if (key == "unk_id") c.unk_id = need_int();
        else if (key == "pad_id") c.pad_id = need_int();
        else if (key == "mask_id") c.mask_id = need_int();
        else if (key == "init_std") c.init_std = static_cast<float>(need_number());
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
