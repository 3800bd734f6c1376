// Training progress on stderr (progress.hpp).
#include "progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <sys/ioctl.h>
#include <unistd.h>

namespace mlm::cli {

namespace {

int terminal_width() {
    winsize w{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 20) return w.ws_col;
    return 100;
}

}  // namespace

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "--:--";
    const long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
}

Progress::Progress(ProgressMode mode, int64_t log_every) : log_every_(log_every) {
    if (mode == ProgressMode::automatic) mode = isatty(STDERR_FILENO) ? ProgressMode::bar : ProgressMode::lines;
    mode_ = mode;
}

void Progress::step(const StepRecord& r) {
    if (mode_ == ProgressMode::none) return;
    const auto now = std::chrono::steady_clock::now();
    if (mode_ == ProgressMode::bar) {
        const bool last = r.total_steps > 0 && r.step >= r.total_steps;
        if (!last && draws_ > 0 && std::chrono::duration<double>(now - last_draw_).count() < 0.2) return;
        last_draw_ = now;
        ++draws_;
        const std::string count =
            r.total_steps > 0 ? std::to_string(r.step) + "/" + std::to_string(r.total_steps) : std::to_string(r.step);
        const double pct = r.total_steps > 0 ? 100.0 * static_cast<double>(r.step) / static_cast<double>(r.total_steps) : 0.0;
        char buf[256];
        std::snprintf(buf, sizeof buf, "step %s %5.1f%% | ep %.2f | loss %.4f | lr %.2e | %.0f tok/s | %s < %s",
                      count.c_str(), pct, r.epoch, r.loss_smoothed, r.lr, r.tokens_per_s_smoothed,
                      format_duration(r.elapsed_s).c_str(), format_duration(r.eta_s).c_str());
        std::string line(buf);
        const std::size_t width = static_cast<std::size_t>(terminal_width() - 1);
        if (line.size() > width) line.resize(width);
        line.resize(std::max(line.size(), drawn_), ' ');
        drawn_ = std::min(line.size(), width);
        std::fprintf(stderr, "\r%s", line.c_str());
        std::fflush(stderr);
    } else if (r.step == 1 || r.step % log_every_ == 0 || (r.total_steps > 0 && r.step == r.total_steps)) {
        const std::string total = r.total_steps > 0 ? "/" + std::to_string(r.total_steps) : "";
        std::fprintf(stderr, "step %lld%s epoch %.2f loss %.4f lr %.3e grad_norm %.3f %.0f tok/s elapsed %s eta %s%s\n",
                     static_cast<long long>(r.step), total.c_str(), r.epoch, r.loss_smoothed, r.lr, r.grad_norm,
                     r.tokens_per_s_smoothed, format_duration(r.elapsed_s).c_str(), format_duration(r.eta_s).c_str(),
                     r.skipped ? " (skipped: non-finite)" : "");
        std::fflush(stderr);
    }
}

void Progress::eval(const EvalRecord& e) {
    const EvalMetrics& m = e.metrics;
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "eval step %lld (epoch %.2f): loss %.4f accuracy %.4f | single-mask accuracy %.4f top-%d %.4f "
                  "(%lld sentences, %.1f s)%s",
                  static_cast<long long>(e.step), e.epoch, m.loss, m.accuracy, m.single_mask_accuracy, m.top_k,
                  m.single_mask_topk_accuracy, static_cast<long long>(m.sentences), m.seconds, e.best ? " best" : "");
    message(buf);
}

void Progress::message(const std::string& text) {
    if (mode_ == ProgressMode::none) return;
    clear();
    std::fprintf(stderr, "%s\n", text.c_str());
    std::fflush(stderr);
}

void Progress::finish() {
    if (mode_ == ProgressMode::bar && drawn_) {
        std::fprintf(stderr, "\n");
        drawn_ = 0;
    }
}

void Progress::clear() {
    if (mode_ == ProgressMode::bar && drawn_) {
        std::fprintf(stderr, "\r%s\r", std::string(drawn_, ' ').c_str());
        drawn_ = 0;
    }
}

}  // namespace mlm::cli
