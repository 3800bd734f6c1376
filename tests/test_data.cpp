// Data: line readers (plain, gzip, xz), bad files, the tokenized corpus and its cache, splitting
// and batching.
#include <doctest/doctest.h>

#include <mlm/collator.hpp>
#include <mlm/data.hpp>

#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace fs = std::filesystem;

namespace {

const std::string source_dir = MLM_SOURCE_DIR;
const std::string valid_path = source_dir + "/data/wiki-valid-2k.txt";

// A scratch directory for this program, removed at exit.
struct ScratchDir {
    fs::path path = fs::temp_directory_path() / ("mlm_test_data_" + std::to_string(::getpid()));
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

std::string temp(const std::string& name) { return (temp_dir() / name).string(); }

void write_file(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    REQUIRE(out.good());
}

std::string gzip(const std::string& text) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(deflateBound(&z, text.size()) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string xz(const std::string& text) {
    std::string out(lzma_stream_buffer_bound(text.size()), '\0');
    std::size_t pos = 0;
    REQUIRE(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(text.data()),
                                    text.size(), reinterpret_cast<uint8_t*>(out.data()), &pos, out.size()) == LZMA_OK);
    out.resize(pos);
    return out;
}

std::vector<std::string> read_all(const std::string& path, const mlm::LineReaderOptions& options = {}) {
    mlm::LineReader reader(path, options);
    std::vector<std::string> lines;
    std::string line;
    while (reader.next(line)) lines.push_back(line);
    return lines;
}

std::string what_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Many lines of varied text, so that compressed files are larger than one read buffer.
const std::string& big_text() {
    static const std::string text = [] {
    const int lines = 40000;
    std::string text;
    mlm::Rng rng(5);
    for (int i = 0; i < lines; ++i) {
        text += "line " + std::to_string(i);
        const int words = static_cast<int>(rng.below(20));
        for (int w = 0; w < words; ++w) text += " w" + std::to_string(rng.below(100000));
        text += '\n';
    }
    return text;
    }();
    return text;
}

const mlm::Tokenizer& tiny() {
    static const mlm::Tokenizer tok = [] {
        mlm::TokenizerTrainOptions options;
        options.vocab_size = 700;
        return mlm::Tokenizer::train({valid_path}, options);
    }();
    return tok;
}

}  // namespace

TEST_CASE("plain files: CRLF stripped, empty lines skipped, physical line numbers kept") {
    const std::string path = temp("plain.txt");
    write_file(path, "first line\r\n\r\n\nsecond line\n  \nlast without newline");
    mlm::LineReader reader(path);
    CHECK(reader.compression() == mlm::Compression::none);
    std::string line;
    REQUIRE(reader.next(line));
    CHECK(line == "first line");
    CHECK(reader.line_number() == 1);
    REQUIRE(reader.next(line));
    CHECK(line == "second line");
    CHECK(reader.line_number() == 4);
    REQUIRE(reader.next(line));
    CHECK(line == "  ");  // whitespace is text; the tokenizer makes it no ids
    REQUIRE(reader.next(line));
    CHECK(line == "last without newline");
    CHECK(reader.line_number() == 6);
    CHECK_FALSE(reader.next(line));
    CHECK_FALSE(reader.next(line));
}

TEST_CASE("gzip and xz files are read streaming, detected by content") {
    const std::string text = big_text();  // ~ 1.5 MB, several read buffers
    const auto expect = read_all((write_file(temp("big.txt"), text), temp("big.txt")));
    REQUIRE(expect.size() == 40000);

    write_file(temp("big.txt.gz"), gzip(text));
    write_file(temp("big.txt.xz"), xz(text));
    write_file(temp("gzip-without-extension.txt"), gzip(text));
    CHECK(mlm::detect_compression(temp("big.txt.gz")) == mlm::Compression::gzip);
    CHECK(mlm::detect_compression(temp("big.txt.xz")) == mlm::Compression::xz);
    CHECK(mlm::detect_compression(temp("gzip-without-extension.txt")) == mlm::Compression::gzip);
    CHECK(read_all(temp("big.txt.gz")) == expect);
    CHECK(read_all(temp("big.txt.xz")) == expect);
    CHECK(read_all(temp("gzip-without-extension.txt")) == expect);

    // concatenated members / streams, as `cat a.gz b.gz` makes
    write_file(temp("two.gz"), gzip("a\nb\n") + gzip("c\n"));
    CHECK(read_all(temp("two.gz")) == std::vector<std::string>{"a", "b", "c"});
    write_file(temp("two.xz"), xz("a\nb\n") + xz("c\n"));
    CHECK(read_all(temp("two.xz")) == std::vector<std::string>{"a", "b", "c"});

    // the bundled sample
    const auto sample = mlm::read_lines(source_dir + "/data/wiki-train-30k.txt.xz");
    CHECK(sample.size() == 30000);
}

TEST_CASE("missing, empty, corrupt and truncated files give errors naming the file") {
    const std::string missing = temp("missing.txt");
    CHECK(contains(what_of([&] { mlm::LineReader r(missing); }), missing));
    CHECK_THROWS_AS(mlm::LineReader{missing}, std::runtime_error);

    write_file(temp("empty.txt"), "");
    CHECK(read_all(temp("empty.txt")).empty());
    CHECK(contains(what_of([&] { mlm::read_lines(temp("empty.txt")); }), "no non-empty line"));
    write_file(temp("blank.txt"), "\n\r\n\n");
    CHECK_THROWS_AS(mlm::read_lines(temp("blank.txt")), std::runtime_error);
    write_file(temp("empty.gz"), "");
    CHECK(contains(what_of([&] { mlm::LineReader r(temp("empty.gz")); }), "empty.gz"));
    write_file(temp("notgzip.gz"), "plain text\n");
    CHECK(contains(what_of([&] { mlm::LineReader r(temp("notgzip.gz")); }), "does not start like one"));
    write_file(temp("data.bz2"), "BZh91AY&SY");
    CHECK(contains(what_of([&] { mlm::LineReader r(temp("data.bz2")); }), "bzip2"));

    const std::string text = big_text();
    for (const std::string ext : {"gz", "xz"}) {
        CAPTURE(ext);
        const std::string packed = ext == "gz" ? gzip(text) : xz(text);
        const std::string truncated = temp("truncated." + ext), corrupt = temp("corrupt." + ext);
        write_file(truncated, packed.substr(0, packed.size() / 2));
        std::string damaged = packed;
        for (std::size_t i = damaged.size() / 3; i < damaged.size() / 3 + 64; ++i) damaged[i] = static_cast<char>(damaged[i] ^ 0x5A);
        write_file(corrupt, damaged);
        const std::string t = what_of([&] { read_all(truncated); });
        CHECK(contains(t, truncated));
        CHECK(contains(t, "truncated"));
        CHECK(contains(t, "after line"));
        const std::string c = what_of([&] { read_all(corrupt); });
        CHECK(contains(c, corrupt));
        CHECK(contains(c, "corrupt"));
        // trailing garbage after a complete stream is an error too, not silently ignored
        write_file(temp("garbage." + ext), packed + "garbage");
        CHECK_THROWS_AS(read_all(temp("garbage." + ext)), std::runtime_error);
    }
}

TEST_CASE("over-long lines: an error naming the line, or skipped") {
    const std::string path = temp("long.txt");
    write_file(path, "short\nalso short\n" + std::string(5000, 'x') + "\nafter\n");
    mlm::LineReaderOptions options;
    options.max_line_bytes = 1000;
    const std::string message = what_of([&] { read_all(path, options); });
    CHECK(contains(message, path));
    CHECK(contains(message, "line 3"));
    options.long_lines = mlm::LongLinePolicy::skip;
    mlm::LineReader reader(path, options);
    std::vector<std::string> lines;
    std::string line;
    while (reader.next(line)) lines.push_back(line);
    CHECK(lines == std::vector<std::string>{"short", "also short", "after"});
    CHECK(reader.skipped_long_lines() == 1);
    CHECK(reader.line_number() == 4);
    // a file without any newline (binary junk) is one long line
    write_file(temp("junk.txt"), std::string(3 << 20, 'j'));
    CHECK_THROWS_AS(read_all(temp("junk.txt")), std::runtime_error);
}

TEST_CASE("TokenizedCorpus stores ids compactly") {
    mlm::TokenizedCorpus small(1000);
    CHECK(small.compact());
    small.append({5, 6, 7});
    small.append({8});
    CHECK(small.size() == 2);
    CHECK(small.num_tokens() == 4);
    CHECK(small.sequence(0) == std::vector<int32_t>{5, 6, 7});
    CHECK(small.length(1) == 1);
    CHECK(small.ids16().size() == 4);
    CHECK(small.ids32().empty());
    CHECK_THROWS_AS(small.append({1000}), std::invalid_argument);
    CHECK_THROWS_AS(small.sequence(2), std::out_of_range);
    CHECK(small.subset({1, 0, 1}).sequence(2) == std::vector<int32_t>{8});

    mlm::TokenizedCorpus big(70000);
    CHECK_FALSE(big.compact());
    big.append({69999, 0});
    CHECK(big.sequence(0) == std::vector<int32_t>{69999, 0});
    CHECK(big.ids32().size() == 2);

    const auto rebuilt = mlm::TokenizedCorpus::from_storage(1000, {5, 6, 7, 8}, {}, {0, 3, 4});
    CHECK(rebuilt.sequence(0) == small.sequence(0));
    CHECK_THROWS_AS(mlm::TokenizedCorpus::from_storage(1000, {5, 6}, {}, {0, 3}), std::invalid_argument);
    CHECK_THROWS_AS(mlm::TokenizedCorpus::from_storage(1000, {5, 6}, {}, {0, 2, 1, 2}), std::invalid_argument);
    CHECK_THROWS_AS(mlm::TokenizedCorpus::from_storage(5, {5}, {}, {0, 1}), std::invalid_argument);
}

TEST_CASE("tokenizing a file in parallel chunks matches encoding line by line") {
    const auto& tok = tiny();
    mlm::TokenizeOptions options;
    options.chunk_lines = 300;  // several chunks
    const auto corpus = mlm::tokenize_file(tok, valid_path, options);
    const auto lines = mlm::read_lines(valid_path);
    CHECK(corpus.size() + corpus.dropped_empty == lines.size());
    CHECK(corpus.size() == 2000);
    std::size_t k = 0;
    int longest = 0;
    for (const auto& line : lines) {
        const auto ids = tok.encode(line, 128);
        if (ids.empty()) continue;
        REQUIRE(k < corpus.size());
        CHECK(corpus.sequence(k++) == ids);
        longest = std::max(longest, static_cast<int>(ids.size()));
    }
    CHECK(longest <= 128);

    options.max_length = 16;
    options.max_sentences = 100;
    const auto short_corpus = mlm::tokenize_file(tok, valid_path, options);
    CHECK(short_corpus.size() == 100);
    for (std::size_t i = 0; i < short_corpus.size(); ++i) CHECK(short_corpus.length(i) <= 16);

    write_file(temp("blank-lines.txt"), "\n   \n\t\n");
    CHECK_THROWS_AS(mlm::tokenize_file(tok, temp("blank-lines.txt")), std::runtime_error);
    CHECK_THROWS_AS(mlm::tokenize_file(tok, temp("does-not-exist.txt")), std::runtime_error);

    const auto in_memory = mlm::tokenize_sentences(tok, {"the city", "", "of london"});
    CHECK(in_memory.size() == 2);
    CHECK(in_memory.dropped_empty == 1);
}

TEST_CASE("the token cache is reused, and rebuilt when stale or damaged") {
    const auto& tok = tiny();
    const std::string source = temp("cache-source.txt");
    write_file(source, mlm::read_lines(valid_path)[0] + "\n" + mlm::read_lines(valid_path)[1] + "\nthe city\n");
    const std::string cache = temp("cache-source.tokens");
    bool hit = true;
    const auto first = mlm::load_or_tokenize(tok, source, cache, {}, &hit);
    CHECK_FALSE(hit);
    CHECK(fs::exists(cache));
    const auto second = mlm::load_or_tokenize(tok, source, cache, {}, &hit);
    CHECK(hit);
    REQUIRE(second.size() == first.size());
    for (std::size_t i = 0; i < first.size(); ++i) CHECK(second.sequence(i) == first.sequence(i));
    for (const auto& entry : fs::directory_iterator(temp_dir()))
        CHECK_FALSE(contains(entry.path().filename().string(), ".tmp."));  // no temporary left behind

    // other options, another tokenizer, a changed source, a damaged cache: rebuilt
    mlm::TokenizeOptions shorter;
    shorter.max_length = 4;
    const auto cut = mlm::load_or_tokenize(tok, source, cache, shorter, &hit);
    CHECK_FALSE(hit);
    CHECK(cut.length(0) == 4);
    mlm::load_or_tokenize(tok, source, cache, shorter, &hit);
    CHECK(hit);

    mlm::TokenizerTrainOptions topt;
    topt.vocab_size = 400;
    const auto other = mlm::Tokenizer::train_from_sentences(mlm::read_lines(valid_path), topt);
    mlm::load_or_tokenize(other, source, cache, shorter, &hit);
    CHECK_FALSE(hit);

    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    write_file(source, "a changed source\n");
    const auto changed = mlm::load_or_tokenize(other, source, cache, shorter, &hit);
    CHECK_FALSE(hit);
    CHECK(changed.size() == 1);

    fs::resize_file(cache, fs::file_size(cache) - 3);
    mlm::load_or_tokenize(other, source, cache, shorter, &hit);
    CHECK_FALSE(hit);
    {
        std::fstream f(cache, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(-1, std::ios::end);
        f.put('\x7F');  // flip the last id
    }
    mlm::load_or_tokenize(other, source, cache, shorter, &hit);
    CHECK_FALSE(hit);
    mlm::load_or_tokenize(other, source, cache, shorter, &hit);
    CHECK(hit);
}

TEST_CASE("train/valid split") {
    const auto s = mlm::split_train_valid(1000, 100, 3);
    CHECK(s.train.size() == 900);
    CHECK(s.valid.size() == 100);
    std::set<std::size_t> all(s.train.begin(), s.train.end());
    all.insert(s.valid.begin(), s.valid.end());
    CHECK(all.size() == 1000);
    CHECK(std::is_sorted(s.valid.begin(), s.valid.end()));
    CHECK(mlm::split_train_valid(1000, 100, 3).valid == s.valid);
    CHECK(mlm::split_train_valid(1000, 100, 4).valid != s.valid);
    CHECK(mlm::split_train_valid_fraction(1000, 0.05, 1).valid.size() == 50);
    CHECK_THROWS_AS(mlm::split_train_valid(10, 11, 0), std::invalid_argument);
    CHECK_THROWS_AS(mlm::split_train_valid_fraction(10, 1.5, 0), std::invalid_argument);
}

TEST_CASE("batching: every sequence once per epoch, deterministic, token budget respected") {
    // lengths like Wikipedia's: mostly 10-60, a few long ones
    mlm::Rng rng(1);
    std::vector<int32_t> lengths(20000);
    for (auto& len : lengths) len = rng.uniform() < 0.01 ? 100 + static_cast<int32_t>(rng.below(29))
                                                         : 5 + static_cast<int32_t>(rng.below(55));
    std::vector<std::size_t> ids(lengths.size());
    for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = 1000000 + i;  // global sample indices

    auto check_cover = [&](const std::vector<std::vector<std::size_t>>& batches) {
        std::vector<int> seen(ids.size(), 0);
        for (const auto& b : batches)
            for (std::size_t id : b) ++seen[id - 1000000];
        return std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; });
    };

