// Line readers (plain, gzip, xz), the tokenized corpus and its cache, splitting and batching
// (see include/mlm/data.hpp).
#include <mlm/data.hpp>

#include <mlm/random.hpp>

#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <numeric>
#include <stdexcept>

#include <unistd.h>

namespace mlm {

namespace {

std::string quoted(const std::string& path) { return "'" + path + "'"; }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error(quoted(path) + ": " + what);
}

bool ends_with(const std::string& s, const char* suffix) {
    const std::size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

struct File {
    std::FILE* f = nullptr;
    File(const std::string& path, const char* mode) : f(std::fopen(path.c_str(), mode)) {}
    ~File() {
        if (f) std::fclose(f);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
};

// ---- byte sources ----------------------------------------------------------------------------

class ByteSource {
public:
    explicit ByteSource(std::string path) : path_(std::move(path)), file_(path_, "rb") {
        if (!file_.f) fail(path_, std::string("cannot open: ") + std::strerror(errno));
    }
    virtual ~ByteSource() = default;
    // Up to `cap` bytes into `out`; 0 only at the end. Throws on a read or format error;
    // `line` is the number of lines read so far, for messages.
    virtual std::size_t read(char* out, std::size_t cap, std::size_t line) = 0;

protected:
    std::size_t read_raw(char* out, std::size_t cap) {
        const std::size_t n = std::fread(out, 1, cap, file_.f);
        if (n < cap && std::ferror(file_.f)) fail(path_, std::string("read error: ") + std::strerror(errno));
        return n;
    }
    bool raw_eof() const { return std::feof(file_.f) != 0; }
    std::string path_;
    File file_;
};

class PlainSource : public ByteSource {
public:
    using ByteSource::ByteSource;
    std::size_t read(char* out, std::size_t cap, std::size_t) override { return read_raw(out, cap); }
};

constexpr std::size_t kInputChunk = 1 << 18;

class GzipSource : public ByteSource {
public:
    explicit GzipSource(std::string path) : ByteSource(std::move(path)), in_(kInputChunk) {
        std::memset(&z_, 0, sizeof z_);
        if (inflateInit2(&z_, 15 + 16) != Z_OK) fail(path_, "cannot initialise zlib");
    }
    ~GzipSource() override { inflateEnd(&z_); }

    std::size_t read(char* out, std::size_t cap, std::size_t line) override {
        z_.next_out = reinterpret_cast<Bytef*>(out);
        z_.avail_out = static_cast<uInt>(cap);
        while (z_.avail_out == cap && !finished_) {
            if (z_.avail_in == 0) {
                const std::size_t n = read_raw(reinterpret_cast<char*>(in_.data()), in_.size());
                z_.next_in = in_.data();
                z_.avail_in = static_cast<uInt>(n);
                if (n == 0) {
                    if (in_stream_)
                        fail(path_, "the gzip data is truncated (after line " + std::to_string(line) + ")");
                    finished_ = true;  // clean end after a complete member
                    break;
                }
            }
            in_stream_ = true;
            const int rc = inflate(&z_, Z_NO_FLUSH);
            if (rc == Z_STREAM_END) {
                in_stream_ = false;  // another member may follow (concatenated gzip files)
                if (inflateReset(&z_) != Z_OK) fail(path_, "cannot reset zlib");
            } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
                fail(path_, std::string("corrupt gzip data (after line ") + std::to_string(line) +
                                "): " + (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
            }
        }
        return cap - z_.avail_out;
    }

private:
    z_stream z_;
    std::vector<Bytef> in_;
    bool in_stream_ = false;
    bool finished_ = false;
};

// The most memory the xz decoder may take. It allocates the dictionary size that the file's
// header asks for, up to 4 GiB, before any data: a forged 68-byte file could otherwise make it
// allocate 4 GiB. xz -9 (the largest preset) needs 65 MiB.
constexpr uint64_t kXzMemoryLimit = uint64_t(256) << 20;

class XzSource : public ByteSource {
public:
    explicit XzSource(std::string path) : ByteSource(std::move(path)), in_(kInputChunk) {
        if (lzma_stream_decoder(&z_, kXzMemoryLimit, LZMA_CONCATENATED) != LZMA_OK)
            fail(path_, "cannot initialise liblzma");
    }
    ~XzSource() override { lzma_end(&z_); }

    std::size_t read(char* out, std::size_t cap, std::size_t line) override {
        z_.next_out = reinterpret_cast<uint8_t*>(out);
        z_.avail_out = cap;
        while (z_.avail_out == cap && !finished_) {
            if (z_.avail_in == 0 && !input_done_) {
                const std::size_t n = read_raw(reinterpret_cast<char*>(in_.data()), in_.size());
                z_.next_in = in_.data();
                z_.avail_in = n;
                if (n == 0) input_done_ = true;
            }
            const lzma_ret rc = lzma_code(&z_, input_done_ ? LZMA_FINISH : LZMA_RUN);
            if (rc == LZMA_STREAM_END) {
                finished_ = true;
            } else if (rc != LZMA_OK) {
                const std::string where = " (after line " + std::to_string(line) + ")";
                switch (rc) {
                    case LZMA_BUF_ERROR: fail(path_, "the xz data is truncated" + where);
                    case LZMA_DATA_ERROR: fail(path_, "corrupt xz data" + where);
                    case LZMA_FORMAT_ERROR: fail(path_, "not xz data" + where);
                    case LZMA_OPTIONS_ERROR: fail(path_, "unsupported xz options" + where);
                    case LZMA_MEM_ERROR: fail(path_, "out of memory decompressing xz data");
                    case LZMA_MEMLIMIT_ERROR:
                        fail(path_, "the xz data needs " + std::to_string(lzma_memusage(&z_) >> 20) +
                                        " MiB of memory to decompress, more than the limit of " +
                                        std::to_string(kXzMemoryLimit >> 20) +
                                        " MiB (an xz dictionary that large is forged or unusual)" + where);
                    default: fail(path_, "xz decoder error " + std::to_string(rc) + where);
                }
            }
        }
        return cap - z_.avail_out;
    }

private:
    lzma_stream z_ = LZMA_STREAM_INIT;
    std::vector<uint8_t> in_;
    bool input_done_ = false;
    bool finished_ = false;
};

}  // namespace

// ---- compression detection -------------------------------------------------------------------

const char* to_string(Compression c) {
    switch (c) {
        case Compression::gzip: return "gzip";
        case Compression::xz: return "xz";
        default: return "none";
    }
}

Compression detect_compression(const std::string& path) {
    File file(path, "rb");
    if (!file.f) fail(path, std::string("cannot open: ") + std::strerror(errno));
    unsigned char m[6] = {0, 0, 0, 0, 0, 0};
    const std::size_t n = std::fread(m, 1, sizeof m, file.f);
    if (n < sizeof m && std::ferror(file.f)) fail(path, std::string("read error: ") + std::strerror(errno));
    if (n >= 2 && m[0] == 0x1F && m[1] == 0x8B) return Compression::gzip;
    if (n >= 6 && std::memcmp(m, "\xFD" "7zXZ\0", 6) == 0) return Compression::xz;
    if (n >= 3 && std::memcmp(m, "BZh", 3) == 0)
        fail(path, "holds bzip2 data, which is not supported (use plain text, gzip or xz)");
    if (n >= 4 && std::memcmp(m, "\x28\xB5\x2F\xFD", 4) == 0)
        fail(path, "holds zstd data, which is not supported (use plain text, gzip or xz)");
    if (ends_with(path, ".gz") || ends_with(path, ".xz"))
        fail(path, std::string("is named like a ") + (ends_with(path, ".gz") ? "gzip" : "xz") +
                       " file but does not start like one (" +
                       (n == 0 ? std::string("it is empty") : "corrupt or not compressed") + ")");
    return Compression::none;
}

// ---- LineReader ------------------------------------------------------------------------------

struct LineReader::Impl {
    std::string path;
    LineReaderOptions options;
    Compression compression = Compression::none;
    std::unique_ptr<ByteSource> source;
    std::vector<char> buffer = std::vector<char>(1 << 20);
    std::size_t pos = 0, end = 0;
    bool eof = false;
    std::size_t line_number = 0;
    std::size_t skipped_long = 0;

    bool fill() {
        if (eof) return false;
        end = source->read(buffer.data(), buffer.size(), line_number);
        pos = 0;
        if (end == 0) eof = true;
        return end > 0;
    }

    // One physical line into `line`; false at the end of the input.
    bool physical_line(std::string& line) {
        line.clear();
        bool any = false, too_long = false;
        for (;;) {
            if (pos == end && !fill()) break;
            const char* begin = buffer.data() + pos;
            const auto* nl = static_cast<const char*>(std::memchr(begin, '\n', end - pos));
            const std::size_t take = nl ? static_cast<std::size_t>(nl - begin) : end - pos;
            any = true;
            if (!too_long) {
                if (line.size() + take > options.max_line_bytes) {
                    if (options.long_lines == LongLinePolicy::error)
                        fail(path, "line " + std::to_string(line_number + 1) + " is longer than " +
                                       std::to_string(options.max_line_bytes) +
                                       " bytes (is this a text file with one sentence per line?)");
                    too_long = true;
                    line.clear();
                } else {
                    line.append(begin, take);
                }
            }
            pos += take;
            if (nl) {
                ++pos;
                break;
            }
        }
        if (!any) return false;
        ++line_number;
        if (too_long) {
            ++skipped_long;
            line.clear();  // skipped like an empty line
        }
        return true;
    }
};

LineReader::LineReader(const std::string& path, const LineReaderOptions& options)
    : impl_(std::make_unique<Impl>()) {
    if (options.max_line_bytes == 0) throw std::invalid_argument("LineReader: max_line_bytes must be positive");
    impl_->path = path;
    impl_->options = options;
    impl_->compression = detect_compression(path);
    switch (impl_->compression) {
        case Compression::gzip: impl_->source = std::make_unique<GzipSource>(path); break;
        case Compression::xz: impl_->source = std::make_unique<XzSource>(path); break;
        default: impl_->source = std::make_unique<PlainSource>(path); break;
    }
}

LineReader::~LineReader() = default;
LineReader::LineReader(LineReader&&) noexcept = default;
LineReader& LineReader::operator=(LineReader&&) noexcept = default;

bool LineReader::next(std::string& line) {
    while (impl_->physical_line(line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (!line.empty()) return true;
    }
    return false;
}

std::size_t LineReader::line_number() const { return impl_->line_number; }
std::size_t LineReader::skipped_long_lines() const { return impl_->skipped_long; }
const std::string& LineReader::path() const { return impl_->path; }
Compression LineReader::compression() const { return impl_->compression; }

std::vector<std::string> read_lines(const std::string& path, const LineReaderOptions& options) {
    LineReader reader(path, options);
    std::vector<std::string> lines;
    std::string line;
    while (reader.next(line)) lines.push_back(line);
    if (lines.empty()) fail(path, "holds no non-empty line");
    return lines;
}

// ---- TokenizedCorpus -------------------------------------------------------------------------

TokenizedCorpus::TokenizedCorpus(int vocab_size) : vocab_size_(vocab_size) {
    if (vocab_size < 1) throw std::invalid_argument("TokenizedCorpus: vocab_size must be positive");
}

std::vector<int32_t> TokenizedCorpus::lengths() const {
    std::vector<int32_t> out(size());
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = length(i);
    return out;
}

void TokenizedCorpus::copy(std::size_t i, int32_t* out) const {
    if (i >= size())
        throw std::out_of_range("TokenizedCorpus: sequence " + std::to_string(i) + " of " + std::to_string(size()));
    const uint64_t b = offsets_[i], e = offsets_[i + 1];
    if (compact())
        for (uint64_t k = b; k < e; ++k) *out++ = ids16_[k];
    else
        for (uint64_t k = b; k < e; ++k) *out++ = static_cast<int32_t>(ids32_[k]);
}

std::vector<int32_t> TokenizedCorpus::sequence(std::size_t i) const {
    if (i >= size())
        throw std::out_of_range("TokenizedCorpus: sequence " + std::to_string(i) + " of " + std::to_string(size()));
    std::vector<int32_t> out(length(i));
    copy(i, out.data());
    return out;
}

void TokenizedCorpus::append(const int32_t* ids, std::size_t n) {
    for (std::size_t k = 0; k < n; ++k)
        if (ids[k] < 0 || ids[k] >= vocab_size_)
            throw std::invalid_argument("TokenizedCorpus::append: id " + std::to_string(ids[k]) +
                                        " is outside the vocab [0, " + std::to_string(vocab_size_) + ")");
    if (compact())
        ids16_.insert(ids16_.end(), ids, ids + n);
    else
        ids32_.insert(ids32_.end(), ids, ids + n);
    offsets_.push_back(offsets_.back() + n);
}

void TokenizedCorpus::reserve(std::size_t sequences, std::size_t tokens) {
    offsets_.reserve(sequences + 1);
    if (compact()) ids16_.reserve(tokens);
    else ids32_.reserve(tokens);
}

TokenizedCorpus TokenizedCorpus::subset(const std::vector<std::size_t>& indices) const {
    TokenizedCorpus out(vocab_size_);
    std::size_t tokens = 0;
    for (std::size_t i : indices) {
        if (i >= size())
            throw std::out_of_range("TokenizedCorpus::subset: index " + std::to_string(i) + " of " +
                                    std::to_string(size()));
        tokens += length(i);
    }
    out.reserve(indices.size(), tokens);
    for (std::size_t i : indices) {
        const uint64_t b = offsets_[i], e = offsets_[i + 1];
        if (compact()) out.ids16_.insert(out.ids16_.end(), ids16_.begin() + b, ids16_.begin() + e);
        else out.ids32_.insert(out.ids32_.end(), ids32_.begin() + b, ids32_.begin() + e);
        out.offsets_.push_back(out.offsets_.back() + (e - b));
    }
    return out;
}

TokenizedCorpus TokenizedCorpus::from_storage(int vocab_size, std::vector<uint16_t> ids16,
                                              std::vector<uint32_t> ids32, std::vector<uint64_t> offsets) {
    TokenizedCorpus c(vocab_size);
    auto bad = [](const std::string& what) {
        throw std::invalid_argument("TokenizedCorpus::from_storage: " + what);
    };
    const std::size_t n_ids = c.compact() ? ids16.size() : ids32.size();
    if (c.compact() ? !ids32.empty() : !ids16.empty())
        bad(std::string("ids must be ") + (c.compact() ? "uint16" : "uint32") + " for vocab_size " +
            std::to_string(vocab_size));
    if (offsets.empty() || offsets.front() != 0 || offsets.back() != n_ids)
        bad("offsets must start at 0 and end at the number of ids (" + std::to_string(n_ids) + ")");
    for (std::size_t i = 1; i < offsets.size(); ++i)
        if (offsets[i] < offsets[i - 1]) bad("offsets decrease at " + std::to_string(i));
    if (c.compact()) {
        for (uint16_t id : ids16)
            if (id >= vocab_size) bad("id " + std::to_string(id) + " is outside the vocab");
    } else {
        for (uint32_t id : ids32)
            if (id >= static_cast<uint32_t>(vocab_size)) bad("id " + std::to_string(id) + " is outside the vocab");
    }
    c.ids16_ = std::move(ids16);
    c.ids32_ = std::move(ids32);
    c.offsets_ = std::move(offsets);
    return c;
}

// ---- tokenizing ------------------------------------------------------------------------------

namespace {

void append_encoded(TokenizedCorpus& corpus, const std::vector<std::vector<int32_t>>& encoded) {
    for (const auto& ids : encoded) {
        if (ids.empty()) ++corpus.dropped_empty;
        else corpus.append(ids);
    }
}

}  // namespace

TokenizedCorpus tokenize_sentences(const Tokenizer& tokenizer, const std::vector<std::string>& sentences,
                                   int max_length) {
    TokenizedCorpus corpus(tokenizer.vocab_size());
    append_encoded(corpus, tokenizer.encode_batch(sentences, max_length));
    return corpus;
}

TokenizedCorpus tokenize_file(const Tokenizer& tokenizer, const std::string& path,
                              const TokenizeOptions& options) {
    if (options.chunk_lines == 0) throw std::invalid_argument("tokenize_file: chunk_lines must be positive");
    LineReader reader(path, options.reader);
    TokenizedCorpus corpus(tokenizer.vocab_size());
    std::size_t lines_read = 0;
    auto read_chunk = [&]() {
        std::vector<std::string> chunk;
        std::string line;
        while (chunk.size() < options.chunk_lines &&
               (options.max_sentences == 0 || lines_read < options.max_sentences) && reader.next(line)) {
            chunk.push_back(line);
            ++lines_read;
        }
        return chunk;
    };
    // Read (and decompress) the next chunk while this one is encoded.
    std::vector<std::string> chunk = read_chunk();
    while (!chunk.empty()) {
        auto next = std::async(std::launch::async, read_chunk);
        std::vector<std::vector<int32_t>> encoded;
        try {
            encoded = tokenizer.encode_batch(chunk, options.max_length);
        } catch (...) {
            next.wait();
            throw;
        }
        append_encoded(corpus, encoded);
        chunk = next.get();
    }
    if (corpus.empty())
        fail(path, lines_read == 0 ? "holds no non-empty line" : "holds no line that encodes to any token");
    return corpus;
}

// ---- the cache file --------------------------------------------------------------------------

namespace {

constexpr char kCacheMagic[8] = {'M', 'L', 'M', 'C', 'O', 'R', 'P', '\n'};
constexpr uint32_t kCacheVersion = 1;

struct CacheHeader {
    char magic[8];
    uint32_t version;
    uint32_t id_bytes;  // 2 or 4
    uint64_t source_size;
    int64_t source_mtime_ns;
    uint64_t tokenizer_fingerprint;
    uint64_t options_hash;
    int64_t vocab_size;
    uint64_t num_sequences;
    uint64_t num_tokens;
    uint64_t dropped_empty;
    uint64_t payload_hash;  // of the offsets and the ids
};

struct SourceStamp {
    uint64_t size;
    int64_t mtime_ns;
};

SourceStamp stamp_of(const std::string& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) fail(path, "cannot stat: " + ec.message());
    const auto mtime = std::filesystem::last_write_time(path, ec);
    if (ec) fail(path, "cannot stat: " + ec.message());
    return {static_cast<uint64_t>(size),
            static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     mtime.time_since_epoch()).count())};
}

uint64_t options_hash(const TokenizeOptions& o) {
    const uint64_t fields[4] = {static_cast<uint64_t>(static_cast<int64_t>(o.max_length)), o.max_sentences,
                                o.reader.max_line_bytes, static_cast<uint64_t>(o.reader.long_lines)};
    return detail::hash_bytes(fields, sizeof fields, 0x0c0ffee);
}

uint64_t payload_hash(const TokenizedCorpus& c) {
    const uint64_t h1 = detail::hash_bytes(c.offsets().data(), c.offsets().size() * sizeof(uint64_t), 1);
    const uint64_t h2 = c.compact() ? detail::hash_bytes(c.ids16().data(), c.ids16().size() * 2, 2)
                                    : detail::hash_bytes(c.ids32().data(), c.ids32().size() * 4, 2);
    return mix64(h1 ^ mix64(h2));
}

CacheHeader expected_header(const Tokenizer& tok, const SourceStamp& stamp, const TokenizeOptions& o) {
    CacheHeader h{};
    std::memcpy(h.magic, kCacheMagic, 8);
    h.version = kCacheVersion;
    h.id_bytes = tok.vocab_size() <= 65536 ? 2 : 4;
    h.source_size = stamp.size;
    h.source_mtime_ns = stamp.mtime_ns;
    h.tokenizer_fingerprint = tok.fingerprint();
    h.options_hash = options_hash(o);
    h.vocab_size = tok.vocab_size();
    return h;
}

bool read_exact(std::FILE* f, void* out, std::size_t bytes) { return std::fread(out, 1, bytes, f) == bytes; }

// The cached corpus, or false if the cache is missing, stale or damaged.
bool try_load_cache(const std::string& cache_path, const CacheHeader& want, TokenizedCorpus& out) {
    File file(cache_path, "rb");
    if (!file.f) return false;
    CacheHeader h;
    if (!read_exact(file.f, &h, sizeof h)) return false;
    if (std::memcmp(h.magic, want.magic, 8) != 0 || h.version != want.version || h.id_bytes != want.id_bytes ||
        h.source_size != want.source_size || h.source_mtime_ns != want.source_mtime_ns ||
        h.tokenizer_fingerprint != want.tokenizer_fingerprint || h.options_hash != want.options_hash ||
        h.vocab_size != want.vocab_size)
        return false;
    std::error_code ec;
    const auto file_size = std::filesystem::file_size(cache_path, ec);
    if (ec || h.num_sequences > file_size || h.num_tokens > file_size ||
        file_size != sizeof h + (h.num_sequences + 1) * 8 + h.num_tokens * h.id_bytes)
        return false;
    std::vector<uint64_t> offsets(h.num_sequences + 1);
    std::vector<uint16_t> ids16;
    std::vector<uint32_t> ids32;
    if (!read_exact(file.f, offsets.data(), offsets.size() * 8)) return false;
    if (h.id_bytes == 2) {
        ids16.resize(h.num_tokens);
        if (!read_exact(file.f, ids16.data(), ids16.size() * 2)) return false;
    } else {
        ids32.resize(h.num_tokens);
        if (!read_exact(file.f, ids32.data(), ids32.size() * 4)) return false;
    }
    try {
        TokenizedCorpus c = TokenizedCorpus::from_storage(static_cast<int>(h.vocab_size), std::move(ids16),
                                                          std::move(ids32), std::move(offsets));
        if (payload_hash(c) != h.payload_hash) return false;
        c.dropped_empty = h.dropped_empty;
        out = std::move(c);
        return true;
    } catch (const std::invalid_argument&) {
        return false;
    }
}

void write_cache(const std::string& cache_path, CacheHeader h, const TokenizedCorpus& c) {
    h.num_sequences = c.size();
    h.num_tokens = c.num_tokens();
    h.dropped_empty = c.dropped_empty;
    h.payload_hash = payload_hash(c);
    static std::atomic<unsigned> counter{0};
    const std::string tmp = cache_path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    {
        File file(tmp, "wb");
        if (!file.f) fail(tmp, std::string("cannot write the token cache: ") + std::strerror(errno));
        bool ok = std::fwrite(&h, sizeof h, 1, file.f) == 1 &&
                  std::fwrite(c.offsets().data(), 8, c.offsets().size(), file.f) == c.offsets().size();
        if (c.compact()) ok = ok && std::fwrite(c.ids16().data(), 2, c.ids16().size(), file.f) == c.ids16().size();
        else ok = ok && std::fwrite(c.ids32().data(), 4, c.ids32().size(), file.f) == c.ids32().size();
        ok = ok && std::fflush(file.f) == 0;
        if (!ok) {
            const std::string why = std::strerror(errno);
            std::remove(tmp.c_str());
            fail(tmp, "writing the token cache failed: " + why);
        }
    }
    if (std::rename(tmp.c_str(), cache_path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        std::remove(tmp.c_str());
        fail(cache_path, "cannot rename the token cache into place: " + why);
    }
}

}  // namespace

TokenizedCorpus load_or_tokenize(const Tokenizer& tokenizer, const std::string& path,
                                 const std::string& cache_path, const TokenizeOptions& options,
                                 bool* loaded_from_cache) {
    const CacheHeader want = expected_header(tokenizer, stamp_of(path), options);
    TokenizedCorpus corpus(tokenizer.vocab_size());
    if (try_load_cache(cache_path, want, corpus)) {
        if (loaded_from_cache) *loaded_from_cache = true;
        return corpus;
    }
    corpus = tokenize_file(tokenizer, path, options);
    write_cache(cache_path, want, corpus);
    if (loaded_from_cache) *loaded_from_cache = false;
    return corpus;
}

// ---- splitting -------------------------------------------------------------------------------

namespace {

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}

}  // namespace

Split split_train_valid(std::size_t n, std::size_t n_valid, uint64_t seed) {
    if (n_valid > n)
        throw std::invalid_argument("split_train_valid: cannot hold out " + std::to_string(n_valid) +
                                    " of " + std::to_string(n) + " sequences");
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), std::size_t(0));
    Rng rng(random_u64(seed, 0x5b117ull));
    // Partial Fisher-Yates: the first n_valid places get a uniform random subset.
    for (std::size_t i = 0; i < n_valid; ++i) std::swap(order[i], order[i + rng.below(n - i)]);
    Split s;
    s.valid.assign(order.begin(), order.begin() + n_valid);
    std::vector<uint8_t> held(n, 0);
    for (std::size_t i : s.valid) held[i] = 1;
    std::sort(s.valid.begin(), s.valid.end());
    s.train.reserve(n - n_valid);
    for (std::size_t i = 0; i < n; ++i)
        if (!held[i]) s.train.push_back(i);
    return s;
}

