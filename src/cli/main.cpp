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
#include <cstdio>
#include <exception>
#include <vector>

#include "cli.hpp"


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