    SUBCASE("token budget with length bucketing") {
        mlm::BatcherOptions options;
        options.max_tokens = 4096;
        mlm::Batcher batcher(ids, lengths, options, 7);
        const auto e0 = batcher.epoch_batches(0);
        const auto e1 = batcher.epoch_batches(1);
        CHECK(check_cover(e0));
        CHECK(check_cover(e1));
        CHECK(e0 == batcher.epoch_batches(0));
        CHECK(e0 != e1);
        CHECK(e0 != mlm::Batcher(ids, lengths, options, 8).epoch_batches(0));
        double spread = 0;
        std::size_t tokens_total = 0;
        for (const auto& b : e0) {
            std::size_t tokens = 0;
            int lo = 1 << 30, hi = 0;
            for (std::size_t id : b) {
                tokens += lengths[id - 1000000];
                lo = std::min(lo, lengths[id - 1000000]);
                hi = std::max(hi, lengths[id - 1000000]);
            }
            CHECK(tokens <= 4096);
            tokens_total += tokens;
            spread += hi - lo;
        }
        spread /= e0.size();
        CHECK(spread < 5.0);  // bucketed: similar lengths together
        CHECK(static_cast<double>(tokens_total) / e0.size() > 3500);  // batches are nearly full
        // batch order is shuffled: lengths do not increase through the epoch
        CHECK(lengths[e0.front().front() - 1000000] != lengths[e0.back().front() - 1000000]);

        options.max_sequences = 50;
        for (const auto& b : mlm::Batcher(ids, lengths, options, 7).epoch_batches(3)) CHECK(b.size() <= 50);
    }

