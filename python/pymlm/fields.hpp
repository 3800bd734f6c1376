// pymlm/fields.hpp — Python classes of the configs, made from their field tables (fields.hpp).
//
// def_fields(cls) gives a bound config struct, from its table: an attribute per field (enums as
// their names, float32 fields as the shortest decimal that round-trips, groups as their own
// objects, settable from the object or a dict), a keyword constructor (unknown names are a
// TypeError, the result is validated), __eq__, __repr__, copy, as_dict(), field_names() and
// fields() (name, type, default, role, section, help of each field: what the .pyi check and
// pymlm.Trainer read).
#pragma once

#include "common.hpp"

#include <mlm/fields.hpp>

#include <charconv>
#include <string>
#include <type_traits>
#include <vector>

namespace pymlm {

// The shortest decimal that round-trips a float: ModelConfig().dropout == 0.1, not 0.10000000149.
template <class F>
std::string shortest_decimal(F x) {
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, x);
    return std::string(buf, r.ptr);
}
inline double float_to_py(float x) { return std::strtod(shortest_decimal(x).c_str(), nullptr); }

namespace detail {

template <class T, class = void>
struct has_validate : std::false_type {};
template <class T>
struct has_validate<T, std::void_t<decltype(std::declval<const T&>().validate())>> : std::true_type {};

template <class T>
py::object value_to_py(const T& v) {
    if constexpr (std::is_enum_v<T>) return py::str(mlm::enum_name(v));
    else if constexpr (std::is_same_v<T, float>) return py::float_(float_to_py(v));
    else return py::cast(v);
}

template <class T>
T value_from_py(py::handle h, const std::string& name);

// S from keyword arguments: each one set as the attribute of the same name.
template <class S>
S from_kwargs(const py::dict& kwargs, const char* class_name) {
    py::object obj = py::cast(S{});
    const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        mlm::for_each_field<S>([&](const auto& f) { n.push_back(f.name); });
        return n;
    }();
    for (auto item : kwargs) {
        const auto name = py::str(item.first).cast<std::string>();
        if (std::find(names.begin(), names.end(), name) == names.end())
            raise_type_error(std::string(class_name) + ": unknown option \"" + name + "\"");
        obj.attr(item.first) = item.second;
    }
    S s = obj.cast<S>();
    if constexpr (has_validate<S>::value) s.validate();
    return s;
}

inline std::string py_type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

template <class T>
std::string type_name();

template <class T>
T value_from_py(py::handle h, const std::string& name) {
    if constexpr (std::is_enum_v<T>) {
        if (!py::isinstance<py::str>(h))
            raise_type_error(name + " must be one of " + mlm::enum_choices<T>() + ", got " + py_type_name(h));
        return mlm::enum_from_name<T>(h.cast<std::string>(), name);
    } else if constexpr (mlm::is_field_group<T>) {
        if (py::isinstance<py::dict>(h)) return from_kwargs<T>(h.cast<py::dict>(), name.c_str());
        if (!py::isinstance<T>(h)) raise_type_error(name + " must be a " + type_name<T>() + " or a dict, got " + py_type_name(h));
        return h.cast<T>();
    } else {
        // bool is an int in Python: a True given for a number (or 1 for a flag) is a mistake
        const bool is_bool = py::isinstance<py::bool_>(h);
        if constexpr (std::is_same_v<T, bool>) {
            if (!is_bool) raise_type_error(name + " must be True or False, got " + py_type_name(h));
        } else if constexpr (std::is_integral_v<T>) {
            if (is_bool || !PyIndex_Check(h.ptr())) raise_type_error(name + " must be an int, got " + py_type_name(h));
        } else if constexpr (std::is_floating_point_v<T>) {
            if (is_bool) raise_type_error(name + " must be a number, got bool");
        }
        try {
            return h.cast<T>();
        } catch (const py::cast_error&) {
            raise_type_error(name + " must be " + type_name<T>() + ", got " + py_type_name(h));
        }
    }
}

template <class T>
std::string type_name() {
    if constexpr (std::is_same_v<T, bool>) return "bool";
    else if constexpr (std::is_enum_v<T>) return "str";
    else if constexpr (std::is_integral_v<T>) return "int";
    else if constexpr (std::is_floating_point_v<T>) return "float";
    else if constexpr (std::is_same_v<T, std::string>) return "str";
    else if constexpr (std::is_same_v<T, std::vector<std::string>>) return "List[str]";
    else return py::str(py::type::of<T>().attr("__name__"));
}

}  // namespace detail

