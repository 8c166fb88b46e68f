#include "options.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "s2crop/nn/device.hpp"

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "s2crop/train/trainer.hpp"

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

std::string join_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ",") + item;
  return out;
}

std::uint64_t parse_seed(const std::string& text) {
  const bool digits = !text.empty() && text.size() <= 20 && text.find_first_not_of("0123456789") == std::string::npos;
  errno = 0;
  const unsigned long long value = digits ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  if (!digits || errno == ERANGE)
    throw ConfigError("--seed " + text + ": must be a whole number from 0 to 18446744073709551615");
  return value;
}

void add_block_size(OptionBinder& b, int& block_size, pipeline::BlockSizeLimits limits, const std::string& help) {
  b.add("block-size", block_size, help, Range<int>{limits.min, limits.max});
}

void add_tiles(OptionBinder& b, std::vector<std::string>& tiles, const std::string& help) {
  b.add_text("tiles", tiles, help, parse_tile_list, join_list);
}

void add_exports(OptionBinder& b, std::string& cog_dir, std::string& quicklook_dir, const std::string& cog_help,
                 const std::string& quicklook_help) {
  b.add("cog", cog_dir, cog_help).add("quicklook", quicklook_dir, quicklook_help);
}

void add_threads(OptionBinder& b, int& threads, const std::string& help) {
  b.add("threads", threads, help, Range<int>{0});
}

void add_deflate(OptionBinder& b, int& deflate, const std::string& help) {
  b.add("deflate", deflate, help, Range<int>{0, 9});
}

void add_overwrite(OptionBinder& b, bool& overwrite, const std::string& help) { b.flag("overwrite", overwrite, help); }

void add_seed(OptionBinder& b, std::uint64_t& seed, const std::string& help) {
  b.add_text("seed", seed, help, parse_seed, [](std::uint64_t v) { return std::to_string(v); });
}

void add_method(OptionBinder& b, composite::Method& method) {
  b.add_text("method", method, "median or mean of the clear observations", Choices{{"median", "mean"}},
             composite::parse_method,
             [](composite::Method m) { return std::string(m == composite::Method::Mean ? "mean" : "median"); });
}

void add_boa_offset(OptionBinder& b, sentinel2::OffsetMode& mode, const std::string& help) {
  // parse_offset_mode also takes "none" for 0, so no Choices: its error lists the values.
  b.add_text("boa-offset", mode, help, sentinel2::parse_offset_mode, [](sentinel2::OffsetMode m) {
    return std::string(m == sentinel2::OffsetMode::Zero         ? "0"
                       : m == sentinel2::OffsetMode::Baseline04 ? "-1000"
                                                                : "auto");
  });
}

void add_on_error(OptionBinder& b, bool& skip_bad, const std::string& help) {
  b.add_text("on-error", skip_bad, help, Choices{{"fail", "skip"}}, [](const std::string& v) { return v == "skip"; },
             [](bool skip) { return std::string(skip ? "skip" : "fail"); });
}

void add_months(OptionBinder& b, std::vector<int>& months) {
  b.add_text("months", months, "season months stacked into the input, 1-12 comma-separated (default: all 12)",
             parse_season_months, [](const std::vector<int>& zero_based) {
               std::string out;
               for (int m : zero_based) out += (out.empty() ? "" : ",") + std::to_string(m + 1);
               return out;
             });
}

void add_device(OptionBinder& b, std::string& device) {
  b.add_text("device", device,
             "where the model runs: auto (this rank's GPU, by node-local rank, where LibTorch has CUDA and the node a "
             "GPU; else the CPU), cpu, cuda (a GPU or an error on every rank), cuda:N",
             [](const std::string& v) {
               nn::check_device_option(v);
               return v;
             },
             [](const std::string& v) { return v; });
}

void add_precision(OptionBinder& b, std::string& precision) {
  b.add_text("precision", precision,
        "arithmetic of the model: fp32, bf16 (GPUs, and CPUs with AVX512-BF16/AMX; classify and ndvi predict "
        "recompute every 64th pixel in fp32 and log how far they are: >= 99.9 % of classes in s2crop's measurements) or fp16 (GPUs "
        "only). No int8: LibTorch's int8 LSTM measured slower than s2crop's fp32",
        // parse_precision, not Choices: its error says why int8 is not among them.
        [](const std::string& v) {
          nn::parse_precision(v);
          return v;
        },
        [](const std::string& v) { return v; });
}

void add_training_loop_options(OptionBinder& b, train::TrainSettings& s) {
  add_device(b, s.device);
  b.add("checkpoint-dir", s.checkpoint_dir, "checkpoints (default: OUTPUT.ckpt)");
  add_tiles(b, s.tiles, "use only samples of these tiles (keep test tiles out)");
  b.add("val-fraction", s.val_fraction,
        "fraction of parcels (or samples) held out for validation, in [0, 1) (0: none; the epoch with the lowest "
        "training loss is kept)")
      .add("epochs", s.epochs, "maximum epochs")
      .add("val-every", s.val_every,
           "validate every this many epochs and after the last (patience counts validations; the model kept is the "
           "best validated epoch): for large validation sets or many short epochs")
      .add("batch-size", s.batch_size, "samples per rank and step (global batch = this x ranks)")
      .add("weight-decay", s.weight_decay, "decoupled weight decay")
      .add("lr-schedule", s.lr_schedule, "cosine (to lr/100), step (halving) or none")
      .add("bucket-mb", s.bucket_mb, "gradient bucket size for the all-reduce (MiB)")
      // Not add_threads: train::check_settings checks it with the other training options.
      .add("threads", s.threads, "threads per rank (0: node cores / ranks on the node)")
      .flag("resume", s.require_resume, "require a checkpoint to continue from (a matching one is always used)");
  add_overwrite(b, s.overwrite, "replace an existing model and discard checkpoints");
  b.add("max-steps", s.max_steps, "stop after this many optimiser steps (0: no limit)")
      .add("step-log", s.step_log, "write loss per step as TSV (rank 0)")
      .flag("check-replicas", s.check_replicas, "verify after every step that all ranks hold identical parameters")
      .flag("reproducible", s.reproducible,
            "compute each sample's gradient alone and sum in double precision (also across ranks): the training then "
            "hardly depends on the rank count, in the last bits too; slower");
}

std::vector<int> parse_season_months(const std::string& list) {
  std::vector<int> months;
  for (auto& m : split_list(list)) {
    int month = 0;
    if (!parse_int(m, month) || month < 1 || month > 12) throw ConfigError("--months: '" + m + "' is not a season month 1-12");
    months.push_back(month - 1);
  }
  return months;
}

}  // namespace s2crop::cli
