// Model checkpoints and named-buffer files (see include/mlm/checkpoint.hpp).
#include <mlm/checkpoint.hpp>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace mlm {

namespace {

namespace fs = std::filesystem;

std::string join(const std::string& dir, const char* file) { return (fs::path(dir) / file).string(); }

// "no checkpoint at DIR: ..." when the directory or one of its files is missing.
void require_file(const std::string& dir, const char* file) {
    std::error_code ec;
    if (!fs::exists(dir, ec))
        throw CheckpointError("no checkpoint at " + dir + ": the directory does not exist");
    if (!fs::is_directory(dir, ec))
        throw CheckpointError("no checkpoint at " + dir + ": it is a file, not a directory");
    if (!fs::exists(join(dir, file), ec))
        throw CheckpointError("no checkpoint at " + dir + ": " + file + " is missing");
}

void create_directory(const std::string& dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (!fs::is_directory(dir))
        throw CheckpointError("cannot create the checkpoint directory " + dir + ": " +
                              (ec ? ec.message() : "a file is in the way"));
}

// "a, b, c and 4 more"
std::string list_names(const std::vector<std::string>& names) {
    std::string s;
    const std::size_t shown = std::min<std::size_t>(names.size(), 5);
    for (std::size_t i = 0; i < shown; ++i) s += (i ? ", \"" : "\"") + names[i] + "\"";
    if (names.size() > shown) s += " and " + std::to_string(names.size() - shown) + " more";
    return s;
}

template <class T>
constexpr bool is_float_type = std::is_same_v<T, float> || std::is_same_v<T, double>;

}  // namespace

// ---- model checkpoints -----------------------------------------------------------------------

template <class T>
void save_model(const std::string& dir, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options) {
    static_assert(is_float_type<T>, "save_model: T must be float or double");
    if (options.dtype != Dtype::F32 && options.dtype != Dtype::F64)
        throw std::invalid_argument(std::string("save_model: dtype must be F32 or F64, got ") +
                                    to_string(options.dtype));
    if (params == nullptr) throw std::invalid_argument("save_model: params is null");
    const ParameterLayout layout(config);  // validates the config
    const std::string config_json = to_json(config);
    create_directory(dir);

    // In the stored dtype: borrowed when it is T's, else converted once.
    std::vector<uint8_t> converted;
    const void* base = params;
    if (options.dtype != dtype_of<T>()) {
        converted.resize(layout.size() * dtype_size(options.dtype));
        detail::convert_floats(dtype_of<T>(), params, options.dtype, converted.data(), layout.size());
        base = converted.data();
    }
    SafetensorsWriter writer;
    writer.set_metadata("format", "pt");
    const std::size_t elem = dtype_size(options.dtype);
    for (const auto& t : layout.tensors())
        writer.add(t.name, options.dtype, t.shape,
                   static_cast<const void*>(static_cast<const uint8_t*>(base) + t.offset * elem));
    writer.write(join(dir, checkpoint_model_file));
    if (!options.tokenizer_model.empty()) save_tokenizer_model(dir, options.tokenizer_model);
    write_file_atomic(join(dir, checkpoint_config_file), config_json);
}

void save_tokenizer_model(const std::string& dir, const std::string& bytes) {
    create_directory(dir);
    write_file_atomic(join(dir, checkpoint_tokenizer_file), bytes);
}

bool is_checkpoint(const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(join(dir, checkpoint_config_file), ec) &&
           fs::is_regular_file(join(dir, checkpoint_model_file), ec);
}

ModelConfig load_config(const std::string& dir) {
    require_file(dir, checkpoint_config_file);
    const std::string path = join(dir, checkpoint_config_file);
    const std::string text = read_file(path);
    try {
        return model_config_from_json(text);
    } catch (const std::invalid_argument& e) {
        std::string what = e.what();
        const std::string redundant = "config.json: ";
        if (what.compare(0, redundant.size(), redundant) == 0) what.erase(0, redundant.size());
        throw CheckpointError(path + ": not a valid model config: " + what);
    }
}

