// mlm/safetensors.hpp — read and write safetensors files, validating before any data is touched.
//
// The format (https://github.com/huggingface/safetensors): an 8-byte little-endian unsigned header
// length N, then N bytes of UTF-8 JSON, then the raw little-endian row-major tensor data:
//   {"__metadata__": {"format": "pt"},
//    "embedding.class_embedding.weight": {"dtype": "F32", "shape": [64, 32], "data_offsets": [0, 8192]},
//    ...}
//
// data_offsets are [begin, end) byte offsets relative to the start of the data section (8 + N).
//
// Writing:
//
//   mlm::SafetensorsWriter w;
//   w.add("weight", {3, 4}, weights.data());       // float* -> F32; the data is borrowed, not copied
//   w.add("step", {1}, &step);                     // int64_t* -> I64
//   w.set_metadata("format", "pt");
//   w.write("state.safetensors");                  // atomic: temp file, fsync, rename, fsync dir
//
// Reading:
//
//   auto f = mlm::SafetensorsFile::open("state.safetensors");   // validates the whole header
//   f.info("weight").shape;                                     // {3, 4}
//   f.read_into("weight", buf.data(), {3, 4});                  // checks dtype and shape
//   std::vector<int64_t> step = f.read<int64_t>("step");
//
// Every problem with a file (truncated, bad header, wrong dtype or shape, missing tensor, I/O
// failure) throws mlm::CheckpointError naming the file, the tensor and the problem. Misuse by the
// caller (a duplicate name on write, a null pointer) throws std::invalid_argument.
//
// What the writer produces: the JSON header holds `__metadata__` (when not empty) first, then the
// tensors in data order; it is padded with spaces so the data section starts at a multiple of 8.
// Tensors are ordered by element size, largest first (stable: insertion order within a size), and
// packed without gaps, so every tensor starts at a multiple of its element size and the file is
// byte-for-byte what the reference implementation accepts (it requires the tensors to cover the
// data section without holes). The reader is more lenient: gaps are allowed, overlaps are not.
//
// The reader keeps the file open and reads each tensor with pread() straight into the caller's
// buffer (no copy of the whole file in memory); reads from several threads are safe.
// Host byte order must be little-endian (checked at compile time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "file_io.hpp"  // CheckpointError, write_file_atomic, read_file

namespace mlm {

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "mlm's safetensors I/O assumes a little-endian host"
#endif

// The element types of safetensors, spelled as in the file.
enum class Dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

const char* to_string(Dtype dtype);
std::optional<Dtype> dtype_from_string(const std::string& name);  // nullopt for an unknown name
std::size_t dtype_size(Dtype dtype);                               // bytes per element

// The Dtype of a C++ element type: dtype_of<float>() == Dtype::F32.
template <class T>
constexpr Dtype dtype_of() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, float>) return Dtype::F32;
    else if constexpr (std::is_same_v<U, double>) return Dtype::F64;
    else if constexpr (std::is_same_v<U, bool>) return Dtype::BOOL;
    else if constexpr (std::is_same_v<U, int8_t>) return Dtype::I8;
    else if constexpr (std::is_same_v<U, uint8_t>) return Dtype::U8;
    else if constexpr (std::is_same_v<U, int16_t>) return Dtype::I16;
    else if constexpr (std::is_same_v<U, uint16_t>) return Dtype::U16;
    else if constexpr (std::is_same_v<U, int32_t>) return Dtype::I32;
    else if constexpr (std::is_same_v<U, uint32_t>) return Dtype::U32;
    else if constexpr (std::is_same_v<U, int64_t>) return Dtype::I64;
    else if constexpr (std::is_same_v<U, uint64_t>) return Dtype::U64;
    else static_assert(sizeof(U) == 0, "no safetensors dtype for this element type");
}

// "[64, 32]": a shape for messages.
std::string shape_to_string(const std::vector<int64_t>& shape);

// One tensor of a safetensors header.
struct StoredTensor {
    std::string name;
    Dtype dtype = Dtype::F32;
    std::vector<int64_t> shape;
    uint64_t data_begin = 0;  // [begin, end) in bytes, relative to the data section
    uint64_t data_end = 0;

    uint64_t nbytes() const { return data_end - data_begin; }
    uint64_t numel() const { return nbytes() / dtype_size(dtype); }
};

