// The `mlm` program: tokenizer training, model training, evaluation and predictions.
//
//   mlm tokenizer train --input train.txt.xz --vocab-size 8192 --out tokenizer.model
//   mlm train --train train.txt.xz --valid valid.txt --out runs/wiki
//   mlm eval --checkpoint runs/wiki/best --input valid.txt
//   mlm predict --checkpoint runs/wiki/best "hello! how are you?"
//   mlm fill-mask --checkpoint runs/wiki/best "the capital of france is [MASK]." --top-k 5
//
// Exit codes: 0 success, 1 an error (one line on stderr: "mlm: error: ..."), CLI11's codes
// (e.g. 105/106/109) for command-line mistakes, 130 when a training run was stopped by Ctrl-C.
#include <cctype>
#include <cmath>
#include <cstdio>
#include <exception>
#include <stdexcept>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli.hpp"

namespace mlm::cli {

double parse_duration(const std::string& text) {
    if (text.empty()) throw std::invalid_argument("empty duration");
    double total = 0;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        std::size_t used = 0;
        double value;
        try {
            value = std::stod(text.substr(i), &used);
        } catch (const std::exception&) {
            throw std::invalid_argument("\"" + text + "\" is not a duration (e.g. 3600, 90m, 3h, 1h30m)");
        }
        i += used;
        double unit = 1;
        if (i < text.size()) {
            switch (std::tolower(static_cast<unsigned char>(text[i]))) {
                case 's': unit = 1; break;
                case 'm': unit = 60; break;
                case 'h': unit = 3600; break;
                case 'd': unit = 86400; break;
                default: throw std::invalid_argument("\"" + text + "\" is not a duration (e.g. 3600, 90m, 3h, 1h30m)");
            }
            ++i;
        } else if (any) {
            throw std::invalid_argument("\"" + text + "\": a unit (s, m, h, d) is missing after the last number");
        }
        if (!(value >= 0) || !std::isfinite(value)) throw std::invalid_argument("\"" + text + "\" is not a duration");
        total += value * unit;
        any = true;
    }
    return total;
}

void set_threads(int threads) {
    if (threads < 0) throw std::invalid_argument("--threads must be >= 0");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#endif
}

int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

std::string with_commas(int64_t n) {
    std::string s = std::to_string(n < 0 ? -n : n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return (n < 0 ? "-" : "") + s;
}

}  // namespace mlm::cli

int main(int argc, char** argv) {
    CLI::App app{"mlm: pre-train small BERT-like encoders with masked-language modeling on CPUs,\n"
                 "evaluate them and predict masked words. Run `mlm COMMAND --help` for a command's options."};
    app.name("mlm");
    app.set_version_flag("--version", "mlm 0.1.0");
    app.require_subcommand(1);
    app.fallthrough(false);

    std::vector<mlm::cli::Command> commands;
    try {
        commands.push_back(mlm::cli::add_tokenizer_command(app));
        commands.push_back(mlm::cli::add_train_command(app));
        commands.push_back(mlm::cli::add_eval_command(app));
        commands.push_back(mlm::cli::add_predict_command(app));
        commands.push_back(mlm::cli::add_fill_mask_command(app));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mlm: internal error while building the command line: %s\n", e.what());
        return 1;
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }

    try {
        for (auto& command : commands)
            if (command.app->parsed()) return command.run();
        std::fprintf(stderr, "mlm: error: no command given; see mlm --help\n");
        return 1;
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mlm: error: %s\n", e.what());
        return 1;
    } catch (...) {
        std::fprintf(stderr, "mlm: error: unknown failure\n");
        return 1;
    }
}
