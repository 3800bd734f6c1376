// Checkpoint I/O: the safetensors reader/writer, model checkpoints, named buffers, atomic writes.
#include <doctest/doctest.h>

#include <mlm/checkpoint.hpp>
#include <mlm/data.hpp>
#include <mlm/masked_lm.hpp>
#include <mlm/random.hpp>
#include <mlm/safetensors.hpp>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "checkpoint_faults.hpp"

namespace fs = std::filesystem;

namespace {

// A fresh directory under the system temp dir, removed at the end of the test case.
struct TempDir {
    fs::path path;
    TempDir() {
        static int counter = 0;
        path = fs::temp_directory_path() /
               ("mlm_test_checkpoint_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string u64_le(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
}

// A safetensors file from its parts: length, header (padded with spaces to a multiple of 8), data.
std::string make_safetensors(std::string header, const std::string& data) {
    header.append((8 - header.size() % 8) % 8, ' ');
    return u64_le(header.size()) + header + data;
}

template <class T>
std::string bytes_of(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// The message of the CheckpointError that f throws, or a marker that says what went wrong.
template <class F>
std::string checkpoint_error(F&& f) {
    try {
        f();
    } catch (const mlm::CheckpointError& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("<not a CheckpointError> ") + e.what();
    }
    return "<no exception>";
}

#define CHECK_CHECKPOINT_ERROR(expr, needle)                                              \
    do {                                                                                  \
        const std::string message_ = checkpoint_error([&]() { (void)(expr); });           \
        INFO("message: " << message_);                                                    \
        CHECK(message_.find("<no") != 0);                                                 \
        CHECK(message_.find(needle) != std::string::npos);                                \
    } while (0)

mlm::ModelConfig small_config() {
    mlm::ModelConfig c;
    c.vocab_size = 64;
    c.dim = 32;
    c.n_heads = 2;
    c.n_layers = 2;
    c.max_len = 16;
    return c;
}

template <class T>
std::vector<T> random_params(const mlm::ParameterLayout& layout, uint64_t seed) {
    mlm::Rng rng(seed);
    std::vector<T> p(layout.size());
    for (auto& x : p) x = static_cast<T>(rng.normal());
    return p;
}

// Writes a model.safetensors holding the layout's tensors from `params`, with edits.
void write_model_file(const std::string& path, const mlm::ParameterLayout& layout,
                      const std::vector<float>& params, const std::string& drop = "",
                      const std::string& extra = "") {
    mlm::SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (const auto& t : layout.tensors())
        if (t.name != drop) w.add(t.name, t.shape, params.data() + t.offset);
    if (!extra.empty()) w.add(extra, {2}, params.data());
    w.write(path);
}

std::vector<std::string> leftover_temp_files(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        if (e.path().filename().string().find(".tmp-") != std::string::npos)
            out.push_back(e.path().string());
    return out;
}

}  // namespace

// ---- the format ------------------------------------------------------------------------------

TEST_CASE("dtype names and sizes") {
    CHECK(std::string(mlm::to_string(mlm::Dtype::BF16)) == "BF16");
    CHECK(mlm::dtype_from_string("F64") == mlm::Dtype::F64);
    CHECK(mlm::dtype_from_string("F8_E4M3") == mlm::Dtype::F8_E4M3);
    CHECK_FALSE(mlm::dtype_from_string("f32").has_value());
    CHECK(mlm::dtype_size(mlm::Dtype::U8) == 1);
    CHECK(mlm::dtype_size(mlm::Dtype::F16) == 2);
    CHECK(mlm::dtype_size(mlm::Dtype::U32) == 4);
    CHECK(mlm::dtype_size(mlm::Dtype::I64) == 8);
    static_assert(mlm::dtype_of<const float>() == mlm::Dtype::F32);
    static_assert(mlm::dtype_of<uint16_t>() == mlm::Dtype::U16);
    static_assert(mlm::dtype_of<int64_t>() == mlm::Dtype::I64);
}

TEST_CASE("a file built byte for byte is read correctly") {
    TempDir tmp;
    // F32 [1.5, -2.0] = 0x3fc00000, 0xc0000000; I64 [[-3]]; U8 [7, 8, 9].
    const std::string data = std::string("\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8) +
                             std::string("\xfd\xff\xff\xff\xff\xff\xff\xff", 8) +
                             std::string("\x07\x08\x09", 3);
    const std::string header =
        R"({"b":{"dtype":"I64","shape":[1,1],"data_offsets":[8,16]},)"
        R"("__metadata__":{"format":"pt","note":"hand made"},)"
        R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("c":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}})";
    // The length prefix by hand: the padded header length, little-endian, in 8 bytes.
    const std::size_t padded = (header.size() + 7) / 8 * 8;
    REQUIRE(padded < 256);
    const std::string bytes = std::string(1, static_cast<char>(padded)) + std::string(7, '\0') +
                              header + std::string(padded - header.size(), ' ') + data;
    write_bytes(tmp / "hand.safetensors", bytes);

    auto f = mlm::SafetensorsFile::open(tmp / "hand.safetensors");
    CHECK(f.data_start() == 8 + padded);
    CHECK(f.file_size() == 8 + padded + 19);
    CHECK(f.names() == std::vector<std::string>{"a", "b", "c"});  // data order
    CHECK(f.has("b"));
    CHECK_FALSE(f.has("__metadata__"));
    CHECK(f.metadata().at("format") == "pt");
    CHECK(f.metadata().at("note") == "hand made");
    CHECK(f.info("a").dtype == mlm::Dtype::F32);
    CHECK(f.info("b").shape == std::vector<int64_t>{1, 1});
    CHECK(f.info("c").data_begin == 16);
    CHECK(f.read<float>("a") == std::vector<float>{1.5f, -2.0f});
    int64_t b = 0;
    f.read_into("b", &b, {1, 1});
    CHECK(b == -3);
    CHECK(f.read<uint8_t>("c") == std::vector<uint8_t>{7, 8, 9});
    CHECK(f.read<double>("a", /*convert=*/true) == std::vector<double>{1.5, -2.0});
}

TEST_CASE("half and bfloat16 tensors convert to float on request") {
    TempDir tmp;
    // F16: 1, -2, 0.5, 2^-24 (smallest subnormal), inf. BF16: 1, -3.
    const std::vector<uint16_t> half = {0x3c00, 0xc000, 0x3800, 0x0001, 0x7c00};
    const std::vector<uint16_t> bf16 = {0x3f80, 0xc040};
    const std::string header =
        R"({"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]},)"
        R"("g":{"dtype":"BF16","shape":[2],"data_offsets":[10,14]}})";
    write_bytes(tmp / "h.safetensors", make_safetensors(header, bytes_of(half) + bytes_of(bf16)));
    auto f = mlm::SafetensorsFile::open(tmp / "h.safetensors");
    const auto h = f.read<float>("h", true);
    CHECK(h[0] == 1.0f);
    CHECK(h[1] == -2.0f);
    CHECK(h[2] == 0.5f);
    CHECK(h[3] == std::ldexp(1.0f, -24));
    CHECK(std::isinf(h[4]));
    CHECK(f.read<double>("g", true) == std::vector<double>{1.0, -3.0});
    CHECK_CHECKPOINT_ERROR(f.read<float>("h"), "dtype F16 in the file, F32 expected");
    CHECK_CHECKPOINT_ERROR(f.read<uint16_t>("h"), "dtype F16 in the file, U16 expected");
    CHECK(f.read_bytes("h") == std::vector<uint8_t>{0x00, 0x3c, 0x00, 0xc0, 0x00, 0x38, 0x01, 0x00,
                                                    0x00, 0x7c});
}

