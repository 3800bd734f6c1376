// The `mlm` program end to end: help on every command, tokenizer -> train -> resume -> eval ->
// predict -> fill-mask on the bundled sample (.xz and plain inputs), output formats, errors and
// exit codes, and exact agreement between `mlm eval` and the C++ API.
// MLM_CLI (the program's path) is defined by tests/CMakeLists.txt when the CLI is built.
#include <doctest/doctest.h>

#include <mlm/masked_lm.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "checkpoint_faults.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;

#ifdef MLM_CLI

namespace {

const std::string kSource = MLM_SOURCE_DIR;
const std::string kTrainXz = kSource + "/data/wiki-train-30k.txt.xz";
const std::string kValid = kSource + "/data/wiki-valid-2k.txt";

struct Result {
    int code = -1;
    std::string out, err;
};

std::string quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Runs `mlm ARGS...`; captures stdout and stderr.
Result run_mlm(const std::vector<std::string>& args) {
    static int counter = 0;
    const std::string err_file =
        (fs::temp_directory_path() / ("mlm_test_cli_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".err")).string();
    std::string cmd = quote(MLM_CLI);
    for (const auto& a : args) cmd += " " + quote(a);
    cmd += " 2>" + quote(err_file);
    Result r;
    FILE* p = popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    const int status = pclose(p);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.err = read_all(err_file);
    fs::remove(err_file);
    return r;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The error is one line on stderr, "mlm: error: ...", the last one (progress lines may come
// before it), and no exception trace.
void check_one_error_line(const Result& r, const std::string& contains) {
    CHECK(r.code == 1);
    const auto lines = lines_of(r.err);
    REQUIRE(!lines.empty());
    int errors = 0;
    for (const auto& l : lines) errors += starts_with(l, "mlm: error: ");
    CHECK_MESSAGE(errors == 1, r.err);
    CHECK(starts_with(lines.back(), "mlm: error: "));
    CHECK_MESSAGE(lines.back().find(contains) != std::string::npos, lines.back());
    CHECK(r.err.find("terminate") == std::string::npos);
}

// A tokenizer and a short run, made once for all the tests below.
struct Run {
    std::string dir, tokenizer, out;
    std::vector<std::string> train_args;
    Result train;
};

const Run& run() {
    static const Run r = [] {
        Run run;
        run.dir = (fs::temp_directory_path() / ("mlm_test_cli_" + std::to_string(::getpid()))).string();
        fs::remove_all(run.dir);
        fs::create_directories(run.dir);
        run.tokenizer = run.dir + "/tokenizer.model";
        run.out = run.dir + "/run";
        const Result tok = run_mlm({"tokenizer", "train", "--input", kValid, "--vocab-size", "500", "--character-coverage",
                                "1.0", "--out", run.tokenizer});
        REQUIRE_MESSAGE(tok.code == 0, tok.err);
        run.train_args = {"train", "--train", kTrainXz, "--max-sentences", "1500", "--valid", kValid, "--tokenizer",
                          run.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1", "--max-steps", "16",
                          "--batch-tokens", "1024", "--lr", "3e-3", "--eval-every", "8", "--eval-sentences", "200",
                          "--progress", "lines", "--log-every", "4", "--threads", "2", "--out", run.out};
        run.train = run_mlm(run.train_args);
        return run;
    }();
    return r;
}

}  // namespace

TEST_CASE("mlm --help, and --help on every command") {
    const Result top = run_mlm({"--help"});
    CHECK(top.code == 0);
    for (const char* c : {"tokenizer", "train", "eval", "predict", "fill-mask"}) CHECK(top.out.find(c) != std::string::npos);
    for (const std::vector<std::string>& c : std::vector<std::vector<std::string>>{
             {"tokenizer"}, {"tokenizer", "train"}, {"tokenizer", "encode"}, {"train"}, {"eval"}, {"predict"}, {"fill-mask"}}) {
        std::vector<std::string> args = c;
        args.push_back("--help");
        const Result r = run_mlm(args);
        CAPTURE(c.back());
        CHECK(r.code == 0);
        CHECK(r.out.find("Usage:") != std::string::npos);
    }
    // every trainer knob is there
    const Result train = run_mlm({"train", "--help"});
    for (const char* o : {"--epochs", "--max-steps", "--max-tokens", "--max-time", "--max-total-time", "--batch-size",
                          "--batch-tokens", "--grad-accum", "--optimizer", "--weight-decay", "--decay-weights-only", "--clip-grad-norm",
                          "--schedule", "--warmup-steps", "--pct-start", "--mask-prob", "--seed", "--eval-every",
                          "--checkpoint-every", "--checkpoint-minutes", "--resume", "--threads", "--on-non-finite",
                          "--dropout", "--norm-placement", "--tokenizer", "--vocab-size", "--valid", "--recipe"})
        CHECK_MESSAGE(train.out.find(o) != std::string::npos, o);
    // no command, an unknown option: non-zero
    CHECK(run_mlm({}).code != 0);
    CHECK(run_mlm({"predict", "--checkpoint", "x", "--no-such-option", "hi"}).code != 0);
    CHECK(run_mlm({"frobnicate"}).code != 0);
}

TEST_CASE("mlm train: a short run on the bundled sample (.xz train, plain valid)") {
    const Run& r = run();
    REQUIRE_MESSAGE(r.train.code == 0, r.train.err);
    CHECK(r.train.out.find("finished after 16 steps") != std::string::npos);
    CHECK(r.train.out.find("best validation loss") != std::string::npos);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "trainer_state.safetensors",
                          "trainer_state.json", "log.jsonl", "best/model.safetensors"})
        CHECK_MESSAGE(fs::exists(r.out + "/" + f), f);
    int steps = 0, evals = 0;
    for (const std::string& line : lines_of(read_all(r.out + "/log.jsonl"))) {
        const json j = json::parse(line);
        steps += j.contains("loss");
        evals += j.contains("val_loss");
    }
    CHECK(steps == 16);
    CHECK(evals == 2);  // steps 8 and 16
    // plain progress lines (not a terminal) and the evaluations on stderr
    CHECK(r.train.err.find("step 4/16") != std::string::npos);
    CHECK(r.train.err.find("eval step 8") != std::string::npos);
    CHECK(r.train.err.find('\r') == std::string::npos);
}

TEST_CASE("mlm train: an existing run is not overwritten; --resume continues it exactly or refuses") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    check_one_error_line(run_mlm(r.train_args), "already holds a training run");
    std::vector<std::string> resume = r.train_args;
    resume.push_back("--resume");
    const Result again = run_mlm(resume);  // the run is complete: nothing left to do
    CHECK_MESSAGE(again.code == 0, again.err);
    CHECK(again.out.find("finished after 16 steps") != std::string::npos);
    const Result short_form = run_mlm({"train", "--out", r.out, "--resume"});  // data options from OUT/data.json
    CHECK_MESSAGE(short_form.code == 0, short_form.err);
    CHECK(short_form.out.find("finished after 16 steps") != std::string::npos);
    std::vector<std::string> changed = resume;
    changed.push_back("--mask-prob");
    changed.push_back("0.2");
    check_one_error_line(run_mlm(changed), "mask_probability");
    check_one_error_line(run_mlm({"train", "--train", kValid, "--out", r.dir + "/fresh", "--resume"}), "no trainer state");
    check_one_error_line(run_mlm({"train", "--train", kValid, "--out", r.dir + "/bad", "--max-time", "soon"}),
                         "not a duration");
    check_one_error_line(run_mlm({"train", "--train", kValid, "--out", r.dir + "/bad", "--max-total-time", "2 hours"}),
                         "not a duration");
}

TEST_CASE("mlm train --resume: keeps the run's --cache-dir; one cache file per file, however its path is spelled") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string out = r.dir + "/cached_run", cache = r.dir + "/shared_cache";
    const Result first = run_mlm({"train", "--train", kTrainXz, "--max-sentences", "300", "--valid", kValid,
                                  "--tokenizer", r.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1",
                                  "--max-steps", "2", "--eval-sentences", "50", "--progress", "none",
                                  "--cache-dir", cache, "--out", out});
    REQUIRE_MESSAGE(first.code == 0, first.err);
    CHECK(first.err.find("(tokenized") != std::string::npos);
    // the short form finds the cache of the first session, not OUT/cache
    const Result resumed = run_mlm({"train", "--out", out, "--resume"});
    CHECK_MESSAGE(resumed.code == 0, resumed.err);
    CHECK(resumed.err.find("(tokenized") == std::string::npos);
    CHECK(resumed.err.find("(cached") != std::string::npos);
    CHECK_FALSE(fs::exists(out + "/cache"));
    // the same training file by another path: still the same cache file
    const fs::path xz = fs::absolute(kTrainXz);
    const std::string detour = (xz.parent_path() / ".." / xz.parent_path().filename() / xz.filename()).string();
    const Result other_path = run_mlm({"train", "--out", out, "--resume", "--train", detour});
    CHECK_MESSAGE(other_path.code == 0, other_path.err);
    CHECK(other_path.err.find("(tokenized") == std::string::npos);
}

