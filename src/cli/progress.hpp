// Internal to the `mlm` program: training progress on stderr, a bar redrawn in place on a
// terminal or plain lines. The trainer reports (StepRecord, EvalRecord, Notice); this presents.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include <mlm/trainer.hpp>

namespace mlm::cli {

enum class ProgressMode { automatic, bar, lines, none };  // automatic: a bar on a terminal, else lines

inline const auto& enum_names(const ProgressMode*) {
    static const EnumName<ProgressMode> names[] = {{ProgressMode::automatic, "auto"},
                                                   {ProgressMode::bar, "bar"},
                                                   {ProgressMode::lines, "lines"},
                                                   {ProgressMode::none, "none"}};
    return names;
}

// "1:02:03" or "2:03"; "--:--" when unknown.
std::string format_duration(double seconds);

class Progress {
public:
    Progress(ProgressMode mode, int64_t log_every);
    void step(const StepRecord& r);
    void eval(const EvalRecord& e);
    void message(const std::string& text);  // a line of its own (the bar is redrawn after it)
    void finish();

private:
    void clear();
    ProgressMode mode_;
    int64_t log_every_;
    std::size_t drawn_ = 0;
    int64_t draws_ = 0;
    std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace mlm::cli
