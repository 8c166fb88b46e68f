#pragma once
// The exception hierarchy every module throws. Messages are complete sentences a user can act on:
// they name the file (or option) and the problem, because in an MPI job they end up in a Slurm log.
#include <stdexcept>
#include <string>

namespace s2crop {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A command-line or configuration value is wrong.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// An input file (raster, STAC item, metadata, HDF5) is missing, malformed or inconsistent.
class InputError : public Error {
 public:
  InputError(std::string path, const std::string& problem)
      : Error(path + ": " + problem), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An output cannot be written (permissions, disk full, HDF5 failure on write).
class OutputError : public Error {
 public:
  OutputError(std::string path, const std::string& problem)
      : Error(path + ": " + problem), path_(std::move(path)) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An error that every rank already knows about (found on rank 0 and broadcast): ranks exit normally with a
// non-zero code instead of aborting.
class AgreedError : public Error {
 public:
  using Error::Error;
};

}  // namespace s2crop
