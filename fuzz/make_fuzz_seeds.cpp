// Writes the fuzzers' seed corpora (fuzz/corpus/).
//
//   bash scripts/fuzz.sh seeds      # builds this program and runs it; the output is committed
//
// Deterministic: the same library gives the same bytes (the tokenizers train single-threaded with
// a fixed seed, the weights come from a seeded Rng). Seeds are kept small (libFuzzer mutates
// small inputs faster) but valid, so the fuzzers start deep inside each format.
#include "fuzz_entry_points.hpp"

#include <mlm/random.hpp>

#include <cstdio>
#include <fstream>

namespace fs = std::filesystem;
using mlm::fuzz::TextReaderInput;

namespace {

const std::string source = MLM_SOURCE_DIR;

void put(const std::string& path, std::string_view bytes) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

std::string seed_path(const std::string& target, const std::string& name) {
    return source + "/fuzz/corpus/" + target + "/" + name;
}

std::string file_bytes(const std::string& path) { return mlm::read_file(path); }

// A safetensors file as bytes, via the library's writer.
std::string safetensors_bytes(const mlm::SafetensorsWriter& w) {
    const std::string path = mlm::fuzz::scratch().path("seed.safetensors");
    w.write(path);
    return file_bytes(path);
}

// A safetensors file from a header text and data, laid out by hand (for what the writer never
// makes: gaps, unusual key order).
std::string raw_safetensors(std::string header, std::string_view data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    return out + header + std::string(data);
}

std::vector<float> random_floats(std::size_t n, uint64_t seed) {
    mlm::Rng rng(seed);
    std::vector<float> v(n);
    for (float& x : v) x = rng.normal() * 0.02f;
    return v;
}

// Protobuf helpers for tokenizers(): just enough of the wire format to drop one field.
bool read_varint(std::string_view s, std::size_t& pos, uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64 && pos < s.size(); shift += 7) {
        const auto b = static_cast<unsigned char>(s[pos++]);
        v |= static_cast<uint64_t>(b & 0x7F) << shift;
        if (!(b & 0x80)) return true;
    }
    return false;
}

void write_varint(std::string& out, uint64_t v) {
    for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7F) | 0x80);
    out += static_cast<char>(v);
}

// `message` without field `drop` where it is length-delimited; `edit` rewrites the bytes of the
// length-delimited field `nested` (or nothing when nested is 0).
std::string without_field(std::string_view message, uint64_t drop, uint64_t nested = 0,
                          std::string (*edit)(std::string_view) = nullptr) {
    std::string out;
    std::size_t pos = 0;
    while (pos < message.size()) {
        const std::size_t start = pos;
        uint64_t key, v;
        if (!read_varint(message, pos, key)) throw std::runtime_error("bad protobuf");
        const uint64_t field = key >> 3, wire = key & 7;
        if (wire == 0) {
            if (!read_varint(message, pos, v)) throw std::runtime_error("bad protobuf");
        } else if (wire == 1 || wire == 5) {
            pos += wire == 1 ? 8 : 4;
        } else if (wire == 2) {
            if (!read_varint(message, pos, v) || v > message.size() - pos) throw std::runtime_error("bad protobuf");
            const std::string_view body = message.substr(pos, v);
            pos += v;
            if (field == drop) continue;
            if (field == nested && edit) {
                const std::string edited = edit(body);
                write_varint(out, key);
                write_varint(out, edited.size());
                out += edited;
                continue;
            }
        } else {
            throw std::runtime_error("unexpected protobuf wire type");
        }
        out.append(message.substr(start, pos - start));
    }
    return out;
}

// Seeds for the tokenizer_model target: the fuzz tokenizers without sentencepiece's precompiled
// normalization table (NormalizerSpec field 2, ~240 KB of the ~250 KB), so they are small
// enough to mutate; the rest of the model (pieces, scores, trainer and normalizer settings) is
// intact, and the result still loads.
void tokenizer_models() {
    for (int which = 0; which < 2; ++which) {
        const std::string& bytes = mlm::fuzz::fuzz_tokenizer(which).serialized();
        const std::string small = without_field(bytes, /*drop=*/0, /*nested=*/3, [](std::string_view spec) {
            return without_field(spec, /*drop=*/2);
        });
        const auto* p = reinterpret_cast<const uint8_t*>(small.data());
        if (mlm::fuzz::tokenizer_model(p, small.size()) != mlm::fuzz::Outcome::accepted)
            throw std::runtime_error("the small tokenizer model does not load");
        put(seed_path("tokenizer_model", which == 0 ? "unigram-uncased.model" : "bpe-cased.model"), small);
    }
}