// The Python class of a config struct S with a field table. all_in_repr: the repr lists every
// field (else only those that differ from the defaults).
template <class S>
void def_fields(py::class_<S>& cls, const char* class_name, bool all_in_repr) {
    mlm::for_each_field<S>([&](const auto& f) {
        using T = typename std::decay_t<decltype(f)>::value_type;
        const std::string name = f.name;
        std::string doc = f.help;
        if constexpr (std::is_enum_v<T>) doc += " (one of " + mlm::enum_choices<T>() + ")";
        if constexpr (mlm::is_field_group<T>) {
            cls.def_property(
                f.name, py::cpp_function([f](S& s) -> T& { return f.of(s); }, py::return_value_policy::reference_internal),
                py::cpp_function([f, name](S& s, py::handle v) { f.of(s) = detail::value_from_py<T>(v, name); }),
                doc.c_str());
        } else {
            cls.def_property(
                f.name, [f](const S& s) { return detail::value_to_py(f.of(s)); },
                [f, name](S& s, py::handle v) { f.of(s) = detail::value_from_py<T>(v, name); }, doc.c_str());
        }
    });
    const std::string cname = class_name;
    cls.def(py::init([cname](py::kwargs kwargs) { return detail::from_kwargs<S>(kwargs, cname.c_str()); }),
            "Keyword arguments set the fields of the same name (unknown names are a TypeError); the result is "
            "validated (ValueError naming the first bad field).");
    cls.def(
        "__eq__", [](const S& a, const S& b) { return mlm::fields_equal(a, b); }, py::is_operator());
    cls.def("__copy__", [](const S& s) { return s; });
    cls.def("__deepcopy__", [](const S& s, py::dict) { return s; }, py::arg("memo"));
    cls.def(
        "as_dict",
        [](py::object self) {
            py::dict d;
            mlm::for_each_field<S>([&](const auto& f) { d[f.name] = self.attr(f.name); });
            return d;
        },
        "The fields as a dict (groups as their option objects).");
    cls.def_static(
        "field_names",
        []() {
            std::vector<std::string> n;
            mlm::for_each_field<S>([&](const auto& f) { n.push_back(f.name); });
            return n;
        },
        "Names of the fields, in declaration order.");
    cls.def_static(
        "fields",
        []() {
            py::list out;
            mlm::for_each_field<S>([&](const auto& f) {
                using T = typename std::decay_t<decltype(f)>::value_type;
                py::dict d;
                d["name"] = f.name;
                d["type"] = detail::type_name<T>();
                if constexpr (mlm::is_field_group<T>) d["default"] = py::cast(f.default_value());
                else d["default"] = detail::value_to_py(f.default_value());
                d["role"] = mlm::to_string(f.role);
                d["section"] = f.section;
                d["help"] = f.help;
                if constexpr (std::is_enum_v<T>) {
                    py::list choices;
                    for (const auto& e : enum_names(static_cast<const T*>(nullptr))) choices.append(e.name);
                    d["choices"] = choices;
                }
                out.append(d);
            });
            return out;
        },
        "The field table: a dict per field with name, type, default, role (\"recipe\": set by a training recipe; "
        "\"run\": defines the run, checked on resume; \"runtime\": may change on resume), section and help.");
    cls.def("__repr__", [cname, all_in_repr](py::object self) {
        const S defaults{};
        const S& s = self.cast<const S&>();
        std::string r = cname + "(";
        bool first = true;
        mlm::for_each_field<S>([&](const auto& f) {
            using T = typename std::decay_t<decltype(f)>::value_type;
            if (!all_in_repr) {
                if constexpr (mlm::is_field_group<T>) {
                    if (mlm::fields_equal(f.of(s), f.of(defaults))) return;
                } else if (f.of(s) == f.of(defaults)) {
                    return;
                }
            }
            r += (first ? "" : ", ") + std::string(f.name) + "=" + std::string(py::repr(self.attr(f.name)));
            first = false;
        });
        return r + ")";
    });
}

}  // namespace pymlm
