// mlm tokenizer train | encode
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <mlm/tokenizer.hpp>

#include "cli.hpp"

namespace mlm::cli {

namespace {

struct TokenizerTrainArgs {
    std::vector<std::string> inputs;
    std::string out;
    std::string model_type = "unigram";
    TokenizerTrainOptions options;
    int threads = 0;
};

struct TokenizerEncodeArgs {
    std::string tokenizer;
    std::vector<std::string> texts;
};

int run_train(const TokenizerTrainArgs& a) {
    set_threads(a.threads);
    TokenizerTrainOptions options = a.options;
    options.model = a.model_type == "bpe" ? TokenizerModel::bpe : TokenizerModel::unigram;
    const auto t0 = std::chrono::steady_clock::now();
    std::fprintf(stderr, "training a %s tokenizer with %d ids on %zu file(s)...\n", a.model_type.c_str(),
                 options.vocab_size, a.inputs.size());
    const Tokenizer tok = Tokenizer::train(a.inputs, options);
    const auto parent = std::filesystem::path(a.out).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent);
    tok.save(a.out);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s: %s tokenizer, %d ids ([UNK]=%d [PAD]=%d [MASK]=%d), %s%s, in %.1f s\n", a.out.c_str(),
                a.model_type.c_str(), tok.vocab_size(), tok.unk_id(), tok.pad_id(), tok.mask_id(),
                options.lower_case ? "lower-cased" : "cased", tok.strip_accents() ? ", accents stripped" : "", s);
    return 0;
}

int run_encode(const TokenizerEncodeArgs& a) {
    const Tokenizer tok = Tokenizer::load(a.tokenizer);
    for (const std::string& text : a.texts) {
        const std::vector<int32_t> ids = tok.encode(text);
        for (std::size_t i = 0; i < ids.size(); ++i)
            std::printf("%s%zu:%s(%d)", i ? " " : "", i, tok.id_to_piece(ids[i]).c_str(), ids[i]);
        std::printf("\n");
    }
    return 0;
}

}  // namespace

Command add_tokenizer_command(CLI::App& app) {
    CLI::App* cmd = app.add_subcommand("tokenizer", "Train a tokenizer (sentencepiece with [UNK] [PAD] [MASK]) or inspect one");
    cmd->require_subcommand(1);

    auto train_args = std::make_shared<TokenizerTrainArgs>();
    CLI::App* train = cmd->add_subcommand("train", "Train a tokenizer on text files (one sentence per line; plain, .gz or .xz)");
    TokenizerTrainArgs& t = *train_args;
    train->add_option("--input,-i", t.inputs, "Text files")->required()->check(CLI::ExistingFile);
    train->add_option("--out,-o", t.out, "Where to write the tokenizer model (e.g. tokenizer.model)")->required();
    train->add_option("--vocab-size", t.options.vocab_size, "Number of ids, special ones included")->capture_default_str();
    train->add_option("--model-type", t.model_type, "Subword algorithm")
        ->check(CLI::IsMember({"unigram", "bpe"}))
        ->capture_default_str();
    train->add_flag("--lowercase,!--no-lowercase", t.options.lower_case, "Lower-case the text (default: on)");
    train->add_flag("--strip-accents,!--keep-accents", t.options.strip_accents, "Remove accents (é -> e) (default: off)");
    train->add_option("--max-sentences", t.options.max_sentences, "Train on at most this many sentences (sampled; 0: all)")
        ->capture_default_str();
    train->add_option("--character-coverage", t.options.character_coverage,
                      "Share of the characters the vocab must cover; rarer ones become [UNK]")
        ->capture_default_str();
    train->add_flag("--allow-smaller-vocab", t.options.allow_smaller_vocab,
                    "Make the largest vocab the text allows instead of failing when it is too small");
    train->add_option("--seed", t.options.seed, "Sentencepiece's seed")->capture_default_str();
    train->add_option("--threads", t.threads, "OpenMP threads (0: all cores)")->capture_default_str();

    auto encode_args = std::make_shared<TokenizerEncodeArgs>();
    CLI::App* encode = cmd->add_subcommand("encode", "Show the tokens (index:piece(id)) of texts, e.g. to choose a --position");
    encode->add_option("--tokenizer,-t", encode_args->tokenizer, "Tokenizer model file (a checkpoint's tokenizer.model)")
        ->required()
        ->check(CLI::ExistingFile);
    encode->add_option("text", encode_args->texts, "Texts to encode")->required();

    return {cmd, [train, encode, train_args, encode_args]() {
                if (train->parsed()) return run_train(*train_args);
                if (encode->parsed()) return run_encode(*encode_args);
                return 1;
            }};
}

}  // namespace mlm::cli
