// safetensors read/write and atomic file replacement (see include/mlm/safetensors.hpp).
#include <mlm/safetensors.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace mlm {

// ---- dtypes ----------------------------------------------------------------------------------

namespace {

struct DtypeName {
    Dtype dtype;
    const char* name;
    std::size_t size;
};

constexpr DtypeName dtype_table[] = {
    {Dtype::BOOL, "BOOL", 1},       {Dtype::U8, "U8", 1},     {Dtype::I8, "I8", 1},
    {Dtype::F8_E5M2, "F8_E5M2", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1},
    {Dtype::I16, "I16", 2},         {Dtype::U16, "U16", 2},   {Dtype::F16, "F16", 2},
    {Dtype::BF16, "BF16", 2},       {Dtype::I32, "I32", 4},   {Dtype::U32, "U32", 4},
    {Dtype::F32, "F32", 4},         {Dtype::I64, "I64", 8},   {Dtype::U64, "U64", 8},
    {Dtype::F64, "F64", 8},
};

const DtypeName& dtype_entry(Dtype d) {
    for (const auto& e : dtype_table)
        if (e.dtype == d) return e;
    throw std::invalid_argument("invalid mlm::Dtype value " + std::to_string(static_cast<int>(d)));
}

}  // namespace

const char* to_string(Dtype dtype) { return dtype_entry(dtype).name; }
std::size_t dtype_size(Dtype dtype) { return dtype_entry(dtype).size; }

