#pragma once
// The pieces of the block-stage engine (block_stage.hpp) and of its stages: progress across ranks, the output lock
// and resume rules, tile georeference, peak-memory reporting, output directories.
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/common/log.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::pipeline {

inline constexpr int kProgressTag = 7301;

// Progress across ranks without collectives (ranks have different unit counts): workers send a note to rank 0
// per finished unit; rank 0 counts them between its own units and at the end.
class UnitProgress {
 public:
  UnitProgress(const parallel::MpiContext& mpi, const std::string& stage, std::int64_t total, std::int64_t already_done)
      : mpi_(mpi), total_(total), done_(already_done),
        progress_(stage, "blocks", total, 10.0) {
    progress_.set_base(already_done);
  }
  void unit_done() {
    if (mpi_.is_root()) {
      ++done_;
      poll(false);
    } else {
      requests_.emplace_back();
      MPI_Isend(&one_, 1, MPI_INT, 0, kProgressTag, mpi_.world(), &requests_.back());
    }
  }
  // Rank 0: `n` units of other ranks done (they told rank 0 another way).
  void add_done(std::int64_t n) {
    if (n == 0) return;
    done_ += n;
    progress_.update(done_);
  }
  void finish(std::int64_t expected_total_done) {
    if (mpi_.is_root()) {
      while (done_ < expected_total_done) poll(true);
      progress_.finish();
    } else if (!requests_.empty()) {
      MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    }
  }

 private:
  void poll(bool block) {
    int flag = 0;
    MPI_Status st;
    do {
      if (block) {
        MPI_Probe(MPI_ANY_SOURCE, kProgressTag, mpi_.world(), &st);
        flag = 1;
      } else {
        MPI_Iprobe(MPI_ANY_SOURCE, kProgressTag, mpi_.world(), &flag, &st);
      }
      if (flag) {
        int v;
        MPI_Recv(&v, 1, MPI_INT, st.MPI_SOURCE, kProgressTag, mpi_.world(), MPI_STATUS_IGNORE);
        done_ += v;
        block = false;
      }
    } while (flag);
    progress_.update(done_);
  }
  const parallel::MpiContext& mpi_;
  std::int64_t total_, done_;
  log::Progress progress_;
  std::vector<MPI_Request> requests_;
  int one_ = 1;
};

// A tile group's georeference, twice: s2crop's own attrs (crs_wkt, crs, geotransform: existing readers), and CF-1.8
// for GIS tools (GDAL's netCDF driver, QGIS, rioxarray): the grid_mapping variable `spatial_ref` (crs_wkt,
// spatial_ref, GeoTransform) and the x / y dimension scales (pixel-centre coordinates in the tile's CRS, with
// standard_name, units and axis). Collective like every metadata call.
struct GridScales {
  h5::Dataset x, y;
  // Attaches y and x to dimensions first_spatial and first_spatial + 1 of `data` and names the grid mapping.
  void georeference(const h5::Dataset& data, unsigned first_spatial) const;
};
inline constexpr const char* kGridMappingVariable = "spatial_ref";
GridScales write_tile_georeference(const h5::Node& group, const geo::Grid& grid);

// This process's resident memory now (MiB).
double resident_mib();

// Logs the peak resident memory of every rank (gathered on rank 0): the number to size jobs by. Collective.
void log_peak_memory(const parallel::MpiContext& mpi, const std::string& when);

// Exclusive ownership of an output by one run: a POSIX record lock on "<output>.lock", taken by rank 0 before it
// looks at the output or its parts and held until the run ends. A second run on the same output is refused by name
// (two runs would interleave their parts and HDF5 writes); a killed run's lock dies with its process, so the next run
// takes it over (the file of a killed run stays; a run that ends in any other way removes it). On a cluster the shared file system must support POSIX locks across nodes (NFSv4, Lustre, GPFS).
class OutputLock {
 public:
  explicit OutputLock(const std::string& output);  // throws OutputError if another run holds it
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  // Removes the lock file (still holding the lock), then releases it; also what the destructor does.
  void release_and_remove();

 private:
  std::string path_;
  int fd_ = -1;
};

// The resume protocol every block stage follows on rank 0, holding the OutputLock. `fingerprint` identifies what the
// output depends on (inputs by identity and content, options); `what` names them in messages ("inputs or options").
//
// An output that exists: nothing to do (true) when `previous` (the fingerprint stored in it, empty if unreadable)
// matches and --overwrite is not given; refused when it differs, unless `overwrite`. False: the run goes ahead.
bool output_is_complete(const std::string& output, const std::string& previous, const std::string& fingerprint,
                        bool overwrite, const std::string& what);
// Makes `<output>.parts/` ready: kept when its manifest (run_fingerprint) matches, so finished blocks are reused;
// replaced with `overwrite`; refused when it holds blocks of another run (or blocks without a manifest) otherwise.
// The manifest is written under a temporary name and renamed, so a kill never leaves a torn one.
void prepare_parts_dir(const std::string& output, const std::string& fingerprint, bool overwrite,
                       const std::string& what);

// Creates `dir` (and parents) and checks that it is writable; throws OutputError.
void ensure_dir(const std::string& dir);

}  // namespace s2crop::pipeline
