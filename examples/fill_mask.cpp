// Hugging Face's fill-mask: the best candidates for every [MASK] of a text.
//
//   example_fill_mask CHECKPOINT TEXT...      (each TEXT holds one or more [MASK])
//
// fill_mask returns one candidate list per [MASK]; looping straight over `lm.fill_mask(text)[0]`
// is safe (the list is moved out of the temporary result, see FillMaskResult in masked_lm.hpp).
#include <mlm/masked_lm.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: example_fill_mask CHECKPOINT TEXT...\n");
        return 2;
    }
    try {
        const mlm::MaskedLM lm = mlm::MaskedLM::load(argv[1]);
        const std::vector<std::string> texts(argv + 2, argv + argc);

        // The first [MASK] of the first text, straight from the call.
        std::printf("%s\n", texts[0].c_str());
        for (const mlm::FillMaskCandidate& c : lm.fill_mask(texts[0], 5)[0])
            std::printf("  %.4f  %-12s %s\n", c.score, c.token_str.c_str(), c.sequence.c_str());

        // Every [MASK] of every text, in one call that packs the texts into shared forward passes.
        const mlm::FillMaskResults results = lm.fill_mask(texts, 3);
        for (std::size_t t = 0; t < texts.size(); ++t)
            for (std::size_t m = 0; m < results[t].size(); ++m) {
                std::printf("text %zu, [MASK] %zu of %zu:", t + 1, m + 1, results[t].size());
                for (const mlm::FillMaskCandidate& c : results[t][m]) std::printf(" %s (%.3f)", c.token_str.c_str(), c.score);
                std::printf("\n");
            }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example_fill_mask: %s\n", e.what());
        return 1;
    }
}
