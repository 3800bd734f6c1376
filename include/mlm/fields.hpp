// mlm/fields.hpp — a config declared once, as a table of fields.
//
// Each config struct (ModelConfig, TrainerConfig, DataOptions and the option structs inside them)
// lists its fields once, in a table next to the struct: the member, its name, its role in a run,
// a section and a help line. Its default is the struct's own. Everything that handles configs
// generically is derived from the table: JSON in both directions, the resume check, the reset
// part of a recipe, equality, the Python fields and the command-line options. A static_assert
// after each table (MLM_CHECK_FIELD_TABLE) fails the build when the struct has a field the table
// leaves out. A table is a function found by overload on a pointer to its struct; see the one of
// ModelConfig in config.hpp:
//   inline const auto& fields(const ModelConfig*) {
//       static const auto table = std::make_tuple(field(&ModelConfig::dim, "dim", Role::run, "model", "Model width"), ...);
//       return table;
//   }
// An enum used as a field type has a name table, found the same way (enum_names(const E*)); a
// struct used as a field type (a group, such as TrainerConfig::masking) has a table of its own.
//
//   mlm::for_each_field<mlm::ModelConfig>([](const auto& f) { std::cout << f.name << ": " << f.help << "\n"; });
//   mlm::ModelConfig a, b;
//   b.n_layers = 2;
//   bool same = mlm::fields_equal(a, b);                                     // false
//   mlm::reset_fields(b, mlm::Role::run);                                    // b == a again
//   std::vector<std::string> names = mlm::field_paths<mlm::TrainerConfig>();  // "masking.mask_probability", ...
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mlm {

// What a field means to a run.
//   recipe   a knob of a training recipe: apply_recipe resets it; it defines the run
//   run      defines what the run computes: a resumed run must have the same value
//   runtime  may change when a run is resumed (how long in wall time, where and how often it
//            writes, threads): it does not change the weights the run produces
enum class Role { recipe, run, runtime };

inline const char* to_string(Role r) {
    return r == Role::recipe ? "recipe" : r == Role::run ? "run" : "runtime";
}

// How a number is read from text where the unit matters (the command line: "2h30m").
enum class Unit { none, seconds };

template <class S, class T>
struct Field {
    using struct_type = S;
    using value_type = T;
    T S::*member;
    const char* name;
    Role role;
    const char* section;  // a heading for help texts ("optimizer", "schedule", ...)
    const char* help;
    Unit unit = Unit::none;

    T& of(S& s) const { return s.*member; }
    const T& of(const S& s) const { return s.*member; }
    // The default: the value in a default-constructed S.
    const T& default_value() const {
        static const S defaults{};
        return defaults.*member;
    }
};

template <class S, class T>
constexpr Field<S, T> field(T S::*member, const char* name, Role role, const char* section, const char* help,
                            Unit unit = Unit::none) {
    return Field<S, T>{member, name, role, section, help, unit};
}

// ---- enums ---------------------------------------------------------------------------------

template <class E>
struct EnumName {
    E value;
    const char* name;
};

namespace detail {
template <class T, class = void>
struct has_enum_names : std::false_type {};
template <class T>
struct has_enum_names<T, std::void_t<decltype(enum_names(static_cast<const T*>(nullptr)))>> : std::true_type {};
template <class T, class = void>
struct has_fields : std::false_type {};
template <class T>
struct has_fields<T, std::void_t<decltype(fields(static_cast<const T*>(nullptr)))>> : std::true_type {};
}  // namespace detail

// An enum with a name table.
template <class T>
inline constexpr bool is_named_enum = std::is_enum_v<T> && detail::has_enum_names<T>::value;
// A struct with a field table (a group of fields).
template <class T>
inline constexpr bool is_field_group = std::is_class_v<T> && detail::has_fields<T>::value;

template <class E>
const char* enum_name(E value) {
    for (const auto& [v, name] : enum_names(static_cast<const E*>(nullptr)))
        if (v == value) return name;
    return "?";
}

// The names of an enum's values: "\"a\", \"b\", \"c\"".
template <class E>
std::string enum_choices() {
    std::string s;
    for (const auto& e : enum_names(static_cast<const E*>(nullptr))) s += (s.empty() ? "\"" : ", \"") + std::string(e.name) + "\"";
    return s;
}

// The value named `name`; std::invalid_argument naming `what` and the choices otherwise.
template <class E>
E enum_from_name(const std::string& name, const std::string& what) {
    for (const auto& [v, n] : enum_names(static_cast<const E*>(nullptr)))
        if (name == n) return v;
    throw std::invalid_argument(what + " must be one of " + enum_choices<E>() + ", got \"" + name + "\"");
}

// ---- walking a table -----------------------------------------------------------------------

// Calls f(field) for every field of S's table, in order.
template <class S, class F>
void for_each_field(F&& f) {
    std::apply([&](const auto&... each) { (f(each), ...); }, fields(static_cast<const S*>(nullptr)));
}

template <class S>
constexpr std::size_t table_size() {
    return std::tuple_size_v<std::decay_t<decltype(fields(static_cast<const S*>(nullptr)))>>;
}

// Equal field by field (groups compared through their own tables).
template <class S>
bool fields_equal(const S& a, const S& b) {
    bool equal = true;
    for_each_field<S>([&](const auto& f) {
        using T = typename std::decay_t<decltype(f)>::value_type;
        if constexpr (is_field_group<T>) equal = equal && fields_equal(f.of(a), f.of(b));
        else equal = equal && f.of(a) == f.of(b);
    });
    return equal;
}

// Sets every field of `role` to its default (groups as a whole).
template <class S>
void reset_fields(S& s, Role role) {
    for_each_field<S>([&](const auto& f) {
        if (f.role == role) f.of(s) = f.default_value();
    });
}

// The names of S's fields, groups as "group.field" ("masking.mask_probability").
template <class S>
std::vector<std::string> field_paths(const std::string& prefix = "") {
    std::vector<std::string> out;
    for_each_field<S>([&](const auto& f) {
        using T = typename std::decay_t<decltype(f)>::value_type;
        if constexpr (is_field_group<T>) {
            for (auto& p : field_paths<T>(prefix + f.name + ".")) out.push_back(std::move(p));
        } else {
            out.push_back(prefix + f.name);
        }
    });
    return out;
}

// ---- the completeness check ----------------------------------------------------------------

namespace detail {
// Converts to anything: S{AnyValue, AnyValue, ...} compiles for as many values as S has fields.
struct AnyValue {
    template <class T>
    operator T() const;
};
template <class S, class... A>
constexpr auto brace_constructible(int) -> decltype(S{std::declval<A>()...}, std::true_type{});
template <class S, class... A>
constexpr std::false_type brace_constructible(...);
template <class S, class... A>
constexpr std::size_t aggregate_size() {
    if constexpr (decltype(brace_constructible<S, A..., AnyValue>(0))::value) return aggregate_size<S, A..., AnyValue>();
    else return sizeof...(A);
}
}  // namespace detail

// The number of data members of the aggregate S.
template <class S>
constexpr std::size_t field_count() {
    static_assert(std::is_aggregate_v<S>, "a config with a field table must be an aggregate (no constructors)");
    return detail::aggregate_size<S>();
}

// Fails the build when S has a field its table does not list (or the table lists one twice).
#define MLM_CHECK_FIELD_TABLE(S)                                                                      \
    static_assert(::mlm::field_count<S>() == ::mlm::table_size<S>(),                                  \
                  #S ": the field table must list every field of the struct, once (see fields.hpp)")

}  // namespace mlm