TEST_CASE("the writer's exact layout: padded header, size-ordered tensors, aligned offsets") {
    TempDir tmp;
    const std::vector<uint8_t> mask = {1, 0, 1};
    const std::vector<float> w = {1, 2, 3, 4};
    const std::vector<double> d = {0.25};
    const std::vector<int32_t> i = {-1, 7};
    mlm::SafetensorsWriter writer;
    writer.add("mask", {3}, mask.data());
    writer.add("w", {2, 2}, w.data());
    writer.add("d", {1}, d.data());
    writer.add("i", {2}, i.data());
    writer.set_metadata("format", "pt");
    const std::string path = tmp / "w.safetensors";
    writer.write(path);

    const std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;
    for (int k = 7; k >= 0; --k) n = (n << 8) | static_cast<unsigned char>(bytes[k]);
    CHECK(n % 8 == 0);
    CHECK(bytes.size() == 8 + n + 8 + 16 + 8 + 3);
    const std::string header = bytes.substr(8, n);
    CHECK(header == writer.header());
    CHECK(header.front() == '{');
    CHECK(header.substr(header.rfind('}') + 1).find_first_not_of(' ') == std::string::npos);

    const auto j = nlohmann::ordered_json::parse(header);
    std::vector<std::string> keys;
    for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
    CHECK(keys == std::vector<std::string>{"__metadata__", "d", "w", "i", "mask"});
    CHECK(j["__metadata__"] == nlohmann::ordered_json({{"format", "pt"}}));
    CHECK(j["d"]["dtype"] == "F64");
    CHECK(j["d"]["data_offsets"] == nlohmann::ordered_json({0, 8}));
    CHECK(j["w"]["dtype"] == "F32");
    CHECK(j["w"]["shape"] == nlohmann::ordered_json({2, 2}));
    CHECK(j["w"]["data_offsets"] == nlohmann::ordered_json({8, 24}));
    CHECK(j["i"]["data_offsets"] == nlohmann::ordered_json({24, 32}));
    CHECK(j["mask"]["dtype"] == "U8");
    CHECK(j["mask"]["data_offsets"] == nlohmann::ordered_json({32, 35}));

    const std::string data = bytes.substr(8 + n);
    CHECK(data == bytes_of(d) + bytes_of(w) + bytes_of(i) + bytes_of(mask));

    const auto layout = writer.layout();
    REQUIRE(layout.size() == 4);
    CHECK(layout[1].name == "w");
    CHECK(layout[1].data_begin == 8);

    auto f = mlm::SafetensorsFile::open(path);
    CHECK(f.read<double>("d") == d);
    CHECK(f.read<float>("w") == w);
    CHECK(f.read<int32_t>("i") == i);
    CHECK(f.read<uint8_t>("mask") == mask);
    CHECK(leftover_temp_files(tmp.path.string()).empty());
}

