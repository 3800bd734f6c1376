// Internal: JSON of any config with a field table (fields.hpp), in both directions.
//
// A field's JSON key is its name; a group is a nested object. Reading checks each value's type
// and range against the field's C++ type (an integer that would wrap, a float beyond float's
// range, a name that is not one of an enum's are refused with the key named); unknown keys are an
// error, missing keys keep the value already in the struct (the default).
#pragma once

#include <charconv>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <mlm/fields.hpp>

namespace mlm::detail {

using ordered_json = nlohmann::ordered_json;

template <class S>
ordered_json fields_to_json(const S& s);

template <class T>
ordered_json value_to_json(const T& v) {
    if constexpr (is_field_group<T>) return fields_to_json(v);
    else if constexpr (std::is_enum_v<T>) return enum_name(v);
    else return v;
}

// A value as a user reads it in a message: JSON, a float as the shortest decimal that round-trips
// it (0.1, not 0.10000000149011612).
template <class T>
std::string value_text(const T& v) {
    if constexpr (std::is_same_v<T, float>) {
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, r.ptr);
    } else {
        return value_to_json(v).dump();
    }
}

template <class S>
ordered_json fields_to_json(const S& s) {
    ordered_json j = ordered_json::object();
    for_each_field<S>([&](const auto& f) { j[f.name] = value_to_json(f.of(s)); });
    return j;
}

// `where` names the document in messages ("config.json", "trainer config"); `path` the key.
template <class S, class Json>
void fields_from_json(const Json& j, S& s, const std::string& where, const std::string& prefix = "");

template <class T, class Json>
T value_from_json(const Json& v, const std::string& where, const std::string& key) {
    auto fail = [&](const std::string& what) { throw std::invalid_argument(where + ": \"" + key + "\" " + what); };
    if constexpr (is_field_group<T>) {
        T out{};
        fields_from_json(v, out, where, key + ".");
        return out;
    } else if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) fail("must be true or false");
        return v.template get<bool>();
    } else if constexpr (std::is_enum_v<T>) {
        if (!v.is_string()) fail("must be one of " + enum_choices<T>());
        return enum_from_name<T>(v.template get<std::string>(), where + ": \"" + key + "\"");
    } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) fail("must be an integer");
        // get<T>() would wrap a number out of T's range silently (99552965164 -> 768717356).
        bool fits;
        if (v.is_number_unsigned()) {
            fits = v.template get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max());
        } else {
            const int64_t x = v.template get<int64_t>();
            fits = x >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                   (x < 0 || static_cast<uint64_t>(x) <= static_cast<uint64_t>(std::numeric_limits<T>::max()));
        }
        if (!fits) fail("is " + v.dump() + ", outside the range of its type");
        return v.template get<T>();
    } else if constexpr (std::is_floating_point_v<T>) {
        if (!v.is_number()) fail("must be a number");
        const double d = v.template get<double>();
        // A double beyond float's range has no float value (1e300 would become inf).
        if (!(std::fabs(d) <= static_cast<double>(std::numeric_limits<T>::max())))
            fail("is " + v.dump() + ", outside the range of its type");
        return static_cast<T>(d);
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) fail("must be a string");
        return v.template get<std::string>();
    } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        if (!v.is_array()) fail("must be a list of strings");
        std::vector<std::string> out;
        for (const auto& e : v) {
            if (!e.is_string()) fail("must be a list of strings");
            out.push_back(e.template get<std::string>());
        }
        return out;
    } else {
        static_assert(sizeof(T) == 0, "a field type fields_json.hpp does not know");
    }
}

template <class S, class Json>
void fields_from_json(const Json& j, S& s, const std::string& where, const std::string& prefix) {
    if (!j.is_object())
        throw std::invalid_argument(where + (prefix.empty() ? "" : ": \"" + prefix.substr(0, prefix.size() - 1) + "\"") +
                                    " must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool known = false;
        for_each_field<S>([&](const auto& f) {
            using T = typename std::decay_t<decltype(f)>::value_type;
            if (known || it.key() != f.name) return;
            known = true;
            f.of(s) = value_from_json<T>(it.value(), where, prefix + f.name);
        });
        if (!known) throw std::invalid_argument(where + ": unknown key \"" + prefix + it.key() + "\"");
    }
}

}  // namespace mlm::detail
