// A training run assembled in one place (include/mlm/run.hpp): configs, tokenizer, data, the run
// directory, the Trainer.
#include <mlm/run.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <mlm/checkpoint.hpp>
#include <mlm/file_io.hpp>
#include <mlm/hash.hpp>
#include <mlm/safetensors.hpp>

#include "fields_json.hpp"
#include "run_directory.hpp"

namespace mlm {

namespace fs = std::filesystem;

namespace {

using Notify = std::function<void(const Notice&)>;

void tell(const Notify& notify, const std::string& text, Notice::Kind kind = Notice::Kind::info) {
    if (notify) notify({kind, text});
}

std::string with_commas(uint64_t n) {
    std::string s = std::to_string(n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return s;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string out_dir_of(const RunRequest& r) {
    if (r.trainer_options.has("out_dir")) return r.trainer_options.values.out_dir;
    return r.trainer ? r.trainer->out_dir : std::string();
}

// ---- configs -------------------------------------------------------------------------------

// "dropout 0.1 (the best recipe's: 0)" for each recipe knob of `kept` that differs from `recipe`.
std::string recipe_knob_differences(const ModelConfig& kept, const ModelConfig& recipe) {
    std::string out;
    for_each_field<ModelConfig>([&](const auto& f) {
        if (f.role != Role::recipe || f.of(kept) == f.of(recipe)) return;
        out += (out.empty() ? "" : ", ") + std::string(f.name) + " " + detail::value_text(f.of(kept)) +
               " (the recipe's: " + detail::value_text(f.of(recipe)) + ")";
    });
    return out;
}

// batch_size asks for batches of that many sentences, so it turns off a recipe's (or the stored
// run's) token budget; given with a token budget as well it would be ignored, which is refused.
void apply_batch_rule(const FieldOptions<TrainerConfig>& options, TrainerConfig& c) {
    if (!options.has("batch_size")) return;
    if (!options.has("batch_tokens")) {
        c.batch_tokens = 0;
    } else if (c.batch_tokens > 0) {
        throw std::invalid_argument("batch_size " + std::to_string(c.batch_size) + " and batch_tokens " +
                                    std::to_string(c.batch_tokens) +
                                    ": give one (token-budget batches ignore batch_size; cap their sentences with "
                                    "max_batch_sequences)");
    }
}

// ---- data ----------------------------------------------------------------------------------

std::string cache_path(const DataOptions& d, const std::string& out_dir, const std::string& file) {
    const std::string dir = d.cache_dir.empty() ? detail::join_path(out_dir, detail::kCacheDir) : d.cache_dir;
    // keyed by the file's canonical path, so that ../data/x and /abs/data/x share one cache file
    std::error_code ec;
    std::string abs = fs::weakly_canonical(fs::absolute(file, ec), ec).string();
    if (ec) abs = fs::absolute(file, ec).string();
    return (fs::path(dir) / (fs::path(file).filename().string() + "-" +
                             detail::hex64(detail::hash_bytes(abs.data(), abs.size())) + ".tokens"))
        .string();
}

TokenizedCorpus read_corpus(const DataOptions& d, const std::string& out_dir, const Tokenizer& tok,
                            const std::string& file, int max_len, std::size_t max_sentences, const Notify& notify) {
    TokenizeOptions to;
    to.max_length = max_len;
    to.max_sentences = max_sentences;
    const auto t0 = std::chrono::steady_clock::now();
    TokenizedCorpus corpus;
    bool cached = false;
    if (!d.cache || (out_dir.empty() && d.cache_dir.empty())) {
        corpus = tokenize_file(tok, file, to);
    } else {
        const std::string path = cache_path(d, out_dir, file);
        fs::create_directories(fs::path(path).parent_path());
        corpus = load_or_tokenize(tok, file, path, to, &cached);
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f s", seconds_since(t0));
    tell(notify, file + ": " + with_commas(corpus.size()) + " sentences, " + with_commas(corpus.num_tokens()) +
                     " tokens (" + (cached ? "cached" : "tokenized") + ", " + seconds + ")");
    return corpus;
}

// The training files read as one corpus, at most max_sentences sentences in all.
TokenizedCorpus read_training_files(const DataOptions& d, const std::string& out_dir, const Tokenizer& tok, int max_len,
                                    const Notify& notify) {
    if (d.train.size() == 1) return read_corpus(d, out_dir, tok, d.train[0], max_len, d.max_sentences, notify);
    TokenizedCorpus train(tok.vocab_size());
    std::vector<int32_t> ids;
    for (const std::string& file : d.train) {
        const std::size_t left = d.max_sentences ? d.max_sentences - train.size() : 0;
        if (d.max_sentences && left == 0) break;
        const TokenizedCorpus part = read_corpus(d, out_dir, tok, file, max_len, left, notify);
        for (std::size_t i = 0; i < part.size(); ++i) {
            ids.resize(static_cast<std::size_t>(part.length(i)));
            part.copy(i, ids.data());
            train.append(ids);
        }
    }
    return train;
}

// Without held-out sentences: min(holdout, 10%) of the training sentences, chosen by the seed.
void hold_out(TokenizedCorpus& train, TokenizedCorpus& valid, std::size_t holdout, uint64_t seed, const Notify& notify) {
    const std::size_t n_valid = std::min(holdout, train.size() / 10);
    if (n_valid == 0) return;
    const Split split = split_train_valid(train.size(), n_valid, seed);
    valid = train.subset(split.valid);
    train = train.subset(split.train);
    tell(notify, "held out " + with_commas(n_valid) + " of the training sentences for evaluation (no held-out data given)");
}

// With a resume: the data options not given come from OUT/data.json.
DataOptions resumed_data_options(const RunRequest& r, const std::string& out_dir) {
    const std::string path = detail::join_path(out_dir, detail::kDataFile);
    DataOptions d;
    if (fs::exists(path)) {
        try {
            d = data_options_from_json(read_file(path));
        } catch (const CheckpointError&) {
            throw;
        } catch (const std::exception& e) {
            throw CheckpointError(path + ": not a valid record of the run's data options (" + e.what() +
                                  "); give them again (train, valid, holdout, max_sentences)");
        }
    } else if (!r.train && r.data.values.train.empty()) {
        throw std::invalid_argument("cannot resume the run in " + out_dir + " without its data: " + path +
                                    " is missing, so give the run's data options again");
    }
    r.data.apply_to(d);
    return d;
}

Tokenizer train_tokenizer(const RunRequest& r, const DataOptions& d, const ModelConfig& m, const Notify& notify) {
    if (!r.tokenizer_training) throw std::invalid_argument("a new run needs a tokenizer (or options to train one)");
    if (d.train.empty()) throw std::invalid_argument("training a tokenizer needs training files");
    TokenizerTrainOptions to = *r.tokenizer_training;
    to.unk_id = m.unk_id;
    to.pad_id = m.pad_id;
    to.mask_id = m.mask_id;
    const auto t0 = std::chrono::steady_clock::now();
    tell(notify, std::string("training a ") + (to.model == TokenizerModel::bpe ? "bpe" : "unigram") + " tokenizer with " +
                     std::to_string(to.vocab_size) + " ids on the training " + (d.max_sentences ? "sentences" : "files") + "...");
    Tokenizer tok;
    if (d.max_sentences) {  // exactly the sentences the model will see
        std::vector<std::string> lines;
        std::string line;
        for (const std::string& file : d.train) {
            LineReader reader(file);
            while (lines.size() < d.max_sentences && reader.next(line)) lines.push_back(line);
        }
        tok = Tokenizer::train_from_sentences(lines, to);
    } else {
        tok = Tokenizer::train(d.train, to);
    }
    char seconds[32];
    std::snprintf(seconds, sizeof seconds, "%.1f s", seconds_since(t0));
    tell(notify, "tokenizer: " + std::to_string(tok.vocab_size()) + " ids (" + seconds + ")");
    return tok;
}

}  // namespace

std::string to_json(const DataOptions& options) { return detail::fields_to_json(options).dump(2) + "\n"; }

DataOptions data_options_from_json(const std::string& text) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("data options are not valid JSON: ") + e.what());
    }
    if (!j.is_object()) throw std::invalid_argument("data options must be a JSON object");
    if (j.contains("no_cache")) {  // an earlier version's name
        if (!j["no_cache"].is_boolean()) throw std::invalid_argument("data options: \"no_cache\" must be true or false");
        if (!j.contains("cache")) j["cache"] = !j["no_cache"].get<bool>();
        j.erase("no_cache");
    }
    DataOptions d;
    detail::fields_from_json(j, d, "data options");
    return d;
}

RunConfigs resolve_configs(const RunRequest& r, int vocab_size, const Notify& notify) {
    RunConfigs c;
    const std::string out_dir = out_dir_of(r);
    std::optional<Recipe> recipe = r.recipe;
    bool model_whole = r.model.has_value() || r.weights != nullptr;
    if (r.resume) {
        if (out_dir.empty()) throw std::invalid_argument("a resume needs the run's directory (out_dir)");
        if (!Trainer::has_state(out_dir))
            throw std::invalid_argument("cannot resume: " + out_dir + " holds no trainer state (" +
                                        detail::kStateTensors + "); start a new run there instead");
        c.trainer = Trainer::load_config(out_dir);
        c.model = load_config(out_dir);
        model_whole = true;
    } else {
        c.model = r.weights ? r.weights->config() : r.model.value_or(ModelConfig{});
        c.trainer = r.trainer.value_or(TrainerConfig{});
        if (!recipe && !r.trainer) recipe = kDefaultRecipe;
    }
    if (recipe) {
        ModelConfig with_recipe = c.model;
        apply_recipe(*recipe, with_recipe, c.trainer);
        if (r.weights) {
            const std::string kept = recipe_knob_differences(c.model, with_recipe);
            if (!kept.empty()) tell(notify, "the weights given keep their model config: " + kept);
        } else if (!model_whole || r.recipe) {
            c.model = with_recipe;
        } else if (!r.resume) {
            const std::string kept = recipe_knob_differences(c.model, with_recipe);
            if (!kept.empty())
                tell(notify, std::string("the model config given is used as it is, not the ") + to_string(*recipe) +
                                 " recipe's block order and dropout: " + kept);
        }
    }
    if (r.weights && !r.model_options.given.empty())
        throw std::invalid_argument("the model's own settings are fixed by its weights (" + *r.model_options.given.begin() +
                                    "); give a model config to set them");
    r.model_options.apply_to(c.model);
    r.trainer_options.apply_to(c.trainer);
    apply_batch_rule(r.trainer_options, c.trainer);
    c.trainer.out_dir = out_dir;
    if (!model_whole && !r.model_options.has("vocab_size") && vocab_size > 0) c.model.vocab_size = vocab_size;
    c.model.validate();
    c.trainer.validate();
    return c;
}

std::unique_ptr<Trainer> assemble_run(const RunRequest& r, const Notify& notify) {
    const std::string out_dir = out_dir_of(r);
    // 1. the configs, checked before anything is read or written
    RunConfigs c = resolve_configs(r, r.tokenizer ? r.tokenizer->vocab_size() : 0, notify);

    // 2. the data options and the tokenizer
    const DataOptions data = r.resume ? resumed_data_options(r, out_dir) : r.data.values;
    const bool from_files = !r.train;
    if (from_files && data.train.empty()) throw std::invalid_argument("no training data: give training files or sentences");
    Tokenizer tok;
    if (r.tokenizer) {
        tok = *r.tokenizer;
    } else if (r.resume) {
        const std::string file = checkpoint_file(out_dir, checkpoint_tokenizer_file);
        try {
            tok = Tokenizer::from_serialized(load_tokenizer_model(out_dir));
        } catch (const CheckpointError&) {
            throw;
        } catch (const std::exception& e) {
            throw CheckpointError(file + ": not a valid tokenizer model: " + e.what());
        }
        if (tok.vocab_size() != c.model.vocab_size)
            throw CheckpointError("cannot resume the run in " + out_dir + ": " + file + " has " +
                                  std::to_string(tok.vocab_size()) + " ids but " +
                                  checkpoint_file(out_dir, checkpoint_config_file) + " says vocab_size " +
                                  std::to_string(c.model.vocab_size) + "; the files come from different models");
    } else {
        tok = train_tokenizer(r, data, c.model, notify);
        c = resolve_configs(r, tok.vocab_size());  // the vocab size is the tokenizer's
    }

    // 3. the run directory: the tokenizer and the data options, so that a resume needs nothing
    // else. Never into a directory that holds another run (unless it is to be overwritten): the
    // trainer refuses to train there, and a resume() keeps that run's files.
    if (!r.resume && !out_dir.empty() && (!Trainer::has_state(out_dir) || c.trainer.overwrite)) {
        fs::create_directories(out_dir);
        save_tokenizer_model(out_dir, tok.serialized());
        if (from_files) {
            DataOptions record = data;
            for (auto& f : record.train) f = fs::absolute(f).string();
            if (!record.valid.empty()) record.valid = fs::absolute(record.valid).string();
            if (!record.cache_dir.empty()) record.cache_dir = fs::absolute(record.cache_dir).string();
            write_file_atomic(detail::join_path(out_dir, detail::kDataFile), to_json(record));
        }
    }

    // 4. the sentences
    TokenizedCorpus train = r.train ? *r.train : read_training_files(data, out_dir, tok, c.model.max_len, notify);
    TokenizedCorpus valid(tok.vocab_size());
    if (r.valid) valid = *r.valid;
    else if (!r.train && !data.valid.empty()) valid = read_corpus(data, out_dir, tok, data.valid, c.model.max_len, 0, notify);
    else if (data.holdout > 0) hold_out(train, valid, data.holdout, c.trainer.seed, notify);

    // 5. the trainer
    auto trainer = r.weights ? std::make_unique<Trainer>(*r.weights, tok, c.trainer)
                             : std::make_unique<Trainer>(c.model, tok, c.trainer);
    trainer->on_notice = notify;
    trainer->set_data(std::move(train), std::move(valid));
    if (r.resume) trainer->resume();
    return trainer;
}

}  // namespace mlm