template <class T>
void load_model_params(const std::string& dir, const ModelConfig& config, T* params) {
    static_assert(is_float_type<T>, "load_model_params: T must be float or double");
    if (params == nullptr) throw std::invalid_argument("load_model_params: params is null");
    const ParameterLayout layout(config);
    require_file(dir, checkpoint_model_file);
    const auto file = SafetensorsFile::open(join(dir, checkpoint_model_file));
    const std::string& path = file.path();

    // Validate everything before reading anything.
    std::vector<std::string> missing, unexpected;
    for (const auto& t : layout.tensors())
        if (!file.has(t.name)) missing.push_back(t.name);
    if (!missing.empty())
        throw CheckpointError(path + ": " + std::to_string(missing.size()) + " of the model's " +
                              std::to_string(layout.tensors().size()) + " tensors are missing: " +
                              list_names(missing) + "; is this a checkpoint of another model?");
    for (const auto& name : file.names())
        if (!layout.try_find(name) && name != tied_head_key) unexpected.push_back(name);
    if (!unexpected.empty())
        throw CheckpointError(path + ": unexpected tensors " + list_names(unexpected) +
                              " that this model (config.json) does not have");
    const TensorInfo& embedding = layout.tensors().front();  // embedding.class_embedding.weight
    for (const auto& stored : file.tensors()) {
        const TensorInfo* t = layout.try_find(stored.name);
        const std::vector<int64_t>& want = t ? t->shape : embedding.shape;  // else: the tied head
        if (stored.shape != want)
            throw CheckpointError(path + ": tensor \"" + stored.name + "\": shape " +
                                  shape_to_string(stored.shape) + " in the file, " +
                                  shape_to_string(want) + " expected by config.json");
        if (stored.dtype != Dtype::F32 && stored.dtype != Dtype::F64)
            throw CheckpointError(path + ": tensor \"" + stored.name + "\": dtype " +
                                  to_string(stored.dtype) + ", a model checkpoint holds F32 or F64");
    }

    for (const auto& t : layout.tensors())
        file.read_into(t.name, params + t.offset, t.shape, /*convert=*/true);
    if (file.has(tied_head_key)) {
        const std::vector<T> head = file.read<T>(tied_head_key, /*convert=*/true);
        if (!std::equal(head.begin(), head.end(), params + embedding.offset))
            throw CheckpointError(path + ": tensor \"" + std::string(tied_head_key) +
                                  "\" differs from \"" + embedding.name +
                                  "\"; this model ties its output head to the token embedding, so "
                                  "the two must be equal");
    }
}

std::string load_tokenizer_model(const std::string& dir) {
    require_file(dir, checkpoint_tokenizer_file);
    return read_file(join(dir, checkpoint_tokenizer_file));
}

template void save_model<float>(const std::string&, const ModelConfig&, const float*,
                                const ModelSaveOptions&);
template void save_model<double>(const std::string&, const ModelConfig&, const double*,
                                 const ModelSaveOptions&);
template void load_model_params<float>(const std::string&, const ModelConfig&, float*);
template void load_model_params<double>(const std::string&, const ModelConfig&, double*);

// ---- named buffers ---------------------------------------------------------------------------

void save_tensors(const std::string& path, const std::map<std::string, TensorRef>& tensors,
                  const std::map<std::string, std::string>& metadata) {
    SafetensorsWriter writer;
    for (const auto& [key, value] : metadata) writer.set_metadata(key, value);
    for (const auto& [name, ref] : tensors) writer.add(name, ref.dtype, ref.shape, ref.data);
    writer.write(path);
}

std::map<std::string, std::string> load_tensors(const std::string& path,
                                                const std::map<std::string, TensorSlot>& slots,
                                                const TensorLoadOptions& options) {
    const auto file = SafetensorsFile::open(path);
    std::vector<std::string> missing, unexpected;
    for (const auto& [name, slot] : slots)
        if (!file.has(name)) missing.push_back(name);
    if (!missing.empty())
        throw CheckpointError(path + ": " + std::to_string(missing.size()) +
                              " tensors are missing: " + list_names(missing));
    if (!options.allow_extra) {
        for (const auto& name : file.names())
            if (!slots.count(name)) unexpected.push_back(name);
        if (!unexpected.empty())
            throw CheckpointError(path + ": unexpected tensors " + list_names(unexpected));
    }
    for (const auto& [name, slot] : slots) {  // shapes and dtypes first, then data
        const StoredTensor& stored = file.info(name);
        if (stored.shape != slot.shape)
            throw CheckpointError(path + ": tensor \"" + name + "\": shape " +
                                  shape_to_string(stored.shape) + " in the file, " +
                                  shape_to_string(slot.shape) + " expected");
        const bool convertible = options.convert && detail::is_float(stored.dtype) &&
                                 (slot.dtype == Dtype::F32 || slot.dtype == Dtype::F64);
        if (stored.dtype != slot.dtype && !convertible)
            throw CheckpointError(path + ": tensor \"" + name + "\": dtype " +
                                  to_string(stored.dtype) + " in the file, " +
                                  to_string(slot.dtype) + " expected");
    }
    for (const auto& [name, slot] : slots)
        file.read_into(name, slot.dtype, slot.data, slot.shape, options.convert);
    return file.metadata();
}

}  // namespace mlm
