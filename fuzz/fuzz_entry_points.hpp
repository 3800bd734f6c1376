// fuzz/fuzz_entry_points.hpp — mlm's input surfaces as plain functions of arbitrary bytes.
//
// Shared by the libFuzzer targets (fuzz/fuzz_*.cpp, one per surface) and the regression test
// (tests/test_fuzz_regressions.cpp), so the two run exactly the same code on an input:
//
//   mlm::fuzz::Outcome o = mlm::fuzz::safetensors_file(data, size);   // accepted or rejected
//
// Each function feeds the bytes to the library through its public API and returns `accepted`
// when the library took them, `rejected` when it refused them with the exception type its
// header documents for bad input (and only that type: anything else escapes and is a finding).
// Beyond "no crash", every function checks what the library promises about the result (a loaded
// tensor holds the file's bytes, a rejected checkpoint left the buffer untouched, an undamaged
// gzip stream gives back exactly its lines, ...); a broken promise throws BrokenInvariant, which
// nothing catches.
//
// Files are written under a private scratch directory: $MLM_FUZZ_SCRATCH if set, else /dev/shm
// (memory: the loaders read files, and a fuzzer writes one per input) or the temp directory.
#pragma once

#include <mlm/checkpoint.hpp>
#include <mlm/config.hpp>
#include <mlm/data.hpp>
#include <mlm/parameters.hpp>
#include <mlm/safetensors.hpp>
#include <mlm/tokenizer.hpp>

#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#ifndef MLM_SOURCE_DIR
#error "MLM_SOURCE_DIR must name the repository (the tokenizer models are read from there)"
#endif

namespace mlm::fuzz {

enum class Outcome { accepted, rejected };

// The library broke one of its documented promises on this input.
class BrokenInvariant : public std::exception {
public:
    explicit BrokenInvariant(std::string what) : what_(std::move(what)) {}
    const char* what() const noexcept override { return what_.c_str(); }

private:
    std::string what_;
};

inline void require(bool ok, const std::string& what) {
    if (!ok) throw BrokenInvariant("fuzz invariant broken: " + what);
}

// ---- scratch files ---------------------------------------------------------------------------

class Scratch {
public:
    Scratch() {
        namespace fs = std::filesystem;
        std::string base;
        if (const char* env = std::getenv("MLM_FUZZ_SCRATCH"); env && *env) base = env;
        else if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
        else base = fs::temp_directory_path().string();
        std::string pattern = base + "/mlm-fuzz-XXXXXX";
        if (!::mkdtemp(pattern.data()))
            throw std::runtime_error("fuzz: cannot create a scratch directory in " + base + ": " +
                                     std::strerror(errno));
        dir_ = pattern;
    }
    ~Scratch() {
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

    const std::string& dir() const { return dir_; }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

    // (Re)writes scratch file `name` with the bytes; returns its path.
    std::string write(const std::string& name, const void* data, std::size_t size) const {
        const std::string p = path(name);
        const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) throw std::runtime_error("fuzz: cannot write " + p + ": " + std::strerror(errno));
        const char* c = static_cast<const char*>(data);
        while (size > 0) {
            const ssize_t w = ::write(fd, c, size);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                ::close(fd);
                throw std::runtime_error("fuzz: writing " + p + " failed");
            }
            c += w;
            size -= static_cast<std::size_t>(w);
        }
        ::close(fd);
        return p;
    }
    std::string write(const std::string& name, std::string_view bytes) const {
        return write(name, bytes.data(), bytes.size());
    }

private:
    std::string dir_;
};

// One scratch directory per process, removed at exit.
inline const Scratch& scratch() {
    static const Scratch s;
    return s;
}

inline bool is_valid_utf8(std::string_view s) {
    std::string unused;
    return !detail::sanitize_utf8(s, unused);
}

// ---- safetensors ------------------------------------------------------------------------------

