// safetensors.hpp's example takes as given a (3, 4) weight, a step count and a buffer to read into.
#pragma once
#include "context.hpp"

struct safetensors_context : header_examples::Scratch {
    using Scratch::Scratch;
    std::vector<float> weights = std::vector<float>(12, 0.5f);
    int64_t step = 1200;
    std::vector<float> buf = std::vector<float>(12);
};
