// random.hpp's example takes as given what a counter-based draw is keyed by.
#pragma once
#include "context.hpp"

struct random_context : header_examples::Scratch {
    using Scratch::Scratch;
    uint64_t seed = 1, epoch = 2, sample_index = 3, position = 4;
};
