// Internal to the `mlm` program: command-line options made from the field tables (fields.hpp).
//
// Every field of a table becomes an option named after it (n_layers -> --n-layers; a field of a
// group gets the group's prefix, eval.top_k -> --eval-top-k) unless `names` gives it another name
// (the program's established ones: --layers, --mask-prob, --eval-every, ...). The help text and
// the section come from the table; the default shown is the value in `options.values` when the
// option is added. After parsing, finish() converts the text options (enums, durations) and
// records in `options.given` which fields the command line set.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <mlm/fields.hpp>
#include <mlm/run.hpp>

#include "cli.hpp"

namespace mlm::cli {

struct OptionNaming {
    std::map<std::string, std::string> names;             // field path -> "--flag[,-f]"
    std::map<std::string, std::string> group_prefixes;    // group -> flag prefix ("eval" -> "eval-")
    std::map<std::string, std::string> sections;          // table section -> help heading
    std::set<std::string> skip;                           // field paths that are not options
    std::map<std::string, std::function<void(CLI::Option*)>> adjust;  // extra checks, e.g. ExistingFile
};

class FieldOptionSet {
public:
    // Adds an option for every field of S's table bound to options.values.
    template <class S>
    void add(CLI::App* app, FieldOptions<S>& options, const OptionNaming& naming) {
        add_fields(app, options.values, options.given, naming, "");
    }

    // After parsing: converts the text options and fills the `given` sets.
    void finish() {
        for (auto& f : finishers_) f();
    }

private:
    template <class S>
    void add_fields(CLI::App* app, S& values, std::set<std::string>& given, const OptionNaming& naming,
                    const std::string& prefix) {
        for_each_field<S>([&](const auto& f) {
            using T = typename std::decay_t<decltype(f)>::value_type;
            const std::string path = prefix + f.name;
            if (naming.skip.count(path)) return;
            if constexpr (is_field_group<T>) {
                add_fields(app, f.of(values), given, naming, path + ".");
            } else {
                add_field(app, f, f.of(values), given, naming, path);
            }
        });
    }

    static std::string flag_name(const OptionNaming& naming, const std::string& path) {
        const auto n = naming.names.find(path);
        if (n != naming.names.end()) return n->second;
        std::string group, name = path;
        if (const auto dot = path.rfind('.'); dot != std::string::npos) {
            group = path.substr(0, dot);
            name = path.substr(dot + 1);
        }
        const auto p = naming.group_prefixes.find(group);
        std::string flag = "--" + (p != naming.group_prefixes.end() ? p->second : group.empty() ? "" : group + "-") + name;
        for (char& ch : flag)
            if (ch == '_') ch = '-';
        return flag;
    }

    template <class F, class T>
    void add_field(CLI::App* app, const F& f, T& value, std::set<std::string>& given, const OptionNaming& naming,
                   const std::string& path) {
        const std::string flag = flag_name(naming, path);
        std::string help = f.help;
        CLI::Option* opt = nullptr;
        if constexpr (std::is_same_v<T, bool>) {
            const std::string positive = flag.substr(0, flag.find(','));
            opt = app->add_flag(positive + ",!--no-" + positive.substr(2), value,
                                help + " (default: " + (value ? "on" : "off") + ")");
        } else if constexpr (is_named_enum<T>) {
            std::string& text = texts_.emplace_back(enum_name(value));
            std::vector<std::string> choices;
            for (const auto& e : enum_names(static_cast<const T*>(nullptr))) choices.push_back(e.name);
            opt = app->add_option(flag, text, help)->check(CLI::IsMember(choices))->capture_default_str();
            finishers_.push_back([&value, &text, opt, path]() {
                if (opt->count()) value = enum_from_name<T>(text, path);
            });
        } else if constexpr (std::is_floating_point_v<T>) {
            if (f.unit == Unit::seconds) {
                std::string& text = texts_.emplace_back(format_number(value));
                opt = app->add_option(flag, text, help + " (e.g. 3600, 90m, 2h50m)")->capture_default_str();
                finishers_.push_back([&value, &text, opt]() {
                    if (opt->count()) value = static_cast<T>(parse_duration(text));
                });
            } else {
                opt = app->add_option(flag, value, help)->capture_default_str();
            }
        } else {
            opt = app->add_option(flag, value, help)->capture_default_str();
        }
        const auto s = naming.sections.find(f.section);
        opt->group(s != naming.sections.end() ? s->second : f.section);
        if (const auto a = naming.adjust.find(path); a != naming.adjust.end()) a->second(opt);
        finishers_.push_back([&given, opt, path]() {
            if (opt->count()) given.insert(path);
        });
    }

    static std::string format_number(double x) {
        std::ostringstream s;
        s << x;
        return s.str();
    }

    std::deque<std::string> texts_;  // storage of the text options (stable addresses)
    std::vector<std::function<void()>> finishers_;
};

}  // namespace mlm::cli
