// pymlm/common.hpp — what the binding files of pymlm._core share: argument conversion, path
// checks, error helpers, and the bind_* entry points called from PYBIND11_MODULE in _core.cpp.
//
// Conventions of the bindings (see STYLE.md, "Thin bindings"):
//   - convert and delegate: argument checks that C++ would report with a less useful message
//     (dtypes, shapes, missing files) are done here, everything else is mlm's own validation;
//   - long calls release the GIL (py::gil_scoped_release) and never touch Python objects while
//     it is released;
//   - token ids from Python may be lists, tuples or integer numpy arrays of any integer dtype;
//     floats, bools, strings are a TypeError, values outside the vocab a ValueError.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace pymlm {

namespace py = pybind11;

// ---- errors ----------------------------------------------------------------------------------

// Raises FileNotFoundError(ENOENT, message, path).
[[noreturn]] void raise_file_not_found(const std::string& message, const std::string& path);
// Raises TypeError / ValueError with the message.
[[noreturn]] void raise_type_error(const std::string& message);
[[noreturn]] void raise_value_error(const std::string& message);

// A path argument (str or os.PathLike, converted by pybind11) as a string.
std::string path_string(const std::filesystem::path& path);
// FileNotFoundError naming `what` unless `path` exists; ValueError if it is the wrong kind.
void require_file(const std::string& path, const std::string& what);
void require_directory(const std::string& path, const std::string& what);

// A str / os.PathLike object as a path string; ValueError if it is not a valid path (a NUL byte).
std::string path_from_python(py::handle obj);

// True if `obj` is a str or an os.PathLike.
bool is_path_like(py::handle obj);

// ---- token ids ---------------------------------------------------------------------------------

// One sequence of ids from a list / tuple / 1-D integer array. `what` names the argument in
// messages. With vocab_size > 0, every id must be in [0, vocab_size).
std::vector<int32_t> ids_from_python(py::handle obj, const char* what, int vocab_size);

// Several sequences (a list of sequences, or a 2-D integer array whose rows are the sequences).
std::vector<std::vector<int32_t>> sequences_from_python(py::handle obj, const char* what, int vocab_size);

// A (B, T) integer array (or nested lists) as int32, C order; a 1-D input is one row (B = 1).
// Values must lie in [lo, hi) or equal `also` (the ignore label of labels).
struct IdMatrix {
    std::vector<int32_t> data;
    int rows = 0, cols = 0;
};
IdMatrix id_matrix_from_python(py::handle obj, const char* what, int64_t lo, int64_t hi,
                               int64_t also = INT64_MIN);

// A list (or any iterable) of str; a single str gives a one-item list.
std::vector<std::string> strings_from_python(py::handle obj, const char* what);

// ---- threads -------------------------------------------------------------------------------------

// OpenMP's thread count is a per-thread setting: set_num_threads(n) in one Python thread would not
// reach C++ work started from another. So pymlm remembers the last set_num_threads(n) and every
// long call applies it to its own thread first (cheap when it is already in place).
void sync_threads();

// ---- models in training --------------------------------------------------------------------------

// TrainerCore.train() registers its trainer and model while it runs: a second train() on the same
// trainer, and forward / backward / weight loading on the model being trained (which would race
// with the C++ loop running without the GIL), raise RuntimeError instead.
void mark_training(const void* object, bool running);
bool is_training(const void* object);
void require_not_training(const void* model, const char* what);

// ---- numpy -------------------------------------------------------------------------------------

// A numpy array that owns `values` (moved into a capsule; no copy).
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& values, std::vector<py::ssize_t> shape) {
    auto* owned = new std::vector<T>(std::move(values));
    py::capsule base(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
    return py::array_t<T>(shape, owned->data(), base);
}

// ---- the areas ---------------------------------------------------------------------------------

void bind_errors(py::module_& m);
void bind_runtime(py::module_& m);
void bind_config(py::module_& m);
void bind_tokenizer(py::module_& m);
void bind_data(py::module_& m);
void bind_model(py::module_& m);
void bind_masked_lm(py::module_& m);
void bind_trainer(py::module_& m);

}  // namespace pymlm
