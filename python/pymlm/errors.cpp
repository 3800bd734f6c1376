// Exception types and translators of pymlm, and the argument helpers of common.hpp.
//
// C++ exceptions become Python exceptions as follows (pybind11's own translators, plus ours):
//   mlm::CheckpointError      -> pymlm.CheckpointError (a ValueError): a checkpoint or tensor file
//                                that is corrupt, inconsistent or does not fit the model, or a
//                                checkpoint that cannot be written (the one there is then unchanged)
//   std::out_of_range         -> pymlm.OutOfRangeError (both a ValueError and an IndexError): an
//                                id outside the vocab, a position outside a sentence
//   std::invalid_argument, std::domain_error, std::length_error -> ValueError
//   std::bad_alloc            -> MemoryError
//   any other std::exception  -> RuntimeError with its message
// Missing files and directories are checked before calling C++ and raise FileNotFoundError.
#include "common.hpp"

#include <mlm/safetensors.hpp>

#include <cerrno>
#include <climits>
#include <mutex>
#include <stdexcept>
#include <unordered_set>

namespace pymlm {

[[noreturn]] void raise_file_not_found(const std::string& message, const std::string& path) {
    PyErr_SetObject(PyExc_FileNotFoundError, py::make_tuple(ENOENT, message, path).ptr());
    throw py::error_already_set();
}
[[noreturn]] void raise_type_error(const std::string& message) { throw py::type_error(message); }
[[noreturn]] void raise_value_error(const std::string& message) { throw py::value_error(message); }

std::string path_string(const std::filesystem::path& path) { return path.string(); }

void require_file(const std::string& path, const std::string& what) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) raise_file_not_found(what + " does not exist", path);
    if (std::filesystem::is_directory(path, ec))
        raise_value_error(what + " " + path + " is a directory, not a file");
}

void require_directory(const std::string& path, const std::string& what) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) raise_file_not_found(what + " does not exist", path);
    if (!std::filesystem::is_directory(path, ec))
        raise_value_error(what + " " + path + " is a file, not a directory");
}

std::string path_from_python(py::handle obj) {
    try {
        return obj.cast<std::filesystem::path>().string();
    } catch (const py::cast_error&) {
        raise_value_error("not a valid path: " + std::string(py::repr(obj)));
    }
}

bool is_path_like(py::handle obj) {
    if (py::isinstance<py::str>(obj)) return true;
    static const py::handle path_like = py::object(py::module_::import("os").attr("PathLike")).release();
    return py::isinstance(obj, path_like);
}

namespace {

std::string type_name(py::handle obj) { return py::str(py::type::handle_of(obj).attr("__name__")); }

// Rejects numpy arrays whose dtype is not an integer type.
void check_integer_dtype(const py::array& a, const char* what) {
    const char kind = a.dtype().kind();
    if (kind == 'i' || kind == 'u') return;
    const std::string dtype = py::str(a.dtype());
    if (kind == 'f' || kind == 'c')
        raise_type_error(std::string(what) + " must hold integer token ids, got a " + dtype +
                         " array (convert with .astype(np.int64) if the values are whole numbers)");
    raise_type_error(std::string(what) + " must hold integer token ids, got a " + dtype + " array");
}

int64_t int_from_python(py::handle item, const char* what, std::size_t index) {
    if (PyBool_Check(item.ptr()) || PyFloat_Check(item.ptr()) || py::isinstance<py::str>(item) ||
        py::isinstance<py::bytes>(item))
        raise_type_error(std::string(what) + " must hold integer token ids, got " + type_name(item) +
                         " at position " + std::to_string(index));
    PyObject* index_obj = PyNumber_Index(item.ptr());
    if (!index_obj) {
        PyErr_Clear();
        raise_type_error(std::string(what) + " must hold integer token ids, got " + type_name(item) +
                         " at position " + std::to_string(index));
    }
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(index_obj, &overflow);
    Py_DECREF(index_obj);
    if (overflow) return overflow > 0 ? INT64_MAX : INT64_MIN;
    return v;
}

void check_range(int64_t v, int64_t lo, int64_t hi, int64_t also, const char* what, const std::string& where) {
    if ((v >= lo && v < hi) || v == also) return;
    std::string allowed = "[" + std::to_string(lo) + ", " + std::to_string(hi) + ")";
    if (also != INT64_MIN) allowed += " or " + std::to_string(also);
    raise_value_error(std::string(what) + ": " + std::to_string(v) + " at " + where + " is outside " +
                      (also == INT64_MIN && lo == 0 ? "the vocab " : "") + allowed);
}

}  // namespace

