// metrics.hpp's example takes as given a model, its tokenizer and a held-out corpus (200 of the
// bundled validation sentences) tokenized to the model's max_len.
#pragma once
#include "context.hpp"

struct metrics_context : header_examples::Scratch {
    using Scratch::Scratch;
    mlm::Encoder<float> model{header_examples::tiny_config(), /*seed=*/1};
    const mlm::Tokenizer& tokenizer = header_examples::tiny_tokenizer();
    mlm::TokenizedCorpus valid_corpus = mlm::tokenize_sentences(
        tokenizer, header_examples::first_lines("data/wiki-valid-2k.txt", 200), model.config().max_len);
};