    SUBCASE("fixed number of sequences") {
        mlm::BatcherOptions options;
        options.batch_size = 128;
        mlm::Batcher batcher(ids, lengths, options, 7);
        const auto e0 = batcher.epoch_batches(0);
        CHECK(check_cover(e0));
        CHECK(e0.size() == (20000 + 127) / 128);
        for (std::size_t b = 0; b + 1 < e0.size(); ++b) CHECK(e0[b].size() == 128);
        CHECK(e0.back().size() == 20000 % 128);
        options.drop_last = true;
        CHECK(mlm::Batcher(ids, lengths, options, 7).epoch_batches(0).size() == 20000 / 128);
        options.drop_last = false;
        options.bucketing = mlm::BatcherOptions::Bucketing::on;
        const auto bucketed = mlm::Batcher(ids, lengths, options, 7).epoch_batches(0);
        CHECK(check_cover(bucketed));
        options.shuffle = false;
        options.bucketing = mlm::BatcherOptions::Bucketing::off;
        const auto in_order = mlm::Batcher(ids, lengths, options, 7).epoch_batches(5);
        CHECK(in_order.front().front() == 1000000);
        CHECK(in_order.back().back() == 1000000 + 19999);
    }

    SUBCASE("a sequence longer than the budget forms its own batch") {
        mlm::BatcherOptions options;
        options.max_tokens = 64;
        mlm::Batcher batcher({0, 1, 2}, {10, 100, 20}, options, 1);
        const auto batches = batcher.epoch_batches(0);
        std::size_t n = 0;
        for (const auto& b : batches) {
            n += b.size();
            if (std::find(b.begin(), b.end(), 1) != b.end()) CHECK(b.size() == 1);
        }
        CHECK(n == 3);
    }
}

