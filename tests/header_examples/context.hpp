// What every header's usage example runs in (see extract.cpp): the whole library, and a scratch
// directory of its own as the working directory.
#pragma once

#include <doctest/doctest.h>

#include <mlm/mlm.hpp>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

namespace header_examples {

// An example writes where it likes ("runs/wiki", "ckpt", "tokenizer.model"): it runs in an empty
// directory of the build tree that holds a link `data` to the repository's data/, so
// "data/wiki-valid-2k.txt" names the bundled file. The previous working directory comes back after.
class Scratch {
public:
    explicit Scratch(const std::string& name) : previous_(std::filesystem::current_path()) {
        const std::filesystem::path dir = std::filesystem::path(MLM_HEADER_EXAMPLES_RUN_DIR) / name;
        std::filesystem::remove_all(dir);
        std::filesystem::create_directories(dir);
        std::filesystem::create_directory_symlink(std::filesystem::path(MLM_SOURCE_DIR) / "data", dir / "data");
        std::filesystem::current_path(dir);
    }
    ~Scratch() { std::filesystem::current_path(previous_); }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

private:
    std::filesystem::path previous_;
};

// A 200-piece tokenizer of the bundled validation sentences, trained once per process (~0.2 s).
inline const mlm::Tokenizer& tiny_tokenizer() {
    static const mlm::Tokenizer tokenizer = [] {
        mlm::TokenizerTrainOptions options;
        options.vocab_size = 200;
        options.character_coverage = 1.0;
        return mlm::Tokenizer::train({std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt"}, options);
    }();
    return tokenizer;
}

// The first n sentences of a text file.
inline std::vector<std::string> first_lines(const std::string& path, std::size_t n) {
    std::vector<std::string> lines;
    mlm::LineReader reader(path);
    for (std::string line; lines.size() < n && reader.next(line);) lines.push_back(line);
    return lines;
}

// A model small enough to run at once: 2 layers of width 32 over the tiny tokenizer's vocab.
inline mlm::ModelConfig tiny_config() {
    mlm::ModelConfig config;
    config.vocab_size = tiny_tokenizer().vocab_size();
    config.dim = 32;
    config.n_heads = 2;
    config.n_layers = 2;
    config.max_len = 64;
    return config;
}

}  // namespace header_examples
