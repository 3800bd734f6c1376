// A training run's directory: file names, the trainer state and its checks, the log.
#include "run_directory.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include <mlm/checkpoint.hpp>
#include <mlm/file_io.hpp>
#include <mlm/hash.hpp>
#include <mlm/safetensors.hpp>
#include <mlm/tokenizer.hpp>

#include "fields_json.hpp"

namespace mlm::detail {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFormat = "mlm-trainer-state";
constexpr const char* kCorruptStateHint =
    " (the file is damaged or was not written by mlm; restore the run directory from a copy, or start the run "
    "again with overwrite)";

// Equal JSON values, whatever the order of their objects' keys (ordered_json compares in order).
bool same_json(const ordered_json& a, const ordered_json& b) {
    return nlohmann::json::parse(a.dump()) == nlohmann::json::parse(b.dump());
}

ordered_json corpus_to_json(const CorpusRecord& c) {
    return ordered_json{{"sequences", c.sequences}, {"tokens", c.tokens}, {"fingerprint", c.fingerprint}};
}

// "lr is 0.001, the run used 0.0006" for each field of S (groups field by field) whose role
// defines the run and that differs.
template <class S>
void field_differences(const S& stored, const S& now, const std::string& prefix, std::vector<std::string>& out) {
    for_each_field<S>([&](const auto& f) {
        using T = typename std::decay_t<decltype(f)>::value_type;
        if (f.role == Role::runtime) return;
        if constexpr (is_field_group<T>) {
            field_differences(f.of(stored), f.of(now), prefix + f.name + ".", out);
        } else if (!(f.of(stored) == f.of(now))) {
            out.push_back(prefix + f.name + " is " + value_text(f.of(now)) + ", the run used " +
                          value_text(f.of(stored)));
        }
    });
}

}  // namespace

std::string join_path(const std::string& dir, const std::string& file) { return (fs::path(dir) / file).string(); }

std::string hex64(uint64_t x) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(x));
    return buf;
}

uint64_t corpus_fingerprint(const TokenizedCorpus& c) {
    uint64_t h = hash_bytes(c.offsets().data(), c.offsets().size() * sizeof(uint64_t), 0x7c0a);
    if (c.compact()) h = hash_bytes(c.ids16().data(), c.ids16().size() * sizeof(uint16_t), h);
    else h = hash_bytes(c.ids32().data(), c.ids32().size() * sizeof(uint32_t), h);
    return h;
}

ordered_json metrics_to_json(const EvalMetrics& m) { return ordered_json::parse(to_json(m)); }

std::string state_to_json(const RunState& s) {
    ordered_json j;
    j["format"] = kStateFormat;
    j["version"] = 1;
    j["step"] = s.step;
    j["epoch"] = s.epoch;
    j["batch_in_epoch"] = s.batch_in_epoch;
    j["epoch_fraction"] = s.epoch_fraction;
    j["tokens_seen"] = s.tokens_seen;
    j["elapsed_s"] = s.elapsed_s;
    j["best_val_loss"] = std::isfinite(s.best_val_loss) ? ordered_json(s.best_val_loss) : ordered_json(nullptr);
    j["best_step"] = s.best_step;
    j["skipped_steps"] = s.skipped_steps;
    j["total_steps"] = s.total_steps;
    j["adam_step_count"] = s.adam_step_count;
    j["schedule"] = ordered_json{{"kind", to_string(s.trainer_config.schedule)},
                                 {"total_steps", s.total_steps},
                                 {"next_lr", s.next_lr}};
    j["rng"] = ordered_json{{"kind", "counter-based"},
                            {"seed", s.trainer_config.seed},
                            {"note", "every random draw is a hash of (seed, epoch, sample, position) or (seed, step, "
                                     "micro-batch): there is no sequential generator state to save"}};
    j["threads"] = s.threads;
    j["train_data"] = corpus_to_json(s.train_data);
    j["valid_data"] = corpus_to_json(s.valid_data);
    j["tokenizer_fingerprint"] = s.tokenizer_fingerprint;
    j["model_config"] = ordered_json::parse(to_json(s.model_config));
    j["trainer_config"] = fields_to_json(s.trainer_config);
    if (std::isfinite(s.last_eval.loss)) j["last_eval"] = metrics_to_json(s.last_eval);
    return j.dump(2) + "\n";
}