TEST_CASE("scalars, empty tensors, owned bytes and an empty file round trip") {
    TempDir tmp;
    const double scalar = 3.25;
    mlm::SafetensorsWriter writer;
    writer.add("scalar", {}, &scalar);
    writer.add("empty", mlm::Dtype::F32, {0, 4}, static_cast<const void*>(nullptr));
    writer.add("owned", mlm::Dtype::U16, {2}, std::vector<uint8_t>{1, 0, 2, 0});
    writer.write(tmp / "s.safetensors");
    auto f = mlm::SafetensorsFile::open(tmp / "s.safetensors");
    CHECK(f.read<double>("scalar") == std::vector<double>{3.25});
    CHECK(f.info("scalar").shape.empty());
    CHECK(f.read<float>("empty").empty());
    CHECK(f.info("empty").shape == std::vector<int64_t>{0, 4});
    CHECK(f.read<uint16_t>("owned") == std::vector<uint16_t>{1, 2});

    mlm::SafetensorsWriter none;
    none.write(tmp / "none.safetensors");
    CHECK(read_bytes(tmp / "none.safetensors") == u64_le(8) + "{}      ");
    CHECK(mlm::SafetensorsFile::open(tmp / "none.safetensors").names().empty());
}

TEST_CASE("the writer rejects misuse") {
    const float x = 0;
    mlm::SafetensorsWriter w;
    w.add("x", {1}, &x);
    CHECK_THROWS_WITH_AS(w.add("x", {1}, &x), doctest::Contains("added twice"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add("__metadata__", {1}, &x), doctest::Contains("reserved"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add("neg", {-1}, &x), doctest::Contains("invalid shape"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add("null", mlm::Dtype::F32, {2}, static_cast<const void*>(nullptr)),
                         doctest::Contains("no data"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add("short", mlm::Dtype::F32, {2}, std::vector<uint8_t>(7)),
                         doctest::Contains("needs 8 bytes"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(w.add("big", {int64_t{1} << 40, int64_t{1} << 40}, &x),
                         doctest::Contains("invalid shape"), std::invalid_argument);
}

// ---- corrupt files ---------------------------------------------------------------------------

TEST_CASE("corrupt safetensors files give a CheckpointError naming the file and the problem") {
    TempDir tmp;
    const std::string path = tmp / "bad.safetensors";
    auto open_bad = [&](const std::string& bytes) {
        write_bytes(path, bytes);
        return checkpoint_error([&]() { mlm::SafetensorsFile::open(path); });
    };
    auto check = [&](const std::string& bytes, const std::string& needle) {
        const std::string message = open_bad(bytes);
        INFO("message: " << message);
        CHECK(message.find(path) == 0);
        CHECK(message.find(needle) != std::string::npos);
    };
    const std::vector<float> four = {1, 2, 3, 4};
    const std::string good_header =
        R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
    const std::string good = make_safetensors(good_header, bytes_of(four));
    write_bytes(path, good);
    REQUIRE(mlm::SafetensorsFile::open(path).read<float>("x") == four);
    const std::size_t n = good.size() - 8 - 16;

    SUBCASE("truncated at several points") {
        check(good.substr(0, 0), "too short");
        check(good.substr(0, 5), "too short");
        check(good.substr(0, 8), "exceeds the 0 bytes after it");
        check(good.substr(0, 8 + n / 2), "exceeds");
        check(good.substr(0, 8 + n), "run past the end of the data section (0 bytes)");
        check(good.substr(0, 8 + n + 9), "run past the end");
        check(good.substr(0, good.size() - 1), "run past the end of the data section (15 bytes)");
    }
    SUBCASE("header length larger than the file") {
        check(u64_le(good.size()) + good.substr(8), "header length");
        check(u64_le(~uint64_t{0}) + good.substr(8), "exceeds");
    }
    SUBCASE("header length above 100 MB") {
        // A sparse file big enough that the length passes the file-size check.
        write_bytes(path, u64_le(200u << 20) + "{");
        fs::resize_file(path, (300u << 20));
        const std::string message = checkpoint_error([&]() { mlm::SafetensorsFile::open(path); });
        INFO(message);
        CHECK(message.find("exceeds the limit of 104857600 bytes") != std::string::npos);
    }
    SUBCASE("bad JSON") {
        check(make_safetensors(R"({"x": {"dtype": )", ""), "not valid JSON");
        check(make_safetensors("[1, 2]", ""), "does not start with '{'");
        check(make_safetensors(R"({"x": 1} trailing)", ""), "not valid JSON");
        check(make_safetensors("{\"x\xff\": 1}", ""), "not valid JSON");
    }
    SUBCASE("entries") {
        check(make_safetensors(R"({"x":{"dtype":"F7","shape":[2,2],"data_offsets":[0,16]}})",
                               bytes_of(four)),
              "tensor \"x\": unknown dtype \"F7\"");
        check(make_safetensors(R"({"x":{"shape":[2,2],"data_offsets":[0,16]}})", bytes_of(four)),
              "no \"dtype\"");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})",
                               bytes_of(four)),
              "non-negative integers");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2.0,2],"data_offsets":[0,16]}})",
                               bytes_of(four)),
              "non-negative integers");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0]}})",
                               bytes_of(four)),
              "two non-negative integers");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[16,0]}})",
                               bytes_of(four)),
              "end before they begin");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})",
                               bytes_of(four)),
              "hold 16 bytes but shape [2, 3] of F32 needs 24");
        check(make_safetensors(R"({"x":{"dtype":"F64","shape":[2,2],"data_offsets":[0,16]}})",
                               bytes_of(four)),
              "needs 32");
        // numel * 4 overflows 64 bits: must not wrap around to a small size.
        check(make_safetensors(
                  R"({"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", ""),
              "too large");
        check(make_safetensors(R"({"x":[1,2]})", ""), "not a JSON object");
    }
    SUBCASE("overlapping and duplicated tensors") {
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},)"
                               R"("y":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                               bytes_of(four)),
              "tensor \"y\": data_offsets [8, 16] overlap those of \"x\" [0, 16]");
        check(make_safetensors(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                               R"("x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                               bytes_of(four)),
              "tensor \"x\": appears twice");
    }
    SUBCASE("metadata") {
        check(make_safetensors(R"({"__metadata__":{"step":3}})", ""), "is not a string");
        check(make_safetensors(R"({"__metadata__":[]})", ""), "__metadata__ is not a JSON object");
    }
    SUBCASE("wrong dtype, wrong shape, missing tensor on read") {
        auto f = mlm::SafetensorsFile::open(path);
        std::vector<double> d(4);
        CHECK_CHECKPOINT_ERROR(f.read_into("x", d.data(), {2, 2}),
                               "tensor \"x\": dtype F32 in the file, F64 expected (pass convert=true");
        f.read_into("x", d.data(), {2, 2}, /*convert=*/true);
        CHECK(d == std::vector<double>{1, 2, 3, 4});
        std::vector<int32_t> ints(4);
        CHECK_CHECKPOINT_ERROR(f.read_into("x", ints.data(), {2, 2}, true),
                               "dtype F32 in the file, I32 expected");
        std::vector<float> fl(4);
        CHECK_CHECKPOINT_ERROR(f.read_into("x", fl.data(), {4}), "shape [2, 2] in the file, [4] expected");
        CHECK_CHECKPOINT_ERROR(f.read<float>("y"), "tensor \"y\": not in the file");
        CHECK_CHECKPOINT_ERROR(f.info("y"), path);
    }
    SUBCASE("missing file and directories") {
        CHECK_CHECKPOINT_ERROR(mlm::SafetensorsFile::open(tmp / "nope.safetensors"), "cannot open");
        CHECK_CHECKPOINT_ERROR(mlm::SafetensorsFile::open(tmp.path.string()), "is a directory");
    }
}