void tokenizer_texts() {
    const std::vector<std::string> texts = {
        "The cat sat on the mat.",
        "Hello! How are [MASK]?",
        "[MASK]able [MASK] [MASK]. [MASK]",
        "  leading and trailing spaces  \t\n",
        "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m, \xCE\xAC\xCE\xB8\xCE\xB7\xCE\xBD\xCE\xB1",
        "[MA\xCC\x81SK] combining acute inside a mask",
        "invalid \xFF\xFE bytes \xC0\xAF overlong \xED\xA0\x80 surrogate",
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80 emoji \xE2\x96\x81 marker",
        "\xEF\xBC\xBB" "MASK" "\xEF\xBC\xBD fullwidth brackets",
        "1,234.5 km\xC2\xB2 (approx.) -- \"quoted\" [UNK] [PAD] <unk>",
        "",
    };
    for (std::size_t i = 0; i < texts.size(); ++i) put(seed_path("tokenizer_encode", "text" + std::to_string(i)), texts[i]);
    // A few real sentences.
    mlm::LineReader reader(source + "/data/wiki-valid-2k.txt");
    std::string line;
    for (int i = 0; i < 4 && reader.next(line); ++i) put(seed_path("tokenizer_encode", "wiki" + std::to_string(i)), line);
}

void configs() {
    mlm::ModelConfig c;
    put(seed_path("config", "default.json"), mlm::to_json(c));
    put(seed_path("config", "small.json"), mlm::to_json(mlm::fuzz::checkpoint_config()));
    c.norm_placement = mlm::NormPlacement::pre;
    c.dropout = 0.0f;
    c.norm_eps = 1e-6;
    put(seed_path("config", "pre.json"), mlm::to_json(c));
    put(seed_path("config", "empty.json"), "{}");
    put(seed_path("config", "partial.json"), "{\"model_type\": \"mlm-encoder\", \"dim\": 64, \"n_heads\": 4}");
}

void safetensors_and_checkpoints() {
    const mlm::ModelConfig config = mlm::fuzz::checkpoint_config();
    const mlm::ParameterLayout layout(config);
    const std::vector<float> params = random_floats(layout.size(), 7);

    // Checkpoints as save_model writes them, in F32 and F64.
    const std::string dir = mlm::fuzz::scratch().path("seed-checkpoint");
    for (mlm::Dtype dtype : {mlm::Dtype::F32, mlm::Dtype::F64}) {
        mlm::ModelSaveOptions options;
        options.dtype = dtype;
        mlm::save_model(dir, config, params.data(), options);
        const std::string bytes = file_bytes(dir + "/model.safetensors");
        put(seed_path("checkpoint", std::string("model-") + mlm::to_string(dtype) + ".safetensors"), bytes);
        put(seed_path("safetensors", std::string("model-") + mlm::to_string(dtype) + ".safetensors"), bytes);
    }
    // A PyTorch state_dict: the tied head stored too (equal to the embedding), F16 among F32.
    {
        mlm::SafetensorsWriter w;
        w.set_metadata("format", "pt");
        for (const auto& t : layout.tensors()) w.add(t.name, t.shape, params.data() + t.offset);
        const auto& emb = layout.tensors().front();
        w.add(mlm::tied_head_key, emb.shape, params.data() + emb.offset);
        put(seed_path("checkpoint", "state-dict-with-head.safetensors"), safetensors_bytes(w));
    }
    // Every dtype, a zero-size tensor, a scalar, metadata.
    {
        mlm::SafetensorsWriter w;
        w.set_metadata("format", "pt");
        w.set_metadata("note", "seed");
        const std::vector<uint8_t> bytes = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00,
                                            0x00, 0x7c, 0x01, 0x7e, 0x00, 0x80, 0x80, 0x3f};
        for (mlm::Dtype d : {mlm::Dtype::BOOL, mlm::Dtype::U8, mlm::Dtype::I8, mlm::Dtype::F8_E5M2, mlm::Dtype::F8_E4M3,
                             mlm::Dtype::I16, mlm::Dtype::U16, mlm::Dtype::F16, mlm::Dtype::BF16, mlm::Dtype::I32,
                             mlm::Dtype::U32, mlm::Dtype::F32, mlm::Dtype::I64, mlm::Dtype::U64, mlm::Dtype::F64}) {
            const int64_t n = static_cast<int64_t>(bytes.size() / mlm::dtype_size(d));
            w.add(std::string("t_") + mlm::to_string(d), d, {n}, std::vector<uint8_t>(bytes.begin(), bytes.end()));
        }
        w.add("empty", mlm::Dtype::F32, {0, 3}, std::vector<uint8_t>{});
        w.add("scalar", mlm::Dtype::F64, {}, std::vector<uint8_t>(8, 0x40));
        put(seed_path("safetensors", "all-dtypes.safetensors"), safetensors_bytes(w));
    }
    // By hand: a gap between tensors, keys out of data order, no metadata.
    put(seed_path("safetensors", "gap.safetensors"),
        raw_safetensors("{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                        "\"a\":{\"dtype\":\"I32\",\"shape\":[1,1],\"data_offsets\":[0,4]}}",
                        std::string("\x01\x00\x00\x00\xAA\xAA\xAA\xAA\x00\x3c\x00\xbc", 12)));
    put(seed_path("safetensors", "empty-header.safetensors"), raw_safetensors("{}      ", ""));
}

