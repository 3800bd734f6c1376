// mlm/checkpoint.hpp — model checkpoints (a directory) and named-buffer files for trainer state.
//
// A checkpoint is a directory:
//   config.json        the ModelConfig (mlm::to_json)
//   model.safetensors  every parameter, F32 by default, named by its ParameterLayout key (the
//                      original PyTorch model's state_dict key); the tied output head is stored
//                      once, as embedding.class_embedding.weight; __metadata__ {"format": "pt"}
//   tokenizer.model    the sentencepiece model, opaque bytes
// and, written by the trainer for resuming, trainer_state.safetensors + trainer_state.json.
//
//   mlm::ModelSaveOptions options;
//   options.tokenizer_model = mlm::read_file("spm.model");
//   mlm::save_model("ckpt", config, params.data(), options);
//
//   mlm::ModelConfig config = mlm::load_config("ckpt");
//   std::vector<float> params(mlm::ParameterLayout(config).size());
//   mlm::load_model_params("ckpt", config, params.data());
//
// A checkpoint is replaced as a whole (CheckpointWriter): a crash, a SIGKILL or a power cut at any
// moment leaves either every old file or every new one, never a torn file and never a mix of two
// checkpoints. The new files are written into DIR/.checkpoint-staging/ and committed by renaming
// that directory; a crash after the commit leaves some new files in DIR/.checkpoint-commit/, where
// the loaders find them (checkpoint_file()) and the next write moves them into place.
//
// Named buffers (trainer state, anything else):
//
//   auto refs = mlm::layout_refs(layout, adam_m.data(), "adam_m.");
//   refs.merge(mlm::layout_refs(layout, adam_v.data(), "adam_v."));
//   mlm::save_tensors(dir + "/trainer_state.safetensors", refs, {{"step", "1200"}});
//   auto slots = mlm::layout_slots(layout, adam_m.data(), "adam_m.");
//   slots.merge(mlm::layout_slots(layout, adam_v.data(), "adam_v."));
//   auto metadata = mlm::load_tensors(dir + "/trainer_state.safetensors", slots);
//
// Problems with files throw mlm::CheckpointError (see safetensors.hpp) naming the file, the
// tensor and the problem.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "config.hpp"
#include "parameters.hpp"
#include "safetensors.hpp"

namespace mlm {

inline constexpr const char* checkpoint_config_file = "config.json";
inline constexpr const char* checkpoint_model_file = "model.safetensors";
inline constexpr const char* checkpoint_tokenizer_file = "tokenizer.model";
// The head key of a PyTorch state_dict; tied to the embedding, never written by mlm.
inline constexpr const char* tied_head_key = "mlm_head.weight";

// ---- model checkpoints -----------------------------------------------------------------------

struct ModelSaveOptions {
    Dtype dtype = Dtype::F32;      // F32 or F64 on disk, whatever the in-memory type
    std::string tokenizer_model;   // bytes of tokenizer.model; empty: that file is left as it is
};

// ---- replacing the files of a checkpoint as one change ---------------------------------------

inline constexpr const char* checkpoint_staging_dir = ".checkpoint-staging";
inline constexpr const char* checkpoint_commit_dir = ".checkpoint-commit";

// Replaces several files of a directory as one atomic change:
//   1. stage() writes each new file (each fsynced) into DIR/.checkpoint-staging/;
//   2. commit() syncs that directory and renames it to DIR/.checkpoint-commit/: the commit point;
//   3. commit() then moves each file over its old version in DIR and removes the empty directory.
// Renaming one directory is atomic where renaming several files is not, so a crash before the
// commit point leaves all the old files (the staged ones are discarded by the next writer) and a
// crash after it leaves all the new ones, some still in .checkpoint-commit/: the loaders read
// them there (checkpoint_file()) and the next writer, or recover_checkpoint(), finishes the moves.
// Files of DIR that are not staged keep their old version.
//
//   mlm::CheckpointWriter writer("runs/x");    // creates runs/x; finishes an interrupted write
//   writer.stage("trainer_state.json", state_json);
//   writer.stage("trainer_state.safetensors",
//                [&](const std::string& path) { mlm::save_tensors(path, refs, metadata); });
//   mlm::save_model(writer, config, params.data(), options);   // the model's three files
//   writer.commit();
//
// A failure before the commit point (disk full, permission denied) throws CheckpointError saying
// so, and the checkpoint already in DIR is unchanged. One writer per directory at a time.
class CheckpointWriter {
public:
    explicit CheckpointWriter(std::string dir);
    ~CheckpointWriter();  // without commit(): removes the staged files, DIR is unchanged
    CheckpointWriter(const CheckpointWriter&) = delete;
    CheckpointWriter& operator=(const CheckpointWriter&) = delete;

