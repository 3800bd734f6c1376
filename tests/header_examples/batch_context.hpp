// batch.hpp's example takes the original's padded arrays as given: B = 2 rows of T = 4 ids,
// right-padded with pad id 1, and their labels (-100 where nothing is predicted).
#pragma once
#include "context.hpp"

struct batch_context : header_examples::Scratch {
    using Scratch::Scratch;
    int B = 2, T = 4;
    std::vector<int32_t> input_ids = {5, 2, 7, 1, 9, 4, 2, 8};
    std::vector<int32_t> labels = {-100, 11, -100, -100, -100, -100, 12, -100};
};
