// optimizer.hpp's example takes as given a model config and the number of steps to run.
#pragma once
#include "context.hpp"

struct optimizer_context : header_examples::Scratch {
    using Scratch::Scratch;
    mlm::ModelConfig config = header_examples::tiny_config();
    int64_t n_steps = 10;
};