TEST_CASE("random corruption of a file never crashes: it loads or throws CheckpointError") {
    TempDir tmp;
    const std::vector<float> w = {1, 2, 3, 4, 5, 6};
    const std::vector<int64_t> ids = {7, 8};
    mlm::SafetensorsWriter writer;
    writer.add("w", {2, 3}, w.data());
    writer.add("ids", {2}, ids.data());
    writer.set_metadata("format", "pt");
    const std::string path = tmp / "fuzz.safetensors";
    writer.write(path);
    const std::string good = read_bytes(path);
    mlm::Rng rng(2024);
    int loaded = 0, rejected = 0;
    for (int trial = 0; trial < 400; ++trial) {
        std::string bytes = good;
        const int edits = 1 + static_cast<int>(rng.below(3));
        for (int e = 0; e < edits; ++e) {
            // Mostly the length and the header, where the parsing is.
            const std::size_t limit = rng.below(4) == 0 ? bytes.size() : std::min<std::size_t>(bytes.size(), 8 + 120);
            bytes[rng.below(limit)] = static_cast<char>(rng.below(256));
        }
        if (rng.below(5) == 0) bytes.resize(rng.below(bytes.size()));
        write_bytes(path, bytes);
        const std::string message = checkpoint_error([&]() {
            auto f = mlm::SafetensorsFile::open(path);
            for (const auto& t : f.tensors()) (void)f.read_bytes(t.name);
        });
        if (message == "<no exception>") ++loaded;
        else {
            INFO("message: " << message);
            REQUIRE(message.rfind("<not a CheckpointError>", 0) != 0);
            ++rejected;
        }
    }
    CHECK(rejected > 200);
    MESSAGE("random corruption: " << loaded << " files still valid, " << rejected << " rejected");
}

// ---- model checkpoints -----------------------------------------------------------------------

