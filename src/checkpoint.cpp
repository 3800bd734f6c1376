// Model checkpoints and named-buffer files (see include/mlm/checkpoint.hpp).
#include <mlm/checkpoint.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

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
    if (!fs::exists(checkpoint_file(dir, file), ec))
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

// fsync a directory, so that the renames inside it survive a power cut; "" or what went wrong.
// Filesystems that cannot sync a directory (EINVAL) are accepted.
std::string sync_directory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        if (::fsync(fd) != 0 && errno != EINVAL) err = errno;
        ::close(fd);
    }
    return err == 0 ? std::string() : "syncing the directory " + dir + " failed: " + std::strerror(err);
}

// Moves the files of a committed write from DIR/.checkpoint-commit into DIR, then removes it.
// Safe to repeat after a crash: a file already moved is no longer in .checkpoint-commit.
void finish_commit(const std::string& dir) {
    const std::string committed = join(dir, checkpoint_commit_dir);
    const std::string why = "the new checkpoint in " + dir + " is committed but not yet in place";
    const std::string what_to_do = " (mlm loads it from " + committed +
                                   "; the next write into the directory finishes the move)";
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(committed, ec), end; !ec && it != end; it.increment(ec))
        names.push_back(it->path().filename().string());
    if (ec) throw CheckpointError(why + ": cannot list " + committed + ": " + ec.message() + what_to_do);
    for (const std::string& name : names) {
        const std::string from = (fs::path(committed) / name).string(), to = (fs::path(dir) / name).string();
        if (::rename(from.c_str(), to.c_str()) != 0)
            throw CheckpointError(why + ": moving " + from + " to " + to + " failed: " + std::strerror(errno) +
                                  what_to_do);
    }
    if (const std::string failed = sync_directory(dir); !failed.empty())
        throw CheckpointError("the new checkpoint in " + dir + " is in place but " + failed +
                              ", so it may not survive a power cut");
    fs::remove_all(committed, ec);
    if (ec) throw CheckpointError("cannot remove the empty " + committed + ": " + ec.message());
}

}  // namespace

// ---- replacing the files of a checkpoint as one change ---------------------------------------

void recover_checkpoint(const std::string& dir) {
    std::error_code ec;
    if (fs::is_directory(join(dir, checkpoint_commit_dir), ec)) finish_commit(dir);
    const std::string staging = join(dir, checkpoint_staging_dir);
    if (fs::exists(fs::symlink_status(staging, ec))) {
        fs::remove_all(staging, ec);
        if (ec)
            throw CheckpointError("cannot remove " + staging + ", left by an interrupted checkpoint write: " +
                                  ec.message());
    }
}

std::string checkpoint_file(const std::string& dir, const std::string& name) {
    std::error_code ec;
    const fs::path committed = fs::path(dir) / checkpoint_commit_dir / name;
    if (fs::exists(committed, ec)) return committed.string();
    return (fs::path(dir) / name).string();
}

CheckpointWriter::CheckpointWriter(std::string dir) : dir_(std::move(dir)) {
    create_directory(dir_);
    recover_checkpoint(dir_);
    staging_ = join(dir_, checkpoint_staging_dir);
    std::error_code ec;
    if (!fs::create_directory(staging_, ec) || ec)
        throw CheckpointError("cannot write a checkpoint into " + dir_ + ": cannot create " + staging_ + ": " +
                              (ec ? ec.message() : "it exists") + " (the checkpoint already there is unchanged)");
}

CheckpointWriter::~CheckpointWriter() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(staging_, ec);
}

void CheckpointWriter::stage(const std::string& name, const std::function<void(const std::string&)>& write) {
    if (committed_) throw std::logic_error("CheckpointWriter::stage after commit()");
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." ||
        name == checkpoint_staging_dir || name == checkpoint_commit_dir)
        throw std::invalid_argument("CheckpointWriter::stage: \"" + name + "\" is not a plain file name");
    try {
        write((fs::path(staging_) / name).string());
    } catch (const CheckpointError& e) {
        // The file named is a staged one; what matters is that the checkpoint itself is unchanged.
        std::string what = e.what();
        const std::string file_unchanged = " (any existing file there is unchanged)";
        if (what.size() >= file_unchanged.size() &&
            what.compare(what.size() - file_unchanged.size(), file_unchanged.size(), file_unchanged) == 0)
            what.erase(what.size() - file_unchanged.size());
        throw CheckpointError("cannot write the checkpoint in " + dir_ + ": " + what +
                              "; the checkpoint already there is unchanged");
    }
}

