// Loads a checkpoint directory and says what it holds and how well it does on held-out sentences.
//
//   example_load_checkpoint CHECKPOINT [VALID_FILE]    (default: data/wiki-valid-2k.txt)
//
// A missing or damaged checkpoint is an mlm::CheckpointError that names the file and the problem.
#include <mlm/masked_lm.hpp>

#include <cstdio>
#include <exception>
#include <string>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: example_load_checkpoint CHECKPOINT [VALID_FILE]\n");
        return 2;
    }
    const std::string valid_file = argc > 2 ? argv[2] : "data/wiki-valid-2k.txt";
    try {
        const mlm::MaskedLM lm = mlm::MaskedLM::load(argv[1]);
        const mlm::ModelConfig& c = lm.config();
        std::printf("model: vocab %d, dim %d, %d heads, %d layers, max_len %d, %s norm, %zu parameters\n",
                    c.vocab_size, c.dim, c.n_heads, c.n_layers, c.max_len, mlm::to_string(c.norm_placement),
                    mlm::ParameterLayout(c).size());
        const std::string text = "The capital of France is [MASK].";
        std::printf("tokenizer: %d pieces; \"%s\" is %zu ids\n", lm.tokenizer().vocab_size(), text.c_str(),
                    lm.encode(text).size());

        mlm::EvalOptions options;  // the evaluation every program of mlm uses (metrics.hpp)
        options.max_sentences = 200;
        const mlm::EvalMetrics m = lm.evaluate_file(valid_file, options);
        std::printf("%lld held-out sentences: loss %.3f (perplexity %.1f), accuracy %.3f, "
                    "single-mask accuracy %.3f (top-%d %.3f)\n",
                    static_cast<long long>(m.sentences), m.loss, m.perplexity(), m.accuracy,
                    m.single_mask_accuracy, m.top_k, m.single_mask_topk_accuracy);
        return 0;
    } catch (const std::exception& e) {  // mlm::CheckpointError for a missing or damaged checkpoint
        std::fprintf(stderr, "example_load_checkpoint: %s\n", e.what());
        return 1;
    }
}