TEST_CASE("mlm train without --recipe: the best recipe, the options given over it") {
    const Run& r = run();
    REQUIRE_MESSAGE(r.train.code == 0, r.train.err);
    const json t = json::parse(read_all(r.out + "/trainer_state.json")).at("trainer_config");
    CHECK(t.at("optimizer") == "adamw");
    CHECK(t.at("schedule") == "warmup_cosine");
    CHECK(t.at("clip_grad_norm").get<double>() == 1.0);
    CHECK(t.at("masking").at("mask_probability").get<double>() == doctest::Approx(0.3));
    CHECK(t.at("batch_tokens") == 1024);        // given
    CHECK(t.at("lr").get<double>() == 3e-3);    // given
    const json model = json::parse(read_all(r.out + "/config.json"));
    CHECK(model.at("norm_placement") == "pre");
    CHECK(model.at("dropout").get<double>() == 0.0);
}

TEST_CASE("mlm train --recipe: sets the recipe's knobs, the options given override them, resume keeps them") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string out = r.dir + "/recipe_run";
    const std::vector<std::string> args = {"train", "--train", kTrainXz, "--max-sentences", "300", "--valid", kValid,
                                           "--tokenizer", r.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1",
                                           "--max-steps", "2", "--eval-sentences", "50", "--progress", "none",
                                           "--recipe", "best", "--lr", "2e-3", "--dropout", "0.05", "--out", out};
    const Result first = run_mlm(args);
    REQUIRE_MESSAGE(first.code == 0, first.err);
    const json state = json::parse(read_all(out + "/trainer_state.json"));
    const json& t = state.at("trainer_config");
    CHECK(t.at("optimizer") == "adamw");
    CHECK(t.at("schedule") == "warmup_cosine");
    CHECK(t.at("batch_tokens") == 4096);
    CHECK(t.at("clip_grad_norm").get<double>() == 1.0);
    CHECK(t.at("lr").get<double>() == 2e-3);  // given: overrides the recipe's 1e-3
    const json model = json::parse(read_all(out + "/config.json"));
    CHECK(model.at("norm_placement") == "pre");
    CHECK(model.at("dropout").get<double>() == doctest::Approx(0.05));
    CHECK(model.at("dim") == 32);
    // resuming with no --recipe keeps the run's; another recipe is a change the trainer refuses
    const Result resumed = run_mlm({"train", "--out", out, "--resume"});
    CHECK_MESSAGE(resumed.code == 0, resumed.err);
    check_one_error_line(run_mlm({"train", "--out", out, "--resume", "--recipe", "original"}), "differs");
    const Result unknown = run_mlm({"train", "--train", kValid, "--out", r.dir + "/bad", "--recipe", "fastest"});
    CHECK(unknown.code != 0);
    CHECK_MESSAGE(unknown.err.find("--recipe") != std::string::npos, unknown.err);
    CHECK_FALSE(fs::exists(r.dir + "/bad"));
}

