#include "s2crop/pipeline/stage_support.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

OutputLock::OutputLock(const std::string& output) : path_(output + ".lock") {
  // Retried when the file was removed between our open and our lock (by the previous owner finishing): a lock on an
  // unlinked file would exclude nobody.
  for (int attempt = 0; attempt < 20 && fd_ < 0; ++attempt) {
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw OutputError(path_, std::string("cannot create the output's lock file: ") + std::strerror(errno));
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &fl) != 0) {
      const int err = errno;
      char owner[256] = {0};
      ssize_t n = ::pread(fd, owner, sizeof owner - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(owner, static_cast<size_t>(n)) : std::string();
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      if (err == EACCES || err == EAGAIN)
        throw OutputError(output, "is being written by another s2crop run" + (who.empty() ? "" : " (" + who + ")") +
                                      "; wait for it to finish or stop it, or choose another output");
      throw OutputError(path_, std::string("cannot lock the output (does the file system support POSIX locks?): ") +
                                   std::strerror(err));
    }
    struct stat held, named;
    if (::fstat(fd, &held) == 0 && ::stat(path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev)
      fd_ = fd;
    else
      ::close(fd);
  }
  if (fd_ < 0) throw OutputError(path_, "cannot take the output's lock: the lock file keeps being replaced");
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  const std::string me = "pid " + std::to_string(::getpid()) + " on " + host + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, me.data(), me.size(), 0) != static_cast<ssize_t>(me.size())) {
    // The lock holds without the note; only the message of a refused second run would lack the owner.
  }
}

// Whatever way the run ends on rank 0 (done, refused, failed), the lock file goes with the lock: nothing is left
// beside the output. A run killed outright leaves the file, but its lock died with it.
OutputLock::~OutputLock() { release_and_remove(); }

void OutputLock::release_and_remove() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());
  ::close(fd_);
  fd_ = -1;
}

bool output_is_complete(const std::string& output, const std::string& previous, const std::string& fingerprint,
                        bool overwrite, const std::string& what) {
  if (!fs::exists(output)) return false;
  if (previous == fingerprint && !overwrite) return true;
  if (!overwrite)
    throw OutputError(output, "exists from a different run (other " + what + ", or inputs changed since); pass "
                              "--overwrite to replace it");
  return false;
}

void prepare_parts_dir(const std::string& output, const std::string& fingerprint, bool overwrite,
                       const std::string& what) {
  const std::string dir = output + ".parts", manifest = dir + "/run_fingerprint";
  if (fs::exists(manifest)) {
    std::ifstream in(manifest);
    std::string before;
    in >> before;
    if (before != fingerprint) {
      if (!overwrite)
        throw OutputError(dir, "holds blocks of an interrupted run with other " + what +
                               " (or inputs changed since); remove it or pass --overwrite");
      fs::remove_all(dir);
    }
  } else if (fs::exists(dir)) {
    bool parts = false;
    for (auto& e : fs::recursive_directory_iterator(dir)) parts = parts || e.path().extension() == ".part";
    if (parts && !overwrite)
      throw OutputError(dir, "holds blocks but no run_fingerprint (not from an s2crop run?); remove it or pass "
                             "--overwrite");
    if (parts) fs::remove_all(dir);
  }
  ensure_dir(dir);
  write_text_atomically(manifest, fingerprint + "\n");
}

double resident_mib() {
  long pages_total = 0, pages_resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages_total, &pages_resident) != 2) pages_resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// Peak resident memory of every rank, gathered on rank 0: the number to size jobs by (--mem-per-cpu).
void log_peak_memory(const parallel::MpiContext& mpi, const std::string& when) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double mib = static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
  std::vector<double> all(static_cast<size_t>(mpi.size()));
  MPI_Gather(&mib, 1, MPI_DOUBLE, all.data(), 1, MPI_DOUBLE, 0, mpi.world());
  if (!mpi.is_root()) return;
  std::string line = "peak memory per rank " + when + " (MiB):";
  char buf[32];
  for (double v : all) {
    std::snprintf(buf, sizeof buf, " %.0f", v);
    line += buf;
  }
  log::info(line);
}

GridScales write_tile_georeference(const h5::Node& g, const geo::Grid& grid) {
  g.set_attr("crs_wkt", grid.crs_wkt);
  g.set_attr("crs", geo::crs_short_name(grid.crs_wkt));
  g.set_attr("geotransform", std::vector<double>(grid.geotransform.begin(), grid.geotransform.end()));
  h5::Dataset mapping = g.create_scalar_dataset(kGridMappingVariable, 0);
  mapping.set_attr("crs_wkt", grid.crs_wkt);
  mapping.set_attr("spatial_ref", grid.crs_wkt);  // GDAL's and rioxarray's name for the same WKT
  std::string transform;
  for (double v : grid.geotransform) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.17g", transform.empty() ? "" : " ", v);
    transform += buf;
  }
  mapping.set_attr("GeoTransform", transform);
  std::vector<double> xs(static_cast<size_t>(grid.width)), ys(static_cast<size_t>(grid.height));
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = grid.geotransform[0] + (static_cast<double>(i) + 0.5) * grid.geotransform[1];
  for (size_t i = 0; i < ys.size(); ++i) ys[i] = grid.geotransform[3] + (static_cast<double>(i) + 0.5) * grid.geotransform[5];
  GridScales scales{g.create_small_dataset("x", xs), g.create_small_dataset("y", ys)};
  scales.x.make_scale("x");
  scales.y.make_scale("y");
  for (auto [axis, ds] : {std::pair{"X", &scales.x}, std::pair{"Y", &scales.y}}) {
    ds->set_attr("standard_name", std::string(axis[0] == 'X' ? "projection_x_coordinate" : "projection_y_coordinate"));
    ds->set_attr("long_name", std::string(axis[0] == 'X' ? "x coordinate of projection (pixel centre)"
                                                         : "y coordinate of projection (pixel centre)"));
    ds->set_attr("units", std::string("m"));
    ds->set_attr("axis", std::string(axis));
  }
  return scales;
}

void GridScales::georeference(const h5::Dataset& data, unsigned first_spatial) const {
  data.attach_scale(y, first_spatial);
  data.attach_scale(x, first_spatial + 1);
  data.set_attr("grid_mapping", std::string(kGridMappingVariable));
}

void ensure_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) throw OutputError(dir, "cannot create directory: " + ec.message());
  std::string probe = dir + "/.s2crop-write-test-" + std::to_string(::getpid());
  FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) throw OutputError(dir, std::string("directory is not writable: ") + std::strerror(errno));
  std::fclose(f);
  std::remove(probe.c_str());
}

}  // namespace s2crop::pipeline
