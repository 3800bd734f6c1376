// Internal to the `mlm` program: the subcommands and their shared helpers.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <CLI/CLI.hpp>

namespace mlm::cli {

// Each subcommand adds itself to `app` and returns itself with the function that runs it after
// parsing (returns the exit code; exceptions are reported by main as one line "mlm: error: ...").
struct Command {
    CLI::App* app;
    std::function<int()> run;
};
Command add_tokenizer_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_predict_command(CLI::App& app);
Command add_fill_mask_command(CLI::App& app);

// "90", "90s", "15m", "3h", "1h30m", "2d" -> seconds; std::invalid_argument otherwise.
double parse_duration(const std::string& text);
// OpenMP threads for this process (0: leave the default).
void set_threads(int threads);
int max_threads();
// "1,234,567"
std::string with_commas(int64_t n);

}  // namespace mlm::cli