TEST_CASE("mlm train --batch-size: batches of that many sentences, also under a token-budget recipe") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::vector<std::string> base = {"train", "--train", kTrainXz, "--max-sentences", "300", "--valid", kValid,
                                           "--tokenizer", r.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1",
                                           "--max-steps", "2", "--eval-sentences", "50", "--progress", "none",
                                           "--recipe", "best"};
    auto with = [&](std::vector<std::string> more) {
        std::vector<std::string> args = base;
        args.insert(args.end(), more.begin(), more.end());
        return args;
    };
    const std::string out = r.dir + "/batch_size_run";
    const Result given = run_mlm(with({"--batch-size", "16", "--out", out}));
    REQUIRE_MESSAGE(given.code == 0, given.err);
    const json t = json::parse(read_all(out + "/trainer_state.json")).at("trainer_config");
    CHECK(t.at("batch_size") == 16);
    CHECK(t.at("batch_tokens") == 0);  // the recipe's 4,096-token budget is off
    CHECK(t.at("optimizer") == "adamw");  // the recipe's other knobs stay
    // both: --batch-size would be ignored, so the run is refused before anything is written
    const std::string both = r.dir + "/batch_both_run";
    check_one_error_line(run_mlm(with({"--batch-size", "16", "--batch-tokens", "512", "--out", both})), "batch_tokens 512");
    CHECK_FALSE(fs::exists(both));
    // --batch-tokens 0 with it is the same request as --batch-size alone
    const Result zero = run_mlm(with({"--batch-size", "16", "--batch-tokens", "0", "--out", r.dir + "/batch_zero_run"}));
    CHECK_MESSAGE(zero.code == 0, zero.err);
}

