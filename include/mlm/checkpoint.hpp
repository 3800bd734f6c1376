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
// Every file is written atomically (temporary file, fsync, rename, fsync the directory), so a
// crash leaves each file either old or new, never half-written. The files of a checkpoint are
// replaced one at a time in this order: model.safetensors, tokenizer.model, config.json last.
// config.json goes last so that a new directory only looks like a checkpoint (is_checkpoint())
// once everything else is in place. A crash while overwriting an existing checkpoint can leave new
// weights beside the old config.json: loading then fails with a shape error, or, when the shapes
// agree, loads the new weights; it never meets a torn file.
//
// Named buffers (trainer state, anything else):
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

// Writes `dir` (created if needed): model.safetensors, tokenizer.model (when given), then
// config.json. params is a flat buffer laid out by ParameterLayout(config). T: float or double.
template <class T>
void save_model(const std::string& dir, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options = {});

// Writes only tokenizer.model, atomically.
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