std::vector<int32_t> ids_from_python(py::handle obj, const char* what, int vocab_size) {
    const int64_t hi = vocab_size > 0 ? vocab_size : INT32_MAX;
    std::vector<int32_t> out;
    if (py::isinstance<py::str>(obj) || py::isinstance<py::bytes>(obj))
        raise_type_error(std::string(what) + " must be a sequence of token ids, got a string (encode it with "
                         "the tokenizer first)");
    if (py::isinstance<py::array>(obj)) {
        const auto a = py::reinterpret_borrow<py::array>(obj);
        check_integer_dtype(a, what);
        if (a.ndim() != 1)
            raise_value_error(std::string(what) + " must be 1-dimensional, got an array of shape " +
                              std::string(py::str(py::tuple(a.attr("shape")))));
        const auto c = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(obj);
        if (!c) throw py::error_already_set();
        const int64_t* p = c.data();
        out.resize(static_cast<std::size_t>(c.size()));
        for (std::size_t i = 0; i < out.size(); ++i) {
            check_range(p[i], 0, hi, INT64_MIN, what, "position " + std::to_string(i));
            out[i] = static_cast<int32_t>(p[i]);
        }
        return out;
    }
    if (!py::isinstance<py::sequence>(obj))
        raise_type_error(std::string(what) + " must be a list, tuple or 1-D integer array of token ids, got " +
                         type_name(obj));
    const auto seq = py::reinterpret_borrow<py::sequence>(obj);
    out.reserve(seq.size());
    std::size_t i = 0;
    for (py::handle item : seq) {
        const int64_t v = int_from_python(item, what, i);
        check_range(v, 0, hi, INT64_MIN, what, "position " + std::to_string(i));
        out.push_back(static_cast<int32_t>(v));
        ++i;
    }
    return out;
}

std::vector<std::vector<int32_t>> sequences_from_python(py::handle obj, const char* what, int vocab_size) {
    std::vector<std::vector<int32_t>> out;
    if (py::isinstance<py::array>(obj)) {
        const auto a = py::reinterpret_borrow<py::array>(obj);
        if (a.ndim() != 2)
            raise_value_error(std::string(what) + " as an array must be 2-dimensional (one row per sequence), "
                              "got shape " + std::string(py::str(py::tuple(a.attr("shape")))));
        for (py::ssize_t r = 0; r < a.shape(0); ++r) {
            const std::string name = std::string(what) + "[" + std::to_string(r) + "]";
            out.push_back(ids_from_python(a[py::int_(r)], name.c_str(), vocab_size));
        }
        return out;
    }
    if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
        raise_type_error(std::string(what) + " must be a list of token id sequences, got " + type_name(obj));
    std::size_t k = 0;
    for (py::handle item : py::reinterpret_borrow<py::sequence>(obj)) {
        const std::string name = std::string(what) + "[" + std::to_string(k++) + "]";
        out.push_back(ids_from_python(item, name.c_str(), vocab_size));
    }
    return out;
}