TEST_CASE("mlm train: a run that ends before its first step says that no checkpoint was written") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string out = r.dir + "/no_step_run";
    // the evaluation at the start alone takes longer than the budget
    const Result ended = run_mlm({"train", "--train", kTrainXz, "--max-sentences", "300", "--valid", kValid,
                                  "--tokenizer", r.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1",
                                  "--max-steps", "5", "--eval-at-start", "--progress", "none",
                                  "--max-total-time", "0.000001", "--out", out});
    CHECK_MESSAGE(ended.code == 0, ended.err);
    CHECK_MESSAGE(ended.out.find("after 0 steps") != std::string::npos, ended.out);
    CHECK_MESSAGE(ended.out.find("no checkpoint written") != std::string::npos, ended.out);
    CHECK(ended.out.find("checkpoint: ") == std::string::npos);
    CHECK_FALSE(fs::exists(out + "/trainer_state.safetensors"));
}

TEST_CASE("mlm eval: the metrics, identical to the C++ API") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const Result j = run_mlm({"eval", "--checkpoint", r.out + "/best", "--input", kValid, "--max-sentences", "300", "--json",
                          "--threads", "2"});
    REQUIRE_MESSAGE(j.code == 0, j.err);
    const json m = json::parse(j.out);
    const mlm::MaskedLM lm = mlm::MaskedLM::load(r.out + "/best");
    mlm::EvalOptions o;
    o.max_sentences = 300;
    const mlm::EvalMetrics api = lm.evaluate_file(kValid, o);
    CHECK(m.at("sentences") == 300);
    CHECK(m.at("masked_tokens") == api.masked_tokens);
    CHECK(m.at("loss").get<double>() == api.loss);
    CHECK(m.at("accuracy").get<double>() == api.accuracy);
    CHECK(m.at("single_mask_accuracy").get<double>() == api.single_mask_accuracy);
    CHECK(m.at("single_mask_top5_accuracy").get<double>() == api.single_mask_topk_accuracy);
    CHECK(m.at("accuracy").get<double>() >= 0.0);
    CHECK(m.at("accuracy").get<double>() <= 1.0);
    const Result text = run_mlm({"eval", "--checkpoint", r.out + "/best", "--input", kValid, "--max-sentences", "300"});
    REQUIRE(text.code == 0);
    for (const char* k : {"mlm loss", "masked accuracy", "single-mask acc", "single-mask top-5"})
        CHECK_MESSAGE(text.out.find(k) != std::string::npos, k);
    // the logged best validation loss is this number (same sentences: the first 200)
    const Result v200 = run_mlm({"eval", "--checkpoint", r.out + "/best", "--input", kValid, "--max-sentences", "200", "--json"});
    const json best = json::parse(read_all(r.out + "/best/metrics.json"));
    CHECK(json::parse(v200.out).at("loss").get<double>() == best.at("metrics").at("loss").get<double>());
}

