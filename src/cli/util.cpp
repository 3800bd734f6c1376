// Internal to the `mlm` program: the helpers its commands share (cli.hpp).
#include <cctype>
#include <cmath>
#include <stdexcept>

#include <mlm/threads.hpp>

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
    if (threads > 0) set_num_threads(threads);
}

int max_threads() { return mlm::max_threads(); }

std::string with_commas(int64_t n) {
    std::string s = std::to_string(n < 0 ? -n : n);
    for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<std::size_t>(i), ",");
    return (n < 0 ? "-" : "") + s;
}

}  // namespace mlm::cli
