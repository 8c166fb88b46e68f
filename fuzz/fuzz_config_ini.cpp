// libFuzzer target: an s2crop --config INI file (Boost.Program_options through cli::parse_options, the path every
// subcommand takes), with the options and value conversions of `s2crop composite` plus one option of each other
// value type the subcommands declare, then the option helpers the subcommands apply to the values
// (band list, method, integer lists, offset mode, dates) and the effective configuration text stored in outputs.
// parse_options reads the file by name: each input is written to one temporary file. Expected failures are
// s2crop::Error; anything else escaping is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/sentinel2/acquisition.hpp"
#include "s2crop/sentinel2/bands.hpp"

using namespace s2crop;
namespace po = boost::program_options;

namespace {
std::string g_config;  // the temporary file

void describe(po::options_description& opts) {
  // `s2crop composite`'s options, as src/cli/composite.cpp declares them.
  opts.add_options()
      ("input,i", po::value<std::vector<std::string>>()->multitoken(), "inputs")
      ("output,o", po::value<std::string>(), "output")
      ("bands", po::value<std::string>()->default_value("B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"), "bands")
      ("method", po::value<std::string>()->default_value("median"), "method")
      ("season-start", po::value<std::string>()->default_value("auto"), "season start")
      ("season-month", po::value<int>()->default_value(9), "season month")
      ("valid-scl", po::value<std::string>()->default_value("4,5,6,7"), "valid SCL")
      ("dilation", po::value<int>()->default_value(2), "dilation")
      ("boa-offset", po::value<std::string>()->default_value("auto"), "offset")
      ("tiles", po::value<std::string>()->default_value(""), "tiles")
      ("block-size", po::value<int>()->default_value(512), "block size")
      ("on-error", po::value<std::string>()->default_value("fail"), "on error")
      ("cog", po::value<std::string>()->default_value(""), "cog")
      ("quicklook", po::value<std::string>()->default_value(""), "quicklook")
      ("quicklook-month", po::value<std::string>()->default_value(""), "quicklook month")
      ("deflate", po::value<int>()->default_value(1), "deflate")
      ("list", po::bool_switch(), "list")
      ("overwrite", po::bool_switch(), "overwrite")
      // The other value types of the subcommands (train, classify, extract, synth).
      ("learning-rate", po::value<double>()->default_value(1e-3), "double")
      ("seed", po::value<unsigned long>()->default_value(42), "unsigned long")
      ("max-samples", po::value<long>()->default_value(-1), "long")
      ("threads", po::value<unsigned>()->default_value(0), "unsigned")
      ("shuffle", po::value<bool>()->default_value(true), "bool")
      ("labels", po::value<std::vector<std::string>>()->composing(), "composing list")
      ("start", po::value<std::string>()->default_value("2021-09-01"), "date");
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // tmpfs when there is one: writing each input to a disk costs more than parsing it.
  const char* dir = std::getenv("TMPDIR");
  std::string folder = dir && *dir ? dir : access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string pattern = folder + "/s2crop-fuzz-config-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) std::abort();
  close(fd);
  g_config = name.data();
  std::atexit([] { std::remove(g_config.c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FILE* f = std::fopen(g_config.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  std::string arg0 = "s2crop", arg1 = "--config", arg2 = g_config;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  try {
    po::options_description opts("Fuzzed options");
    describe(opts);
    po::variables_map vm;
    if (!cli::parse_options("composite", "", "", opts, nullptr, 3, argv, vm, /*print_help_on_this_rank=*/false))
      return 0;
    (void)cli::effective_config(vm);
    // What run_composite and the others do with the values.
    (void)sentinel2::parse_band_list(vm["bands"].as<std::string>());
    (void)composite::parse_method(vm["method"].as<std::string>());
    (void)cli::parse_int_list(vm["valid-scl"].as<std::string>(), "valid-scl");
    (void)sentinel2::parse_offset_mode(vm["boa-offset"].as<std::string>());
    (void)cli::split_list(vm["tiles"].as<std::string>());
    (void)sentinel2::Date::parse(vm["start"].as<std::string>());
    const std::string season = vm["season-start"].as<std::string>();  // as pipeline::run_composite reads it
    if (season != "auto") (void)sentinel2::Date::parse(season + "-01");
  } catch (const Error&) {
  }
  return 0;
}