TEST_CASE("mlm predict: the original's four lines") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string s = "hello! how are you?";
    const Result a = run_mlm({"predict", "--checkpoint", r.out, "--seed", "3", s});
    REQUIRE_MESSAGE(a.code == 0, a.err);
    const auto lines = lines_of(a.out);
    REQUIRE(lines.size() == 4);
    CHECK(starts_with(lines[0], "masked: "));
    CHECK(lines[0].find(" predicted: ") != std::string::npos);
    CHECK(lines[1] == "ACTUAL: " + s);
    CHECK(starts_with(lines[2], "MASKED: "));
    CHECK(lines[2].find("[MASK]") != std::string::npos);
    CHECK(starts_with(lines[3], " MODEL: "));
    CHECK(run_mlm({"predict", "--checkpoint", r.out, "--seed", "3", s}).out == a.out);  // a seed fixes the token
    const mlm::MaskedLM lm = mlm::MaskedLM::load(r.out);
    CHECK(a.out == mlm::format_prediction(lm.predict_mask(s, 3)));
    // --position (token 6 is "▁are" for this tokenizer)
    const Result p = run_mlm({"predict", "--checkpoint", r.out, "--position", "6", s});
    REQUIRE(p.code == 0);
    CHECK(lines_of(p.out).at(0).substr(0, 19) == "masked: are predict");
    CHECK(lines_of(p.out).at(2) == "MASKED: hello! how [MASK] you?");
    // a [MASK] in the text is filled; several sentences are separated by a blank line
    const Result two = run_mlm({"predict", "--checkpoint", r.out, "--top-k", "3", "the [MASK] is red.", s});
    REQUIRE(two.code == 0);
    const auto l2 = lines_of(two.out);
    REQUIRE(l2.size() == 11);
    CHECK(l2[0].substr(0, 21) == "masked: [MASK] predic");
    CHECK(l2[2] == "MASKED: the [MASK] is red.");
    CHECK(starts_with(l2[4], "top-3: "));
    CHECK(l2[5].empty());
    check_one_error_line(run_mlm({"predict", "--checkpoint", r.out, "--position", "99", s}), "position 99");
}

TEST_CASE("mlm fill-mask: scores, tokens and filled sentences") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string text = "the capital of france is [MASK].";
    const Result t = run_mlm({"fill-mask", "--checkpoint", r.out, text, "--top-k", "5"});
    REQUIRE_MESSAGE(t.code == 0, t.err);
    const auto lines = lines_of(t.out);
    REQUIRE(lines.size() == 6);
    CHECK(starts_with(lines[0], "score"));
    CHECK(lines[0].find("token") != std::string::npos);
    CHECK(lines[0].find("sequence") != std::string::npos);
    for (int i = 1; i <= 5; ++i) {
        CHECK(starts_with(lines[static_cast<std::size_t>(i)], "0."));
        CHECK(lines[static_cast<std::size_t>(i)].find("the capital of france is") != std::string::npos);
    }
    const Result j = run_mlm({"fill-mask", "--checkpoint", r.out, text, "--top-k", "5", "--json"});
    REQUIRE(j.code == 0);
    const json list = json::parse(j.out);
    REQUIRE(list.size() == 1);  // one [MASK]
    REQUIRE(list[0].size() == 5);
    const mlm::MaskedLM lm = mlm::MaskedLM::load(r.out);
    const auto api = lm.fill_mask(text, 5);
    for (std::size_t k = 0; k < 5; ++k) {
        CHECK(list[0][k].at("token").get<int>() == api[0][k].token);
        CHECK(list[0][k].at("token_str").get<std::string>() == api[0][k].token_str);
        CHECK(list[0][k].at("sequence").get<std::string>() == api[0][k].sequence);
        CHECK(list[0][k].at("score").get<double>() == doctest::Approx(api[0][k].score).epsilon(1e-5));
    }
    const Result two = run_mlm({"fill-mask", "--checkpoint", r.out, "[MASK] capital of france is [MASK].", "-k", "2"});
    REQUIRE(two.code == 0);
    CHECK(two.out.find("[MASK] 1 of 2") != std::string::npos);
    CHECK(two.out.find("[MASK] 2 of 2") != std::string::npos);
}