    const std::string& dir() const { return dir_; }
    // Writes the new version of file `name` (a plain file name): `write` is called with the path
    // to write it to, in the staging directory, and must write it with fsync (save_tensors,
    // SafetensorsWriter::write and write_file_atomic do).
    void stage(const std::string& name, const std::function<void(const std::string& path)>& write);
    void stage(const std::string& name, const std::string& bytes);
    // Makes the staged files the directory's, all at once. At most once.
    void commit();

private:
    std::string dir_;
    std::string staging_;
    bool committed_ = false;
};

// Finishes a write that was interrupted after its commit point and discards one interrupted
// before it; nothing to do otherwise (or when `dir` does not exist). Writers call it first.
void recover_checkpoint(const std::string& dir);

// The path of file `name` of checkpoint `dir` as it stands: DIR/.checkpoint-commit/name when an
// interrupted write left the new version there, else DIR/name.
std::string checkpoint_file(const std::string& dir, const std::string& name);

// Writes `dir` (created if needed) as one change (CheckpointWriter): model.safetensors,
// tokenizer.model (when given) and config.json. params is a flat buffer laid out by
// ParameterLayout(config). T: float or double.
template <class T>
void save_model(const std::string& dir, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options = {});
// The same files, staged into a writer (committed with whatever else it holds).
template <class T>
void save_model(CheckpointWriter& writer, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options = {});

// Writes only tokenizer.model (as one change, like save_model).
void save_tokenizer_model(const std::string& dir, const std::string& bytes);

// True when `dir` holds config.json and model.safetensors.
bool is_checkpoint(const std::string& dir);

// config.json of the checkpoint; CheckpointError when missing or invalid.
ModelConfig load_config(const std::string& dir);

// Reads model.safetensors into params (ParameterLayout(config).size() elements), after checking
// that every tensor of the layout is present with its exact shape and dtype F32 or F64 (converted
// to T), and that nothing else is there except an optional mlm_head.weight equal to the embedding
// (as a PyTorch state_dict carries it). Nothing is written to params before all of that holds;
// only an I/O failure while reading can leave it partly overwritten.
template <class T>
void load_model_params(const std::string& dir, const ModelConfig& config, T* params);

// tokenizer.model of the checkpoint; CheckpointError when missing.
std::string load_tokenizer_model(const std::string& dir);

extern template void save_model<float>(const std::string&, const ModelConfig&, const float*,
                                       const ModelSaveOptions&);
extern template void save_model<double>(const std::string&, const ModelConfig&, const double*,
                                        const ModelSaveOptions&);
extern template void save_model<float>(CheckpointWriter&, const ModelConfig&, const float*,
                                       const ModelSaveOptions&);
extern template void save_model<double>(CheckpointWriter&, const ModelConfig&, const double*,
                                        const ModelSaveOptions&);
extern template void load_model_params<float>(const std::string&, const ModelConfig&, float*);
extern template void load_model_params<double>(const std::string&, const ModelConfig&, double*);

// ---- named buffers ---------------------------------------------------------------------------

// A buffer to save: dtype, row-major shape, and borrowed memory.
struct TensorRef {
    Dtype dtype = Dtype::F32;
    std::vector<int64_t> shape;
    const void* data = nullptr;
};

// A buffer to load into: the same, writable.
struct TensorSlot {
    Dtype dtype = Dtype::F32;
    std::vector<int64_t> shape;
    void* data = nullptr;
};

template <class T>
TensorRef tensor_ref(const T* data, std::vector<int64_t> shape) {
    return {dtype_of<T>(), std::move(shape), data};
}
template <class T>
TensorSlot tensor_slot(T* data, std::vector<int64_t> shape) {
    return {dtype_of<T>(), std::move(shape), data};
}

// One entry per tensor of `layout`, named prefix + key, pointing into the flat buffer `base`
// (parameters, gradients, Adam moments: all share the layout).
template <class T>
std::map<std::string, TensorRef> layout_refs(const ParameterLayout& layout, const T* base,
                                             const std::string& prefix = "") {
    std::map<std::string, TensorRef> out;
    for (const auto& t : layout.tensors()) out[prefix + t.name] = tensor_ref(base + t.offset, t.shape);
    return out;
}
template <class T>
std::map<std::string, TensorSlot> layout_slots(const ParameterLayout& layout, T* base,
                                               const std::string& prefix = "") {
    std::map<std::string, TensorSlot> out;
    for (const auto& t : layout.tensors()) out[prefix + t.name] = tensor_slot(base + t.offset, t.shape);
    return out;
}

// Writes the tensors (in their own dtypes) and metadata to one safetensors file, atomically.
void save_tensors(const std::string& path, const std::map<std::string, TensorRef>& tensors,
                  const std::map<std::string, std::string>& metadata = {});

struct TensorLoadOptions {
    bool convert = false;      // read F16/BF16/F32/F64 tensors into F32/F64 slots
    bool allow_extra = false;  // tolerate tensors in the file that no slot asks for
};

// Fills every slot from the file at `path` after checking that each is present with its exact
// shape and dtype (or a convertible one), and, unless allow_extra, that the file holds nothing
// else. Returns the file's __metadata__.
std::map<std::string, std::string> load_tensors(const std::string& path,
                                                const std::map<std::string, TensorSlot>& slots,
                                                const TensorLoadOptions& options = {});

}  // namespace mlm