void CheckpointWriter::stage(const std::string& name, const std::string& bytes) {
    stage(name, [&](const std::string& path) { write_file_atomic(path, bytes); });
}

void CheckpointWriter::commit() {
    if (committed_) throw std::logic_error("CheckpointWriter::commit called twice");
    const std::string cannot = "cannot write the checkpoint in " + dir_ + ": ";
    const std::string unchanged = "; the checkpoint already there is unchanged";
    if (const std::string failed = sync_directory(staging_); !failed.empty())
        throw CheckpointError(cannot + failed + unchanged);
    const std::string committed = join(dir_, checkpoint_commit_dir);
    if (::rename(staging_.c_str(), committed.c_str()) != 0)
        throw CheckpointError(cannot + "renaming " + staging_ + " to " + committed + " failed: " +
                              std::strerror(errno) + unchanged);
    committed_ = true;  // the commit point: from here on, the new checkpoint is the directory's
    if (const std::string failed = sync_directory(dir_); !failed.empty())
        throw CheckpointError("the new checkpoint in " + dir_ + " is committed but " + failed +
                              ", so it may not survive a power cut");
    finish_commit(dir_);
}

// ---- model checkpoints -----------------------------------------------------------------------

namespace {

template <class T>
void check_save_arguments(const ModelConfig& config, const T* params, const ModelSaveOptions& options) {
    static_assert(is_float_type<T>, "save_model: T must be float or double");
    if (options.dtype != Dtype::F32 && options.dtype != Dtype::F64)
        throw std::invalid_argument(std::string("save_model: dtype must be F32 or F64, got ") +
                                    to_string(options.dtype));
    if (params == nullptr) throw std::invalid_argument("save_model: params is null");
    config.validate();
}

}  // namespace

template <class T>
void save_model(const std::string& dir, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options) {
    check_save_arguments(config, params, options);  // before anything is created
    CheckpointWriter writer(dir);
    save_model(writer, config, params, options);
    writer.commit();
}

template <class T>
void save_model(CheckpointWriter& checkpoint, const ModelConfig& config, const T* params,
                const ModelSaveOptions& options) {
    check_save_arguments(config, params, options);
    const ParameterLayout layout(config);
    const std::string config_json = to_json(config);

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
    checkpoint.stage(checkpoint_model_file, [&](const std::string& path) { writer.write(path); });
    if (!options.tokenizer_model.empty()) checkpoint.stage(checkpoint_tokenizer_file, options.tokenizer_model);
    checkpoint.stage(checkpoint_config_file, config_json);
}

void save_tokenizer_model(const std::string& dir, const std::string& bytes) {
    CheckpointWriter writer(dir);
    writer.stage(checkpoint_tokenizer_file, bytes);
    writer.commit();
}

bool is_checkpoint(const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(checkpoint_file(dir, checkpoint_config_file), ec) &&
           fs::is_regular_file(checkpoint_file(dir, checkpoint_model_file), ec);
}

ModelConfig load_config(const std::string& dir) {
    require_file(dir, checkpoint_config_file);
    const std::string path = checkpoint_file(dir, checkpoint_config_file);
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
    const auto file = SafetensorsFile::open(checkpoint_file(dir, checkpoint_model_file));
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

    // The tied head is compared before params is written: a refused file leaves params untouched.
    if (file.has(tied_head_key)) {
        const std::vector<T> head = file.read<T>(tied_head_key, /*convert=*/true);
        if (head != file.read<T>(embedding.name, /*convert=*/true))
            throw CheckpointError(path + ": tensor \"" + std::string(tied_head_key) +
                                  "\" differs from \"" + embedding.name +
                                  "\"; this model ties its output head to the token embedding, so "
                                  "the two must be equal");
    }
    for (const auto& t : layout.tensors())
        file.read_into(t.name, params + t.offset, t.shape, /*convert=*/true);
}

std::string load_tokenizer_model(const std::string& dir) {
    require_file(dir, checkpoint_tokenizer_file);
    return read_file(checkpoint_file(dir, checkpoint_tokenizer_file));
}

template void save_model<float>(const std::string&, const ModelConfig&, const float*,
                                const ModelSaveOptions&);
template void save_model<double>(const std::string&, const ModelConfig&, const double*,
                                 const ModelSaveOptions&);
template void save_model<float>(CheckpointWriter&, const ModelConfig&, const float*,
                                const ModelSaveOptions&);
template void save_model<double>(CheckpointWriter&, const ModelConfig&, const double*,
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
