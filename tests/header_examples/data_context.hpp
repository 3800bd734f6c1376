// data.hpp's examples take as given a tokenizer, the epoch, a masking collator and the packed
// batch it fills.
#pragma once
#include "context.hpp"

struct data_context : header_examples::Scratch {
    using Scratch::Scratch;
    const mlm::Tokenizer& tok = header_examples::tiny_tokenizer();
    uint64_t epoch = 0;
    mlm::MaskingCollator collator{tok};
    mlm::Batch packed;
};
