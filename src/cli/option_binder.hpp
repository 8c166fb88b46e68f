#pragma once
// Options declared once: each option is bound straight to its settings field, whose initialiser is the default
// (the struct is the one place of a default; --help and --print-config show it), and its valid range or choices
// are checked when the options are notified, before the command does any work. Header-only so the unit tests can
// use it without the s2crop executable's sources.
#include <boost/program_options.hpp>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "s2crop/common/errors.hpp"

namespace s2crop::cli {

namespace po = boost::program_options;

// [min, max]; max defaults to "no upper bound". min_excluded: (min, max], for "must be above 0".
template <class T>
struct Range {
  T min;
  T max = std::numeric_limits<T>::max();
  bool min_excluded = false;
  static Range above(T min) { return Range{min, std::numeric_limits<T>::max(), true}; }
};

// A text option that must be one of these words.
struct Choices {
  std::vector<std::string> names;
};

namespace detail {

template <class T>
std::string number_text(const T& v) {
  std::ostringstream o;
  o << v;  // doubles as effective_config prints them (0.1, not 0.10000000000000001)
  return o.str();
}

// "block-size,b" -> "block-size"
inline std::string long_name(const std::string& name) { return name.substr(0, name.find(',')); }

template <class T>
bool negative(const T& v) {
  if constexpr (std::is_signed_v<T>)
    return v < T{};
  else
    return false;
}

template <class T>
void check_range(const std::string& option, const T& v, const Range<T>& r) {
  const bool bounded = r.max != std::numeric_limits<T>::max();
  // Written so that NaN fails (every comparison with it is false).
  const bool ok = (r.min_excluded ? v > r.min : v >= r.min) && v <= r.max;
  if (ok) return;
  std::string want;
  if (!bounded)
    want = (r.min_excluded ? "above " : "at least ") + number_text(r.min);
  else if (std::is_integral_v<T> && !r.min_excluded && !negative(r.min))
    want = number_text(r.min) + "-" + number_text(r.max);  // "--deflate must be 0-9", as the stages say it
  else
    want = std::string(r.min_excluded ? "above " : "between ") + number_text(r.min) +
           (r.min_excluded ? " and at most " : " and ") + number_text(r.max);
  throw ConfigError("--" + option + " must be " + want + " (got " + number_text(v) + ")");
}

inline void check_choice(const std::string& option, const std::string& v, const Choices& c) {
  for (const auto& n : c.names)
    if (v == n) return;
  std::string list;
  for (size_t i = 0; i < c.names.size(); ++i)
    list += (i == 0 ? "" : i + 1 == c.names.size() ? " or " : ", ") + c.names[i];
  throw ConfigError("--" + option + " must be " + list + " (got '" + v + "')");
}

}  // namespace detail

// Declares options into an options_description. The field's current value is the default, so set any
// per-command default on the struct before binding. Fields must outlive po::notify (they are written there).
class OptionBinder {
 public:
  explicit OptionBinder(po::options_description& options) : options_(options) {}

  // A value with the field's value as default, optionally range-checked.
  template <class T>
  OptionBinder& add(const std::string& name, T& field, const std::string& help) {
    options_.add_options()(name.c_str(), with_default(po::value<T>(&field), field), help.c_str());
    return *this;
  }
  template <class T>
  OptionBinder& add(const std::string& name, T& field, const std::string& help, Range<T> range) {
    auto* v = with_default(po::value<T>(&field), field);
    v->notifier([option = detail::long_name(name), range](const T& x) { detail::check_range(option, x, range); });
    options_.add_options()(name.c_str(), v, help.c_str());
    return *this;
  }
  OptionBinder& add(const std::string& name, std::string& field, const std::string& help, Choices choices) {
    auto* v = po::value<std::string>(&field)->default_value(field);
    v->notifier([option = detail::long_name(name), choices = std::move(choices)](const std::string& x) {
      detail::check_choice(option, x, choices);
    });
    options_.add_options()(name.c_str(), v, help.c_str());
    return *this;
  }

  // A switch (--overwrite): false unless given. A switch cannot default to true, hence the logic_error.
  OptionBinder& flag(const std::string& name, bool& field, const std::string& help) {
    if (field) throw std::logic_error("option --" + detail::long_name(name) + ": a switch must default to false");
    options_.add_options()(name.c_str(), po::bool_switch(&field), help.c_str());
    return *this;
  }

  // No default (input and output paths): the field keeps its value and the option is missing from the effective
  // configuration unless given.
  OptionBinder& add_unset(const std::string& name, std::string& field, const std::string& help) {
    options_.add_options()(name.c_str(), po::value<std::string>(&field), help.c_str());
    return *this;
  }

  // Text converted into the field (lists, enums, seeds): the default is format(field), the given text goes
  // through parse(text) (which throws ConfigError for bad text). The effective configuration shows the text.
  template <class T, class Parse, class Format>
  OptionBinder& add_text(const std::string& name, T& field, const std::string& help, Parse parse, Format format) {
    T* target = &field;
    auto* v = po::value<std::string>()->default_value(format(field));
    v->notifier([target, parse](const std::string& text) { *target = parse(text); });
    options_.add_options()(name.c_str(), v, help.c_str());
    return *this;
  }

  // The same for a word of a fixed set, refused by name before parse sees it.
  template <class T, class Parse, class Format>
  OptionBinder& add_text(const std::string& name, T& field, const std::string& help, Choices choices, Parse parse,
                         Format format) {
    return add_text(name, field, help,
                    [option = detail::long_name(name), choices = std::move(choices), parse](const std::string& text) {
                      detail::check_choice(option, text, choices);
                      return parse(text);
                    },
                    format);
  }

 private:
  template <class T>
  static po::typed_value<T>* with_default(po::typed_value<T>* v, const T& value) {
    static_assert(std::is_same_v<T, bool> || !std::is_unsigned_v<T>,
                  "Boost reads \"-1\" into an unsigned type as its maximum: bind unsigned fields with add_text and a "
                  "parser (parse_seed)");
    if constexpr (std::is_floating_point_v<T>)
      return v->default_value(value, detail::number_text(value));  // --help as --print-config shows it
    else
      return v->default_value(value);
  }

  po::options_description& options_;
};

}  // namespace s2crop::cli