std::optional<Dtype> dtype_from_string(const std::string& name) {
    for (const auto& e : dtype_table)
        if (name == e.name) return e.dtype;
    return std::nullopt;
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (std::size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

namespace detail {

namespace {

float half_to_float(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    if (exponent == 0x1f) {  // inf / nan
        bits = sign | 0x7f800000u | (mantissa << 13);
    } else if (exponent != 0) {  // normal
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {  // zero
        bits = sign;
    } else {  // subnormal: normalise
        uint32_t e = 113;
        while ((mantissa & 0x400u) == 0) {
            mantissa <<= 1;
            --e;
        }
        bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
    }
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

float bf16_to_float(uint16_t b) {
    const uint32_t bits = static_cast<uint32_t>(b) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
}

template <class Dst>
void convert_to(Dtype from, const void* src, Dst* dst, std::size_t n) {
    const auto* bytes = static_cast<const unsigned char*>(src);
    switch (from) {
        case Dtype::F16:
        case Dtype::BF16:
            for (std::size_t i = 0; i < n; ++i) {
                uint16_t v;
                std::memcpy(&v, bytes + 2 * i, 2);
                dst[i] = static_cast<Dst>(from == Dtype::F16 ? half_to_float(v) : bf16_to_float(v));
            }
            return;
        case Dtype::F32:
            for (std::size_t i = 0; i < n; ++i) {
                float v;
                std::memcpy(&v, bytes + 4 * i, 4);
                dst[i] = static_cast<Dst>(v);
            }
            return;
        case Dtype::F64:
            for (std::size_t i = 0; i < n; ++i) {
                double v;
                std::memcpy(&v, bytes + 8 * i, 8);
                dst[i] = static_cast<Dst>(v);
            }
            return;
        default:
            throw std::invalid_argument(std::string("convert_floats: cannot convert from ") +
                                        to_string(from));
    }
}

}  // namespace

void convert_floats(Dtype from, const void* src, Dtype to, void* dst, std::size_t n) {
    if (to == Dtype::F32) convert_to(from, src, static_cast<float*>(dst), n);
    else if (to == Dtype::F64) convert_to(from, src, static_cast<double*>(dst), n);
    else
        throw std::invalid_argument(std::string("convert_floats: cannot convert to ") +
                                    to_string(to));
}

}  // namespace detail


// ---- writer ----------------------------------------------------------------------------------

namespace {

// numel * element size, or nullopt on overflow or a negative dimension.
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, std::size_t elem_size) {
    uint64_t n = elem_size;
    for (int64_t d : shape) {
        if (d < 0) return std::nullopt;
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return std::nullopt;
    }
    return n;
}

}  // namespace

void SafetensorsWriter::add_entry(Entry e) {
    if (e.name == "__metadata__")
        throw std::invalid_argument("safetensors: \"__metadata__\" is reserved, not a tensor name");
    for (const auto& x : entries_)
        if (x.name == e.name)
            throw std::invalid_argument("safetensors: tensor \"" + e.name + "\" added twice");
    try {
        (void)nlohmann::json(e.name).dump();
    } catch (const nlohmann::json::exception&) {
        throw std::invalid_argument("safetensors: tensor name \"" + e.name +
                                    "\" is not valid UTF-8");
    }
    const auto nbytes = byte_size(e.shape, dtype_size(e.dtype));
    if (!nbytes)
        throw std::invalid_argument("safetensors: tensor \"" + e.name + "\" has an invalid shape " +
                                    shape_to_string(e.shape));
    if (e.owned && e.owned->size() != *nbytes)
        throw std::invalid_argument("safetensors: tensor \"" + e.name + "\" of shape " +
                                    shape_to_string(e.shape) + " and dtype " + to_string(e.dtype) +
                                    " needs " + std::to_string(*nbytes) + " bytes, got " +
                                    std::to_string(e.owned->size()));
    if (*nbytes > 0 && e.data == nullptr)
        throw std::invalid_argument("safetensors: tensor \"" + e.name + "\" has no data");
    e.nbytes = static_cast<std::size_t>(*nbytes);
    entries_.push_back(std::move(e));
}

void SafetensorsWriter::add(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
                            const void* data) {
    add_entry({name, dtype, std::move(shape), data, 0, nullptr});
}

void SafetensorsWriter::add(const std::string& name, Dtype dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
    auto owned = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
    const void* data = owned->data();
    add_entry({name, dtype, std::move(shape), data, 0, std::move(owned)});
}

// File order: element size descending, insertion order within a size. Every tensor then starts
// at a multiple of its element size without padding between tensors.
std::vector<const SafetensorsWriter::Entry*> SafetensorsWriter::ordered() const {
    std::vector<const Entry*> order;
    for (const auto& e : entries_) order.push_back(&e);
    std::stable_sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
        return dtype_size(a->dtype) > dtype_size(b->dtype);
    });
    return order;
}

std::vector<StoredTensor> SafetensorsWriter::layout() const {
    std::vector<StoredTensor> out;
    uint64_t offset = 0;
    for (const Entry* e : ordered()) {
        out.push_back({e->name, e->dtype, e->shape, offset, offset + e->nbytes});
        offset += e->nbytes;
    }
    return out;
}

std::string SafetensorsWriter::header() const {
    nlohmann::ordered_json j = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
        auto& meta = j["__metadata__"];
        meta = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata_) meta[k] = v;
    }
    for (const auto& t : layout()) {
        nlohmann::ordered_json entry;
        entry["dtype"] = to_string(t.dtype);
        entry["shape"] = t.shape;
        entry["data_offsets"] = {t.data_begin, t.data_end};
        j[t.name] = std::move(entry);
    }
    std::string text;
    try {
        text = j.dump();
    } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(std::string("safetensors: metadata is not valid UTF-8: ") +
                                    e.what());
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
}

void SafetensorsWriter::write(const std::string& path) const {
    const std::string head = header();
    unsigned char length[8];
    const uint64_t n = head.size();
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(n >> (8 * i));
    detail::AtomicFile file(path);
    file.write(length, sizeof length);
    file.write(head.data(), head.size());
    for (const Entry* e : ordered()) file.write(e->data, e->nbytes);
    file.commit();
}

// ---- reader ----------------------------------------------------------------------------------

namespace {

[[noreturn]] void fail_file(const std::string& path, const std::string& problem) {
    throw CheckpointError(path + ": " + problem);
}

[[noreturn]] void fail_tensor(const std::string& path, const std::string& name,
                              const std::string& problem) {
    throw CheckpointError(path + ": tensor \"" + name + "\": " + problem);
}

const char* const not_safetensors_hint =
    "; the file is truncated, corrupt or not a safetensors file";

}  // namespace

SafetensorsFile::SafetensorsFile(SafetensorsFile&& other) noexcept { *this = std::move(other); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(other.path_);
        fd_ = std::exchange(other.fd_, -1);
        file_size_ = other.file_size_;
        data_start_ = other.data_start_;
        tensors_ = std::move(other.tensors_);
        index_ = std::move(other.index_);
        metadata_ = std::move(other.metadata_);
    }
    return *this;
}

