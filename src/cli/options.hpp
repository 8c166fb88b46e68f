#pragma once
// Shared option handling for every subcommand: INI file via --config (command line wins), --help, and the
// effective configuration text stored in every output.
#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"

namespace s2crop::train {
struct TrainSettings;
}

namespace s2crop::cli {

namespace po = boost::program_options;

// Parses argv (after the subcommand name) and an optional --config INI file into `vm`. Adds --help, --config,
// --verbose to `options`. Returns false when --help was printed (caller exits 0). Throws ConfigError on bad options.
bool parse_options(const std::string& command, const std::string& usage, const std::string& description,
                   po::options_description& options, po::positional_options_description* positional, int argc,
                   char** argv, po::variables_map& vm, bool print_help_on_this_rank);

// "key = value" lines of every option that has a value (defaulted ones too), sorted: what the run actually used.
std::string effective_config(const po::variables_map& vm);

// "1,2, 3" -> {1,2,3}; names the option in the error.
std::vector<int> parse_int_list(const std::string& text, const std::string& option);
// "a,b,,c" -> {"a","b","c"}.
std::vector<std::string> split_list(const std::string& text);
// --tiles: "33uvp, 32TQT" -> {"33UVP", "32TQT"}. MGRS names are upper-cased (GDAL and the products spell them so);
// other names (sen2r regions) are kept as given. ConfigError for a name that could not be a tile (e.g. "../x").
std::vector<std::string> parse_tile_list(const std::string& text);

// The training commands (`train`, `ndvi train`) run the one trainer: the options of its loop (checkpoints, split,
// schedule, communicator, threads, test hooks) are declared once here; model options stay with each command.
void add_training_loop_options(po::options_description& options);
// Every TrainSettings field both commands share (their loop options and the model options they both have). Their
// ranges are checked by train::check_settings (train/settings.hpp), which run_train calls first.
void read_training_settings(const po::variables_map& vm, train::TrainSettings& s);
// --seed (declared by each training command as text): a whole number 0..2^64-1; "-1" is a ConfigError, not 2^64-1.
std::uint64_t parse_seed(const std::string& text);

// The subcommands.
int run_synth(int argc, char** argv, const parallel::MpiContext& mpi);
int run_composite(int argc, char** argv, const parallel::MpiContext& mpi);
int run_import_timesen2crop(int argc, char** argv, const parallel::MpiContext& mpi);
int run_import_bigearthnet(int argc, char** argv, const parallel::MpiContext& mpi);
int run_extract(int argc, char** argv, const parallel::MpiContext& mpi);
int run_train(int argc, char** argv, const parallel::MpiContext& mpi);
int run_classify(int argc, char** argv, const parallel::MpiContext& mpi);
int run_assess(int argc, char** argv, const parallel::MpiContext& mpi);
int run_plan(int argc, char** argv, const parallel::MpiContext& mpi);
int run_mosaic(int argc, char** argv, const parallel::MpiContext& mpi);
int run_ndvi(int argc, char** argv, const parallel::MpiContext& mpi);
int run_segment(int argc, char** argv, const parallel::MpiContext& mpi);  // `segment train|predict`
int run_segment_train(int argc, char** argv, const parallel::MpiContext& mpi);  // `segment train`
int run_pretrain(int argc, char** argv, const parallel::MpiContext& mpi);
// "1,2,12" -> 0-based season months {0, 1, 11}; empty -> empty (all). ConfigError for anything else.
std::vector<int> parse_season_months(const std::string& list);

}  // namespace s2crop::cli