class SafetensorsWriter {
public:
    // Adds a tensor whose row-major little-endian data (numel * dtype_size bytes) starts at
    // `data`. The memory is borrowed: it must stay valid and unchanged until write() returns.
    void add(const std::string& name, Dtype dtype, std::vector<int64_t> shape, const void* data);
    // The same, taking ownership of the bytes.
    void add(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
             std::vector<uint8_t> bytes);
    template <class T>
    void add(const std::string& name, std::vector<int64_t> shape, const T* data) {
        add(name, dtype_of<T>(), std::move(shape), static_cast<const void*>(data));
    }

    void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // The tensors in file order, with their data_offsets.
    std::vector<StoredTensor> layout() const;
    // The header as written: JSON padded with spaces to a multiple of 8 bytes (without the
    // 8-byte length in front).
    std::string header() const;
    // Writes the file atomically: to `path + ".tmp-<pid>"` in the same directory, fsync, rename
    // over `path`, fsync the directory. On failure the temporary file is removed, an existing
    // file at `path` is left untouched, and CheckpointError is thrown.
    void write(const std::string& path) const;

private:
    struct Entry {
        std::string name;
        Dtype dtype;
        std::vector<int64_t> shape;
        const void* data;
        std::size_t nbytes;
        std::shared_ptr<std::vector<uint8_t>> owned;
    };
    void add_entry(Entry e);
    std::vector<const Entry*> ordered() const;

    std::vector<Entry> entries_;
    std::map<std::string, std::string> metadata_;
};

class SafetensorsFile {
public:
    static constexpr uint64_t max_header_bytes = 100u << 20;  // 100 MB, as the reference library

    // Opens and validates the file: size, header length, JSON, every entry's dtype, shape and
    // offsets, no overlaps. Throws CheckpointError on the first problem.
    static SafetensorsFile open(const std::string& path);

    SafetensorsFile(SafetensorsFile&& other) noexcept;
    SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;
    ~SafetensorsFile();

    const std::string& path() const { return path_; }
    uint64_t file_size() const { return file_size_; }
    uint64_t data_start() const { return data_start_; }  // 8 + header length
    std::vector<std::string> names() const;                // in data order
    const std::vector<StoredTensor>& tensors() const { return tensors_; }  // in data order
    bool has(const std::string& name) const { return index_.count(name) != 0; }
    const StoredTensor& info(const std::string& name) const;  // throws CheckpointError if absent
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // Reads tensor `name` into dst (numel elements), after checking its shape against
    // `expected_shape` and its dtype against T. With convert = true a floating-point tensor
    // (F16, BF16, F32, F64) may be read into float or double; without it the dtypes must match.
    template <class T>
    void read_into(const std::string& name, T* dst, const std::vector<int64_t>& expected_shape,
                   bool convert = false) const {
        read_checked(name, dtype_of<T>(), dst, &expected_shape, convert);
    }
    // The whole tensor, any shape.
    template <class T>
    std::vector<T> read(const std::string& name, bool convert = false) const {
        std::vector<T> out(static_cast<std::size_t>(info(name).numel()));
        read_checked(name, dtype_of<T>(), out.data(), nullptr, convert);
        return out;
    }
    // The same, untyped: dst holds numel elements of `dtype`.
    void read_into(const std::string& name, Dtype dtype, void* dst,
                   const std::vector<int64_t>& expected_shape, bool convert = false) const {
        read_checked(name, dtype, dst, &expected_shape, convert);
    }
    // The stored bytes of tensor `name`, whatever its dtype.
    std::vector<uint8_t> read_bytes(const std::string& name) const;

private:
    SafetensorsFile() = default;
    void read_checked(const std::string& name, Dtype want, void* dst,
                      const std::vector<int64_t>* expected_shape, bool convert) const;
    void read_range(uint64_t begin, uint64_t nbytes, void* dst, const std::string& name) const;

    std::string path_;
    int fd_ = -1;
    uint64_t file_size_ = 0;
    uint64_t data_start_ = 0;
    std::vector<StoredTensor> tensors_;
    std::map<std::string, std::size_t> index_;
    std::map<std::string, std::string> metadata_;
};

namespace detail {
// Converts n floating-point elements (F16, BF16, F32, F64) to F32 or F64.
void convert_floats(Dtype from, const void* src, Dtype to, void* dst, std::size_t n);
inline bool is_float(Dtype d) {
    return d == Dtype::F16 || d == Dtype::BF16 || d == Dtype::F32 || d == Dtype::F64;
}
}  // namespace detail

}  // namespace mlm