// The bytes as a safetensors file: open (validates the header), then read every tensor raw, in its
// own dtype, converted, and with a wrong shape; then write it back and read the copy.
// Documented rejection: mlm::CheckpointError.
inline Outcome safetensors_file(const uint8_t* data, std::size_t size) {
    const std::string path = scratch().write("fuzz.safetensors", data, size);
    try {
        const auto file = SafetensorsFile::open(path);
        require(file.file_size() == size, "file_size() differs from the bytes written");
        require(file.data_start() >= 8 && file.data_start() <= size, "data_start() outside the file");
        const uint64_t data_size = size - file.data_start();
        SafetensorsWriter copy;
        for (const auto& [key, value] : file.metadata()) copy.set_metadata(key, value);
        for (const StoredTensor& t : file.tensors()) {
            require(t.data_begin <= t.data_end && t.data_end <= data_size,
                    "tensor \"" + t.name + "\" accepted with offsets outside the data section");
            require(file.has(t.name) && &file.info(t.name) == &t, "info() does not find \"" + t.name + "\"");
            uint64_t numel = 1;
            for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);  // nbytes bounds it: no overflow
            require(numel * dtype_size(t.dtype) == t.nbytes(), "\"" + t.name + "\": shape and offsets disagree");

            // Raw bytes are the file's bytes.
            const std::vector<uint8_t> raw = file.read_bytes(t.name);
            require(raw.size() == t.nbytes() &&
                        std::equal(raw.begin(), raw.end(), data + file.data_start() + t.data_begin),
                    "read_bytes(\"" + t.name + "\") differs from the file");
            // A wrong shape or a non-float dtype into float is refused before anything is read.
            std::vector<int64_t> wrong = t.shape;
            wrong.push_back(1);
            float sink = 0;
            bool refused = false;
            try {
                file.read_into(t.name, &sink, wrong);
            } catch (const CheckpointError&) {
                refused = true;
            }
            require(refused, "read_into(\"" + t.name + "\") accepted a wrong shape");
            if (detail::is_float(t.dtype)) {
                const std::vector<float> f = file.read<float>(t.name, /*convert=*/true);
                const std::vector<double> d = file.read<double>(t.name, /*convert=*/true);
                require(f.size() == numel && d.size() == numel, "\"" + t.name + "\": converted size");
                if (t.dtype == Dtype::F32)
                    require(numel == 0 || std::memcmp(f.data(), raw.data(), raw.size()) == 0,
                            "\"" + t.name + "\": F32 read as float differs from its bytes");
            } else {
                refused = false;
                try {
                    (void)file.read<float>(t.name, /*convert=*/true);
                } catch (const CheckpointError&) {
                    refused = true;
                }
                require(refused, "\"" + t.name + "\": " + to_string(t.dtype) + " read as float");
            }
            copy.add(t.name, t.dtype, t.shape, raw);
        }

        // What was read can be written and reads back the same.
        const std::string copy_path = scratch().path("fuzz-copy.safetensors");
        copy.write(copy_path);
        const auto again = SafetensorsFile::open(copy_path);
        require(again.metadata() == file.metadata(), "metadata changed in a write/read round trip");
        require(again.tensors().size() == file.tensors().size(), "tensor count changed in a round trip");
        for (const StoredTensor& t : file.tensors()) {
            const StoredTensor& u = again.info(t.name);
            require(u.dtype == t.dtype && u.shape == t.shape && again.read_bytes(t.name) == file.read_bytes(t.name),
                    "\"" + t.name + "\" changed in a write/read round trip");
        }
        return Outcome::accepted;
    } catch (const CheckpointError&) {
        return Outcome::rejected;
    }
}

// ---- model checkpoints ------------------------------------------------------------------------

// The small model whose checkpoint the fuzzer forges (make_fuzz_seeds writes valid ones).
inline ModelConfig checkpoint_config() {
    ModelConfig c;
    c.vocab_size = 8;
    c.dim = 4;
    c.n_heads = 2;
    c.n_layers = 1;
    c.ffn_mult = 2;
    c.max_len = 4;
    return c;
}