TEST_CASE_TEMPLATE("model checkpoint round trip", T, float, double) {
    TempDir tmp;
    const mlm::ModelConfig config = small_config();
    const mlm::ParameterLayout layout(config);
    const std::vector<T> params = random_params<T>(layout, 7);
    const std::string dir = tmp / "ckpt/nested";  // created on save
    std::string tokenizer("spm\0\xff\x01model", 11);
    mlm::ModelSaveOptions options;
    options.tokenizer_model = tokenizer;
    CHECK_FALSE(mlm::is_checkpoint(dir));
    mlm::save_model(dir, config, params.data(), options);
    CHECK(mlm::is_checkpoint(dir));
    CHECK(leftover_temp_files(dir).empty());

    const mlm::ModelConfig loaded_config = mlm::load_config(dir);
    CHECK(mlm::to_json(loaded_config) == mlm::to_json(config));
    CHECK(mlm::load_tokenizer_model(dir) == tokenizer);
    CHECK(mlm::read_file(dir + "/config.json") == mlm::to_json(config));

    // On disk: F32, state_dict keys in layout order, one contiguous walk of the flat buffer.
    auto f = mlm::SafetensorsFile::open(dir + "/model.safetensors");
    CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}});
    REQUIRE(f.tensors().size() == layout.tensors().size());
    for (std::size_t k = 0; k < layout.tensors().size(); ++k) {
        CHECK(f.tensors()[k].name == layout.tensors()[k].name);
        CHECK(f.tensors()[k].shape == layout.tensors()[k].shape);
        CHECK(f.tensors()[k].dtype == mlm::Dtype::F32);
        CHECK(f.tensors()[k].data_begin == layout.tensors()[k].offset * 4);
    }
    CHECK(f.file_size() - f.data_start() == layout.size() * 4);
    CHECK_FALSE(f.has("mlm_head.weight"));

    std::vector<T> back(layout.size(), T(-1));
    mlm::load_model_params(dir, loaded_config, back.data());
    for (std::size_t k = 0; k < params.size(); ++k)
        REQUIRE(back[k] == static_cast<T>(static_cast<float>(params[k])));

    // Other element type on load.
    std::vector<double> as_double(layout.size());
    mlm::load_model_params(dir, loaded_config, as_double.data());
    CHECK(as_double[5] == static_cast<double>(static_cast<float>(params[5])));

    // F64 on disk keeps doubles exactly.
    options.dtype = mlm::Dtype::F64;
    options.tokenizer_model.clear();  // keeps the existing tokenizer.model
    mlm::save_model(dir, config, params.data(), options);
    CHECK(mlm::SafetensorsFile::open(dir + "/model.safetensors").info("ln_f.scale").dtype ==
          mlm::Dtype::F64);
    std::vector<T> exact(layout.size());
    mlm::load_model_params(dir, config, exact.data());
    CHECK(exact == params);
    CHECK(mlm::load_tokenizer_model(dir) == tokenizer);

    options.dtype = mlm::Dtype::F16;
    CHECK_THROWS_AS(mlm::save_model(dir, config, params.data(), options), std::invalid_argument);
}

TEST_CASE("model checkpoint errors name the problem") {
    TempDir tmp;
    const mlm::ModelConfig config = small_config();
    const mlm::ParameterLayout layout(config);
    const std::vector<float> params = random_params<float>(layout, 11);
    const std::string dir = tmp / "ckpt";
    mlm::save_model(dir, config, params.data());
    const std::string model = dir + "/model.safetensors";
    std::vector<float> out(layout.size());

    SUBCASE("missing directory and files") {
        CHECK_CHECKPOINT_ERROR(mlm::load_config(tmp / "absent"),
                               "no checkpoint at " + (tmp / "absent") + ": the directory does not exist");
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(tmp / "absent", config, out.data()),
                               "no checkpoint at");
        CHECK_CHECKPOINT_ERROR(mlm::load_tokenizer_model(dir), "tokenizer.model is missing");
        fs::remove(model);
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "no checkpoint at " + dir + ": model.safetensors is missing");
        fs::remove(dir + "/config.json");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), "config.json is missing");
        write_bytes(tmp / "plain_file", "x");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(tmp / "plain_file"), "not a directory");
    }
    SUBCASE("config.json with bad content") {
        const std::string cfg = dir + "/config.json";
        write_bytes(cfg, "{\"dim\": ");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), cfg + ": not a valid model config: ");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), "not valid JSON");
        write_bytes(cfg, "{\"colour\": 1}");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), "unknown key \"colour\"");
        write_bytes(cfg, "{\"dim\": 30, \"n_heads\": 8}");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), "divisible");
        write_bytes(cfg, "[]");
        CHECK_CHECKPOINT_ERROR(mlm::load_config(dir), "JSON object");
    }
    SUBCASE("missing tensor") {
        write_model_file(model, layout, params, "encoders.1.attn.out_proj.bias");
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "1 of the model's 21 tensors are missing: \"encoders.1.attn.out_proj.bias\"");
        // A deeper model than the checkpoint: all of layer 2 missing.
        mlm::ModelConfig deeper = config;
        deeper.n_layers = 3;
        write_model_file(model, layout, params);
        std::vector<float> big(mlm::ParameterLayout(deeper).size());
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, deeper, big.data()),
                               "9 of the model's 30 tensors are missing: \"encoders.2.ln_1.scale\"");
    }
    SUBCASE("extra tensor") {
        write_model_file(model, layout, params, "", "encoders.2.ln_1.scale");
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "unexpected tensors \"encoders.2.ln_1.scale\"");
    }
    SUBCASE("wrong shape") {
        mlm::ModelConfig longer = config;
        longer.max_len = 32;
        std::vector<float> big(mlm::ParameterLayout(longer).size());
        CHECK_CHECKPOINT_ERROR(
            mlm::load_model_params(dir, longer, big.data()),
            "tensor \"embedding.pos_embedding.weight\": shape [16, 32] in the file, [32, 32] expected");
    }
    SUBCASE("wrong dtype") {
        mlm::SafetensorsWriter w;
        std::vector<int32_t> ints(32);
        for (const auto& t : layout.tensors()) {
            if (t.name == "ln_f.scale") w.add(t.name, t.shape, ints.data());
            else w.add(t.name, t.shape, params.data() + t.offset);
        }
        w.write(model);
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "tensor \"ln_f.scale\": dtype I32, a model checkpoint holds F32 or F64");
    }
    SUBCASE("a state_dict with the tied head") {
        const auto& emb = layout.find("embedding.class_embedding.weight");
        mlm::SafetensorsWriter w;
        for (const auto& t : layout.tensors()) w.add(t.name, t.shape, params.data() + t.offset);
        w.add("mlm_head.weight", emb.shape, params.data() + emb.offset);
        w.write(model);
        mlm::load_model_params(dir, config, out.data());
        CHECK(out == params);

        std::vector<float> other(params.begin() + emb.offset, params.begin() + emb.offset + emb.numel);
        other[17] += 1.0f;
        mlm::SafetensorsWriter w2;
        for (const auto& t : layout.tensors()) w2.add(t.name, t.shape, params.data() + t.offset);
        w2.add("mlm_head.weight", emb.shape, other.data());
        w2.write(model);
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "\"mlm_head.weight\" differs from \"embedding.class_embedding.weight\"");

        mlm::SafetensorsWriter w3;
        for (const auto& t : layout.tensors()) w3.add(t.name, t.shape, params.data() + t.offset);
        w3.add("mlm_head.weight", {2, 2}, other.data());
        w3.write(model);
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "tensor \"mlm_head.weight\": shape [2, 2] in the file, [64, 32]");
    }
    SUBCASE("truncated model.safetensors") {
        const std::string bytes = read_bytes(model);
        write_bytes(model, bytes.substr(0, bytes.size() - 100));
        CHECK_CHECKPOINT_ERROR(mlm::load_model_params(dir, config, out.data()),
                               "run past the end of the data section");
    }
}