TEST_CASE("mlm: errors are one line and a non-zero exit code") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    check_one_error_line(run_mlm({"predict", "--checkpoint", r.dir + "/missing", "hello"}), "no checkpoint at");
    check_one_error_line(run_mlm({"fill-mask", "--checkpoint", r.dir + "/missing", "a [MASK]"}), "no checkpoint at");
    check_one_error_line(run_mlm({"fill-mask", "--checkpoint", r.out, "the capital of france is paris."}),
                         "at least one [MASK]");
    check_one_error_line(run_mlm({"eval", "--checkpoint", r.dir, "--input", kValid}), "config.json is missing");
    CHECK(run_mlm({"eval", "--checkpoint", r.out, "--input", r.dir + "/no-such-file.txt"}).code != 0);
    check_one_error_line(run_mlm({"tokenizer", "train", "--input", kValid, "--vocab-size", "3", "--out", r.dir + "/t.model"}),
                         "vocab");
}

TEST_CASE("mlm train: the full corpus's files work as they are (when MLM_DATA names them)") {
    const char* corpus = std::getenv("MLM_DATA");   // its directory (data/README.md)
    const std::string shared = corpus ? std::string(corpus) + "/wiki-sentences.train.txt.xz" : "";
    const std::string shared_valid = corpus ? std::string(corpus) + "/wiki-sentences.valid.txt" : "";
    if (!corpus || !fs::exists(shared) || !fs::exists(shared_valid)) {
        MESSAGE("MLM_DATA does not name the full corpus's directory: skipped");
        return;
    }
    const Run& r = run();
    const Result t = run_mlm({"train", "--train", shared, "--max-sentences", "300", "--valid", shared_valid, "--tokenizer",
                          r.tokenizer, "--dim", "16", "--heads", "2", "--layers", "1", "--max-steps", "2", "--batch-size",
                          "16", "--eval-sentences", "50", "--no-cache", "--progress", "none", "--out", r.dir + "/shared"});
    CHECK_MESSAGE(t.code == 0, t.err);
    CHECK(t.out.find("finished after 2 steps") != std::string::npos);
}

// ---- damaged checkpoints, NaNs and failed writes ---------------------------------------------

namespace {

// A copy of the run's directory (the run itself stays intact for the other tests).
std::string copy_of_run(const std::string& name) {
    const std::string dir = run().dir + "/" + name;
    fs::remove_all(dir);
    fs::copy(run().out, dir, fs::copy_options::recursive);
    return dir;
}

// The error line names the directory, the damaged file and the problem.
void check_names_problem(const Result& r, const std::string& dir, const faults::Corruption& c) {
    check_one_error_line(r, c.problem);
    const std::string last = lines_of(r.err).empty() ? "" : lines_of(r.err).back();
    CHECK_MESSAGE(last.find(dir) != std::string::npos, last);
    CHECK_MESSAGE(last.find(c.file) != std::string::npos, last);
}

}  // namespace

TEST_CASE("mlm eval / predict / fill-mask on a corrupt or mismatched checkpoint: one error line naming the file and the problem") {
    REQUIRE(run().train.code == 0);
    int cases = 0;
    for (const faults::Corruption& c : faults::corruptions()) {
        if (!c.breaks_model) continue;
        CAPTURE(c.name);
        const std::string dir = copy_of_run("damaged" + std::to_string(cases++));
        c.apply(dir);
        check_names_problem(run_mlm({"eval", "--checkpoint", dir, "--input", kValid, "--max-sentences", "5"}), dir, c);
        if (cases % 3 == 1) {  // the same loader behind the other commands: a few cases suffice
            check_names_problem(run_mlm({"predict", "--checkpoint", dir, "hello! how are you?"}), dir, c);
            check_names_problem(run_mlm({"fill-mask", "--checkpoint", dir, "the [MASK] is red."}), dir, c);
        }
        fs::remove_all(dir);
    }
    CHECK(cases == 10);
}

