// Internal: a training run's directory (out_dir) — every file name, the trainer state and its
// checks, the log. The layout is documented in include/mlm/trainer.hpp.
#pragma once

#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include <mlm/config.hpp>
#include <mlm/data.hpp>
#include <mlm/metrics.hpp>
#include <mlm/trainer_config.hpp>

namespace mlm::detail {

using ordered_json = nlohmann::ordered_json;

constexpr const char* kStateTensors = "trainer_state.safetensors";  // parameters, Adam moments, the state JSON
constexpr const char* kStateJson = "trainer_state.json";            // the same state JSON, for people
constexpr const char* kStateKey = "trainer_state";                  // its key in the safetensors metadata
constexpr const char* kLogFile = "log.jsonl";
constexpr const char* kBestDir = "best";
constexpr const char* kMetricsFile = "metrics.json";  // best/: the evaluation that made it the best
constexpr const char* kDataFile = "data.json";        // the run's data options (run.hpp)
constexpr const char* kCacheDir = "cache";            // tokenized files, by default

std::string join_path(const std::string& dir, const std::string& file);
std::string hex64(uint64_t x);
uint64_t corpus_fingerprint(const TokenizedCorpus& c);
ordered_json metrics_to_json(const EvalMetrics& m);

// A corpus as the trainer state records it.
struct CorpusRecord {
    uint64_t sequences = 0;
    uint64_t tokens = 0;
    std::string fingerprint;
};

// The position of a run and what it was made of: the trainer state.
struct RunState {
    int64_t step = 0;
    int64_t epoch = 0;           // of the next batch
    int64_t batch_in_epoch = 0;  // index of the next batch in that epoch's plan
    double epoch_fraction = 0;   // for people
    int64_t tokens_seen = 0;
    double elapsed_s = 0;
    double best_val_loss = std::numeric_limits<double>::infinity();  // null in JSON when none
    int64_t best_step = 0;
    int64_t skipped_steps = 0;
    int64_t total_steps = 0;
    int64_t adam_step_count = 0;
    double next_lr = 0;          // for people
    int threads = 0;             // 0: not recorded
    ModelConfig model_config;
    TrainerConfig trainer_config;
    std::string tokenizer_fingerprint;
    CorpusRecord train_data, valid_data;
    EvalMetrics last_eval;       // NaN loss: none
};

std::string state_to_json(const RunState& s);
// Parses and checks the state stored in dir's trainer_state.safetensors (CheckpointError naming
// the file and the problem when it is missing, damaged or inconsistent).
RunState read_state(const std::string& dir);

// The differences that stop `now` from continuing the stored run exactly: "lr is 0.001, the run
// used 0.0006" for every Role::recipe / Role::run field that differs, the model config, the
// tokenizer and the data. Empty when it may resume.
std::vector<std::string> resume_differences(const RunState& stored, const RunState& now);

// A new run in `dir`: creates it, finishes an interrupted checkpoint write of an earlier run (so it
// cannot come back later) and removes that run's log, state and best model (overwrite).
void start_new_run(const std::string& dir, bool overwrite);

// Cuts dir's log.jsonl back to the lines of steps <= step (a killed session may have logged later
// ones; a torn last line goes too).
void cut_log(const std::string& dir, int64_t step);

}  // namespace mlm::detail