// ---- named buffers ---------------------------------------------------------------------------

TEST_CASE("save_tensors / load_tensors: Adam moments in the parameter layout, with metadata") {
    TempDir tmp;
    const mlm::ParameterLayout layout(small_config());
    const std::vector<float> m = random_params<float>(layout, 1);
    const std::vector<float> v = random_params<float>(layout, 2);
    const int64_t step = 1234;
    auto refs = mlm::layout_refs(layout, m.data(), "adam_m.");
    refs.merge(mlm::layout_refs(layout, v.data(), "adam_v."));
    refs["step"] = mlm::tensor_ref(&step, {});
    const std::string path = tmp / "trainer_state.safetensors";
    mlm::save_tensors(path, refs, {{"kind", "adam"}, {"epoch", "3"}});

    std::vector<float> m2(layout.size()), v2(layout.size());
    int64_t step2 = 0;
    auto slots = mlm::layout_slots(layout, m2.data(), "adam_m.");
    slots.merge(mlm::layout_slots(layout, v2.data(), "adam_v."));
    slots["step"] = mlm::tensor_slot(&step2, {});
    const auto metadata = mlm::load_tensors(path, slots);
    CHECK(m2 == m);
    CHECK(v2 == v);
    CHECK(step2 == 1234);
    CHECK(metadata.at("epoch") == "3");
    CHECK(metadata.at("kind") == "adam");

    // Into doubles only with convert; a subset only with allow_extra.
    std::vector<double> md(layout.size());
    auto dslots = mlm::layout_slots(layout, md.data(), "adam_m.");
    CHECK_CHECKPOINT_ERROR(mlm::load_tensors(path, dslots, {true, false}), "unexpected tensors");
    CHECK_CHECKPOINT_ERROR(mlm::load_tensors(path, dslots, {false, true}),
                           "dtype F32 in the file, F64 expected");
    mlm::load_tensors(path, dslots, {true, true});
    CHECK(md[3] == static_cast<double>(m[3]));

    slots["adam_beta"] = mlm::tensor_slot(&step2, {});
    CHECK_CHECKPOINT_ERROR(mlm::load_tensors(path, slots), "1 tensors are missing: \"adam_beta\"");
    slots.erase("adam_beta");
    slots["step"] = mlm::tensor_slot(&step2, {1});
    CHECK_CHECKPOINT_ERROR(mlm::load_tensors(path, slots),
                           "tensor \"step\": shape [] in the file, [1] expected");
}

// ---- atomic writes ---------------------------------------------------------------------------

TEST_CASE("write_file_atomic and read_file") {
    TempDir tmp;
    const std::string path = tmp / "trainer_state.json";
    mlm::write_file_atomic(path, "{\"step\": 1}\n");
    CHECK(mlm::read_file(path) == "{\"step\": 1}\n");
    mlm::write_file_atomic(path, std::string("\0\1\2", 3));
    CHECK(mlm::read_file(path) == std::string("\0\1\2", 3));
    CHECK(leftover_temp_files(tmp.path.string()).empty());
    CHECK_CHECKPOINT_ERROR(mlm::read_file(tmp / "absent"), "cannot read " + (tmp / "absent"));
    CHECK_CHECKPOINT_ERROR(mlm::read_file(tmp.path.string()), "is a directory");
}

