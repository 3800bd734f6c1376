// bench_common.hpp — small pieces shared by the benchmark programs: timing statistics, a flat JSON
// writer, the process's memory figures, and the batch file that carries the exact training
// batches from bench_train_step to the PyTorch side of bench/compare_torch.py.
//
// Batch file (little-endian), read by bench/torch_bench.py:
//   char[8] "MLMBATCH", uint32 version (1), uint32 vocab_size, uint32 pad_id, uint32 num_batches,
//   then per batch: uint32 B (sequences), uint32 N (real tokens), uint32 M (targets),
//                   int32 offsets[B+1], int32 tokens[N] (masked inputs),
//                   int32 target_rows[M], int32 target_ids[M]   (the mlm::Batch fields as they are)
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <mlm/batch.hpp>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Stat {
    double median = 0, min = 0, max = 0;
};
// The median of an even count is the mean of the two middle values.
inline Stat stat(std::vector<double> v) {
    if (v.empty()) return {};
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    const double med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
    return {med, v.front(), v.back()};
}

// A field of /proc/self/status in KiB ("VmHWM": peak resident set, "VmRSS": current); -1 if absent.
inline long proc_status_kib(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const std::string key = std::string(field) + ":";
    while (std::getline(f, line))
        if (line.compare(0, key.size(), key) == 0) return std::stol(line.substr(key.size()));
    return -1;
}

// A JSON object written key by key, in order. Values: numbers, strings, arrays of numbers, or raw
// JSON text (for nested objects).
class JsonObject {
public:
    JsonObject& num(const std::string& k, double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.17g", v);
        return raw(k, buf);
    }
    JsonObject& integer(const std::string& k, long long v) { return raw(k, std::to_string(v)); }
    JsonObject& str(const std::string& k, const std::string& v) { return raw(k, quote(v)); }
    JsonObject& boolean(const std::string& k, bool v) { return raw(k, v ? "true" : "false"); }
    template <class T>
    JsonObject& array(const std::string& k, const std::vector<T>& v) {
        std::ostringstream o;
        o.precision(17);
        o << "[";
        for (std::size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
        o << "]";
        return raw(k, o.str());
    }
    JsonObject& strings(const std::string& k, const std::vector<std::string>& v) {
        std::string s = "[";
        for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + quote(v[i]);
        return raw(k, s + "]");
    }
    JsonObject& stat(const std::string& k, const Stat& s) {
        return raw(k, JsonObject().num("median", s.median).num("min", s.min).num("max", s.max).text());
    }
    JsonObject& raw(const std::string& k, const std::string& json) {
        body_ += (body_.empty() ? "" : ",\n  ") + quote(k) + ": " + json;
        return *this;
    }
    std::string text() const { return "{" + body_ + "}"; }
    void write(const std::string& path) const {
        std::ofstream f(path);
        f << text() << "\n";
        if (!f) throw std::runtime_error("cannot write " + path);
    }

    static std::string quote(const std::string& s) {
        std::string o = "\"";
        for (unsigned char c : s) {
            if (c == '"' || c == '\\') o += '\\', o += static_cast<char>(c);
            else if (c == '\n') o += "\\n";
            else if (c == '\t') o += "\\t";
            else if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                o += buf;
            } else o += static_cast<char>(c);
        }
        return o + "\"";
    }

private:
    std::string body_;
};

// ---- the batch file ----------------------------------------------------------------------------

namespace detail {
inline void put_u32(std::ofstream& f, uint32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); }
inline void put_i32s(std::ofstream& f, const std::vector<int32_t>& v) {
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
}
inline uint32_t get_u32(std::ifstream& f) {
    uint32_t v = 0;
    f.read(reinterpret_cast<char*>(&v), 4);
    return v;
}
inline std::vector<int32_t> get_i32s(std::ifstream& f, uint32_t n) {
    std::vector<int32_t> v(n);
    f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n) * 4);
    return v;
}
}  // namespace detail

static_assert(sizeof(int32_t) == 4 && sizeof(uint32_t) == 4, "32-bit ints");

inline void write_batches(const std::string& path, const std::vector<mlm::Batch>& batches, int vocab_size,
                          int pad_id) {
    std::ofstream f(path, std::ios::binary);
    f.write("MLMBATCH", 8);
    detail::put_u32(f, 1);
    detail::put_u32(f, static_cast<uint32_t>(vocab_size));
    detail::put_u32(f, static_cast<uint32_t>(pad_id));
    detail::put_u32(f, static_cast<uint32_t>(batches.size()));
    for (const mlm::Batch& b : batches) {
        detail::put_u32(f, static_cast<uint32_t>(b.num_sequences()));
        detail::put_u32(f, static_cast<uint32_t>(b.num_tokens()));
        detail::put_u32(f, static_cast<uint32_t>(b.num_targets()));
        detail::put_i32s(f, b.offsets);
        detail::put_i32s(f, b.tokens);
        detail::put_i32s(f, b.target_rows);
        detail::put_i32s(f, b.target_ids);
    }
    if (!f) throw std::runtime_error("cannot write " + path);
}

inline std::vector<mlm::Batch> read_batches(const std::string& path, int* vocab_size, int* pad_id) {
    std::ifstream f(path, std::ios::binary);
    char magic[8] = {};
    f.read(magic, 8);
    if (!f || std::string(magic, 8) != "MLMBATCH") throw std::runtime_error(path + ": not a batch file");
    if (detail::get_u32(f) != 1) throw std::runtime_error(path + ": unknown batch file version");
    *vocab_size = static_cast<int>(detail::get_u32(f));
    *pad_id = static_cast<int>(detail::get_u32(f));
    std::vector<mlm::Batch> batches(detail::get_u32(f));
    for (mlm::Batch& b : batches) {
        const uint32_t B = detail::get_u32(f), N = detail::get_u32(f), M = detail::get_u32(f);
        b.offsets = detail::get_i32s(f, B + 1);
        b.tokens = detail::get_i32s(f, N);
        b.target_rows = detail::get_i32s(f, M);
        b.target_ids = detail::get_i32s(f, M);
        if (!f || b.offsets.front() != 0 || b.offsets.back() != static_cast<int32_t>(N))
            throw std::runtime_error(path + ": truncated or inconsistent batch");
    }
    return batches;
}

}  // namespace bench