namespace detail_ {

template <class T>
std::vector<T> poisoned(std::size_t n) {
    return std::vector<T>(n, static_cast<T>(-12345.0));
}

template <class T>
bool untouched(const std::vector<T>& v) {
    return std::all_of(v.begin(), v.end(), [](T x) { return x == static_cast<T>(-12345.0); });
}

// load_model_params<T>: accepted -> every tensor holds the file's values; rejected -> nothing
// was written (the header's promise: all checks come before the first read).
template <class T>
Outcome load_model_as(const std::string& dir, const ModelConfig& config) {
    const ParameterLayout layout(config);
    std::vector<T> params = poisoned<T>(layout.size());
    try {
        load_model_params(dir, config, params.data());
    } catch (const CheckpointError&) {
        require(untouched(params), "load_model_params wrote to params, then refused the file");
        return Outcome::rejected;
    }
    const auto file = SafetensorsFile::open(dir + "/" + checkpoint_model_file);
    for (const TensorInfo& t : layout.tensors()) {
        const std::vector<T> want = file.read<T>(t.name, /*convert=*/true);
        require(std::equal(want.begin(), want.end(), params.begin() + static_cast<std::ptrdiff_t>(t.offset),
                           [](T a, T b) { return a == b || (std::isnan(a) && std::isnan(b)); }),
                "load_model_params: \"" + t.name + "\" differs from the file");
    }
    return Outcome::accepted;
}

// load_tensors into slots laid out like the model's parameters; same promise.
inline Outcome load_slots(const std::string& path, const ModelConfig& config, bool convert, bool allow_extra) {
    const ParameterLayout layout(config);
    std::vector<float> buffer = poisoned<float>(layout.size());
    TensorLoadOptions options;
    options.convert = convert;
    options.allow_extra = allow_extra;
    try {
        (void)load_tensors(path, layout_slots(layout, buffer.data()), options);
    } catch (const CheckpointError&) {
        require(untouched(buffer), "load_tensors wrote to a slot, then refused the file");
        return Outcome::rejected;
    }
    return Outcome::accepted;
}

}  // namespace detail_

// The bytes as model.safetensors of a checkpoint of checkpoint_config(): load_model_params into
// float and double, and load_tensors with and without conversion. Documented rejection:
// mlm::CheckpointError.
inline Outcome checkpoint_model(const uint8_t* data, std::size_t size) {
    const Scratch& s = scratch();
    const std::string dir = s.path("checkpoint");
    static const bool made = [&] {
        std::filesystem::create_directories(dir);
        s.write("checkpoint/config.json", to_json(checkpoint_config()));
        return true;
    }();
    (void)made;
    const std::string path = s.write(std::string("checkpoint/") + checkpoint_model_file, data, size);
    const ModelConfig config = load_config(dir);
    const Outcome as_float = detail_::load_model_as<float>(dir, config);
    const Outcome as_double = detail_::load_model_as<double>(dir, config);
    // A head equal to the embedding in double is equal in float; not always the other way round
    // (an F64 head that differs only below float precision), so only one direction is checked.
    require(!(as_double == Outcome::accepted && as_float == Outcome::rejected),
            "load_model_params<float> refused what <double> accepted");
    (void)detail_::load_slots(path, config, /*convert=*/false, /*allow_extra=*/false);
    (void)detail_::load_slots(path, config, /*convert=*/true, /*allow_extra=*/true);
    return as_float;
}

// ---- config.json --------------------------------------------------------------------------------

inline bool same_config(const ModelConfig& a, const ModelConfig& b) {
    return a.vocab_size == b.vocab_size && a.dim == b.dim && a.n_heads == b.n_heads &&
           a.n_layers == b.n_layers && a.ffn_mult == b.ffn_mult && a.max_len == b.max_len &&
           std::memcmp(&a.dropout, &b.dropout, sizeof a.dropout) == 0 &&
           std::memcmp(&a.norm_eps, &b.norm_eps, sizeof a.norm_eps) == 0 && a.unk_id == b.unk_id &&
           a.pad_id == b.pad_id && a.mask_id == b.mask_id && a.norm_placement == b.norm_placement &&
           std::memcmp(&a.init_std, &b.init_std, sizeof a.init_std) == 0;
}

