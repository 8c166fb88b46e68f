#include "options.hpp"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::cli {

namespace {
std::string value_text(const po::variable_value& v) {
  const boost::any& a = v.value();
  if (a.type() == typeid(std::string)) return boost::any_cast<std::string>(a);
  if (a.type() == typeid(int)) return std::to_string(boost::any_cast<int>(a));
  if (a.type() == typeid(long)) return std::to_string(boost::any_cast<long>(a));
  if (a.type() == typeid(unsigned long)) return std::to_string(boost::any_cast<unsigned long>(a));
  if (a.type() == typeid(long long)) return std::to_string(boost::any_cast<long long>(a));
  if (a.type() == typeid(unsigned long long)) return std::to_string(boost::any_cast<unsigned long long>(a));
  if (a.type() == typeid(unsigned)) return std::to_string(boost::any_cast<unsigned>(a));
  if (a.type() == typeid(double)) {
    std::ostringstream s;
    s << boost::any_cast<double>(a);
    return s.str();
  }
  if (a.type() == typeid(bool)) return boost::any_cast<bool>(a) ? "true" : "false";
  if (a.type() == typeid(std::vector<std::string>)) {
    std::string out;
    for (auto& s : boost::any_cast<std::vector<std::string>>(a)) out += (out.empty() ? "" : " ") + s;
    return out;
  }
  return "?";
}

// Boost.Program_options (1.74) builds an error message by replacing each placeholder of its template (%value%,
// %option%, ...) with the offending text, again and again until the placeholder is gone: when that text contains
// the placeholder itself (`--dilation x%value%`, or a config line `x%option% = 1`), what() never returns. The
// texts are shown with '%' replaced by '?' before the message is built.
std::string error_message(po::error& e) {
  struct Access : po::error_with_option_name {
    static std::map<std::string, std::string>& substitutions(po::error_with_option_name& named) {
      return named.*(&Access::m_substitutions);
    }
  };
  if (auto* named = dynamic_cast<po::error_with_option_name*>(&e))
    for (auto& [key, text] : Access::substitutions(*named)) std::replace(text.begin(), text.end(), '%', '?');
  return e.what();
}
}  // namespace

bool parse_options(const std::string& command, const std::string& usage, const std::string& description,
                   po::options_description& options, po::positional_options_description* positional, int argc,
                   char** argv, po::variables_map& vm, bool print_help_on_this_rank) {
  po::options_description general("General options");
  general.add_options()("help,h", "show this help and exit")(
      "config", po::value<std::string>(),
      "INI file with option defaults (key = value, same names as the long options); the command line wins")(
      "verbose,v", po::bool_switch(), "debug logging")(
      "print-config", po::bool_switch(),
      "print the effective configuration (defaults, --config file, command line) as INI lines and exit: checks an "
      "INI file without running anything");
  po::options_description all;
  all.add(options).add(general);
  try {
    po::command_line_parser parser(argc, argv);
    parser.options(all);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), vm);
    if (vm.count("help")) {
      if (print_help_on_this_rank)
        std::cout << "Usage: s2crop " << command << " " << usage << "\n\n" << description << "\n\n" << all << "\n";
      return false;
    }
    if (vm.count("config")) {
      std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw InputError(path, "cannot open configuration file");
      po::store(po::parse_config_file(in, all, /*allow_unregistered=*/false), vm);
    }
    po::notify(vm);
    if (vm["print-config"].as<bool>()) {
      if (print_help_on_this_rank) std::cout << effective_config(vm);
      return false;
    }
  } catch (po::error& e) {
    throw ConfigError(std::string("s2crop ") + command + ": " + error_message(e) + " (see s2crop " + command +
                      " --help)");
  }
  if (vm.count("verbose") && vm["verbose"].as<bool>()) log::set_level(log::Level::Debug);
  return true;
}

std::string effective_config(const po::variables_map& vm) {
  std::map<std::string, std::string> sorted;
  for (auto& [key, value] : vm) {
    if (key == "help" || key == "print-config" || value.empty()) continue;
    sorted[key] = value_text(value);
  }
  std::string out;
  for (auto& [k, v] : sorted) out += k + " = " + v + "\n";
  return out;
}

std::vector<int> parse_int_list(const std::string& text, const std::string& option) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      out.push_back(std::stoi(item, &used));
      if (used != item.size() && item.find_first_not_of(' ', used) != std::string::npos) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw ConfigError("--" + option + ": '" + item + "' is not an integer");
    }
  }
  return out;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> parse_tile_list(const std::string& text) {
  std::vector<std::string> out;
  for (std::string t : split_list(text)) {
    t.erase(0, t.find_first_not_of(" \t"));
    t.erase(t.find_last_not_of(" \t") + 1);
    if (t.empty()) continue;
    std::string up = t;
    for (auto& c : up) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (sentinel2::is_mgrs_tile(up)) t = up;
    if (!sentinel2::is_safe_tile_name(t))
      throw ConfigError("--tiles: '" + t + "' is not a tile name (an MGRS tile such as 33UVP, or a region name of "
                        "letters, digits, '_' and '-')");
    out.push_back(t);
  }
  return out;
}

}  // namespace s2crop::cli