IdMatrix id_matrix_from_python(py::handle obj, const char* what, int64_t lo, int64_t hi, int64_t also) {
    py::array a;
    if (py::isinstance<py::array>(obj)) {
        a = py::reinterpret_borrow<py::array>(obj);
    } else {
        if (py::isinstance<py::str>(obj) || !py::isinstance<py::sequence>(obj))
            raise_type_error(std::string(what) + " must be a (batch, length) integer array, got " + type_name(obj));
        try {
            a = py::module_::import("numpy").attr("asarray")(obj);
        } catch (py::error_already_set& e) {
            if (!e.matches(PyExc_ValueError)) throw;
            raise_value_error(std::string(what) + " must be rectangular (pad every row to the same length): " +
                              e.what());
        }
        if (a.size() == 0) raise_value_error(std::string(what) + " is empty");
    }
    check_integer_dtype(a, what);
    if (a.ndim() != 1 && a.ndim() != 2)
        raise_value_error(std::string(what) + " must have shape (batch, length) or (length,), got shape " +
                          std::string(py::str(py::tuple(a.attr("shape")))));
    const auto c = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    if (!c) throw py::error_already_set();
    IdMatrix m;
    m.rows = a.ndim() == 2 ? static_cast<int>(a.shape(0)) : 1;
    m.cols = static_cast<int>(a.shape(a.ndim() - 1));
    if (m.rows == 0 || m.cols == 0)
        raise_value_error(std::string(what) + " is empty (shape " + std::string(py::str(py::tuple(a.attr("shape")))) +
                          ")");
    const int64_t* p = c.data();
    m.data.resize(static_cast<std::size_t>(c.size()));
    for (std::size_t i = 0; i < m.data.size(); ++i) {
        const auto r = i / static_cast<std::size_t>(m.cols), t = i % static_cast<std::size_t>(m.cols);
        check_range(p[i], lo, hi, also, what, "[" + std::to_string(r) + ", " + std::to_string(t) + "]");
        m.data[i] = static_cast<int32_t>(p[i]);
    }
    return m;
}

std::vector<std::string> strings_from_python(py::handle obj, const char* what) {
    if (py::isinstance<py::str>(obj)) return {obj.cast<std::string>()};
    if (!py::isinstance<py::sequence>(obj) && !py::isinstance<py::iterable>(obj))
        raise_type_error(std::string(what) + " must be a str or a list of str, got " + type_name(obj));
    std::vector<std::string> out;
    std::size_t i = 0;
    for (py::handle item : py::reinterpret_borrow<py::iterable>(obj)) {
        if (!py::isinstance<py::str>(item))
            raise_type_error(std::string(what) + " must hold str, got " + type_name(item) + " at position " +
                             std::to_string(i));
        out.push_back(item.cast<std::string>());
        ++i;
    }
    return out;
}

namespace {
std::mutex training_registry_mutex;
std::unordered_set<const void*> training_registry;
}  // namespace

void mark_training(const void* object, bool running) {
    std::lock_guard<std::mutex> lock(training_registry_mutex);
    if (running) training_registry.insert(object);
    else training_registry.erase(object);
}

bool is_training(const void* object) {
    std::lock_guard<std::mutex> lock(training_registry_mutex);
    return training_registry.count(object) != 0;
}

void require_not_training(const void* model, const char* what) {
    if (is_training(model))
        throw std::runtime_error(std::string(what) + ": this model is being trained by a running fit(); wait for "
                                 "it to return (or use trainer.to_masked_lm() for a copy)");
}

namespace {
PyObject* out_of_range_type = nullptr;  // pymlm.OutOfRangeError, alive as long as the module
}  // namespace

void bind_errors(py::module_& m) {
    auto& checkpoint_error = py::register_local_exception<mlm::CheckpointError>(m, "CheckpointError", PyExc_ValueError);
    checkpoint_error.doc() =
        "A checkpoint or tensor file that cannot be used as asked: corrupt or truncated, a tensor with the "
        "wrong name, dtype or shape, a tokenizer whose vocab does not match config.json, a damaged trainer state; "
        "or a checkpoint that cannot be written (disk full, permission denied: the one already there is then "
        "unchanged). The message names the file, the tensor and the problem. A subclass of ValueError. (A "
        "missing file or directory raises FileNotFoundError instead.)";

    // OutOfRangeError(ValueError, IndexError): made by hand, py::exception takes one base.
    PyObject* bases = PyTuple_Pack(2, PyExc_ValueError, PyExc_IndexError);
    out_of_range_type = PyErr_NewExceptionWithDoc(
        "pymlm._core.OutOfRangeError",
        "A token id outside the vocab, or a position outside a sentence. Both a ValueError and an "
        "IndexError, so either except clause catches it.",
        bases, nullptr);
    Py_DECREF(bases);
    if (!out_of_range_type) throw py::error_already_set();
    m.add_object("OutOfRangeError", py::handle(out_of_range_type));  // the module holds a reference too

    py::register_local_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::out_of_range& e) {
            PyErr_SetString(out_of_range_type, e.what());
        }
    });
}

}  // namespace pymlm