// The bytes as config.json: model_config_from_json (std::invalid_argument), the same through a
// checkpoint directory with load_config (mlm::CheckpointError), the to_json round trip, that every
// key holds exactly the number written, and the parameter layout of an accepted config.
inline Outcome config_json(const uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const Scratch& s = scratch();
    static const bool made = [&] {
        std::filesystem::create_directories(s.path("config"));
        return true;
    }();
    (void)made;
    s.write("config/config.json", text);

    ModelConfig config;
    try {
        config = model_config_from_json(text);
    } catch (const std::invalid_argument&) {
        bool refused = false;
        try {
            (void)load_config(s.path("config"));
        } catch (const CheckpointError&) {
            refused = true;
        }
        require(refused, "load_config accepted what model_config_from_json refused");
        return Outcome::rejected;
    }
    require(same_config(load_config(s.path("config")), config), "load_config differs from model_config_from_json");
    config.validate();  // an accepted config is valid: throws nothing
    require(same_config(model_config_from_json(to_json(config)), config), "to_json round trip changed the config");

    // Each key of the file holds exactly the value the config reports (no silent wrap-around or
    // rounding to a different number).
    const nlohmann::json j = nlohmann::json::parse(text);
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        const nlohmann::json& v = it.value();
        const auto int_field = [&](int field) {
            require(v.is_number_integer() && (v.is_number_unsigned() ? v.get<uint64_t>() == static_cast<uint64_t>(field) && field >= 0
                                                                     : v.get<int64_t>() == field),
                    "\"" + key + "\": " + v.dump() + " was read as " + std::to_string(field));
        };
        if (key == "vocab_size") int_field(config.vocab_size);
        else if (key == "dim") int_field(config.dim);
        else if (key == "n_heads") int_field(config.n_heads);
        else if (key == "n_layers") int_field(config.n_layers);
        else if (key == "ffn_mult") int_field(config.ffn_mult);
        else if (key == "max_len") int_field(config.max_len);
        else if (key == "unk_id") int_field(config.unk_id);
        else if (key == "pad_id") int_field(config.pad_id);
        else if (key == "mask_id") int_field(config.mask_id);
    }

    // What a program does next with a loaded config: lay out its parameters. The layout must fit
    // in memory and add up.
    const ParameterLayout layout(config);
    std::size_t total = 0;
    for (const TensorInfo& t : layout.tensors()) {
        require(t.offset == total, "parameter offsets are not contiguous");
        std::size_t n = 1;
        for (int64_t d : t.shape) {
            require(d > 0 && !__builtin_mul_overflow(n, static_cast<std::size_t>(d), &n),
                    "\"" + t.name + "\": shape " + shape_to_string(t.shape) + " overflows");
        }
        require(n == t.numel, "\"" + t.name + "\": numel differs from its shape");
        require(!__builtin_add_overflow(total, n, &total), "the parameter count overflows");
    }
    require(total == layout.size(), "ParameterLayout::size() differs from the sum of its tensors");
    return Outcome::accepted;
}

// ---- tokenizer ----------------------------------------------------------------------------------

