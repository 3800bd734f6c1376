// Builds a tiny encoder from an installed mlm, runs one forward pass on a packed batch and prints
// the loss. Exits non-zero if anything is off.
#include <mlm/encoder.hpp>

#include <cmath>
#include <cstdio>
#include <string>

int main() {
    mlm::ModelConfig config;
    config.vocab_size = 64;
    config.dim = 32;
    config.n_heads = 4;
    config.n_layers = 2;
    config.max_len = 16;

    mlm::Encoder<float> model(config, /*seed=*/7);

    mlm::Batch batch;  // two sequences of different lengths, packed: no padding anywhere
    batch.add_sequence({5, 17, 2, 40, 9}, {-100, -100, 23, -100, -100});
    batch.add_sequence({11, 2, 30}, {-100, 12, -100});

    const float loss = model.forward(batch, {/*train=*/false, /*dropout_key=*/0});
    const std::string json = mlm::to_json(config);  // from the compiled part of the library

    std::printf("mlm consumer: %zu parameters, %d tokens in %d sequences, %d targets, threads %d\n",
                model.num_parameters(), batch.num_tokens(), batch.num_sequences(),
                batch.num_targets(), mlm::max_threads());
    std::printf("loss %.6f (ln V = %.6f)\n", loss, std::log(double(config.vocab_size)));

    // Freshly initialised weights (std 0.02) give nearly uniform predictions: loss ~ ln V.
    if (!std::isfinite(loss) || std::fabs(loss - std::log(double(config.vocab_size))) > 0.5) {
        std::fprintf(stderr, "unexpected loss %f\n", loss);
        return 1;
    }
    if (json.find("\"vocab_size\": 64") == std::string::npos) {
        std::fprintf(stderr, "unexpected config JSON:\n%s", json.c_str());
        return 1;
    }
    return 0;
}