// A text-reader input: the flags byte (and for gzip/xz modes the cut and flip bytes), then text.
std::string reader_input(uint8_t flags, std::string_view text) {
    std::string s(1, static_cast<char>(flags));
    if ((flags & 3) == TextReaderInput::gzip || (flags & 3) == TextReaderInput::xz) s += std::string(2, '\0');
    return s + std::string(text);
}

void texts() {
    const std::string sample = "The first line.\nA second, longer line with some words in it.\r\n\n"
                               "\n  \nUnicode: caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\nno newline at the end";
    put(seed_path("text_reader", "plain"), reader_input(TextReaderInput::as_is, sample));
    put(seed_path("text_reader", "plain-short-lines"), reader_input(TextReaderInput::as_is | 4 | 16, sample));
    put(seed_path("text_reader", "gzip"), reader_input(TextReaderInput::gzip, sample));
    put(seed_path("text_reader", "gzip-two-members"), reader_input(TextReaderInput::gzip | 32, sample));
    put(seed_path("text_reader", "xz"), reader_input(TextReaderInput::xz, sample));
    put(seed_path("text_reader", "xz-two-streams-long-lines"), reader_input(TextReaderInput::xz | 32 | 4 | 8, sample));
    // Compressed files as they are: the fuzzer mutates the compressed bytes themselves.
    put(seed_path("text_reader", "raw.gz"), reader_input(TextReaderInput::as_is, mlm::fuzz::gzip_compress(sample)));
    put(seed_path("text_reader", "raw.xz"),
        reader_input(TextReaderInput::as_is, mlm::fuzz::xz_compress(sample, LZMA_CHECK_CRC64)));
    put(seed_path("text_reader", "raw-named.gz"),
        reader_input(TextReaderInput::as_is_named_compressed, mlm::fuzz::gzip_compress(sample)));
    put(seed_path("text_reader", "raw-concatenated.gz"),
        reader_input(TextReaderInput::as_is, mlm::fuzz::gzip_compress("one\n") + mlm::fuzz::gzip_compress("two\n")));
    put(seed_path("text_reader", "bzip2-magic"), reader_input(TextReaderInput::as_is, "BZh91AY&SY"));
}

}  // namespace

int main() {
    try {
        tokenizer_models();
        tokenizer_texts();
        configs();
        safetensors_and_checkpoints();
        texts();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
        return 1;
    }
    std::printf("make_fuzz_seeds: wrote fuzz/corpus/ under %s\n", source.c_str());
    return 0;
}