TEST_CASE("mlm train --resume on a corrupt or mismatched run: one error line naming the file and the problem") {
    REQUIRE(run().train.code == 0);
    int cases = 0;
    for (const faults::Corruption& c : faults::corruptions()) {
        if (!c.breaks_resume) continue;
        CAPTURE(c.name);
        const std::string dir = copy_of_run("damaged_run" + std::to_string(cases++));
        c.apply(dir);
        check_names_problem(run_mlm({"train", "--out", dir, "--resume", "--progress", "none"}), dir, c);
        fs::remove_all(dir);
    }
    CHECK(cases == 8);
    // The record of the data options, which a short --resume needs.
    const std::string dir = copy_of_run("damaged_data_json");
    faults::write_bytes(dir + "/data.json", "{\"train\": [");
    check_one_error_line(run_mlm({"train", "--out", dir, "--resume", "--progress", "none"}),
                         dir + "/data.json: not a valid record of the run's data options");
    fs::remove_all(dir);
}

TEST_CASE("mlm: a corrupt best/ leaves the latest checkpoint usable and resumable, and the other way round") {
    REQUIRE(run().train.code == 0);
    const std::string dir = copy_of_run("best_vs_latest");
    auto truncate = [](const std::string& path) {
        const std::string b = read_all(path);
        faults::write_bytes(path, b.substr(0, b.size() / 2));
    };
    const std::string best_model = read_all(dir + "/best/model.safetensors");
    truncate(dir + "/best/model.safetensors");
    check_one_error_line(run_mlm({"eval", "--checkpoint", dir + "/best", "--input", kValid, "--max-sentences", "5"}),
                         dir + "/best/model.safetensors: ");
    CHECK(run_mlm({"eval", "--checkpoint", dir, "--input", kValid, "--max-sentences", "5"}).code == 0);
    const Result resumed = run_mlm({"train", "--out", dir, "--resume", "--progress", "none"});
    CHECK_MESSAGE(resumed.code == 0, resumed.err);

    faults::write_bytes(dir + "/best/model.safetensors", best_model);
    truncate(dir + "/model.safetensors");
    check_one_error_line(run_mlm({"predict", "--checkpoint", dir, "hello"}), dir + "/model.safetensors: ");
    CHECK(run_mlm({"predict", "--checkpoint", dir + "/best", "hello"}).code == 0);
    const Result resumed2 = run_mlm({"train", "--out", dir, "--resume", "--progress", "none"});  // the state is whole
    CHECK_MESSAGE(resumed2.code == 0, resumed2.err);
    fs::remove_all(dir);
}

TEST_CASE("mlm train --on-non-finite: a NaN at step 2 (lr 1e30) stops, or is skipped; the last checkpoint stays") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    auto command = [&](const std::string& out, const std::string& max_steps) {
        return std::vector<std::string>{"train", "--train", kValid, "--max-sentences", "400", "--holdout", "0",
                                        "--tokenizer", r.tokenizer, "--dim", "16", "--heads", "2", "--layers", "1",
                                        "--max-steps", max_steps, "--batch-size", "16", "--schedule", "constant",
                                        // step 1 sends every weight to about +-1e30; step 2's loss is NaN
                                        "--lr", "1e30", "--checkpoint-every", "1", "--threads", "1", "--progress",
                                        "lines", "--log-every", "1", "--no-cache", "--out", out};
    };
    // The checkpoint of step 1, made by a run that ends there.
    const Result one = run_mlm(command(r.dir + "/nan_one", "1"));
    REQUIRE_MESSAGE(one.code == 0, one.err);

    std::vector<std::string> stop = command(r.dir + "/nan_stop", "6");
    stop.insert(stop.end(), {"--on-non-finite", "stop"});
    const Result s = run_mlm(stop);
    check_one_error_line(s, "training stopped at step 2: the loss or the gradient became non-finite");
    CHECK(s.err.find("the checkpoint in " + r.dir + "/nan_stop stays the one of step 1") != std::string::npos);
    CHECK(s.err.find("step 2: non-finite loss, step not applied; stopping") != std::string::npos);
    CHECK(json::parse(read_all(r.dir + "/nan_stop/trainer_state.json")).at("step") == 1);
    CHECK(read_all(r.dir + "/nan_stop/model.safetensors") == read_all(r.dir + "/nan_one/model.safetensors"));
    CHECK(run_mlm({"predict", "--checkpoint", r.dir + "/nan_stop", "hello"}).code == 0);  // it loads

    std::vector<std::string> skip = command(r.dir + "/nan_skip", "6");
    skip.insert(skip.end(), {"--on-non-finite", "skip", "--max-non-finite-skips", "3"});
    const Result k = run_mlm(skip);
    check_one_error_line(k, "training stopped at step 4: the loss or the gradient became non-finite (steps not applied: 3)");
    int skipped = 0;
    for (const std::string& line : lines_of(read_all(r.dir + "/nan_skip/log.jsonl")))
        skipped += json::parse(line).value("skipped", false);
    CHECK(skipped == 3);
    CHECK(k.err.find("step 2: non-finite loss, step not applied; skipped") != std::string::npos);
    // Steps 2 and 3 were skipped and checkpointed with the weights of step 1; step 4 stopped the run.
    CHECK(json::parse(read_all(r.dir + "/nan_skip/trainer_state.json")).at("step") == 3);
    CHECK(read_all(r.dir + "/nan_skip/model.safetensors") == read_all(r.dir + "/nan_one/model.safetensors"));
}

