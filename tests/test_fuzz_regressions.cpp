// Replays the fuzzers' inputs through the same entry points the libFuzzer targets call
// (fuzz/fuzz_entry_points.hpp): every committed seed (fuzz/corpus/TARGET/) and every input that
// once made a fuzzer fail (tests/fixtures/fuzz/TARGET/, see tests/fixtures/fuzz/README.md).
// Each must be accepted, or refused with the exception type the library documents for bad input;
// a crash, another exception or a broken invariant fails the test. This keeps the entry points
// compiled and exercised in the normal (gcc) build, where libFuzzer is not available.
#include <doctest/doctest.h>

#include "../fuzz/fuzz_entry_points.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

using EntryPoint = mlm::fuzz::Outcome (*)(const uint8_t*, std::size_t);

// The files of fuzz/corpus/TARGET/ and tests/fixtures/fuzz/TARGET/, sorted.
std::vector<fs::path> inputs_of(const std::string& target, std::size_t& regressions) {
    std::vector<fs::path> files;
    regressions = 0;
    for (const std::string dir : {std::string(MLM_SOURCE_DIR) + "/fuzz/corpus/" + target,
                                  std::string(MLM_SOURCE_DIR) + "/tests/fixtures/fuzz/" + target}) {
        if (!fs::is_directory(dir)) continue;
        for (const auto& entry : fs::directory_iterator(dir)) {
            if (!entry.is_regular_file()) continue;
            files.push_back(entry.path());
            if (dir.find("/tests/fixtures/") != std::string::npos) ++regressions;
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

void replay(const std::string& target, EntryPoint run) {
    std::size_t regressions = 0;
    const std::vector<fs::path> files = inputs_of(target, regressions);
    REQUIRE_MESSAGE(!files.empty(), "no seed corpus in fuzz/corpus/" << target);
    std::map<mlm::fuzz::Outcome, int> outcomes;
    for (const fs::path& file : files) {
        const std::string bytes = mlm::read_file(file.string());
        CAPTURE(file.string());
        mlm::fuzz::Outcome outcome = mlm::fuzz::Outcome::rejected;
        CHECK_NOTHROW(outcome = run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
        ++outcomes[outcome];
    }
    MESSAGE(target << ": " << files.size() << " inputs (" << regressions << " regressions), "
                   << outcomes[mlm::fuzz::Outcome::accepted] << " accepted, "
                   << outcomes[mlm::fuzz::Outcome::rejected] << " rejected");
}

}  // namespace

TEST_CASE("fuzz inputs: safetensors files") { replay("safetensors", mlm::fuzz::safetensors_file); }
TEST_CASE("fuzz inputs: checkpoint model files") { replay("checkpoint", mlm::fuzz::checkpoint_model); }
TEST_CASE("fuzz inputs: config.json") { replay("config", mlm::fuzz::config_json); }
TEST_CASE("fuzz inputs: tokenizer encode") { replay("tokenizer_encode", mlm::fuzz::tokenizer_encode); }
TEST_CASE("fuzz inputs: tokenizer model files") { replay("tokenizer_model", mlm::fuzz::tokenizer_model); }
TEST_CASE("fuzz inputs: text readers") { replay("text_reader", mlm::fuzz::text_reader); }

// The seeds are valid inputs: if one is refused, the fuzzer no longer starts inside the format.
TEST_CASE("fuzz seeds are accepted") {
    const std::map<std::string, EntryPoint> targets = {
        {"safetensors", mlm::fuzz::safetensors_file}, {"checkpoint", mlm::fuzz::checkpoint_model},
        {"tokenizer_model", mlm::fuzz::tokenizer_model}, {"tokenizer_encode", mlm::fuzz::tokenizer_encode}};
    for (const auto& [target, run] : targets) {
        const fs::path dir = fs::path(MLM_SOURCE_DIR) / "fuzz" / "corpus" / target;
        for (const auto& entry : fs::directory_iterator(dir)) {
            const std::string bytes = mlm::read_file(entry.path().string());
            CAPTURE(entry.path().string());
            CHECK(run(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()) == mlm::fuzz::Outcome::accepted);
        }
    }
}