TEST_CASE("a failed write leaves the old file intact") {
    TempDir tmp;
    const std::string path = tmp / "model.safetensors";
    const std::vector<float> old_values = {1, 2, 3};
    mlm::SafetensorsWriter old_writer;
    old_writer.add("x", {3}, old_values.data());
    old_writer.write(path);
    const std::string old_bytes = read_bytes(path);
    const std::vector<float> new_values = {4, 5, 6, 7};
    mlm::SafetensorsWriter new_writer;
    new_writer.add("x", {4}, new_values.data());

    SUBCASE("the temporary file cannot be created") {
        // Something that is not a file sits where the temporary file goes.
        const std::string blocker = path + ".tmp-" + std::to_string(::getpid());
        fs::create_directories(blocker + "/inside");
        CHECK_CHECKPOINT_ERROR(new_writer.write(path), "cannot write " + path);
        CHECK_CHECKPOINT_ERROR(mlm::write_file_atomic(path, "new"), "(any existing file there is unchanged)");
        CHECK(read_bytes(path) == old_bytes);
        CHECK(fs::is_directory(blocker + "/inside"));
        fs::remove_all(blocker);
    }
    SUBCASE("the rename fails: the target is a directory") {
        const std::string dir_target = tmp / "a_directory";
        fs::create_directories(dir_target + "/inside");
        CHECK_CHECKPOINT_ERROR(new_writer.write(dir_target), "cannot rename");
        CHECK(fs::is_directory(dir_target + "/inside"));
        CHECK(leftover_temp_files(tmp.path.string()).empty());
        CHECK(read_bytes(path) == old_bytes);
    }
    SUBCASE("a path whose parent is a file") {
        CHECK_CHECKPOINT_ERROR(new_writer.write(path + "/inner.safetensors"), "cannot write");
        CHECK_CHECKPOINT_ERROR(mlm::write_file_atomic(path + "/config.json", "{}"), "cannot write");
        const std::vector<float> params(mlm::ParameterLayout(small_config()).size());
        CHECK_CHECKPOINT_ERROR(mlm::save_model(path, small_config(), params.data()),
                               "cannot create the checkpoint directory");
        CHECK(read_bytes(path) == old_bytes);
    }
    SUBCASE("the directory is not writable") {
        if (::geteuid() == 0) {
            MESSAGE("running as root, which writes anywhere: skipping the read-only directory check");
        } else {
            fs::permissions(tmp.path, fs::perms::owner_read | fs::perms::owner_exec);
            CHECK_CHECKPOINT_ERROR(new_writer.write(path), "Permission denied");
            fs::permissions(tmp.path, fs::perms::owner_all);
            CHECK(read_bytes(path) == old_bytes);
        }
    }
    auto f = mlm::SafetensorsFile::open(path);
    CHECK(f.read<float>("x") == old_values);
    CHECK(leftover_temp_files(tmp.path.string()).empty());
}

TEST_CASE("an open file stays readable after the path is replaced") {
    TempDir tmp;
    const std::string path = tmp / "t.safetensors";
    const std::vector<float> a = {1, 2}, b = {3, 4};
    mlm::SafetensorsWriter wa;
    wa.add("x", {2}, a.data());
    wa.write(path);
    auto f = mlm::SafetensorsFile::open(path);
    mlm::SafetensorsWriter wb;
    wb.add("x", {2}, b.data());
    wb.write(path);  // renamed over: the open file keeps the old inode
    CHECK(f.read<float>("x") == a);
    CHECK(mlm::SafetensorsFile::open(path).read<float>("x") == b);
    mlm::SafetensorsFile moved = std::move(f);
    CHECK(moved.read<float>("x") == a);
}

// ---- a checkpoint replaced as one change ------------------------------------------------------

namespace {

// Every regular file under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const std::string& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_bytes(e.path().string());
    return out;
}

}  // namespace

TEST_CASE("CheckpointWriter: a write interrupted before its commit point leaves the old checkpoint") {
    TempDir tmp;
    const mlm::ModelConfig config = small_config();
    const mlm::ParameterLayout layout(config);
    const std::vector<float> a = random_params<float>(layout, 1), b = random_params<float>(layout, 2);
    const std::string dir = tmp / "ckpt";
    mlm::save_model(dir, config, a.data());
    const auto before = snapshot(dir);

    // What a process killed while staging leaves: some new files, one of them half-written.
    const std::string staging = dir + "/" + mlm::checkpoint_staging_dir;
    fs::create_directories(staging);
    write_model_file(staging + "/model.safetensors", layout, b);
    write_bytes(staging + "/config.json.tmp-123", "{\"dim\": 6");
    std::vector<float> out(layout.size());
    CHECK(mlm::is_checkpoint(dir));
    mlm::load_model_params(dir, mlm::load_config(dir), out.data());
    CHECK(out == a);

    SUBCASE("the next write discards the staged files") {
        mlm::save_model(dir, config, b.data());
        CHECK_FALSE(fs::exists(staging));
        mlm::load_model_params(dir, config, out.data());
        CHECK(out == b);
        CHECK(fs::directory_iterator(dir) != fs::directory_iterator());
        for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string()[0] != '.');
    }
    SUBCASE("recover_checkpoint discards them") {
        mlm::recover_checkpoint(dir);
        CHECK_FALSE(fs::exists(staging));
        CHECK(snapshot(dir) == before);
    }
}