TEST_CASE("corpus, batcher and collator together") {
    const auto& tok = tiny();
    const auto corpus = mlm::tokenize_file(tok, valid_path);
    const auto split = mlm::split_train_valid(corpus.size(), 200, 1);
    mlm::BatcherOptions options;
    options.max_tokens = 2048;
    mlm::Batcher batcher(corpus, split.train, options, 1);
    mlm::MaskingCollator collator(tok, {}, 1);
    mlm::Batch batch;
    std::size_t sequences = 0;
    for (const auto& indices : batcher.epoch_batches(0)) {
        collator.collate(corpus, indices, 0, batch);
        CHECK(batch.num_tokens() <= 2048);
        sequences += batch.num_sequences();
        for (int t = 0; t < batch.num_targets(); ++t) {
            CHECK(batch.target_ids[t] != tok.pad_id());
            CHECK(batch.target_ids[t] != tok.mask_id());
        }
        // the same sequences collated one by one agree
        std::vector<std::vector<int32_t>> seqs;
        std::vector<uint64_t> sample_indices(indices.begin(), indices.end());
        for (std::size_t i : indices) seqs.push_back(corpus.sequence(i));
        mlm::Batch direct;
        collator.collate(seqs, sample_indices, 0, direct);
        CHECK(direct.tokens == batch.tokens);
        CHECK(direct.target_rows == batch.target_rows);
    }
    CHECK(sequences == split.train.size());
}
