// The acquisition list as text (rank 0 discovers, the other ranks receive the list): one record per line.
#include <sstream>
#include <string>
#include <vector>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::sentinel2 {

// ---- serialisation: one record per line, fields separated by tabs ----
// Backslash, tab, newline and carriage return inside a field (a path or id may hold any of them) are escaped as
// \\, \t, \n and \r, so that they cannot split a field or a record.

namespace {

std::string escape_field(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  }
  return out;
}

std::string unescape_field(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    switch (s[++i]) {
      case 't': out += '\t'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      default: out += s[i];
    }
  }
  return out;
}

// An integer field of a record that serialise() wrote; anything else is a corrupt list.
int int_field(const std::string& field, const std::string& line) {
  int v = 0;
  if (!parse_int(field, v)) throw Error("corrupt acquisition list line: " + line);
  return v;
}

}  // namespace

std::string serialise(const std::vector<Acquisition>& acquisitions) {
  std::ostringstream out;
  for (auto& a : acquisitions) {
    out << "A\t" << escape_field(a.id) << '\t' << escape_field(a.tile) << '\t' << escape_field(a.source) << '\t'
        << a.date.iso() << '\t' << escape_field(a.offset_origin) << '\t' << static_cast<int>(a.mask_kind) << '\t'
        << escape_field(a.mask.path) << '\t' << a.mask.band << '\n';
    for (auto& [name, src] : a.bands)
      out << "B\t" << escape_field(name) << '\t' << escape_field(src.path) << '\t' << src.band << '\t' << src.offset
          << '\n';
  }
  return out.str();
}

std::vector<Acquisition> deserialise(const std::string& text) {
  std::vector<Acquisition> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> f = split_fields(line);
    if (f[0] == "A" && f.size() >= 9) {
      Acquisition a;
      a.id = unescape_field(f[1]);
      a.tile = unescape_field(f[2]);
      a.source = unescape_field(f[3]);
      a.date = Date::parse(f[4]);
      a.offset_origin = unescape_field(f[5]);
      a.mask_kind = static_cast<MaskKind>(int_field(f[6], line));
      a.mask = BandSource{unescape_field(f[7]), int_field(f[8], line), 0};
      out.push_back(std::move(a));
    } else if (f[0] == "B" && f.size() >= 5 && !out.empty()) {
      out.back().bands[unescape_field(f[1])] =
          BandSource{unescape_field(f[2]), int_field(f[3], line), int_field(f[4], line)};
    } else {
      throw Error("corrupt acquisition list line: " + line);
    }
  }
  return out;
}

}  // namespace s2crop::sentinel2
