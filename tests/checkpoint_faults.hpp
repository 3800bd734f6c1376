// Faults for the tests of checkpoints: the ways a checkpoint goes bad, as functions that damage a
// good checkpoint directory, each with the file it damages and a piece of the error message that
// must name the problem; and a file size limit that makes writes fail like a full disk. Shared by
// the tests of the C++ loaders (test_checkpoint, test_trainer) and of the `mlm` program
// (test_cli); tests/python/test_checkpoint_errors.py has the same list for pymlm.
#pragma once

#include <mlm/checkpoint.hpp>
#include <mlm/safetensors.hpp>

#include <csignal>
#include <cstdint>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include <sys/resource.h>

#include <nlohmann/json.hpp>

namespace faults {

inline std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

struct Tensor {
    mlm::Dtype dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

using Tensors = std::map<std::string, Tensor>;
using Metadata = std::map<std::string, std::string>;

// Rewrites the safetensors file at `path` (tensors and metadata) after `edit`.
inline void rewrite(const std::string& path, const std::function<void(Tensors&, Metadata&)>& edit) {
    Tensors tensors;
    Metadata metadata;
    {
        const auto f = mlm::SafetensorsFile::open(path);
        for (const auto& t : f.tensors()) tensors[t.name] = {t.dtype, t.shape, f.read_bytes(t.name)};
        metadata = f.metadata();
    }
    edit(tensors, metadata);
    mlm::SafetensorsWriter w;
    for (const auto& [key, value] : metadata) w.set_metadata(key, value);
    for (auto& [name, t] : tensors) w.add(name, t.dtype, t.shape, t.bytes);
    w.write(path);
}

// Edits the trainer state JSON stored in trainer_state.safetensors' metadata.
inline void edit_state(const std::string& dir, const std::function<void(nlohmann::ordered_json&)>& edit) {
    rewrite(dir + "/trainer_state.safetensors", [&](auto&, auto& metadata) {
        nlohmann::ordered_json state = nlohmann::ordered_json::parse(metadata.at("trainer_state"));
        edit(state);
        metadata["trainer_state"] = state.dump();
    });
}

struct Corruption {
    std::string name;
    std::string file;     // the file damaged (relative to the checkpoint directory)
    std::string problem;  // in the error message, besides the file's name
    bool breaks_model;    // MaskedLM::load (and `mlm eval`, `predict`, `fill-mask`) must refuse it
    bool breaks_resume;   // Trainer::resume (and `mlm train --resume`) must refuse it
    std::function<void(const std::string& dir)> apply;
};

inline std::vector<Corruption> corruptions() {
    const std::string model = "model.safetensors", state = "trainer_state.safetensors";
    return {
        {"truncated model.safetensors", model, "run past the end of the data section", true, false,
         [=](const std::string& d) {
             const std::string b = read_bytes(d + "/" + model);
             write_bytes(d + "/" + model, b.substr(0, b.size() - 100));
         }},
        {"header length larger than the file", model, "exceeds", true, false,
         [=](const std::string& d) {
             std::string b = read_bytes(d + "/" + model);
             const uint64_t n = b.size();
             for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
             write_bytes(d + "/" + model, b);
         }},
        {"header that is not JSON", model, "header is not valid JSON", true, false,
         [=](const std::string& d) {
             std::string b = read_bytes(d + "/" + model);
             b[9] = '@';  // {"__metadata__"... -> {@__metadata__"...
             write_bytes(d + "/" + model, b);
         }},
        {"config.json that is not JSON", "config.json", "not valid JSON", true, true,
         [](const std::string& d) { write_bytes(d + "/config.json", "{\"dim\": "); }},
        {"wrong dtype", model, "tensor \"ln_f.scale\": dtype I32", true, false,
         [=](const std::string& d) {
             rewrite(d + "/" + model, [](auto& t, auto&) { t.at("ln_f.scale").dtype = mlm::Dtype::I32; });
         }},
        {"wrong shape", model, "tensor \"ln_f.scale\": shape [2, ", true, false,
         [=](const std::string& d) {
             rewrite(d + "/" + model, [](auto& t, auto&) {
                 auto& s = t.at("ln_f.scale").shape;
                 s = {2, s.at(0) / 2};  // the same bytes, another shape
             });
         }},
        {"missing tensor", model, "tensors are missing: \"ln_f.scale\"", true, false,
         [=](const std::string& d) { rewrite(d + "/" + model, [](auto& t, auto&) { t.erase("ln_f.scale"); }); }},
        {"extra tensor", model, "unexpected tensors \"encoders.9.extra\"", true, false,
         [=](const std::string& d) {
             rewrite(d + "/" + model, [](auto& t, auto&) { t["encoders.9.extra"] = t.at("ln_f.scale"); });
         }},
        {"config.json whose vocab does not match the tokenizer", "config.json", "says vocab_size", true, true,
         [](const std::string& d) {
             nlohmann::ordered_json j = nlohmann::ordered_json::parse(read_bytes(d + "/config.json"));
             j["vocab_size"] = j.at("vocab_size").get<int>() + 1;
             write_bytes(d + "/config.json", j.dump());
         }},
        {"tokenizer.model that is not a tokenizer", "tokenizer.model", "not a valid tokenizer model", true, true,
         [](const std::string& d) { write_bytes(d + "/tokenizer.model", "not a sentencepiece model"); }},
        {"truncated trainer state", state, "run past the end of the data section", false, true,
         [=](const std::string& d) {
             const std::string b = read_bytes(d + "/" + state);
             write_bytes(d + "/" + state, b.substr(0, b.size() - 100));
         }},
        {"trainer state that is not JSON", state, "the trainer state metadata is not valid JSON", false, true,
         [=](const std::string& d) {
             rewrite(d + "/" + state, [](auto&, auto& metadata) { metadata["trainer_state"] = "{\"step\": "; });
         }},
        {"trainer state without its step", state, "corrupt trainer state: no \"step\" entry", false, true,
         [](const std::string& d) { edit_state(d, [](nlohmann::ordered_json& s) { s.erase("step"); }); }},
        {"trainer state with an impossible position", state, "corrupt trainer state: \"batch_in_epoch\" is 1000000000",
         false, true,
         [](const std::string& d) {
             edit_state(d, [](nlohmann::ordered_json& s) { s["batch_in_epoch"] = 1000000000; });
         }},
        {"trainer state with a wrong tensor shape", state, "tensor \"adam_m.ln_f.scale\": shape [2, ", false, true,
         [=](const std::string& d) {
             rewrite(d + "/" + state, [](auto& t, auto&) {
                 auto& s = t.at("adam_m.ln_f.scale").shape;
                 s = {2, s.at(0) / 2};
             });
         }},
    };
}

// While it lives, writes beyond `bytes` fail with EFBIG ("File too large"), like writes to a full
// disk (and unlike a read-only directory, also for root). The process-wide limit: not for tests
// that run threads writing files.
class FileSizeLimit {
public:
    explicit FileSizeLimit(rlim_t bytes) {
        ::getrlimit(RLIMIT_FSIZE, &before_);
        handler_ = std::signal(SIGXFSZ, SIG_IGN);  // write() then fails instead of killing the process
        rlimit low = before_;
        low.rlim_cur = bytes;
        ::setrlimit(RLIMIT_FSIZE, &low);
    }
    ~FileSizeLimit() {
        ::setrlimit(RLIMIT_FSIZE, &before_);
        std::signal(SIGXFSZ, handler_);
    }
    FileSizeLimit(const FileSizeLimit&) = delete;
    FileSizeLimit& operator=(const FileSizeLimit&) = delete;

private:
    rlimit before_{};
    void (*handler_)(int) = nullptr;
};

}  // namespace faults
