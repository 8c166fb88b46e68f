#pragma once
// Thin RAII wrappers over the HDF5 C API (in the spirit of HighFive): handles close themselves, every failure
// throws s2crop::OutputError / InputError naming the file and HDF5's own reason. Files are opened through MPI-IO;
// all ranks must make the same metadata calls (create, attributes) in the same order.
#include <hdf5.h>
#include <mpi.h>

#include <cstdint>
#include <mutex>
#include <memory>
#include <string>
#include <vector>

namespace s2crop::h5 {

// Owns one hid_t and closes it with the matching H5*close.
class Handle {
 public:
  Handle() = default;
  explicit Handle(hid_t id) : id_(id) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(o.id_) { o.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& o) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t id() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();
  hid_t release() {
    hid_t id = id_;
    id_ = H5I_INVALID_HID;
    return id;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

template <typename T>
hid_t native_type();

class Dataset;

// String datasets created in a file open through MPI-IO, whose values File::close writes: HDF5 1.10 refuses
// variable-length writes through MPI-IO ("Parallel IO does not support writing VL ... datatypes yet").
struct DeferredStrings {
  struct Write {
    std::string path;
    std::vector<std::string> values;
  };
  std::vector<Write> writes;
};

// Group or file root: where datasets and attributes live.
class Node {
 public:
  Node() = default;
  Node(Handle h, std::string file, std::string path, std::shared_ptr<DeferredStrings> deferred = nullptr)
      : h_(std::move(h)), file_(std::move(file)), path_(std::move(path)), deferred_(std::move(deferred)) {}
  hid_t id() const { return h_.id(); }
  const std::string& file() const { return file_; }
  const std::string& path() const { return path_; }

  Node create_group(const std::string& name) const;
  Node open_group(const std::string& name) const;
  bool exists(const std::string& name) const;
  std::vector<std::string> children() const;

  // Chunked dataset; `deflate` 0 disables compression (shuffle is added with it). `fill` is the fill value.
  template <typename T>
  Dataset create_dataset(const std::string& name, const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk,
                         int deflate, T fill) const;
  // 1-D variable-length UTF-8 strings (netCDF-4's NC_STRING: netCDF4-python, h5netcdf, xarray and GDAL read them;
  // libnetcdf 4.9 crashes on fixed-length string datasets). In a file open through MPI-IO the dataset exists at once
  // but its values are written by File::close (rank 0 reopens the closed file serially), so read them after close.
  Dataset create_string_dataset(const std::string& name, const std::vector<std::string>& values) const;
  template <typename T>
  Dataset create_small_dataset(const std::string& name, const std::vector<T>& values) const;  // contiguous, 1-D
  // A scalar int32 dataset: a variable that only carries attributes (CF's grid_mapping variable).
  Dataset create_scalar_dataset(const std::string& name, std::int32_t value) const;
  Dataset open_dataset(const std::string& name) const;

  // No attribute is ever an empty array (GDAL's HDF5 driver crashes on an empty string array and prints garbage for
  // an empty numeric one): an empty string list is written as the scalar "", an empty number list with a null
  // dataspace (netCDF-4's form of an empty attribute). attr_strings / attr_doubles read both back as empty lists.
  void set_attr(const std::string& name, const std::string& value) const;
  void set_attr(const std::string& name, const std::vector<std::string>& values) const;
  void set_attr(const std::string& name, double value) const;
  void set_attr(const std::string& name, std::int64_t value) const;
  void set_attr(const std::string& name, const std::vector<double>& values) const;
  bool has_attr(const std::string& name) const;
  std::string attr_string(const std::string& name) const;
  // A list of strings; the scalar "" (and an empty array, as earlier files hold) is the empty list.
  std::vector<std::string> attr_strings(const std::string& name) const;
  std::vector<double> attr_doubles(const std::string& name) const;
  std::int64_t attr_int(const std::string& name) const;

 protected:
  Handle h_;
  std::string file_, path_;
  std::shared_ptr<DeferredStrings> deferred_;  // set in files open through MPI-IO (File::create)
};

class Dataset : public Node {
 public:
  using Node::Node;
  std::vector<hsize_t> dims() const;
  // Writes the hyperslab [offset, offset+count) from a contiguous buffer. With `collective`, every rank must call
  // it; a rank with nothing to write passes an empty `count` (or any zero extent) and a null pointer.
  template <typename T>
  void write(const std::vector<hsize_t>& offset, const std::vector<hsize_t>& count, const T* data,
             bool collective) const;
  template <typename T>
  void read(const std::vector<hsize_t>& offset, const std::vector<hsize_t>& count, T* out) const;
  // Writes one chunk as it is stored (already through the dataset's filters: chunk_codec.hpp), at the chunk whose
  // first element is `offset`, and returns where its bytes are in the file. HDF5 1.10 cannot write raw chunks
  // collectively, so files written this way are opened by one process: File::create_single_writer, whose driver sees
  // where the chunk goes (elsewhere the address is looked up with chunk_location: slow, see there).
  std::uint64_t write_chunk(const std::vector<hsize_t>& offset, const void* data, size_t bytes) const;
  // How the dataset stores its chunks: what a reader that decodes raw chunks itself needs to know.
  struct ChunkStorage {
    std::vector<hsize_t> chunk;  // empty: not chunked
    size_t element_bytes = 0;
    bool shuffle = false, deflate = false;  // the filters in HDF5's order (shuffle before deflate)
    bool other_filters = false;             // any other filter, or these in another order
    double fill = 0;                        // what a chunk never written holds
  };
  ChunkStorage chunk_storage() const;
  // Where the chunk whose first element is `offset` is in the file (bytes from its start: s2crop writes no user
  // block) and its stored size; `stored` false where it was never written. HDF5 1.10 walks the dataset's chunks to
  // answer: about 1 ms per call on a dataset of 58 000 chunks (a full tile's reflectance).
  struct ChunkLocation {
    std::uint64_t address = 0, bytes = 0;
    bool stored = false;
  };
  ChunkLocation chunk_location(const std::vector<hsize_t>& offset) const;
  // The chunk whose first element is `offset`, as stored (still through the filters) into `out`. False where the
  // chunk was never written (its elements are the fill value). Throws InputError naming the file where it cannot be
  // read or a filter was skipped when it was written.
  bool read_chunk(const std::vector<hsize_t>& offset, std::vector<std::uint8_t>& out) const;
  // Dimension scales (so h5py/xarray see named dimensions).
  void make_scale(const std::string& dimension_name) const;
  void attach_scale(const Dataset& scale, unsigned dim) const;  // also labels the dimension with the scale's name
};

class File : public Node {
 public:
  // Collective: creates (truncates) `path` with the MPI-IO driver on `comm`.
  static File create(const std::string& path, MPI_Comm comm);
  // One process: creates (truncates) `path` with a plain POSIX driver that tells write_chunk where each chunk went.
  static File create_single_writer(const std::string& path);
  // Collective on `comm` (MPI-IO); pass MPI_COMM_NULL for a plain serial open.
  static File open_read(const std::string& path, MPI_Comm comm);
  // Serial read-write open (one process), to add attributes to a finished file before it is moved into place.
  static File open_update(const std::string& path);
  void flush() const;
  // Collective; throws if HDF5 reports a failure while writing out metadata. Then writes the values of the string
  // datasets created through MPI-IO (rank 0 of the file's communicator, serially), every rank throwing if that fails.
  void close();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;  // the communicator of create(): it must outlive close()
};

// Debian's parallel HDF5 is not built thread-safe: code that may call it from two threads at once (a stage's
// read-ahead thread while rank 0 writes the output's chunks) holds this around its calls.
std::mutex& library_mutex();

// How many write_chunk calls had to look their chunk's address up in HDF5's chunk index (a file not made by
// File::create_single_writer, or a write its driver did not see): the slow path, for tests and logs.
std::uint64_t slow_chunk_lookups();

// HDF5's error stack as one line (innermost reason first); empties the stack.
std::string last_error();

}  // namespace s2crop::h5