Split split_train_valid_fraction(std::size_t n, double valid_fraction, uint64_t seed) {
    if (!(valid_fraction >= 0.0 && valid_fraction <= 1.0))
        throw std::invalid_argument("split_train_valid_fraction: valid_fraction must be in [0, 1], got " +
                                    std::to_string(valid_fraction));
    return split_train_valid(n, static_cast<std::size_t>(std::llround(valid_fraction * n)), seed);
}

// ---- Batcher ---------------------------------------------------------------------------------

namespace {

std::vector<std::size_t> all_indices(std::size_t n) {
    std::vector<std::size_t> v(n);
    std::iota(v.begin(), v.end(), std::size_t(0));
    return v;
}

std::vector<int32_t> lengths_at(const TokenizedCorpus& corpus, const std::vector<std::size_t>& indices) {
    std::vector<int32_t> v(indices.size());
    for (std::size_t k = 0; k < indices.size(); ++k) {
        if (indices[k] >= corpus.size())
            throw std::out_of_range("Batcher: index " + std::to_string(indices[k]) + " is outside the corpus (" +
                                    std::to_string(corpus.size()) + " sequences)");
        v[k] = corpus.length(indices[k]);
    }
    return v;
}

}  // namespace

Batcher::Batcher(std::vector<std::size_t> ids, std::vector<int32_t> lengths, const BatcherOptions& options,
                 uint64_t seed)
    : ids_(std::move(ids)), lengths_(std::move(lengths)), options_(options), seed_(seed) {
    if (ids_.size() != lengths_.size())
        throw std::invalid_argument("Batcher: " + std::to_string(ids_.size()) + " ids but " +
                                    std::to_string(lengths_.size()) + " lengths");
    if (options_.max_tokens == 0 && options_.batch_size == 0)
        throw std::invalid_argument("Batcher: batch_size must be positive (or set max_tokens)");
    if (options_.bucket_batches == 0) throw std::invalid_argument("Batcher: bucket_batches must be positive");
    for (int32_t len : lengths_)
        if (len < 0) throw std::invalid_argument("Batcher: negative sequence length");
}