TEST_CASE("CheckpointWriter: a write interrupted after its commit point is read as the new checkpoint") {
    TempDir tmp;
    mlm::ModelConfig old_config = small_config(), new_config = small_config();
    new_config.max_len = 32;  // a different config.json too, so that a mix could not load
    const std::vector<float> a = random_params<float>(mlm::ParameterLayout(old_config), 1);
    const std::vector<float> b = random_params<float>(mlm::ParameterLayout(new_config), 2);
    const std::string dir = tmp / "ckpt", staged = tmp / "staged";
    mlm::ModelSaveOptions options;
    options.tokenizer_model = "old tokenizer";
    mlm::save_model(dir, old_config, a.data(), options);
    options.tokenizer_model = "new tokenizer";
    mlm::save_model(staged, new_config, b.data(), options);
    const auto new_files = snapshot(staged);

    // What a process killed while moving the committed files into place leaves: config.json
    // and tokenizer.model already moved, model.safetensors still in .checkpoint-commit.
    const std::string committed = dir + "/" + mlm::checkpoint_commit_dir;
    fs::create_directories(committed);
    fs::rename(staged + "/model.safetensors", committed + "/model.safetensors");
    fs::rename(staged + "/config.json", dir + "/config.json");
    fs::rename(staged + "/tokenizer.model", dir + "/tokenizer.model");
    CHECK(mlm::checkpoint_file(dir, "model.safetensors") == committed + "/model.safetensors");
    CHECK(mlm::checkpoint_file(dir, "config.json") == dir + "/config.json");

    auto check_new = [&]() {
        const mlm::ModelConfig c = mlm::load_config(dir);
        CHECK(mlm::to_json(c) == mlm::to_json(new_config));
        std::vector<float> out(mlm::ParameterLayout(c).size());
        mlm::load_model_params(dir, c, out.data());
        CHECK(out == b);
        CHECK(mlm::load_tokenizer_model(dir) == "new tokenizer");
    };
    check_new();  // read-only: nothing moved yet
    CHECK(fs::exists(committed + "/model.safetensors"));

    SUBCASE("recover_checkpoint finishes the moves") {
        mlm::recover_checkpoint(dir);
        CHECK_FALSE(fs::exists(committed));
        CHECK(snapshot(dir) == new_files);
        check_new();
    }
    SUBCASE("the next write finishes them first, then replaces only what it writes") {
        mlm::save_tokenizer_model(dir, "newer tokenizer");
        CHECK_FALSE(fs::exists(committed));
        CHECK(mlm::load_tokenizer_model(dir) == "newer tokenizer");
        CHECK(read_bytes(dir + "/model.safetensors") == new_files.at("model.safetensors"));
    }
    SUBCASE("a first checkpoint still wholly in .checkpoint-commit") {
        const std::string fresh = tmp / "fresh";
        fs::create_directories(fresh + "/" + mlm::checkpoint_commit_dir);
        for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"})
            fs::copy_file(mlm::checkpoint_file(dir, f), fresh + "/" + mlm::checkpoint_commit_dir + "/" + f);
        CHECK(mlm::is_checkpoint(fresh));
        CHECK(mlm::to_json(mlm::load_config(fresh)) == mlm::to_json(new_config));
        mlm::recover_checkpoint(fresh);
        CHECK(fs::exists(fresh + "/config.json"));
        CHECK_FALSE(fs::exists(fresh + "/" + mlm::checkpoint_commit_dir));
    }
}

TEST_CASE("a checkpoint write that fails (file size limit, like a full disk) leaves the previous one and says so") {
    TempDir tmp;
    const mlm::ModelConfig config = small_config();
    const mlm::ParameterLayout layout(config);
    const std::vector<float> a = random_params<float>(layout, 1), b = random_params<float>(layout, 2);
    const std::string dir = tmp / "ckpt";
    mlm::ModelSaveOptions options;
    options.tokenizer_model = "tokenizer";
    mlm::save_model(dir, config, a.data(), options);
    const auto before = snapshot(dir);
    REQUIRE(before.at("model.safetensors").size() > 20000);
    std::string message;
    {
        faults::FileSizeLimit limit(16384);  // config.json and tokenizer.model fit, model.safetensors does not
        message = checkpoint_error([&]() { mlm::save_model(dir, config, b.data(), options); });
    }
    INFO("message: " << message);
    CHECK(message.find("cannot write the checkpoint in " + dir) == 0);
    CHECK(message.find("File too large") != std::string::npos);
    CHECK(message.find("the checkpoint already there is unchanged") != std::string::npos);
    CHECK(snapshot(dir) == before);  // bit for bit, and no staged file left behind
    std::vector<float> out(layout.size());
    mlm::load_model_params(dir, config, out.data());
    CHECK(out == a);
    mlm::save_model(dir, config, b.data(), options);  // the limit gone, the next write works
    mlm::load_model_params(dir, config, out.data());
    CHECK(out == b);
}

// ---- every way a checkpoint goes bad, through MaskedLM::load ------------------------------------

TEST_CASE("a corrupt or mismatched checkpoint: MaskedLM::load throws CheckpointError naming the file and the problem") {
    TempDir tmp;
    std::vector<std::string> lines = mlm::read_lines(std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt");
    lines.resize(500);
    mlm::TokenizerTrainOptions to;
    to.vocab_size = 200;
    to.character_coverage = 1.0;
    const mlm::Tokenizer tok = mlm::Tokenizer::train_from_sentences(lines, to);
    mlm::ModelConfig config = small_config();
    config.vocab_size = tok.vocab_size();
    const std::string good = tmp / "good";
    mlm::MaskedLM(config, tok, 5).save(good);
    REQUIRE(mlm::MaskedLM::load(good).config().vocab_size == tok.vocab_size());

    int cases = 0;
    for (const faults::Corruption& c : faults::corruptions()) {
        if (!c.breaks_model) continue;
        CAPTURE(c.name);
        const std::string dir = tmp / ("case" + std::to_string(cases++));
        fs::copy(good, dir);
        c.apply(dir);
        const std::string message = checkpoint_error([&]() { mlm::MaskedLM::load(dir); });
        INFO("message: " << message);
        CHECK(message.rfind("<", 0) != 0);  // a CheckpointError
        CHECK(message.find(dir) != std::string::npos);
        CHECK(message.find(c.file) != std::string::npos);
        CHECK(message.find(c.problem) != std::string::npos);
    }
    CHECK(cases == 10);
}