RunState read_state(const std::string& dir) {
    const std::string path = checkpoint_file(dir, kStateTensors);
    std::error_code ec;
    if (!fs::exists(dir, ec)) throw CheckpointError("cannot resume from " + dir + ": the directory does not exist");
    if (!fs::is_regular_file(path, ec))
        throw CheckpointError("cannot resume from " + dir + ": " + kStateTensors +
                              " is missing (no training run was checkpointed there)");
    const auto file = SafetensorsFile::open(path);
    const auto it = file.metadata().find(kStateKey);
    if (it == file.metadata().end())
        throw CheckpointError(path + ": no \"" + std::string(kStateKey) + "\" entry in the metadata" + kCorruptStateHint);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(it->second);
    } catch (const nlohmann::json::exception& e) {
        throw CheckpointError(path + ": the trainer state metadata is not valid JSON: " + e.what() + kCorruptStateHint);
    }
    if (!j.is_object() || j.value("format", "") != kStateFormat)
        throw CheckpointError(path + ": the metadata is not an mlm trainer state" + kCorruptStateHint);

    // Every entry checked before it is used: a damaged state is refused with its problem named,
    // never resumed at a wrong place.
    const std::string corrupt = path + ": corrupt trainer state: ";
    auto entry = [&](const char* key) -> const nlohmann::json& {
        if (!j.contains(key)) throw CheckpointError(corrupt + "no \"" + key + "\" entry" + kCorruptStateHint);
        return j.at(key);
    };
    auto integer = [&](const char* key, int64_t lo, int64_t hi) {
        const auto& v = entry(key);
        if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
            throw CheckpointError(corrupt + "\"" + key + "\" is " + v.dump() + ", not an integer in [" + std::to_string(lo) +
                                  ", " + std::to_string(hi) + "]" + kCorruptStateHint);
        return v.get<int64_t>();
    };
    auto number = [&](const char* key, bool null_allowed) {
        const auto& v = entry(key);
        if (null_allowed && v.is_null()) return std::numeric_limits<double>::infinity();
        if (!v.is_number() || !std::isfinite(v.get<double>()) || v.get<double>() < 0)
            throw CheckpointError(corrupt + "\"" + key + "\" is " + v.dump() + ", not a number >= 0" + kCorruptStateHint);
        return v.get<double>();
    };
    constexpr int64_t big = std::numeric_limits<int64_t>::max();
    RunState s;
    s.step = integer("step", 0, big);
    s.epoch = integer("epoch", 0, big);
    s.batch_in_epoch = integer("batch_in_epoch", 0, big);
    s.tokens_seen = integer("tokens_seen", 0, big);
    s.adam_step_count = integer("adam_step_count", 0, s.step);
    s.best_step = integer("best_step", 0, s.step);
    s.skipped_steps = integer("skipped_steps", 0, s.step);
    s.elapsed_s = number("elapsed_s", false);
    s.best_val_loss = number("best_val_loss", true);
    s.total_steps = integer("total_steps", 0, big);
    s.threads = j.contains("threads") ? static_cast<int>(integer("threads", 1, 1 << 20)) : 0;
    try {
        s.model_config = model_config_from_json(entry("model_config").dump());
        s.trainer_config = trainer_config_from_json(entry("trainer_config").dump());
        s.tokenizer_fingerprint = entry("tokenizer_fingerprint").get<std::string>();
        for (auto [key, record] : {std::pair<const char*, CorpusRecord*>{"train_data", &s.train_data},
                                   {"valid_data", &s.valid_data}}) {
            const auto& c = entry(key);
            record->sequences = c.at("sequences").get<uint64_t>();
            record->tokens = c.at("tokens").get<uint64_t>();
            record->fingerprint = c.at("fingerprint").get<std::string>();
        }
    } catch (const CheckpointError&) {
        throw;
    } catch (const std::exception& e) {
        throw CheckpointError(corrupt + e.what() + kCorruptStateHint);
    }
    return s;
}

std::vector<std::string> resume_differences(const RunState& stored, const RunState& now) {
    std::vector<std::string> diffs;
    if (!fields_equal(stored.model_config, now.model_config))
        diffs.push_back("the model config differs (stored: " + fields_to_json(stored.model_config).dump() + ")");
    if (stored.tokenizer_fingerprint != now.tokenizer_fingerprint) diffs.push_back("the tokenizer differs");
    field_differences(stored.trainer_config, now.trainer_config, "", diffs);
    if (stored.train_data.fingerprint != now.train_data.fingerprint)
        diffs.push_back("the training sentences differ (" + std::to_string(now.train_data.sequences) + " now, " +
                        std::to_string(stored.train_data.sequences) + " in the run)");
    if (stored.valid_data.fingerprint != now.valid_data.fingerprint)
        diffs.push_back("the held-out sentences differ (" + std::to_string(now.valid_data.sequences) + " now, " +
                        std::to_string(stored.valid_data.sequences) + " in the run)");
    if (diffs.empty() && stored.total_steps != now.total_steps)
        diffs.push_back("the schedule length differs (" + std::to_string(now.total_steps) + " now, " +
                        std::to_string(stored.total_steps) + " in the run)");
    return diffs;
}

void start_new_run(const std::string& dir, bool overwrite) {
    std::error_code ec;
    if (fs::is_regular_file(checkpoint_file(dir, kStateTensors), ec) && !overwrite)
        throw std::invalid_argument("the directory " + dir + " already holds a training run; resume it, set "
                                    "overwrite to start a new one there, or choose another out_dir");
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir)) throw CheckpointError("cannot create the output directory " + dir);
    recover_checkpoint(dir);  // so that an interrupted write of the old run cannot come back later
    // A new run starts a new log; with overwrite, the old run's state and best model go too.
    for (const char* f : {kLogFile, kStateTensors, kStateJson}) fs::remove(join_path(dir, f), ec);
    fs::remove_all(join_path(dir, kBestDir), ec);
}

void cut_log(const std::string& dir, int64_t step) {
    const std::string path = join_path(dir, kLogFile);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return;
    std::ifstream in(path);
    std::string line, kept;
    while (std::getline(in, line)) {
        if (line.empty()) continue;
        try {
            const auto rec = nlohmann::json::parse(line);
            if (rec.contains("step") && rec.at("step").get<int64_t>() <= step) kept += line + "\n";
        } catch (const nlohmann::json::exception&) {
            // a torn last line: drop it
        }
    }
    write_file_atomic(path, kept);
}

}  // namespace mlm::detail
