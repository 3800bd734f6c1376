// Writes one doctest test case from the usage example in a public header's file-top comment, so
// the example is compiled (and, unless told otherwise, run) exactly as the header shows it.
//
//   header_example_extract HEADER OUT.inc NAME CONTEXT run|compile
//
// (tests/CMakeLists.txt runs it for every include/mlm/*.hpp and README.md, and compiles the
// OUT.inc files as one program, test_header_examples.)
//
// The file-top comment is the header's leading run of `//` lines. A usage example is every run of
// lines indented by at least three spaces (`//   code`) that follows an empty `//` line; an
// indented run that follows a line of prose ("A checkpoint is a directory:") is a table or a
// listing and is left alone. Each such block becomes one `{ ... }` scope, its lines copied with the
// leading `//` removed and a #line directive, so a compile error names the header's own line.
//
// A Markdown file (NAME.md: the README) has its usage examples in ```cpp fences instead; each
// fence is one block. In either, #include lines go to the top of the generated file.
//
// The example runs as a member function of a struct derived from NAME_context (CONTEXT, a header
// in tests/header_examples/, or header_examples::Scratch when CONTEXT is "-"), so the variables an
// example takes as given ("tokenizer", "corpus", "B", ...) are that struct's members. `compile`
// builds the example and registers the test case as skipped (doctest::skip) instead of running it.
#include <algorithm>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace {

bool is_comment(const std::string& line) { return line.compare(0, 2, "//") == 0; }
bool is_empty_comment(const std::string& line) { return line.find_first_not_of(" \t", 2) == std::string::npos; }
bool is_indented(const std::string& line) { return line.compare(0, 5, "//   ") == 0 && !is_empty_comment(line); }

struct Block {
    int first_line = 0;  // 1-based line number in the header
    std::vector<std::string> lines;
};

std::vector<Block> markdown_blocks(const std::vector<std::string>& text) {
    std::vector<Block> blocks;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] != "```cpp") continue;
        Block block;
        block.first_line = static_cast<int>(i) + 2;
        for (++i; i < text.size() && text[i].compare(0, 3, "```") != 0; ++i) block.lines.push_back(text[i]);
        blocks.push_back(block);
    }
    return blocks;
}

bool is_include(const std::string& line) {
    const std::size_t at = line.find_first_not_of(' ');
    return at != std::string::npos && line.compare(at, 8, "#include") == 0;
}

std::vector<Block> usage_blocks(const std::vector<std::string>& header) {
    std::vector<Block> blocks;
    for (std::size_t i = 1; i < header.size() && is_comment(header[i]); ++i) {
        if (!is_indented(header[i]) || !is_empty_comment(header[i - 1])) continue;
        Block block;
        block.first_line = static_cast<int>(i) + 1;
        for (; i < header.size() && is_indented(header[i]); ++i) block.lines.push_back(header[i].substr(2));
        blocks.push_back(block);
    }
    return blocks;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::cerr << "usage: header_example_extract HEADER OUT.inc NAME CONTEXT run|compile\n";
        return 2;
    }
    const std::string header_path = argv[1], out_path = argv[2], name = argv[3], context = argv[4], mode = argv[5];
    if (mode != "run" && mode != "compile") {
        std::cerr << "header_example_extract: the mode must be run or compile, not " << mode << "\n";
        return 2;
    }
    std::ifstream in(header_path);
    if (!in) {
        std::cerr << "header_example_extract: cannot read " << header_path << "\n";
        return 1;
    }
    std::vector<std::string> header;
    for (std::string line; std::getline(in, line);) header.push_back(line);
    const bool markdown = header_path.size() > 3 && header_path.compare(header_path.size() - 3, 3, ".md") == 0;
    const std::vector<Block> blocks = markdown ? markdown_blocks(header) : usage_blocks(header);
    if (blocks.empty()) {
        std::cerr << header_path
                  << (markdown ? ": no ```cpp block" : ": the file-top comment has no usage example (an indented block "
                                                       "after an empty // line); every public header documents "
                                                       "itself with one (STYLE.md, rule 15)")
                  << "\n";
        return 1;
    }
    const std::string file_name = header_path.substr(header_path.find_last_of('/') + 1);

    std::ostringstream out;
    const std::string base = context == "-" ? "header_examples::Scratch" : name + "_context";
    out << "// Generated from " << header_path << " by tests/header_examples/extract.cpp; do not edit.\n"
        << "#include \"context.hpp\"\n";
    if (context != "-") out << "#include \"" << context << "\"\n";
    for (const Block& block : blocks)
        for (std::size_t i = 0; i < block.lines.size(); ++i)
            if (is_include(block.lines[i]))
                out << "#line " << block.first_line + static_cast<int>(i) << " \"" << header_path << "\"\n"
                    << block.lines[i] << "\n";
    const std::string top = out.str();  // back to this file's own line numbers
    out << "#line " << std::count(top.begin(), top.end(), '\n') + 2 << " \"" << out_path << "\"\n";
    out << "\nnamespace header_example_" << name << " {\n"
        << "struct Example : " << base << " {\n"
        << "    Example() : " << base << "(\"" << name << "\") {}\n"
        << "    void run();\n"
        << "};\n"
        << "void Example::run() {\n";
    for (const Block& block : blocks) {
        out << "{\n#line " << block.first_line << " \"" << header_path << "\"\n";
        for (const std::string& line : block.lines) out << (is_include(line) ? "" : line) << "\n";
        const std::string so_far = out.str();  // back to this file's own line numbers
        out << "#line " << std::count(so_far.begin(), so_far.end(), '\n') + 2 << " \"" << out_path << "\"\n}\n";
    }
    out << "}\n}  // namespace header_example_" << name << "\n\n"
        << "TEST_CASE(\"the usage example of " << file_name << " "
        << (mode == "run" ? "runs\")" : "compiles (not run: see tests/CMakeLists.txt)\" * doctest::skip())") << " {\n"
        << "    header_example_" << name << "::Example().run();\n"
        << "}\n";

    // Rewritten only when it changes, so an edit elsewhere in the header does not rebuild the test.
    std::ifstream old(out_path);
    std::stringstream previous;
    previous << old.rdbuf();
    if (old && previous.str() == out.str()) return 0;
    old.close();
    std::ofstream file(out_path);
    file << out.str();
    return file ? 0 : 1;
}
