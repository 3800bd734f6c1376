// The original notebook's predict_mask: mask one token of each sentence, let the model fill it.
//
//   example_predict_mask CHECKPOINT [SENTENCE...]
//
// Without "[MASK]" in a sentence a random ordinary token is masked (chosen by the seed); with one,
// that token is predicted. Prints the original's four lines and the model's best five tokens.
#include <mlm/masked_lm.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: example_predict_mask CHECKPOINT [SENTENCE...]\n");
        return 2;
    }
    std::vector<std::string> sentences(argv + 2, argv + argc);
    if (sentences.empty()) sentences = {"hello! how are you?", "The war ended in [MASK]."};
    try {
        const mlm::MaskedLM lm = mlm::MaskedLM::load(argv[1]);
        for (const std::string& sentence : sentences) {
            const mlm::MaskPrediction p = lm.predict_mask(sentence, /*seed=*/7);
            std::cout << mlm::format_prediction(p);
            std::cout << "  best:";
            for (const mlm::TokenScore& t : p.top_k) std::printf(" %s (%.3f)", t.token.c_str(), t.probability);
            std::cout << "\n\n";
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example_predict_mask: %s\n", e.what());
        return 1;
    }
}
