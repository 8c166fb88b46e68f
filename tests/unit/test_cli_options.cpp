// The option binding of the CLI (src/cli/option_binder.hpp): defaults come from the settings field, values land in
// it, and a value out of range or not among the choices is refused by name when the options are notified.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "option_binder.hpp"

namespace s2crop::cli {
namespace {

struct Settings {
  int block_size = 512;
  double fraction = 0.1;
  std::string method = "median";
  bool overwrite = false;
  std::string output;
  std::vector<std::string> tiles{"33UVP", "32TQT"};
};

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

void declare(po::options_description& opts, Settings& s) {
  OptionBinder b(opts);
  b.add("block-size,b", s.block_size, "block edge", Range<int>{16, 4096})
      .add("fraction", s.fraction, "a fraction", Range<double>::above(0))
      .add("method", s.method, "median or mean", Choices{{"median", "mean"}})
      .flag("overwrite", s.overwrite, "replace")
      .add_unset("output,o", s.output, "output file")
      .add_text("tiles", s.tiles, "tiles", split, join);
}

// What parse_options does: store the command line (and a config file), then notify.
po::variables_map parse(Settings& s, std::vector<std::string> args, const std::string& ini = "") {
  po::options_description opts;
  declare(opts, s);
  std::vector<const char*> argv{"s2crop"};
  for (auto& a : args) argv.push_back(a.c_str());
  po::variables_map vm;
  po::store(po::command_line_parser(static_cast<int>(argv.size()), argv.data()).options(opts).run(), vm);
  if (!ini.empty()) {
    std::istringstream in(ini);
    po::store(po::parse_config_file(in, opts), vm);
  }
  po::notify(vm);
  return vm;
}

std::string refusal(std::vector<std::string> args, const std::string& ini = "") {
  Settings s;
  try {
    parse(s, std::move(args), ini);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(accepted)";
}

TEST(CliOptions, DefaultsComeFromTheStruct) {
  Settings s;
  s.block_size = 1024;  // a command's own default, set before binding
  auto vm = parse(s, {});
  EXPECT_EQ(s.block_size, 1024);
  EXPECT_EQ(vm["block-size"].as<int>(), 1024);
  EXPECT_TRUE(vm["block-size"].defaulted());
  EXPECT_EQ(vm["tiles"].as<std::string>(), "33UVP,32TQT");
  EXPECT_EQ(s.tiles, (std::vector<std::string>{"33UVP", "32TQT"}));
  EXPECT_FALSE(s.overwrite);
  EXPECT_EQ(vm.count("output"), 0u);  // no default: absent from the effective configuration
}

TEST(CliOptions, HelpShowsTheStructDefaultAsPrintConfigDoes) {
  Settings s;
  po::options_description opts;
  declare(opts, s);
  std::ostringstream help;
  help << opts;
  EXPECT_NE(help.str().find("(=512)"), std::string::npos) << help.str();
  EXPECT_NE(help.str().find("(=0.1)"), std::string::npos) << help.str();  // not 0.10000000000000001
  EXPECT_NE(help.str().find("(=median)"), std::string::npos) << help.str();
}

TEST(CliOptions, ValuesLandInTheStruct) {
  Settings s;
  parse(s, {"-b", "64", "--fraction", "0.5", "--method", "mean", "--overwrite", "-o", "x.h5", "--tiles", "a,b"});
  EXPECT_EQ(s.block_size, 64);
  EXPECT_DOUBLE_EQ(s.fraction, 0.5);
  EXPECT_EQ(s.method, "mean");
  EXPECT_TRUE(s.overwrite);
  EXPECT_EQ(s.output, "x.h5");
  EXPECT_EQ(s.tiles, (std::vector<std::string>{"a", "b"}));
}

TEST(CliOptions, OutOfRangeIsRefusedByNameWithTheValue) {
  EXPECT_EQ(refusal({"--block-size", "5"}), "--block-size must be 16-4096 (got 5)");
  EXPECT_EQ(refusal({"-b", "4097"}), "--block-size must be 16-4096 (got 4097)");
  EXPECT_EQ(refusal({"-b", "16"}), "(accepted)");
  EXPECT_EQ(refusal({"-b", "4096"}), "(accepted)");
  EXPECT_EQ(refusal({"--fraction", "0"}), "--fraction must be above 0 (got 0)");
  EXPECT_EQ(refusal({"--fraction", "nan"}), "--fraction must be above 0 (got nan)");
  EXPECT_EQ(refusal({"--fraction", "inf"}), "--fraction must be above 0 (got inf)");
  EXPECT_EQ(refusal({"--method", "mode"}), "--method must be median or mean (got 'mode')");
}

TEST(CliOptions, ConfigFileValuesAreCheckedToo) {
  EXPECT_EQ(refusal({}, "block-size = 8\n"), "--block-size must be 16-4096 (got 8)");
  EXPECT_EQ(refusal({"-b", "32"}, "block-size = 8\n"), "(accepted)");  // the command line wins
}

TEST(CliOptions, RangeWording) {
  auto message = [](auto v, auto range) {
    try {
      detail::check_range("x", v, range);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(message(-1, Range<int>{0}), "--x must be at least 0 (got -1)");
  EXPECT_EQ(message(10, Range<int>{0, 9}), "--x must be 0-9 (got 10)");
  EXPECT_EQ(message(-6, Range<int>{-5, 5}), "--x must be between -5 and 5 (got -6)");
  EXPECT_EQ(message(1.5, Range<double>{0, 1}), "--x must be between 0 and 1 (got 1.5)");
  EXPECT_EQ(message(std::int64_t{-1}, Range<std::int64_t>{0}), "--x must be at least 0 (got -1)");
  EXPECT_EQ(message(std::uint64_t{0}, Range<std::uint64_t>{1}), "--x must be at least 1 (got 0)");
}

TEST(CliOptions, ASwitchCannotDefaultToTrue) {
  bool on = true;
  po::options_description opts;
  OptionBinder b(opts);
  EXPECT_THROW(b.flag("augment", on, "help"), std::logic_error);
}

TEST(CliOptions, TextWithChoicesIsCheckedBeforeParsing) {
  bool skip = false;
  int parsed = 0;
  po::options_description opts;
  OptionBinder(opts).add_text(
      "on-error", skip, "fail or skip", Choices{{"fail", "skip"}},
      [&](const std::string& v) {
        ++parsed;
        return v == "skip";
      },
      [](bool s) { return std::string(s ? "skip" : "fail"); });
  const char* argv[] = {"s2crop", "--on-error", "ignore"};
  po::variables_map vm;
  po::store(po::parse_command_line(3, argv, opts), vm);
  try {
    po::notify(vm);
    FAIL() << "accepted --on-error ignore";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "--on-error must be fail or skip (got 'ignore')");
  }
  EXPECT_EQ(parsed, 0);
  EXPECT_FALSE(skip);
}

}  // namespace
}  // namespace s2crop::cli
