#pragma once
// A job definition (jobs/*.ini): the stages of a run, their `s2crop` options and Slurm resources. The same file is
// read by jobs/submit (Python's configparser with ExtendedInterpolation) and by `s2crop plan`, so this reader
// follows those rules: sections, `key = value` (keys case-insensitive), full-line comments (# or ;), [DEFAULT]
// values visible in every section, ${key} (same section or DEFAULT) and ${section:key} references.
#include <map>
#include <string>
#include <vector>

namespace s2crop::pipeline {

class JobDefinition {
 public:
  // `overrides`: "SECTION.KEY=VALUE" items, as jobs/submit --set. Throws InputError naming the file and line.
  static JobDefinition read(const std::string& path, const std::vector<std::string>& overrides = {});
  // The same from the file's text (`path` names it in errors and locates root()).
  static JobDefinition parse(const std::string& text, const std::string& path,
                             const std::vector<std::string>& overrides = {});

  // One section of an INI file in the same syntax, uninterpolated (e.g. [costs] of jobs/costs.ini).
  static std::map<std::string, std::string> read_ini_section(const std::string& path, const std::string& section);

  const std::string& path() const { return path_; }
  // The checkout that relative paths refer to (as jobs/submit: the folder holding slurm/ and configs/).
  const std::string& root() const { return root_; }
  bool has_section(const std::string& section) const;
  // Interpolated value; `fallback` if absent. Throws ConfigError for an unknown reference or a cycle.
  std::string get(const std::string& section, const std::string& key, const std::string& fallback = "") const;
  std::vector<std::string> stages() const;  // [job] stages, in order
  std::string name() const;

  // The stage's `args`, split like a POSIX shell would (quotes, backslashes).
  std::vector<std::string> stage_args(const std::string& stage) const;
  // The value the stage's s2crop command will see for option `--key`: from its args, else from its --config file
  // (default configs/<stage>.ini), else `fallback`.
  std::string stage_option(const std::string& stage, const std::string& key, const std::string& fallback = "") const;
  // A path as the stage will see it (relative paths are relative to root()).
  std::string resolve(const std::string& path) const;

 private:
  std::string raw(const std::string& section, const std::string& key, bool& found) const;
  std::string expand(const std::string& section, const std::string& value, int depth) const;

  std::string path_, root_;
  std::map<std::string, std::map<std::string, std::string>> sections_;  // "DEFAULT" included
};

std::vector<std::string> shell_split(const std::string& text);
// "a, b,,c " -> {"a", "b", "c"}: a job file's lists (stages, tiles), items trimmed, empty ones dropped.
std::vector<std::string> split_comma_list(const std::string& text);

}  // namespace s2crop::pipeline
