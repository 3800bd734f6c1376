// masked_lm.hpp's example loads the checkpoint runs/wiki: here, a tiny untrained model with its
// tokenizer (the example shows the calls; what an untrained model predicts does not matter).
#pragma once
#include "context.hpp"

struct masked_lm_context : header_examples::Scratch {
    explicit masked_lm_context(const std::string& name) : Scratch(name) {
        mlm::MaskedLM(header_examples::tiny_config(), header_examples::tiny_tokenizer(), /*seed=*/1).save("runs/wiki");
    }
};