Batcher::Batcher(const TokenizedCorpus& corpus, const BatcherOptions& options, uint64_t seed)
    : Batcher(all_indices(corpus.size()), corpus.lengths(), options, seed) {}

Batcher::Batcher(const TokenizedCorpus& corpus, const std::vector<std::size_t>& indices,
                 const BatcherOptions& options, uint64_t seed)
    : Batcher(indices, lengths_at(corpus, indices), options, seed) {}

std::vector<std::vector<std::size_t>> Batcher::epoch_batches(uint64_t epoch) const {
    const std::size_t n = ids_.size();
    const bool budget = options_.max_tokens > 0;
    const bool bucketing = options_.bucketing == BatcherOptions::Bucketing::on ||
                           (options_.bucketing == BatcherOptions::Bucketing::automatic && budget);
    Rng rng(random_u64(seed_, epoch, 0xba7c4e5ull));

    std::vector<std::size_t> order(n);  // positions into ids_ / lengths_
    std::iota(order.begin(), order.end(), std::size_t(0));
    if (options_.shuffle) shuffle(order, rng);

    // Sequences per window: bucket_batches batches' worth.
    std::size_t per_batch = options_.batch_size;
    if (budget) {
        double total = 0;
        for (int32_t len : lengths_) total += len;
        const double mean = n ? std::max(1.0, total / static_cast<double>(n)) : 1.0;
        per_batch = std::max<std::size_t>(1, static_cast<std::size_t>(options_.max_tokens / mean));
        if (options_.max_sequences) per_batch = std::min(per_batch, options_.max_sequences);
    }
    const std::size_t window = bucketing ? std::max<std::size_t>(1, per_batch * options_.bucket_batches) : n;

    std::vector<std::vector<std::size_t>> batches;
    std::vector<std::size_t> current;
    std::size_t tokens = 0;
    auto close = [&]() {
        if (!current.empty()) batches.push_back(std::move(current));
        current.clear();
        tokens = 0;
    };
    for (std::size_t w0 = 0; w0 < n; w0 += window) {
        const std::size_t w1 = std::min(n, w0 + window);
        if (bucketing)
            std::stable_sort(order.begin() + w0, order.begin() + w1,
                             [&](std::size_t a, std::size_t b) { return lengths_[a] < lengths_[b]; });
        for (std::size_t k = w0; k < w1; ++k) {
            const std::size_t pos = order[k];
            const std::size_t len = static_cast<std::size_t>(lengths_[pos]);
            if (budget) {
                const bool full = !current.empty() &&
                                  (tokens + len > options_.max_tokens ||
                                   (options_.max_sequences && current.size() >= options_.max_sequences));
                if (full) close();
            }
            current.push_back(ids_[pos]);
            tokens += len;
            if (!budget && current.size() == options_.batch_size) close();
        }
        if (bucketing) close();  // batches do not straddle windows
    }
    if (!budget && options_.drop_last && !current.empty() && current.size() < options_.batch_size) current.clear();
    if (!budget && options_.drop_last && bucketing && !batches.empty() &&
        batches.back().size() < options_.batch_size)
        batches.pop_back();
    close();
    if (options_.shuffle && bucketing) shuffle(batches, rng);
    return batches;
}

}  // namespace mlm
