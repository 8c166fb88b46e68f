// s2crop: one MPI program, one subcommand per pipeline stage.
#include <algorithm>
#include <csignal>
#include <cstring>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>

#include "options.hpp"
#include "s2crop/common/allocator.hpp"
#include "s2crop/common/blas.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/version.hpp"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int, char**, const s2crop::parallel::MpiContext&);
};

const Command kCommands[] = {
#ifndef S2CROP_WITHOUT_GDAL
    {"synth", "generate a realistic synthetic Sentinel-2 L2A region (demo and test fixture)", s2crop::cli::run_synth},
#endif
#ifndef S2CROP_WITHOUT_GDAL
    {"composite", "monthly cloud-masked, gap-filled composites of L2A time series into parallel HDF5",
     s2crop::cli::run_composite},
#endif
    {"import-timesen2crop", "TimeSen2Crop folders (per-pixel CSVs) -> monthly-composite training set (HDF5)",
     s2crop::cli::run_import_timesen2crop},
#ifndef S2CROP_WITHOUT_GDAL
    {"import-bigearthnet", "BigEarthNet S2 patch folders (10/20/60 m GeoTIFFs, multi-labels) -> patch set (HDF5)",
     s2crop::cli::run_import_bigearthnet},
#endif
#ifndef S2CROP_WITHOUT_GDAL
    {"extract", "labelled pixel samples from composites and parcels (vector or raster) -> training set (HDF5)",
     s2crop::cli::run_extract},
#endif
    {"train", "train the LSTM crop-type classifier, data-parallel over ranks (MPI on CPU, NCCL on GPUs)",
     s2crop::cli::run_train},
    {"ndvi", "NDVI prediction LSTM: 'ndvi train' (forecast or gap-fill, data-parallel), 'evaluate', 'predict' (tiles)",
     s2crop::cli::run_ndvi},
    {"segment", "U-Net segmentation: train, evaluate on a patch set (per-label IoU/F1), predict over whole tiles",
     s2crop::cli::run_segment},
    {"classify", "apply a trained model to every pixel of a composite file -> class map (HDF5, COG, quicklook)",
     s2crop::cli::run_classify},
#ifndef S2CROP_WITHOUT_GDAL
    {"assess", "accuracy of a map or model against reference labels (OA, kappa, F1, Olofsson area-adjusted)",
     s2crop::cli::run_assess},
#endif
#ifndef S2CROP_WITHOUT_GDAL
    {"mosaic", "per-tile class maps (any UTM zones) -> one Cloud-Optimized GeoTIFF in one CRS", s2crop::cli::run_mosaic},
#endif
    {"pretrain", "self-supervised (SimSiam) pre-training of the U-Net encoder on unlabelled patches, data-parallel",
     s2crop::cli::run_pretrain},
#ifndef S2CROP_WITHOUT_GDAL
    {"plan", "estimate a job definition's volume, memory, run time and node-hours before submitting it",
     s2crop::cli::run_plan},
#endif
};

void print_usage() {
  std::cout << "s2crop " << s2crop::kVersion
            << " - Sentinel-2 L2A time series to crop-type maps on HPC clusters\n\n"
               "Usage: [mpirun -np N | srun --mpi=pmix] s2crop <command> [--config FILE] [options]\n\n"
               "Commands:\n";
  for (auto& c : kCommands) std::cout << "  " << c.name << std::string(std::max<size_t>(2, 21 - std::strlen(c.name)), ' ') << c.summary << "\n";
  std::cout << "\n's2crop <command> --help' explains each command's options.\n";
}

// Reached when an exception escapes a noexcept collective section (e.g. parallel HDF5 writing): report it and stop
// every rank, without unwinding through handles whose destructors would wait in collectives.
[[noreturn]] void abort_all_ranks() {
  std::string message = "unexpected failure";
  if (auto current = std::current_exception()) {
    try {
      std::rethrow_exception(current);
    } catch (const std::exception& e) {
      message = e.what();
    } catch (...) {
    }
  }
  s2crop::parallel::fail_fast(message, 1);
}

// srun reports success for a step whose tasks never started (Slurm 22.05, e.g. when the MPI plugin fails on the
// node), so a job script cannot trust srun's status alone: rank 0 leaves proof that the stage itself ran to its end.
void mark_stage_succeeded(const char* command) {
  const char* path = std::getenv("S2CROP_SUCCESS_FILE");
  if (!path || !*path) return;
  std::ofstream(path) << command << " succeeded\n";
}

}  // namespace

int main(int argc, char** argv) {
  s2crop::blas::ensure_matching_kernels(argv);  // may re-exec: before MPI and anything else
  s2crop::allocator::keep_large_buffers();
  std::set_terminate(abort_all_ranks);
  // A write past the file size limit (ulimit -f) fails with EFBIG, like a full disk, and is reported as such with
  // the file's name, instead of SIGXFSZ killing the rank without a word.
  std::signal(SIGXFSZ, SIG_IGN);
  s2crop::parallel::MpiContext mpi(argc, argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    if (mpi.is_root()) print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    if (mpi.is_root()) std::cout << "s2crop " << s2crop::kVersion << "\n";
    return 0;
  }
  for (auto& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      // Which host every rank is on and its node-local rank (threads and GPUs per rank follow from it): the first
      // thing to check in a multi-node job's log.
      if (mpi.size() > 1) {
        const std::string placement = mpi.placement();
        if (mpi.is_root()) s2crop::log::info(std::string(c.name) + ": " + placement);
      }
      const int status = c.run(argc - 1, argv + 1, mpi);
      if (status == 0 && mpi.is_root()) mark_stage_succeeded(c.name);
      return status;
    } catch (const s2crop::ConfigError& e) {
      // Configuration errors are found identically on every rank: report once, exit cleanly.
      if (mpi.is_root()) s2crop::log::error(e.what());
      return 2;
    } catch (const s2crop::AgreedError& e) {
      if (mpi.is_root()) s2crop::log::error(std::string(c.name) + " failed: " + e.what());
      return 1;
    } catch (const std::exception& e) {
      // Any other failure may hit one rank only while the others wait in a collective: stop them all.
      s2crop::parallel::fail_fast(std::string(c.name) + " failed: " + e.what(), 1);
    }
  }
  if (mpi.is_root()) {
    std::cerr << "s2crop: unknown command '" << argv[1] << "'"
#ifdef S2CROP_WITHOUT_GDAL
              << " (this s2crop was built without GDAL, model stages only: build with -DS2CROP_WITH_GDAL=ON for the "
                 "raster and vector commands)"
#endif
              << "\n\n";
    print_usage();
  }
  return 2;
}
