// encoder.hpp's example takes as given the optimizer step it is at (the dropout key).
#pragma once
#include "context.hpp"

struct encoder_context : header_examples::Scratch {
    using Scratch::Scratch;
    uint64_t step = 0;
};
