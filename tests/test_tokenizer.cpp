// Tokenizer: special ids, round trips, [MASK] in raw text, errors, determinism, save/load.
#include <doctest/doctest.h>

#include <mlm/tokenizer.hpp>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <fstream>
#include <string>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const std::string valid_path = std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt";

std::vector<std::string> valid_lines(std::size_t n = 2000) {
    std::ifstream in(valid_path);
    REQUIRE(in);
    std::vector<std::string> lines;
    std::string line;
    while (lines.size() < n && std::getline(in, line))
        if (!line.empty()) lines.push_back(line);
    return lines;
}

// One small tokenizer for the whole program (training takes a moment).
const mlm::Tokenizer& tiny() {
    static const mlm::Tokenizer tok = [] {
        mlm::TokenizerTrainOptions options;
        options.vocab_size = 800;
        return mlm::Tokenizer::train({valid_path}, options);
    }();
    return tok;
}

// A scratch directory for this program, removed at exit.
struct ScratchDir {
    fs::path path = fs::temp_directory_path() / ("mlm_test_tokenizer_" + std::to_string(::getpid()));
    ScratchDir() { fs::create_directories(path); }
    ~ScratchDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

fs::path temp_dir() {
    static const ScratchDir dir;
    return dir.path;
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

int count(const std::vector<int32_t>& ids, int32_t id) { return static_cast<int>(std::count(ids.begin(), ids.end(), id)); }

std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("special ids are [UNK]=0 [PAD]=1 [MASK]=2 and control pieces stay out of text") {
    const auto& tok = tiny();
    CHECK(tok.vocab_size() == 800);
    CHECK(tok.unk_id() == 0);
    CHECK(tok.pad_id() == 1);
    CHECK(tok.mask_id() == 2);
    CHECK(tok.id_to_piece(0) == "[UNK]");
    CHECK(tok.id_to_piece(1) == "[PAD]");
    CHECK(tok.id_to_piece(2) == "[MASK]");
    CHECK(tok.piece_to_id("[MASK]") == 2);
    CHECK(tok.piece_to_id("no such piece") == tok.unk_id());
    CHECK(tok.is_special(1));
    CHECK(tok.is_special(2));
    CHECK_FALSE(tok.is_special(0));  // [UNK] is a token of the text
    CHECK(tok.is_unknown(0));
    CHECK_FALSE(tok.strip_accents());
    // The literal [PAD] in text is ordinary text, never the pad id.
    const auto ids = tok.encode("a [PAD] b");
    CHECK(count(ids, tok.pad_id()) == 0);
    CHECK_THROWS_AS(tok.id_to_piece(800), std::out_of_range);
    CHECK_THROWS_AS(tok.id_to_piece(-1), std::out_of_range);

    const auto info = tok.vocab_info();
    REQUIRE(info.is_special.size() == 800);
    REQUIRE(info.word_start.size() == 800);
    CHECK(info.is_special[1] == 1);
    CHECK(info.is_special[2] == 1);
    CHECK(info.word_start[2] == 0);
    for (int id = 3; id < 800; ++id) {
        const std::string piece = tok.id_to_piece(id);
        CHECK(info.word_start[id] == (piece.rfind("\xE2\x96\x81", 0) == 0 ? 1 : 0));
    }
}

TEST_CASE("encode/decode round trip gives the lower-cased text") {
    const auto& tok = tiny();
    int checked = 0;
    for (const auto& line : valid_lines(300)) {
        const bool ascii = std::all_of(line.begin(), line.end(), [](char c) {
            return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7F;
        });
        if (!ascii || line.find("  ") != std::string::npos || line.front() == ' ' || line.back() == ' ') continue;
        const auto ids = tok.encode(line, 0);
        if (count(ids, tok.unk_id()) > 0 || line.find("[MASK]") != std::string::npos) continue;
        CHECK(tok.decode(ids) == lower(line));
        ++checked;
    }
    CHECK(checked > 150);
    CHECK(tok.decode(tok.encode("Hello World, HOW are you.")) == "hello world, how are you.");
    // encode_batch is encode, sentence by sentence
    const auto lines = valid_lines(100);
    const auto batch = tok.encode_batch(lines);
    REQUIRE(batch.size() == lines.size());
    for (std::size_t i = 0; i < lines.size(); ++i) CHECK(batch[i] == tok.encode(lines[i]));
    CHECK(tok.encode_pieces("the the").size() == 2);
}

TEST_CASE("[MASK] in raw text is exactly one mask id, with or without spaces") {
    const auto& tok = tiny();
    const int32_t mask = tok.mask_id();
    const int32_t lone_marker = tok.piece_to_id("\xE2\x96\x81");  // "▁" alone, if in the vocab
    for (const std::string text : {"how are [MASK]?", "how are [MASK] ?", "how are[MASK]?", "[MASK]",
                                   " [MASK] ", "the [MASK] of the [MASK]", "the[MASK][MASK]war",
                                   "  [MASK]   city  "}) {
        CAPTURE(text);
        const auto ids = tok.encode(text);
        std::size_t literal = 0;
        for (std::size_t at = text.find("[MASK]"); at != std::string::npos; at = text.find("[MASK]", at + 1))
            ++literal;
        CHECK(count(ids, mask) == static_cast<int>(literal));
        // no stray "▁" piece right before a mask
        for (std::size_t i = 0; i + 1 < ids.size(); ++i)
            if (ids[i + 1] == mask && lone_marker != tok.unk_id()) CHECK(ids[i] != lone_marker);
    }
    // the text before the mask is encoded as it would be on its own; text glued to the mask
    // continues the masked word (no word marker), text after a space starts a new word
    const int32_t period = tok.piece_to_id(".");
    REQUIRE(period != tok.unk_id());
    std::vector<int32_t> expect = tok.encode("how are");
    expect.push_back(mask);
    expect.push_back(period);
    CHECK(tok.encode("how are [MASK].") == expect);
    expect.pop_back();
    const auto spaced = tok.encode(".");
    expect.insert(expect.end(), spaced.begin(), spaced.end());
    CHECK(tok.encode("how are [MASK] .") == expect);
    CHECK(tok.id_to_piece(tok.encode("[MASK]city")[1]).rfind("\xE2\x96\x81", 0) != 0);
    CHECK(tok.id_to_piece(tok.encode("[MASK] city")[1]).rfind("\xE2\x96\x81", 0) == 0);
    CHECK(tok.encode("[mask]") != std::vector<int32_t>{mask});  // only the exact literal

    // decode renders the mask id readably
    CHECK(tok.decode(tok.encode("How are [MASK].")) == "how are [MASK].");
    CHECK(tok.decode(tok.encode("How are [MASK] city")) == "how are [MASK] city");
    CHECK(tok.decode(tok.encode("[MASK] the city")) == "[MASK] the city");
    CHECK(tok.decode(std::vector<int32_t>{mask, tok.pad_id(), mask}) == "[MASK] [MASK]");
    const auto city = tok.encode("the city");
    std::vector<int32_t> padded = city;
    padded.insert(padded.end(), {tok.pad_id(), tok.pad_id()});
    CHECK(tok.decode(padded) == "the city");  // pads are dropped
    CHECK_THROWS_AS(tok.decode(std::vector<int32_t>{5, 9999}), std::out_of_range);
}

TEST_CASE("empty text, invalid UTF-8 and truncation") {
    const auto& tok = tiny();
    CHECK(tok.encode("").empty());
    CHECK(tok.encode("   \t ").empty());
    CHECK(tok.decode(std::vector<int32_t>{}).empty());

    // invalid bytes become U+FFFD, which the normalizer removes; the rest encodes as usual
    CHECK(tok.encode("the \xFF\xFE city \xC3") == tok.encode("the city"));
    CHECK(tok.encode("the\xC0\xAF city") == tok.encode("the city"));
    CHECK(tok.encode("\xFF\xFF").empty());
    std::string out;
    CHECK(mlm::detail::sanitize_utf8("caf\xC3\xA9 \xE2\x96\x81", out) == false);  // valid: untouched
    CHECK(mlm::detail::sanitize_utf8("a\xC0\xAF" "b", out));                        // overlong "/"
    CHECK(out == "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
    CHECK(mlm::detail::sanitize_utf8("\xED\xA0\x80", out));  // a surrogate
    CHECK(out == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(mlm::detail::sanitize_utf8("\xF4\x90\x80\x80", out));  // above U+10FFFF
    CHECK(mlm::detail::sanitize_utf8("x\xE2\x96", out));         // cut short
    CHECK(out == "x\xEF\xBF\xBD\xEF\xBF\xBD");

    std::string longer;
    for (int i = 0; i < 100; ++i) longer += "the city of london and paris ";
    CHECK(tok.encode(longer).size() == 128);
    CHECK(tok.encode(longer, 7).size() == 7);
    CHECK(tok.encode(longer, 0).size() > 128);
    mlm::Tokenizer copy = tok;
    copy.set_max_length(10);
    CHECK(copy.encode(longer).size() == 10);
    CHECK(copy.encode_batch({longer, "the"})[0].size() == 10);
    CHECK(tok.encode("the [MASK] [MASK] [MASK]", 2) == std::vector<int32_t>{tok.encode("the")[0], 2});
}

TEST_CASE("too little text for the vocab: a clear error, or a smaller vocab when allowed") {
    const auto lines = valid_lines(20);
    mlm::TokenizerTrainOptions options;  // vocab 8192
    const std::string message = what_of([&] { mlm::Tokenizer::train_from_sentences(lines, options); });
    CHECK(message.find("too little text") != std::string::npos);
    CHECK(message.find("8192") != std::string::npos);
    CHECK(message.find("allow_smaller_vocab") != std::string::npos);
    CHECK_THROWS_AS(mlm::Tokenizer::train_from_sentences(lines, options), std::invalid_argument);

    options.allow_smaller_vocab = true;
    const auto tok = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK(tok.vocab_size() < 8192);
    CHECK(tok.vocab_size() > 50);
    CHECK(tok.mask_id() == 2);
    CHECK(tok.decode(tok.encode(lines[0])).size() > 0);

    CHECK_THROWS_AS(mlm::Tokenizer::train_from_sentences({}, options), std::invalid_argument);
    CHECK_THROWS_AS(mlm::Tokenizer::train_from_sentences({"", ""}, options), std::invalid_argument);
    CHECK_THROWS_AS(mlm::Tokenizer::train({}, options), std::invalid_argument);
    mlm::TokenizerTrainOptions bad;
    bad.mask_id = 1;  // same as pad
    CHECK_THROWS_AS(mlm::Tokenizer::train_from_sentences(lines, bad), std::invalid_argument);
    bad = {};
    bad.vocab_size = 3;
    CHECK_THROWS_AS(mlm::Tokenizer::train_from_sentences(lines, bad), std::invalid_argument);
}

TEST_CASE("training is deterministic: identical model bytes") {
    const auto lines = valid_lines(600);
    mlm::TokenizerTrainOptions options;
    options.vocab_size = 500;
    const auto a = mlm::Tokenizer::train_from_sentences(lines, options);
    const auto b = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK(a.serialized() == b.serialized());
    CHECK(a.fingerprint() == b.fingerprint());
    options.model = mlm::TokenizerModel::bpe;
    const auto c = mlm::Tokenizer::train_from_sentences(lines, options);
    const auto d = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK(c.serialized() == d.serialized());
    CHECK(c.serialized() != a.serialized());
    CHECK(c.vocab_size() == 500);
    CHECK(c.mask_id() == 2);
    CHECK(c.decode(c.encode("The city of London.")) == "the city of london.");
}

TEST_CASE("save, load, serialized bytes and bad model files") {
    const auto& tok = tiny();
    const std::string path = (temp_dir() / "tok.model").string();
    tok.save(path);
    const auto loaded = mlm::Tokenizer::load(path);
    CHECK(loaded.serialized() == tok.serialized());
    CHECK(loaded.vocab_size() == tok.vocab_size());
    CHECK(loaded.encode("Hello [MASK] world!") == tok.encode("Hello [MASK] world!"));
    const auto from_bytes = mlm::Tokenizer::from_serialized(tok.serialized());
    CHECK(from_bytes.encode("the city") == tok.encode("the city"));

    const std::string missing = (temp_dir() / "missing.model").string();
    std::string message = what_of([&] { mlm::Tokenizer::load(missing); });
    CHECK(message.find(missing) != std::string::npos);
    CHECK_THROWS_AS(mlm::Tokenizer::load(missing), std::runtime_error);

    const std::string corrupt = (temp_dir() / "corrupt.model").string();
    { std::ofstream(corrupt, std::ios::binary) << "this is not a model"; }
    message = what_of([&] { mlm::Tokenizer::load(corrupt); });
    CHECK(message.find("not a valid sentencepiece model") != std::string::npos);
    { std::ofstream(corrupt, std::ios::binary) << tok.serialized().substr(0, 1000); }
    CHECK_THROWS_AS(mlm::Tokenizer::load(corrupt), std::runtime_error);
    { std::ofstream(corrupt, std::ios::binary | std::ios::trunc); }
    CHECK_THROWS_AS(mlm::Tokenizer::load(corrupt), std::runtime_error);
    CHECK_THROWS_AS(mlm::Tokenizer::from_serialized(""), std::runtime_error);

    mlm::Tokenizer empty;
    CHECK_FALSE(empty.loaded());
    CHECK_THROWS_AS(empty.encode("x"), std::logic_error);
}

TEST_CASE("configurable special ids") {
    const auto lines = valid_lines(400);
    mlm::TokenizerTrainOptions options;
    options.vocab_size = 400;
    options.unk_id = 1;
    options.pad_id = 0;
    options.mask_id = 5;
    const auto tok = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK(tok.unk_id() == 1);
    CHECK(tok.pad_id() == 0);
    CHECK(tok.mask_id() == 5);
    CHECK(tok.id_to_piece(2) == "[unused0]");
    CHECK(tok.id_to_piece(4) == "[unused2]");
    CHECK(tok.is_special(3));
    CHECK(tok.encode("the [MASK]").back() == 5);
    const auto again = mlm::Tokenizer::from_serialized(tok.serialized());
    CHECK(again.mask_id() == 5);
    CHECK(again.pad_id() == 0);
}

TEST_CASE("accent stripping and case") {
    CHECK(mlm::detail::strip_accents("Ça va? Élan, naïve café, ǖ, ά") == "Ca va? Elan, naive cafe, u, α");
    CHECK(mlm::detail::strip_accents("e\xCC\x81" "a") == "ea");  // combining acute removed
    CHECK(mlm::detail::strip_accents("plain ascii") == "plain ascii");

    std::vector<std::string> lines = valid_lines(500);
    lines.push_back("Café naïve Élan Ünïcode résumé façade");
    mlm::TokenizerTrainOptions options;
    options.vocab_size = 500;
    options.strip_accents = true;
    const auto tok = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK(tok.strip_accents());
    CHECK(tok.encode("Café Résumé") == tok.encode("cafe resume"));
    CHECK(tok.decode(tok.encode("Naïve FAÇADE")) == "naive facade");
    CHECK(mlm::Tokenizer::from_serialized(tok.serialized()).strip_accents());

    options.strip_accents = false;
    options.lower_case = false;
    const auto cased = mlm::Tokenizer::train_from_sentences(lines, options);
    CHECK_FALSE(cased.strip_accents());
    CHECK(cased.encode("The") != cased.encode("the"));
    CHECK(cased.decode(cased.encode("The City")) == "The City");
    // the default lower-cases but keeps accents
    CHECK(tiny().encode("THE") == tiny().encode("the"));
}

TEST_CASE("training from a compressed file") {
    mlm::TokenizerTrainOptions options;
    options.vocab_size = 600;
    options.max_sentences = 3000;
    const auto tok = mlm::Tokenizer::train({std::string(MLM_SOURCE_DIR) + "/data/wiki-train-30k.txt.xz"}, options);
    CHECK(tok.vocab_size() == 600);
    CHECK(tok.decode(tok.encode("The war ended in 1945.")) == "the war ended in 1945.");
    CHECK_THROWS_AS(mlm::Tokenizer::train({(temp_dir() / "nope.txt").string()}, options), std::runtime_error);
}
