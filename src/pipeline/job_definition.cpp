#include "s2crop/pipeline/job_definition.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "s2crop/common/errors.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {
namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}
std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The checkout: S2CROP_ROOT if set, else the first folder upwards from the job file that holds slurm/ and configs/.
std::string find_root(const std::string& job_path) {
  if (const char* env = std::getenv("S2CROP_ROOT"); env && *env) return fs::absolute(env).lexically_normal().string();
  for (fs::path p = fs::absolute(job_path).parent_path(); !p.empty(); p = p.parent_path()) {
    if (fs::is_directory(p / "slurm") && fs::is_directory(p / "configs")) return p.string();
    if (p == p.root_path()) break;
  }
  return fs::current_path().string();
}

// key = value lines of an s2crop --config file (Boost.Program_options INI without sections).
std::map<std::string, std::string> read_flat_ini(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';' || line[0] == '[') continue;
    auto eq = line.find('=');
    if (eq != std::string::npos) out[trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

}  // namespace

std::vector<std::string> shell_split(const std::string& text) {
  std::vector<std::string> out;
  std::string word;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < text.size()) {
        word += text[++i];
      } else {
        word += c;
      }
    } else if (c == '\'' || c == '"') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) out.push_back(word), word.clear(), in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (quote) throw ConfigError("unbalanced quote in: " + text);
  if (in_word) out.push_back(word);
  return out;
}

namespace {

using Sections = std::map<std::string, std::map<std::string, std::string>>;

Sections parse_ini(const std::string& text, const std::string& path) {
  Sections sections;
  std::istringstream in(text);
  std::string line, section, last_key;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') throw InputError(path + ":" + std::to_string(number), "section header without ']'");
      section = trim(t.substr(1, t.size() - 2));
      if (sections.count(section) && section != "DEFAULT")
        throw InputError(path + ":" + std::to_string(number), "section [" + section + "] appears twice");
      sections[section];
      last_key.clear();
      continue;
    }
    // configparser: an indented line continues the previous value.
    if (!last_key.empty() && std::isspace(static_cast<unsigned char>(line[0]))) {
      sections[section][last_key] += " " + t;
      continue;
    }
    auto eq = t.find_first_of("=:");
    if (eq == std::string::npos)
      throw InputError(path + ":" + std::to_string(number), "expected 'key = value' or '[section]', got: " + t);
    if (section.empty()) throw InputError(path + ":" + std::to_string(number), "a value before the first [section]");
    last_key = lower(trim(t.substr(0, eq)));
    sections[section][last_key] = trim(t.substr(eq + 1));
  }
  return sections;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path, "cannot read the file");
  return text.str();
}

}  // namespace

std::map<std::string, std::string> JobDefinition::read_ini_section(const std::string& path, const std::string& section) {
  auto sections = parse_ini(read_file(path), path);
  auto it = sections.find(section);
  if (it == sections.end()) throw InputError(path, "no [" + section + "] section");
  return it->second;
}

std::vector<std::string> split_comma_list(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = std::min(text.find(',', start), text.size());
    std::string item = trim(text.substr(start, end - start));
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

JobDefinition JobDefinition::read(const std::string& path, const std::vector<std::string>& overrides) {
  return parse(read_file(path), path, overrides);
}

JobDefinition JobDefinition::parse(const std::string& text, const std::string& path,
                                   const std::vector<std::string>& overrides) {
  JobDefinition job;
  job.path_ = path;
  job.sections_ = parse_ini(text, path);
  for (auto& item : overrides) {
    auto eq = item.find('=');
    auto key = item.substr(0, eq);
    auto dot = key.rfind('.');
    if (eq == std::string::npos || dot == std::string::npos)
      throw ConfigError("--set " + item + ": expected SECTION.KEY=VALUE");
    job.sections_[key.substr(0, dot)][lower(key.substr(dot + 1))] = item.substr(eq + 1);
  }
  if (!job.has_section("job")) throw InputError(path, "no [job] section");
  job.root_ = find_root(path);
  return job;
}

bool JobDefinition::has_section(const std::string& section) const { return sections_.count(section) > 0; }

std::string JobDefinition::raw(const std::string& section, const std::string& key, bool& found) const {
  found = true;
  if (auto s = sections_.find(section); s != sections_.end())
    if (auto v = s->second.find(lower(key)); v != s->second.end()) return v->second;
  if (auto d = sections_.find("DEFAULT"); d != sections_.end())
    if (auto v = d->second.find(lower(key)); v != d->second.end()) return v->second;
  found = false;
  return "";
}

constexpr size_t kMaxExpansion = 1 << 20;

std::string JobDefinition::expand(const std::string& section, const std::string& value, int depth) const {
  if (depth > 10) throw ConfigError(path_ + ": [" + section + "] references nest too deep (a cycle?): " + value);
  std::string out;
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '$') {
      out += '$';
      ++i;
    } else if (value[i] == '$' && i + 1 < value.size() && value[i + 1] == '{') {
      auto close = value.find('}', i);
      if (close == std::string::npos) throw ConfigError(path_ + ": [" + section + "] unterminated ${ in: " + value);
      std::string ref = value.substr(i + 2, close - i - 2), ref_section = section, ref_key = ref;
      if (auto colon = ref.find(':'); colon != std::string::npos)
        ref_section = ref.substr(0, colon), ref_key = ref.substr(colon + 1);
      bool found = false;
      std::string v = raw(ref_section, ref_key, found);
      if (!found) throw ConfigError(path_ + ": [" + section + "] refers to ${" + ref + "}, which is not defined");
      out += expand(ref_section, v, depth + 1);
      i = close;
    } else {
      out += value[i];
    }
    // Ten levels of values that each name the next one several times grow exponentially ("billion laughs").
    if (out.size() > kMaxExpansion)
      throw ConfigError(path_ + ": [" + section + "] a value expands to more than 1 MiB: " + value.substr(0, 200));
  }
  return out;
}

std::string JobDefinition::get(const std::string& section, const std::string& key, const std::string& fallback) const {
  bool found = false;
  std::string v = raw(section, key, found);
  return found ? expand(section, v, 0) : fallback;
}

std::vector<std::string> JobDefinition::stages() const { return split_comma_list(get("job", "stages")); }

std::string JobDefinition::name() const {
  std::string n = get("job", "name");
  return n.empty() ? fs::path(path_).stem().string() : n;
}

std::vector<std::string> JobDefinition::stage_args(const std::string& stage) const {
  return shell_split(get(stage, "args"));
}

std::string JobDefinition::stage_option(const std::string& stage, const std::string& key, const std::string& fallback) const {
  auto args = stage_args(stage);
  std::string config = resolve("configs/" + (get(stage, "script").empty() ? stage : get(stage, "script")) + ".ini");
  const std::string flag = "--" + key;
  std::string value;
  bool found = false;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" && i + 1 < args.size()) config = resolve(args[i + 1]);
    if (args[i].rfind("--config=", 0) == 0) config = resolve(args[i].substr(9));
    if (args[i] == flag) {
      found = true;
      value = (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) ? args[i + 1] : "true";
    } else if (args[i].rfind(flag + "=", 0) == 0) {
      found = true;
      value = args[i].substr(flag.size() + 1);
    }
  }
  if (found) return value;
  auto ini = read_flat_ini(config);
  if (auto it = ini.find(key); it != ini.end()) return it->second;
  return fallback;
}

std::string JobDefinition::resolve(const std::string& path) const {
  if (path.empty() || fs::path(path).is_absolute()) return path;
  return (fs::path(root_) / path).lexically_normal().string();
}

}  // namespace s2crop::pipeline
