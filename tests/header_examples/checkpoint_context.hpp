// checkpoint.hpp's examples take as given a tiny model's config and flat parameters, a
// sentencepiece file spm.model of its vocab, the Adam moments of its layout and a directory.
#pragma once
#include "context.hpp"

struct checkpoint_context : header_examples::Scratch {
    explicit checkpoint_context(const std::string& name) : Scratch(name) {
        header_examples::tiny_tokenizer().save("spm.model");
        std::filesystem::create_directories(dir);
    }
    mlm::ModelConfig config = header_examples::tiny_config();
    mlm::ParameterLayout layout{config};
    std::vector<float> params = std::vector<float>(layout.size(), 0.25f);
    std::vector<float> adam_m = std::vector<float>(layout.size(), 0.5f);
    std::vector<float> adam_v = std::vector<float>(layout.size(), 0.75f);
    std::string dir = "state";
};