SafetensorsFile::~SafetensorsFile() {
    if (fd_ >= 0) ::close(fd_);
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile f;
    f.path_ = path;
    f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd_ < 0) fail_file(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(f.fd_, &st) != 0) fail_file(path, std::string("cannot stat: ") + std::strerror(errno));
    if (S_ISDIR(st.st_mode)) fail_file(path, "is a directory, not a safetensors file");
    f.file_size_ = static_cast<uint64_t>(st.st_size);

    // 1. The header length.
    if (f.file_size_ < 8)
        fail_file(path, "file is " + std::to_string(f.file_size_) +
                            " bytes, too short for the 8-byte header length" + not_safetensors_hint);
    unsigned char length_bytes[8];
    f.read_range(0, 8, length_bytes, "");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | length_bytes[i];
    if (header_len > f.file_size_ - 8)
        fail_file(path, "header length " + std::to_string(header_len) + " exceeds the " +
                            std::to_string(f.file_size_ - 8) + " bytes after it in the file" +
                            not_safetensors_hint);
    if (header_len > max_header_bytes)
        fail_file(path, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                            std::to_string(max_header_bytes) + " bytes" + not_safetensors_hint);
    f.data_start_ = 8 + header_len;
    const uint64_t data_size = f.file_size_ - f.data_start_;

    // 2. The header JSON: an object without duplicate keys.
    std::string text(static_cast<std::size_t>(header_len), '\0');
    f.read_range(8, header_len, text.data(), "");
    if (text.empty() || text[0] != '{')
        fail_file(path, "header does not start with '{'" + std::string(not_safetensors_hint));
    std::set<std::string> seen;
    std::string duplicate;
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(
            text, [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
                if (event == nlohmann::json::parse_event_t::key && depth == 1 &&
                    !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
                    duplicate = parsed.get<std::string>();
                return true;
            });
    } catch (const nlohmann::json::exception& e) {
        fail_file(path, std::string("header is not valid JSON (") + e.what() + ")" +
                            not_safetensors_hint);
    }
    if (!header.is_object()) fail_file(path, "header is not a JSON object" + std::string(not_safetensors_hint));
    if (!duplicate.empty()) fail_tensor(path, duplicate, "appears twice in the header");

    // 3. Every entry.
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const auto& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) fail_file(path, "__metadata__ is not a JSON object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    fail_file(path, "__metadata__ value of \"" + m.key() +
                                        "\" is not a string (safetensors metadata maps strings "
                                        "to strings)");
                f.metadata_[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        if (!v.is_object()) fail_tensor(path, name, "header entry is not a JSON object");
        StoredTensor t;
        t.name = name;

        const auto dt = v.find("dtype");
        if (dt == v.end() || !dt->is_string()) fail_tensor(path, name, "no \"dtype\" string");
        const auto dtype = dtype_from_string(dt->get<std::string>());
        if (!dtype) fail_tensor(path, name, "unknown dtype \"" + dt->get<std::string>() + "\"");
        t.dtype = *dtype;

        const auto sh = v.find("shape");
        if (sh == v.end() || !sh->is_array()) fail_tensor(path, name, "no \"shape\" array");
        for (const auto& d : *sh) {
            if (!d.is_number_unsigned() ||
                d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                fail_tensor(path, name, "shape " + sh->dump() +
                                            " must hold non-negative integers");
            t.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
        }

        const auto off = v.find("data_offsets");
        if (off == v.end() || !off->is_array() || off->size() != 2 ||
            !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned())
            fail_tensor(path, name, "\"data_offsets\" must be two non-negative integers [begin, end]");
        t.data_begin = (*off)[0].get<uint64_t>();
        t.data_end = (*off)[1].get<uint64_t>();
        const std::string offsets_text =
            "data_offsets [" + std::to_string(t.data_begin) + ", " + std::to_string(t.data_end) + "]";
        if (t.data_begin > t.data_end) fail_tensor(path, name, offsets_text + " end before they begin");
        if (t.data_end > data_size)
            fail_tensor(path, name, offsets_text + " run past the end of the data section (" +
                                        std::to_string(data_size) + " bytes)" + not_safetensors_hint);
        const auto nbytes = byte_size(t.shape, dtype_size(t.dtype));
        if (!nbytes)
            fail_tensor(path, name, "shape " + shape_to_string(t.shape) + " is too large");
        if (*nbytes != t.nbytes())
            fail_tensor(path, name, offsets_text + " hold " + std::to_string(t.nbytes()) +
                                        " bytes but shape " + shape_to_string(t.shape) + " of " +
                                        to_string(t.dtype) + " needs " + std::to_string(*nbytes));
        f.tensors_.push_back(std::move(t));
    }

    // 4. No two tensors share a byte.
    std::sort(f.tensors_.begin(), f.tensors_.end(), [](const StoredTensor& a, const StoredTensor& b) {
        return std::tie(a.data_begin, a.data_end, a.name) < std::tie(b.data_begin, b.data_end, b.name);
    });
    const StoredTensor* previous = nullptr;
    for (const auto& t : f.tensors_) {
        if (t.nbytes() == 0) continue;
        if (previous && t.data_begin < previous->data_end)
            fail_tensor(path, t.name,
                        "data_offsets [" + std::to_string(t.data_begin) + ", " +
                            std::to_string(t.data_end) + "] overlap those of \"" + previous->name +
                            "\" [" + std::to_string(previous->data_begin) + ", " +
                            std::to_string(previous->data_end) + "]");
        previous = &t;
    }
    for (std::size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
    return f;
}

std::vector<std::string> SafetensorsFile::names() const {
    std::vector<std::string> out;
    for (const auto& t : tensors_) out.push_back(t.name);
    return out;
}

const StoredTensor& SafetensorsFile::info(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
        fail_tensor(path_, name, "not in the file (it has " + std::to_string(tensors_.size()) +
                                     " tensors)");
    return tensors_[it->second];
}

void SafetensorsFile::read_range(uint64_t begin, uint64_t nbytes, void* dst,
                                 const std::string& name) const {
    char* p = static_cast<char*>(dst);
    const std::string what = name.empty() ? path_ : path_ + ": tensor \"" + name + "\"";
    while (nbytes > 0) {
        const std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(nbytes, 1u << 30));
        const ssize_t r = ::pread(fd_, p, chunk, static_cast<off_t>(begin));
        if (r < 0) {
            if (errno == EINTR) continue;
            throw CheckpointError(what + ": read failed: " + std::strerror(errno));
        }
        if (r == 0)
            throw CheckpointError(what + ": the file ended early (was it changed while open?)");
        p += r;
        begin += static_cast<uint64_t>(r);
        nbytes -= static_cast<uint64_t>(r);
    }
}