// The two models the tokenizer_encode target encodes with, trained once per process from the
// first 600 lines of data/wiki-valid-2k.txt (training is deterministic: every run, and the
// regression test, gets the same models; a model file would be mostly sentencepiece's 240 KB
// normalization table). 0: unigram, lower-cased, accents stripped; 1: BPE, cased.
inline Tokenizer train_fuzz_tokenizer(int which) {
    std::vector<std::string> lines;
    LineReader reader(std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt");
    std::string line;
    while (lines.size() < 600 && reader.next(line)) lines.push_back(line);
    TokenizerTrainOptions o;
    o.vocab_size = 400;
    o.model = which == 0 ? TokenizerModel::unigram : TokenizerModel::bpe;
    o.lower_case = which == 0;
    o.strip_accents = which == 0;
    return Tokenizer::train_from_sentences(lines, o);
}

inline const Tokenizer& fuzz_tokenizer(int which) {
    static const Tokenizer models[2] = {train_fuzz_tokenizer(0), train_fuzz_tokenizer(1)};
    return models[which];
}

inline std::size_t count_masks(std::string_view text) {
    std::size_t n = 0;
    for (std::size_t at = text.find("[MASK]"); at != std::string_view::npos; at = text.find("[MASK]", at + 6)) ++n;
    return n;
}

// The bytes as text to encode, with both models: ids in the vocab, one mask id per literal
// "[MASK]" of the normalized text, truncation is a prefix, the batch path agrees, decode and the
// pieces work on the result. encode documents no exception for any bytes: none is caught.
inline Outcome tokenizer_encode(const uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    for (int which = 0; which < 2; ++which) {
        const Tokenizer& tok = fuzz_tokenizer(which);
        const std::vector<int32_t> ids = tok.encode(text, 0);
        std::string sanitized;
        std::string normalized = detail::sanitize_utf8(text, sanitized) ? sanitized : std::string(text);
        require(is_valid_utf8(normalized), "sanitize_utf8 left invalid UTF-8");
        if (tok.strip_accents()) normalized = detail::strip_accents(normalized);
        require(is_valid_utf8(normalized), "strip_accents made invalid UTF-8");
        std::size_t masks = 0;
        for (int32_t id : ids) {
            require(id >= 0 && id < tok.vocab_size(), "encode gave id " + std::to_string(id) + " outside the vocab");
            require(id != tok.pad_id(), "encode gave the pad id");
            masks += id == tok.mask_id();
        }
        require(masks == count_masks(normalized), "encode gave " + std::to_string(masks) + " mask ids for " +
                                                      std::to_string(count_masks(normalized)) + " [MASK]");
        const std::vector<int32_t> cut = tok.encode(text, 5);
        require(cut.size() == std::min<std::size_t>(ids.size(), 5) && std::equal(cut.begin(), cut.end(), ids.begin()),
                "encode with max_length 5 is not a prefix of the full encoding");
        const auto batch = tok.encode_batch({std::string(text), std::string()}, 0);
        require(batch.size() == 2 && batch[0] == ids && batch[1].empty(), "encode_batch differs from encode");
        const std::vector<std::string> pieces = tok.encode_pieces(text);
        require(pieces.size() == std::min<std::size_t>(ids.size(), Tokenizer::default_max_length),
                "encode_pieces has another length than encode");
        const std::string decoded = tok.decode(ids);
        require(is_valid_utf8(decoded), "decode made invalid UTF-8");
        require(count_masks(decoded) >= masks, "decode lost a [MASK]");
        (void)tok.encode(decoded, 0);  // decoded text is text too
    }
    return Outcome::accepted;
}

// The bytes as a tokenizer model file (a checkpoint's tokenizer.model): Tokenizer::from_serialized
// (documented rejection: std::runtime_error), then the accepted model encodes and decodes.
inline Outcome tokenizer_model(const uint8_t* data, std::size_t size) {
    Tokenizer tok;
    try {
        tok = Tokenizer::from_serialized(std::string(reinterpret_cast<const char*>(data), size));
    } catch (const std::runtime_error&) {
        return Outcome::rejected;
    }
    const int v = tok.vocab_size();
    require(v > 0, "a loaded model has no ids");
    for (int32_t id : {tok.unk_id(), tok.pad_id(), tok.mask_id()})
        require(id >= 0 && id < v, "a special id is outside the vocab");
    const VocabInfo info = tok.vocab_info();
    require(info.is_special.size() == static_cast<std::size_t>(v) && info.word_start.size() == static_cast<std::size_t>(v),
            "vocab_info tables have the wrong size");
    for (int32_t id = 0; id < v; ++id) (void)tok.id_to_piece(id);
    const std::vector<int32_t> ids = tok.encode("The [MASK] sat on the mat, \xC3\xA7" "a va? [MASK]ed 123 \xFF", 0);
    for (int32_t id : ids) require(id >= 0 && id < v, "encode gave an id outside the vocab");
    require(std::count(ids.begin(), ids.end(), tok.mask_id()) == 2, "the two [MASK] did not give two mask ids");
    (void)tok.decode(ids);
    require(Tokenizer::from_serialized(tok.serialized()).fingerprint() == tok.fingerprint(),
            "serialized() does not load back as the same model");
    return Outcome::accepted;
}

// ---- text readers -------------------------------------------------------------------------------

// The first byte of a text-reader input says how to present the rest to LineReader.
struct TextReaderInput {
    enum Mode { as_is = 0, gzip = 1, xz = 2, as_is_named_compressed = 3 };
    Mode mode = as_is;
    LineReaderOptions options;
    bool two_members = false;  // gzip/xz: compress the payload as two concatenated members
    uint8_t cut = 0;           // gzip/xz: non-zero: keep only cut/256 of the compressed bytes
    uint8_t flip = 0;          // gzip/xz: non-zero: damage the byte at flip/256 of the way
    std::string_view payload;

    static TextReaderInput parse(const uint8_t* data, std::size_t size) {
        TextReaderInput in;
        const uint8_t flags = size > 0 ? data[0] : 0;
        in.mode = static_cast<Mode>(flags & 3);
        in.options.long_lines = (flags & 4) ? LongLinePolicy::skip : LongLinePolicy::error;
        static constexpr std::size_t max_line[4] = {std::size_t(1) << 20, 1, 7, 200};
        in.options.max_line_bytes = max_line[(flags >> 3) & 3];
        in.two_members = (flags & 32) != 0;
        std::size_t skip = 1;
        if (in.mode == gzip || in.mode == xz) {
            in.cut = size > 1 ? data[1] : 0;
            in.flip = size > 2 ? data[2] : 0;
            skip = 3;
        }
        skip = std::min(skip, size);
        in.payload = std::string_view(reinterpret_cast<const char*>(data) + skip, size - skip);
        return in;
    }
};

inline std::string gzip_compress(std::string_view text) {
    z_stream z{};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("fuzz: deflateInit2 failed");
    std::string out(deflateBound(&z, static_cast<uLong>(text.size())) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&z, Z_FINISH);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) throw std::runtime_error("fuzz: deflate failed");
    return out;
}