TEST_CASE("mlm train: a checkpoint that cannot be written (file size limit) is one error line; the previous one stays") {
    const Run& r = run();
    REQUIRE(r.train.code == 0);
    const std::string out = r.dir + "/full_disk";
    auto command = [&](const std::string& max_time) {
        return std::vector<std::string>{"train", "--train", kValid, "--max-sentences", "400", "--holdout", "0",
                                        "--tokenizer", r.tokenizer, "--dim", "32", "--heads", "2", "--layers", "1",
                                        "--max-steps", "100000", "--schedule", "constant", "--batch-size", "16",
                                        "--checkpoint-every", "2", "--max-time", max_time, "--threads", "1",
                                        "--progress", "none", "--out", out};
    };
    const Result first = run_mlm(command("0.5s"));  // a session that ends (and checkpoints) after 0.5 s
    REQUIRE_MESSAGE(first.code == 0, first.err);
    REQUIRE(fs::exists(out + "/trainer_state.json"));
    std::map<std::string, std::string> saved;
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model", "trainer_state.safetensors", "trainer_state.json"})
        saved[f] = read_all(out + "/" + f);
    REQUIRE(saved.at("model.safetensors").size() > 96 * 1024);
    // The resumed session may write 96 blocks per file (48 KB in dash's 512-byte blocks, 96 KB in
    // bash's 1 KB ones): the log fits, no checkpoint file does. SIGXFSZ is ignored, as a full disk
    // would not send it: the writes fail with EFBIG instead.
    std::string cmd = "trap '' XFSZ; ulimit -f 96; " + quote(MLM_CLI);
    std::vector<std::string> resume = command("30s");
    resume.push_back("--resume");
    for (const auto& a : resume) cmd += " " + quote(a);
    const std::string err_file = r.dir + "/full_disk.err";
    const int status = std::system((cmd + " >/dev/null 2>" + quote(err_file)).c_str());
    Result full;
    full.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    full.err = read_all(err_file);
    check_one_error_line(full, "cannot write the checkpoint in " + out + ": ");
    CHECK(full.err.find("File too large") != std::string::npos);
    CHECK(full.err.find("the checkpoint already there is unchanged") != std::string::npos);
    for (const auto& [f, bytes] : saved) CHECK_MESSAGE(read_all(out + "/" + f) == bytes, f);
    CHECK_FALSE(fs::exists(out + "/" + mlm::checkpoint_staging_dir));
    const Result again = run_mlm({"train", "--out", out, "--resume", "--max-time", "1s", "--progress", "none"});
    CHECK_MESSAGE(again.code == 0, again.err);  // the run goes on from the intact checkpoint
}

TEST_CASE("cleanup") { fs::remove_all(run().dir); }

#else

TEST_CASE("the mlm program is not built: CLI tests skipped") { MESSAGE("MLM_CLI is not defined"); }

#endif
