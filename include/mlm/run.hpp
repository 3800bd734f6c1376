// mlm/run.hpp — a training run assembled in one place, for `mlm train` and pymlm.Trainer alike.
//
// assemble_run turns what a user asks for — a recipe, whole configs, single knobs by name, data
// files or sentences already tokenized, a run directory to start or resume — into a Trainer
// ready to train(). Every rule about those options lives here, once: the default recipe, which
// knobs a recipe may set, "batch_size alone turns the token budget off", the vocab size from the
// tokenizer, several training files read as one corpus, the holdout when no held-out data is
// given, the run directory's data.json (so a resume needs only the directory) and the resume's
// own rules. The front ends only parse and present.
//
//   mlm::RunRequest req;
//   req.tokenizer = mlm::Tokenizer::load("tokenizer.model");
//   req.data.values.train = {"train.txt.xz"};                 // no valid file: 2,000 held out
//   req.model_options.set("n_layers", [](auto& c) { c.n_layers = 4; });
//   req.trainer_options.set("max_steps", [](auto& c) { c.max_steps = 1000; });
//   req.trainer_options.set("out_dir", [](auto& c) { c.out_dir = "runs/wiki"; });
//   std::unique_ptr<mlm::Trainer> trainer =
//       mlm::assemble_run(req, [](const mlm::Notice& n) { std::cerr << n.text << "\n"; });
//   trainer->train();
//   // later: the same directory, resumed exactly (configs, tokenizer and data from the run)
//   mlm::RunRequest again;
//   again.trainer_options.set("out_dir", [](auto& c) { c.out_dir = "runs/wiki"; });
//   again.resume = true;
//   mlm::assemble_run(again)->train();
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "data.hpp"
#include "encoder.hpp"
#include "fields.hpp"
#include "tokenizer.hpp"
#include "trainer.hpp"
#include "trainer_config.hpp"

namespace mlm {

// Where a run's sentences come from: OUT/data.json of a run directory.
struct DataOptions {
    std::vector<std::string> train;  // text files, one sentence per line (plain, .gz or .xz)
    std::string valid;               // held-out sentences ("": hold out part of train)
    std::size_t holdout = 2000;      // without valid: hold out this many training sentences (at most 10%)
    std::size_t max_sentences = 0;   // read at most this many training sentences (0: all)
    std::string cache_dir;           // tokenized files ("": OUT/cache)
    bool cache = true;               // cache tokenized files (needs an out_dir or a cache_dir)
};

inline const auto& fields(const DataOptions*) {
    using D = DataOptions;
    static const auto table = std::make_tuple(
        field(&D::train, "train", Role::run, "data", "Training text files, one sentence per line (plain, .gz or .xz)"),
        field(&D::valid, "valid", Role::run, "data", "Held-out sentences for evaluation"),
        field(&D::holdout, "holdout", Role::run, "data",
              "Without held-out sentences: hold out this many training sentences (at most 10%; 0: no evaluation)"),
        field(&D::max_sentences, "max_sentences", Role::run, "data", "Read at most this many training sentences (0: all)"),
        field(&D::cache_dir, "cache_dir", Role::runtime, "data", "Where to cache tokenized files (default: OUT/cache)"),
        field(&D::cache, "cache", Role::runtime, "data", "Cache tokenized files"));
    return table;
}
MLM_CHECK_FIELD_TABLE(DataOptions);

// Single knobs of S set by name over a base config: `values` holds them, `given` names them
// ("lr", "masking.mask_probability", or a whole group, "masking").
template <class S>
struct FieldOptions {
    S values{};
    std::set<std::string> given;

    template <class F>
    FieldOptions& set(const std::string& path, F&& assign) {
        assign(values);
        given.insert(path);
        return *this;
    }
    bool has(const std::string& path) const { return given.count(path) > 0; }
    // Copies the given fields into `dst`; std::invalid_argument for a name S has no field of.
    void apply_to(S& dst) const;
};

struct RunRequest {
    // The training recipe. None: kDefaultRecipe for a new run made without a whole `trainer`, and
    // the stored run's knobs for a resume. A recipe named here also sets its knobs in a whole
    // `model` (block order, dropout); the default recipe leaves a whole model as it is (a notice
    // says where it differs from the recipe).
    std::optional<Recipe> recipe;
    std::optional<ModelConfig> model;       // a whole model config (else the defaults)
    std::optional<TrainerConfig> trainer;   // a whole trainer config (else the defaults)
    const Encoder<float>* weights = nullptr;  // start from these weights (copied); their config is the model's
    FieldOptions<ModelConfig> model_options;    // over the recipe and the whole configs
    FieldOptions<TrainerConfig> trainer_options;
    FieldOptions<DataOptions> data;             // files; on resume the fields not given come from data.json
    // Sentences already tokenized, instead of data.train / data.valid files.
    std::optional<TokenizedCorpus> train, valid;
    // The tokenizer. A new run without one trains one on the training files with these options
    // (its special ids are the model config's); a resume uses the run's own (OUT/tokenizer.model).
    std::optional<Tokenizer> tokenizer;
    std::optional<TokenizerTrainOptions> tokenizer_training;
    bool resume = false;  // continue the run in out_dir exactly
};

// A Trainer with its data set (and its state loaded, on resume), ready to train(). The run
// directory gets tokenizer.model and, when data files were read, data.json. Bad options throw
// std::invalid_argument naming them; a damaged run directory CheckpointError. `notify` hears what
// the user may want to know (files read, a holdout, a model config kept over the recipe's) and
// becomes the trainer's on_notice.
std::unique_ptr<Trainer> assemble_run(const RunRequest& request, const std::function<void(const Notice&)>& notify = {});

// The model and trainer configs a request resolves to (the part of assemble_run that needs no
// data); `vocab_size` is the tokenizer's (0: leave the model's).
struct RunConfigs {
    ModelConfig model;
    TrainerConfig trainer;
};
RunConfigs resolve_configs(const RunRequest& request, int vocab_size,
                           const std::function<void(const Notice&)>& notify = {});

// JSON of the data options (data.json): paths as given.
std::string to_json(const DataOptions& options);
DataOptions data_options_from_json(const std::string& json);

// ---- implementation of the template -------------------------------------------------------

namespace detail {
// Copies the fields of src named in `given` (a group as a whole, or its fields one by one) into
// dst, and records the names it knew in `used`.
template <class S>
void copy_given(const S& src, const std::set<std::string>& given, S& dst, const std::string& prefix,
                std::set<std::string>& used) {
    for_each_field<S>([&](const auto& f) {
        using T = typename std::decay_t<decltype(f)>::value_type;
        const std::string path = prefix + f.name;
        if (given.count(path)) {
            f.of(dst) = f.of(src);
            used.insert(path);
        }
        if constexpr (is_field_group<T>) copy_given(f.of(src), given, f.of(dst), path + ".", used);
    });
}
}  // namespace detail

template <class S>
void FieldOptions<S>::apply_to(S& dst) const {
    std::set<std::string> used;
    detail::copy_given(values, given, dst, "", used);
    for (const std::string& g : given)
        if (!used.count(g)) throw std::invalid_argument("unknown option \"" + g + "\"");
}

}  // namespace mlm
