// Faults with real processes: a child killed (SIGKILL) at random moments while it writes
// checkpoints, and an `mlm train` killed mid-run and resumed.
//
// This program is its own helper: `test_faults --checkpoint-writer DIR TOKENIZER FD` trains a
// model one step at a time, writes a full checkpoint after every step and reports each write on
// the pipe FD ("B step hash" before it starts, "E step hash" once it is done), until it is killed.
// MLM_CLI (the `mlm` program's path) is defined by tests/CMakeLists.txt when the CLI is built.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <mlm/checkpoint.hpp>
#include <mlm/masked_lm.hpp>
#include <mlm/random.hpp>
#include <mlm/trainer.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>


namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kValidFile = std::string(MLM_SOURCE_DIR) + "/data/wiki-valid-2k.txt";
constexpr int kReportFd = 100;  // the writer child's end of the report pipe

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A fresh, empty directory under the system temp dir, removed at the end of the test case.
struct TempDir {
    fs::path path;
    explicit TempDir(const std::string& name) {
        path = fs::temp_directory_path() / ("mlm_test_faults_" + std::to_string(::getpid()) + "_" + name);
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// ---- the checkpoint writer (child) and its run -----------------------------------------------

// Big enough that a checkpoint (model + Adam state, about 7.5 MB) takes milliseconds to write,
// small enough that a training step is quicker than the write.
mlm::ModelConfig writer_model(int vocab_size) {
    mlm::ModelConfig c;
    c.vocab_size = vocab_size;
    c.dim = 128;
    c.n_heads = 2;
    c.n_layers = 2;
    c.max_len = 64;
    return c;
}

mlm::TrainerConfig writer_config(const std::string& dir) {
    mlm::TrainerConfig c;
    c.epochs = 0;
    c.max_steps = 1000000;
    c.schedule = mlm::ScheduleKind::constant;
    c.lr = 1e-3;
    c.batch_size = 4;
    c.save_best = false;
    c.checkpoint_every_minutes = 0;
    c.threads = 1;
    c.seed = 3;
    c.out_dir = dir;
    return c;
}

mlm::TokenizedCorpus writer_data(const mlm::Tokenizer& tok) {
    std::vector<std::string> lines = mlm::read_lines(kValidFile);
    lines.resize(256);
    return mlm::tokenize_sentences(tok, lines, 64);
}

uint64_t params_hash(const mlm::Encoder<float>& model) {
    return mlm::detail::hash_bytes(model.parameters(), model.num_parameters() * sizeof(float));
}

void report(int fd, char kind, int64_t step, uint64_t hash) {
    char line[64];
    const int n = std::snprintf(line, sizeof line, "%c %lld %016llx\n", kind, static_cast<long long>(step),
                                static_cast<unsigned long long>(hash));
    // One write of less than PIPE_BUF bytes: the reader never sees half a line.
    if (::write(fd, line, static_cast<std::size_t>(n)) != n) std::_Exit(4);
}

// Continues the run in `dir` (or starts it), one step and one checkpoint at a time, forever.
int run_checkpoint_writer(const std::string& dir, const std::string& tokenizer_path, int fd) {
    try {
        const mlm::Tokenizer tok = mlm::Tokenizer::load(tokenizer_path);
        mlm::Trainer trainer(writer_model(tok.vocab_size()), tok, writer_config(dir));
        trainer.set_data(writer_data(tok));
        if (mlm::Trainer::has_state(dir)) trainer.resume();
        // The callback runs after the step's update and right before the checkpoint written on
        // the stop it requests.
        trainer.on_step = [&](const mlm::StepRecord& r) {
            report(fd, 'B', r.step, params_hash(trainer.model()));
            return true;
        };
        for (;;) {
            trainer.train();
            report(fd, 'E', trainer.step(), params_hash(trainer.model()));
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint writer: %s\n", e.what());
        return 3;
    }
}

// ---- child processes -------------------------------------------------------------------------

struct Child {
    pid_t pid = -1;
    int report_fd = -1;  // read end of the report pipe (-1: none)
};

// fork + exec of argv; stdout and stderr to the given files (empty: inherited). With a report pipe,
// the child gets its write end as fd kReportFd.
Child spawn(const std::vector<std::string>& argv, bool report_pipe, const std::string& out_file = "",
            const std::string& err_file = "") {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    int fds[2] = {-1, -1};
    if (report_pipe) REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const int out = out_file.empty() ? -1 : ::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const int err = err_file.empty() ? -1 : ::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    Child c;
    c.pid = ::fork();
    REQUIRE(c.pid >= 0);
    if (c.pid == 0) {  // only async-signal-safe calls until exec
        if (report_pipe && ::dup2(fds[1], kReportFd) < 0) ::_exit(126);
        if (out >= 0 && ::dup2(out, STDOUT_FILENO) < 0) ::_exit(126);
        if (err >= 0 && ::dup2(err, STDERR_FILENO) < 0) ::_exit(126);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
    if (report_pipe) {
        ::close(fds[1]);
        c.report_fd = fds[0];
    }
    return c;
}

// waitpid; the raw status.
int wait_for(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return status;
}

std::string describe_status(int status) {
    if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

std::string self_exe() { return fs::read_symlink("/proc/self/exe").string(); }

// One report of the writer child.
struct Report {
    char kind = 0;  // 'B': a checkpoint of `step` is about to be written; 'E': it is written
    int64_t step = 0;
    uint64_t hash = 0;
    double t = 0;  // seconds since the test started, when the parent read it
};

// Reads the child's reports: appends the complete lines that arrive within `timeout_s` (blocking
// until at least one does, or until EOF when `to_eof`). Returns false on a timeout.
bool read_reports(int fd, std::string& pending, std::vector<Report>& out, double timeout_s, bool to_eof,
                  Clock::time_point t0) {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
    const std::size_t before = out.size();
    for (;;) {
        const double left = std::chrono::duration<double>(deadline - Clock::now()).count();
        if (left <= 0) return false;
        pollfd p{fd, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return to_eof;  // EOF: the child is gone
        pending.append(buf, static_cast<std::size_t>(n));
        std::size_t nl;
        while ((nl = pending.find('\n')) != std::string::npos) {
            Report rep;
            char kind = 0;
            long long step = 0;
            unsigned long long hash = 0;
            REQUIRE(std::sscanf(pending.substr(0, nl).c_str(), "%c %lld %llx", &kind, &step, &hash) == 3);
            rep.kind = kind;
            rep.step = step;
            rep.hash = hash;
            rep.t = seconds_since(t0);
            out.push_back(rep);
            pending.erase(0, nl + 1);
        }
        if (!to_eof && out.size() > before) return true;
    }
}

struct Version {
    int64_t step;
    uint64_t hash;
};

// The checkpoint in `dir` loads as a model (config.json, tokenizer.model, model.safetensors) and
// as a trainer state, all of one step: the state's parameters are the model's, bit for bit, and
// both are the committed version or the one being written when the writer was killed.
Version check_whole_checkpoint(const std::string& dir, const mlm::Tokenizer& tok, const mlm::TokenizedCorpus& data,
                            const Version& committed, const std::optional<Version>& in_flight) {
    const mlm::MaskedLM lm = mlm::MaskedLM::load(dir);
    CHECK(mlm::to_json(lm.config()) == mlm::to_json(writer_model(tok.vocab_size())));
    CHECK(lm.tokenizer().serialized() == tok.serialized());
    mlm::Trainer trainer(writer_model(tok.vocab_size()), tok, writer_config(dir));
    trainer.set_data(data);
    trainer.resume();
    const std::size_t n = lm.model().num_parameters();
    REQUIRE(trainer.model().num_parameters() == n);
    CHECK_MESSAGE(std::memcmp(trainer.model().parameters(), lm.model().parameters(), n * sizeof(float)) == 0,
                  "model.safetensors and trainer_state.safetensors hold different weights: a mix of two checkpoints");
    const json state_json = json::parse(mlm::read_file(mlm::checkpoint_file(dir, "trainer_state.json")));
    CHECK(state_json.at("step").get<int64_t>() == trainer.step());
    const Version found{trainer.step(), params_hash(lm.model())};
    const bool is_committed = found.step == committed.step && found.hash == committed.hash;
    const bool is_in_flight = in_flight && found.step == in_flight->step && found.hash == in_flight->hash;
    INFO("found step " << found.step << ", committed step " << committed.step << ", in flight "
                       << (in_flight ? std::to_string(in_flight->step) : std::string("none")));
    CHECK((is_committed || is_in_flight));
    return found;
}

}  // namespace

TEST_CASE("SIGKILL at random moments while checkpoints are written: the directory always holds one whole checkpoint") {
    const auto t0 = Clock::now();
    TempDir tmp("kill_writes");
    const std::string dir = tmp / "run", tok_path = tmp / "tokenizer.model";
    mlm::TokenizerTrainOptions to;
    to.vocab_size = 500;
    to.character_coverage = 1.0;
    const mlm::Tokenizer tok = mlm::Tokenizer::train_from_sentences(mlm::read_lines(kValidFile), to);
    tok.save(tok_path);
    const mlm::TokenizedCorpus data = writer_data(tok);
    const std::vector<std::string> argv = {self_exe(), "--checkpoint-writer", dir, tok_path, std::to_string(kReportFd)};

    constexpr int kKills = 120;
    mlm::Rng rng(20240607);
    std::optional<Version> committed, in_flight;
    int kills = 0, mid_write = 0, found_new = 0, staging_left = 0, commit_left = 0;
    double cycle_s = 0, write_s = 0;  // a step + its checkpoint; the checkpoint alone
    while (kills < kKills) {
        Child child = spawn(argv, true);
        std::string pending;
        std::vector<Report> reports;
        bool ok = true;
        if (!cycle_s) {
            // The first life: time a few checkpoints, to spread the kills over a whole cycle.
            auto ends_seen = [&]() {
                return std::count_if(reports.begin(), reports.end(), [](const Report& r) { return r.kind == 'E'; });
            };
            while (ok && ends_seen() < 6) ok = read_reports(child.report_fd, pending, reports, 120, false, t0);
            REQUIRE(ok);
            std::vector<double> begins, ends;
            for (const Report& r : reports) (r.kind == 'B' ? begins : ends).push_back(r.t);
            cycle_s = (ends.back() - ends[1]) / static_cast<double>(ends.size() - 2);
            for (std::size_t i = 1; i < ends.size(); ++i)
                write_s += (ends[i] - begins[i]) / static_cast<double>(ends.size() - 1);
        } else {
            ok = read_reports(child.report_fd, pending, reports, 120, false, t0);  // started: resumed, one step done
        }
        if (!ok) {
            ::kill(child.pid, SIGKILL);
            FAIL("the checkpoint writer reported nothing for 120 s (" << describe_status(wait_for(child.pid)) << ")");
        }
        // Mostly within the write that has just begun, whatever the disk's speed; else anywhere in
        // the next cycle and a bit: the write, the step, the next write.
        const double span = rng.uniform() < 0.75 ? 1.1 * write_s : 1.3 * cycle_s;
        std::this_thread::sleep_for(std::chrono::duration<double>(rng.uniform() * span));
        ::kill(child.pid, SIGKILL);
        const int status = wait_for(child.pid);
        read_reports(child.report_fd, pending, reports, 30, true, t0);
        ::close(child.report_fd);
        REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                        "the checkpoint writer " << describe_status(status));
        ++kills;
        for (const Report& r : reports) {
            if (r.kind == 'E') {
                committed = Version{r.step, r.hash};
                in_flight.reset();
            } else {
                in_flight = Version{r.step, r.hash};
            }
        }
        mid_write += reports.back().kind == 'B';
        REQUIRE(committed);
        CAPTURE(kills);
        // Killed while staging the new files, or after the commit point while moving them.
        staging_left += fs::exists(fs::path(dir) / mlm::checkpoint_staging_dir);
        commit_left += fs::exists(fs::path(dir) / mlm::checkpoint_commit_dir);
        const Version found = check_whole_checkpoint(dir, tok, data, *committed, in_flight);
        found_new += in_flight && found.step == in_flight->step;
        // The next life resumes from whichever of the two is there.
        committed = found;
        in_flight.reset();
    }
    MESSAGE(kills << " kills, " << mid_write << " of them during a checkpoint write (between its start and its "
                  << "end), after which the directory held the new checkpoint " << found_new
                  << " times and the previous one " << mid_write - found_new << " times; " << staging_left
                  << " kills left staged files, " << commit_left << " a commit half moved into place; a checkpoint "
                  << "took " << write_s * 1000 << " ms, a step and its checkpoint " << cycle_s * 1000
                  << " ms; last step " << committed->step << "; " << seconds_since(t0) << " s");
    CHECK(mid_write >= kKills / 2);
}

#ifdef MLM_CLI

namespace {

int64_t last_logged_step(const std::string& log_path) {
    std::ifstream in(log_path);
    std::string line;
    int64_t last = 0;
    while (std::getline(in, line)) {
        try {
            const json j = json::parse(line);
            if (j.contains("loss")) last = std::max(last, j.at("step").get<int64_t>());
        } catch (const json::exception&) {
            // the line being written
        }
    }
    return last;
}

std::vector<double> logged_losses(const std::string& log_path) {
    std::ifstream in(log_path);
    std::string line;
    std::vector<double> losses;
    while (std::getline(in, line)) {
        const json j = json::parse(line);
        if (j.contains("loss")) {
            REQUIRE(j.at("step").get<std::size_t>() == losses.size() + 1);
            losses.push_back(j.at("loss").get<double>());
        }
    }
    return losses;
}

// Every tensor of the two safetensors files, byte for byte.
void check_same_tensors(const std::string& a_path, const std::string& b_path) {
    const auto a = mlm::SafetensorsFile::open(a_path), b = mlm::SafetensorsFile::open(b_path);
    REQUIRE(a.names() == b.names());
    for (const auto& name : a.names()) {
        CAPTURE(name);
        CHECK(a.read_bytes(name) == b.read_bytes(name));
    }
}

}  // namespace

TEST_CASE("mlm train killed (SIGKILL) mid-run and resumed: the same weights as an uninterrupted run") {
    const auto t0 = Clock::now();
    TempDir tmp("kill_train");
    mlm::TokenizerTrainOptions to;
    to.vocab_size = 400;
    to.character_coverage = 1.0;
    mlm::Tokenizer::train_from_sentences(mlm::read_lines(kValidFile), to).save(tmp / "tokenizer.model");
    auto command = [&](const std::string& out) {
        return std::vector<std::string>{MLM_CLI, "train", "--train", kValidFile, "--max-sentences", "800", "--valid",
                                        kValidFile, "--eval-sentences", "64", "--eval-every", "10", "--tokenizer",
                                        tmp / "tokenizer.model", "--dim", "32", "--heads", "2", "--layers", "2",
                                        "--max-steps", "60", "--batch-size", "16", "--lr", "2e-3", "--checkpoint-every",
                                        "4", "--threads", "1", "--progress", "lines", "--log-every", "1", "--no-cache",
                                        "--seed", "9", "--out", out};
    };
    const std::string a = tmp / "a", b = tmp / "b";

    const Child ca = spawn(command(a), false, tmp / "a.out", tmp / "a.err");
    const int sa = wait_for(ca.pid);
    REQUIRE_MESSAGE((WIFEXITED(sa) && WEXITSTATUS(sa) == 0),
                    describe_status(sa) << ": " << mlm::read_file(tmp / "a.err"));

    // Killed once the log shows step K: checkpoints are every 4 steps, so at least one is on disk.
    mlm::Rng rng(77);
    const int64_t kill_at = 6 + static_cast<int64_t>(rng.below(40));
    const Child cb = spawn(command(b), false, tmp / "b.out", tmp / "b.err");
    int sb = 0;
    bool ended = false;  // on its own, before the kill
    while (!ended && last_logged_step(b + "/log.jsonl") < kill_at) {
        ended = ::waitpid(cb.pid, &sb, WNOHANG) == cb.pid;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!ended) {
        ::kill(cb.pid, SIGKILL);
        sb = wait_for(cb.pid);
    }
    REQUIRE_MESSAGE((WIFSIGNALED(sb) && WTERMSIG(sb) == SIGKILL), describe_status(sb));
    const int64_t logged = last_logged_step(b + "/log.jsonl");
    const int64_t saved =
        json::parse(mlm::read_file(mlm::checkpoint_file(b, "trainer_state.json"))).at("step").get<int64_t>();
    MESSAGE("killed after step " << logged << " was logged; the checkpoint on disk is of step " << saved);
    REQUIRE(logged < 60);
    CHECK(saved >= 4);
    CHECK(saved % 4 == 0);

    std::vector<std::string> resume = command(b);
    resume.push_back("--resume");
    const Child cr = spawn(resume, false, tmp / "r.out", tmp / "r.err");
    const int sr = wait_for(cr.pid);
    REQUIRE_MESSAGE((WIFEXITED(sr) && WEXITSTATUS(sr) == 0),
                    describe_status(sr) << ": " << mlm::read_file(tmp / "r.err"));
    CHECK(mlm::read_file(tmp / "r.err").find("resuming the run in") != std::string::npos);
    CHECK(mlm::read_file(tmp / "r.out").find("finished after 60 steps") != std::string::npos);

    CHECK(mlm::read_file(mlm::checkpoint_file(a, "model.safetensors")) ==
          mlm::read_file(mlm::checkpoint_file(b, "model.safetensors")));
    CHECK(mlm::read_file(mlm::checkpoint_file(a + "/best", "model.safetensors")) ==
          mlm::read_file(mlm::checkpoint_file(b + "/best", "model.safetensors")));
    check_same_tensors(mlm::checkpoint_file(a, "trainer_state.safetensors"),
                       mlm::checkpoint_file(b, "trainer_state.safetensors"));
    const std::vector<double> la = logged_losses(a + "/log.jsonl"), lb = logged_losses(b + "/log.jsonl");
    REQUIRE(la.size() == 60);
    CHECK(la == lb);  // bit for bit
    MESSAGE("kill-and-resume test: " << seconds_since(t0) << " s");
}

#endif

int main(int argc, char** argv) {
    if (argc == 5 && std::string(argv[1]) == "--checkpoint-writer")
        return run_checkpoint_writer(argv[2], argv[3], std::atoi(argv[4]));
    doctest::Context context(argc, argv);
    return context.run();
}
