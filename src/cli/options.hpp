#pragma once
// Shared option handling for every subcommand: INI file via --config (command line wins), --help, the effective
// configuration text stored in every output, and the option groups several commands share.
#include <boost/program_options.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "option_binder.hpp"
#include "s2crop/composite/kernels.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/pipeline/block_limits.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::train {
struct TrainSettings;
}

namespace s2crop::cli {

namespace po = boost::program_options;

// Parses argv (after the subcommand name) and an optional --config INI file into `vm`. Adds --help, --config,
// --verbose to `options`. Returns false when --help was printed (caller exits 0). Throws ConfigError on bad options,
// values outside the ranges or choices an OptionBinder declared included (checked before --print-config prints).
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

// Shared option groups, declared once (name, range, binding) and reused by every command that has them; the help
// text is the command's where its wording differs. Defaults come from the settings structs.

// --block-size within the stage's limits (pipeline/block_stage.hpp: kCompositeBlockSizes, kInferenceBlockSizes,
// kMosaicBlockSizes; the stages check them again for library callers).
void add_block_size(OptionBinder& b, int& block_size, pipeline::BlockSizeLimits limits,
                    const std::string& help = "block edge in pixels: the unit of work and of resume");
// --tiles, read by parse_tile_list.
void add_tiles(OptionBinder& b, std::vector<std::string>& tiles,
               const std::string& help = "only these tiles, comma-separated (default: all)");
// --cog and --quicklook: the folders of the exports.
void add_exports(OptionBinder& b, std::string& cog_dir, std::string& quicklook_dir, const std::string& cog_help,
                 const std::string& quicklook_help);
// --threads >= 0 (0: the node's cores shared by its ranks).
void add_threads(OptionBinder& b, int& threads,
                 const std::string& help = "threads per rank (0: node cores / ranks on the node)");
// --deflate 0-9.
void add_deflate(OptionBinder& b, int& deflate, const std::string& help = "HDF5 deflate level (0 = uncompressed)");
void add_overwrite(OptionBinder& b, bool& overwrite, const std::string& help);
// --seed as text, read by parse_seed.
void add_seed(OptionBinder& b, std::uint64_t& seed, const std::string& help);
// --seed: a whole number 0..2^64-1; "-1" is a ConfigError, not 2^64-1 (as Boost would read it into an unsigned).
std::uint64_t parse_seed(const std::string& text);
// The compositing options of `composite` and `import-timesen2crop`: --method median|mean, --boa-offset
// auto|0|-1000, --on-error fail|skip (skip_bad).
void add_method(OptionBinder& b, composite::Method& method);
void add_boa_offset(OptionBinder& b, sentinel2::OffsetMode& mode, const std::string& help);
void add_on_error(OptionBinder& b, bool& skip_bad, const std::string& help);
// --months of the U-Net commands (segment train, pretrain), read by parse_season_months.
void add_months(OptionBinder& b, std::vector<int>& months);
// --device auto|cpu|cuda|cuda:N (nn/device.hpp) of every command that runs a model.
void add_device(OptionBinder& b, std::string& device);
// --precision fp32|bf16|fp16 of the commands that run a model over whole tiles.
void add_precision(OptionBinder& b, std::string& precision);
// "a,b" from a list, the inverse of split_list (defaults of list options shown from the struct).
std::string join_list(const std::vector<std::string>& items);

// The training commands (`train`, `ndvi train`, `segment train`, `pretrain`) run the one trainer: the options of its
// loop (checkpoints, split, schedule, communicator, threads, test hooks) are declared once here, bound into `s`;
// model options stay with each command. No ranges here: train::check_settings, which run_train calls first, is the
// one check of every training option.
void add_training_loop_options(OptionBinder& b, train::TrainSettings& s);

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