inline std::string xz_compress(std::string_view text, lzma_check check) {
    std::string out(lzma_stream_buffer_bound(text.size()), '\0');
    std::size_t pos = 0;
    if (lzma_easy_buffer_encode(0, check, nullptr, reinterpret_cast<const uint8_t*>(text.data()), text.size(),
                                reinterpret_cast<uint8_t*>(out.data()), &pos, out.size()) != LZMA_OK)
        throw std::runtime_error("fuzz: lzma_easy_buffer_encode failed");
    out.resize(pos);
    return out;
}

struct ExpectedLines {
    std::vector<std::string> lines;
    std::size_t physical_lines = 0;
    std::size_t skipped_long = 0;
    bool too_long = false;  // with LongLinePolicy::error the reader must refuse the file
};

// LineReader's documented rules, written out plainly: split at '\n', drop one trailing '\r',
// skip empty lines, and lines longer than max_line_bytes are an error or skipped.
inline ExpectedLines expected_lines(std::string_view text, const LineReaderOptions& o) {
    ExpectedLines e;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t nl = text.find('\n', start);
        const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
        std::string_view line = text.substr(start, end - start);
        ++e.physical_lines;
        if (line.size() > o.max_line_bytes) {
            if (o.long_lines == LongLinePolicy::error) {
                e.too_long = true;
                return e;
            }
            ++e.skipped_long;
        } else {
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (!line.empty()) e.lines.emplace_back(line);
        }
        start = end + 1;
    }
    return e;
}