std::vector<uint8_t> SafetensorsFile::read_bytes(const std::string& name) const {
    const StoredTensor& t = info(name);
    std::vector<uint8_t> out(static_cast<std::size_t>(t.nbytes()));
    read_range(data_start_ + t.data_begin, t.nbytes(), out.data(), name);
    return out;
}

void SafetensorsFile::read_checked(const std::string& name, Dtype want, void* dst,
                                   const std::vector<int64_t>* expected_shape,
                                   bool convert) const {
    const StoredTensor& t = info(name);
    if (expected_shape && *expected_shape != t.shape)
        fail_tensor(path_, name, "shape " + shape_to_string(t.shape) + " in the file, " +
                                     shape_to_string(*expected_shape) + " expected");
    if (t.numel() > 0 && dst == nullptr)
        throw std::invalid_argument("SafetensorsFile::read_into: null destination for \"" + name + "\"");
    if (t.dtype == want) {
        read_range(data_start_ + t.data_begin, t.nbytes(), dst, name);
        return;
    }
    const bool floats = detail::is_float(t.dtype) && (want == Dtype::F32 || want == Dtype::F64);
    if (!convert || !floats)
        fail_tensor(path_, name,
                    std::string("dtype ") + to_string(t.dtype) + " in the file, " +
                        to_string(want) + " expected" +
                        (floats ? " (pass convert=true to convert between float types)" : ""));
    const std::vector<uint8_t> raw = read_bytes(name);
    detail::convert_floats(t.dtype, raw.data(), want, dst, static_cast<std::size_t>(t.numel()));
}

}  // namespace mlm
