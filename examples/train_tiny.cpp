// Trains a tiny masked-language model on 2,000 of the bundled sentences and writes a
// checkpoint: a whole run (tokenizer, model, trainer) at toy scale, in a few seconds.
//
//   example_train_tiny [DATA_DIR [OUT_DIR]]        (defaults: data runs/tiny)
//
// OUT_DIR then holds the latest model (config.json, model.safetensors, tokenizer.model), the
// trainer state to resume from and best/, the model with the lowest validation loss; MaskedLM::load
// reads either (see load_checkpoint.cpp, predict_mask.cpp and fill_mask.cpp). A model this small,
// trained this briefly, has learned which tokens are frequent (its loss falls from ln 1000 = 6.9
// to about 5.8), not yet which one fits: expect "the" and "," as predictions. A real run is hours
// of `mlm train` (docs/quality.md).
#include <mlm/mlm.hpp>

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

// The first n sentences of a text file (plain, .gz or .xz).
std::vector<std::string> first_sentences(const std::string& path, std::size_t n) {
    std::vector<std::string> sentences;
    mlm::LineReader reader(path);
    for (std::string line; sentences.size() < n && reader.next(line);) sentences.push_back(line);
    return sentences;
}

int main(int argc, char** argv) {
    const std::string data_dir = argc > 1 ? argv[1] : "data";
    const std::string out_dir = argc > 2 ? argv[2] : "runs/tiny";
    try {
        const std::vector<std::string> train = first_sentences(data_dir + "/wiki-train-30k.txt.xz", 2000);
        const std::vector<std::string> valid = first_sentences(data_dir + "/wiki-valid-2k.txt", 200);

        mlm::TokenizerTrainOptions tokenizer_options;  // unigram, lower-cased, [UNK] [PAD] [MASK]
        tokenizer_options.vocab_size = 1000;
        tokenizer_options.character_coverage = 1.0;  // keep every character of so little text
        const mlm::Tokenizer tokenizer = mlm::Tokenizer::train_from_sentences(train, tokenizer_options);

        mlm::ModelConfig model;
        mlm::TrainerConfig config;
        mlm::apply_recipe(mlm::Recipe::best, model, config);  // pre-norm, AdamW, warm-up + cosine
        model.vocab_size = tokenizer.vocab_size();
        model.dim = 64;
        model.n_heads = 4;
        model.n_layers = 2;
        model.max_len = 64;
        config.epochs = 0;          // run by steps instead
        config.max_steps = 100;
        config.batch_tokens = 0;    // 32 sentences per batch instead of the recipe's token budget
        config.batch_size = 32;
        config.eval_every_steps = 50;
        config.seed = 1;
        config.threads = 1;         // its matrices are too small to share between threads
        config.out_dir = out_dir;
        config.overwrite = true;    // a new run each time

        mlm::Trainer trainer(model, tokenizer, config);
        trainer.set_data(mlm::tokenize_sentences(tokenizer, train, model.max_len),
                         mlm::tokenize_sentences(tokenizer, valid, model.max_len));
        trainer.on_eval = [](const mlm::EvalRecord& r) {
            std::printf("step %lld: validation loss %.3f, accuracy %.3f\n", static_cast<long long>(r.step),
                        r.metrics.loss, r.metrics.accuracy);
            return false;  // true would stop the run
        };
        trainer.on_notice = [](const mlm::Notice& n) { std::fprintf(stderr, "note: %s\n", n.text.c_str()); };
        const mlm::TrainResult result = trainer.train();
        std::printf("trained %lld steps: last loss %.3f, best validation loss %.3f at step %lld\n",
                    static_cast<long long>(result.steps), result.last_loss, result.best_val_loss,
                    static_cast<long long>(result.best_step));
        std::printf("checkpoint: %s (best model: %s/best)\n", out_dir.c_str(), out_dir.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example_train_tiny: %s\n", e.what());
        return 1;
    }
}