// The bytes as a text file for LineReader (see TextReaderInput): as they are (the reader detects
// gzip/xz by content, so compressed seeds reach the decoders), or compressed here with gzip or xz
// and then optionally cut short or damaged. Undamaged input must give exactly the lines of the
// text. Documented rejection: std::runtime_error.
inline Outcome text_reader(const uint8_t* data, std::size_t size) {
    const TextReaderInput in = TextReaderInput::parse(data, size);
    std::string bytes, name = "fuzz.txt";
    bool damaged = false;
    auto compress = [&](std::string_view part) {
        return in.mode == TextReaderInput::gzip
                   ? gzip_compress(part)
                   : xz_compress(part, in.flip & 1 ? LZMA_CHECK_CRC32 : LZMA_CHECK_CRC64);
    };
    switch (in.mode) {
        case TextReaderInput::as_is: bytes = in.payload; break;
        case TextReaderInput::as_is_named_compressed:
            bytes = in.payload;
            name = (data[0] & 64) ? "fuzz.txt.xz" : "fuzz.txt.gz";
            break;
        case TextReaderInput::gzip:
        case TextReaderInput::xz: {
            if (in.two_members) {
                const std::size_t half = in.payload.size() / 2;
                bytes = compress(in.payload.substr(0, half)) + compress(in.payload.substr(half));
            } else {
                bytes = compress(in.payload);
            }
            if (in.cut) {
                bytes.resize(bytes.size() * in.cut / 256);
                damaged = true;
            }
            if (in.flip >= 2 && !bytes.empty()) {
                bytes[bytes.size() * in.flip / 256] ^= static_cast<char>(0x10 | (in.flip & 0xF));
                damaged = true;
            }
            break;
        }
    }
    const std::string path = scratch().write(name, bytes);

    std::vector<std::string> lines;
    std::size_t physical = 0, skipped = 0;
    Compression compression = Compression::none;
    try {
        LineReader reader(path, in.options);
        compression = reader.compression();
        std::string line;
        while (reader.next(line)) {
            require(!line.empty() && line.find('\n') == std::string::npos && line.size() <= in.options.max_line_bytes,
                    "LineReader returned an empty, multi-line or too long line");
            require(reader.line_number() > physical, "line_number() did not advance");
            physical = reader.line_number();
            lines.push_back(line);
        }
        require(!reader.next(line), "next() returned a line after the end");
        skipped = reader.skipped_long_lines();
    } catch (const std::runtime_error&) {
        // An undamaged compressed stream is refused only for a line that is too long.
        if ((in.mode == TextReaderInput::gzip || in.mode == TextReaderInput::xz) && !damaged)
            require(expected_lines(in.payload, in.options).too_long,
                    "LineReader refused an undamaged compressed stream");
        return Outcome::rejected;
    }
    // The text the lines must come from: the payload when it was compressed here and not
    // damaged, the file's bytes when the reader took them as plain text (damage can remove the
    // magic bytes), else unknown (a compressed seed mutated by the fuzzer).
    const bool compressed_here = in.mode == TextReaderInput::gzip || in.mode == TextReaderInput::xz;
    const bool known = (compressed_here && !damaged) || compression == Compression::none;
    if (known) {
        const ExpectedLines want = expected_lines(compressed_here && !damaged ? in.payload : bytes, in.options);
        require(!want.too_long, "LineReader accepted a line longer than max_line_bytes");
        require(lines == want.lines, "LineReader's lines differ from the text's");
        require(skipped == want.skipped_long, "skipped_long_lines() differs");
        if (!lines.empty()) require(physical <= want.physical_lines, "line_number() past the last line");
    }
    try {
        const std::vector<std::string> all = read_lines(path, in.options);
        require(all == lines, "read_lines differs from LineReader");
    } catch (const std::runtime_error&) {
        require(lines.empty(), "read_lines refused a file with lines");
    }
    return Outcome::accepted;
}

}  // namespace mlm::fuzz
