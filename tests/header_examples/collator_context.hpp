// collator.hpp's example takes as given a tokenizer, a tokenized corpus, the corpus indices of one
// batch and the epoch.
#pragma once
#include "context.hpp"

struct collator_context : header_examples::Scratch {
    using Scratch::Scratch;
    const mlm::Tokenizer& tokenizer = header_examples::tiny_tokenizer();
    mlm::TokenizedCorpus corpus = mlm::tokenize_file(tokenizer, "data/wiki-valid-2k.txt");
    std::vector<std::size_t> batch_indices = {0, 5, 17, 42};
    uint64_t epoch = 3;
};
