#include "s2crop/h5/h5.hpp"

#include <hdf5_hl.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "s2crop/common/errors.hpp"
#include "located_driver.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace s2crop::h5 {

namespace {

void quiet_hdf5() {
  static std::once_flag once;
  // HDF5 prints its error stack to stderr by default; we collect it into the exception instead.
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

herr_t walk(unsigned n, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err->desc) *out = err->desc;  // innermost: the actual reason
  else if (err->desc && out->empty()) *out = err->desc;
  return 0;
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw OutputError(file, what + ": " + last_error());
}

hid_t check(hid_t id, const std::string& file, const std::string& what) {
  if (id < 0) fail(file, what);
  return id;
}

void check(herr_t status, const std::string& file, const std::string& what, int) {
  if (status < 0) fail(file, what);
}

std::string join(const std::string& a, const std::string& b) { return a == "/" ? "/" + b : a + "/" + b; }

// Whether `object` lives in a file open through MPI-IO (File::create) rather than serially (File::open_update).
bool through_mpio(hid_t object) {
  Handle file(H5Iget_file_id(object));
  Handle fapl(file.valid() ? H5Fget_access_plist(file.id()) : H5I_INVALID_HID);
  return fapl.valid() && H5Pget_driver(fapl.id()) == H5FD_MPIO;
}

// Transfer properties for a small write that every rank of a parallel file makes with the same bytes: collective
// where the file is open through MPI-IO, default (independent) in a file opened serially (File::open_update).
Handle small_write_dxpl(hid_t object) {
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER));
  if (through_mpio(object)) H5Pset_dxpl_mpio(dxpl.id(), H5FD_MPIO_COLLECTIVE);
  return dxpl;
}

Handle vlen_string_type() {
  Handle t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.id(), H5T_VARIABLE);
  H5Tset_cset(t.id(), H5T_CSET_UTF8);
  return t;
}

// Writes the whole 1-D variable-length string dataset `d` (in a serially open file).
void write_strings(hid_t d, const std::string& file, const std::string& path, const std::vector<std::string>& values) {
  std::vector<const char*> ptrs;
  for (auto& v : values) ptrs.push_back(v.c_str());
  Handle type = vlen_string_type();
  check(H5Dwrite(d, type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), file, "cannot write " + path, 0);
}

}  // namespace

std::string last_error() {
  std::string msg;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &msg);
  H5Eclear2(H5E_DEFAULT);
  return msg.empty() ? "HDF5 error" : msg;
}

template <> hid_t native_type<std::int16_t>() { return H5T_NATIVE_INT16; }
template <> hid_t native_type<std::uint8_t>() { return H5T_NATIVE_UINT8; }
template <> hid_t native_type<std::uint16_t>() { return H5T_NATIVE_UINT16; }
template <> hid_t native_type<std::int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t native_type<std::uint32_t>() { return H5T_NATIVE_UINT32; }
template <> hid_t native_type<std::int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t native_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t native_type<double>() { return H5T_NATIVE_DOUBLE; }

Handle& Handle::operator=(Handle&& o) noexcept {
  if (this != &o) {
    reset();
    id_ = o.id_;
    o.id_ = H5I_INVALID_HID;
  }
  return *this;
}

void Handle::reset() {
  if (id_ < 0) return;
  switch (H5Iget_type(id_)) {
    case H5I_FILE: H5Fclose(id_); break;
    case H5I_GROUP: H5Gclose(id_); break;
    case H5I_DATASET: H5Dclose(id_); break;
    case H5I_DATASPACE: H5Sclose(id_); break;
    case H5I_DATATYPE: H5Tclose(id_); break;
    case H5I_ATTR: H5Aclose(id_); break;
    case H5I_GENPROP_LST: H5Pclose(id_); break;
    default: break;
  }
  id_ = H5I_INVALID_HID;
}

// ---- Node ----

Node Node::create_group(const std::string& name) const {
  hid_t g = check(H5Gcreate2(id(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), file_,
                  "cannot create group " + join(path_, name));
  return Node(Handle(g), file_, join(path_, name), deferred_);
}

Node Node::open_group(const std::string& name) const {
  hid_t g = H5Gopen2(id(), name.c_str(), H5P_DEFAULT);
  if (g < 0) throw InputError(file_, "has no group " + join(path_, name) + " (" + last_error() + ")");
  return Node(Handle(g), file_, join(path_, name), deferred_);
}

bool Node::exists(const std::string& name) const {
  htri_t r = H5Lexists(id(), name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return r > 0;
}

std::vector<std::string> Node::children() const {
  std::vector<std::string> names;
  auto cb = [](hid_t, const char* name, const H5L_info_t*, void* data) -> herr_t {
    static_cast<std::vector<std::string>*>(data)->push_back(name);
    return 0;
  };
  H5Literate(id(), H5_INDEX_NAME, H5_ITER_INC, nullptr, cb, &names);
  return names;
}

template <typename T>
Dataset Node::create_dataset(const std::string& name, const std::vector<hsize_t>& dims,
                             const std::vector<hsize_t>& chunk, int deflate, T fill) const {
  Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  check(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), file_, "bad chunk shape for " + name, 0);
  H5Pset_fill_value(dcpl.id(), native_type<T>(), &fill);
  if (deflate > 0) {
    check(H5Pset_shuffle(dcpl.id()), file_, "cannot enable shuffle for " + name, 0);
    check(H5Pset_deflate(dcpl.id(), static_cast<unsigned>(deflate)), file_, "cannot enable deflate for " + name, 0);
  }
  hid_t d = check(H5Dcreate2(id(), name.c_str(), native_type<T>(), space.id(), H5P_DEFAULT, dcpl.id(), H5P_DEFAULT),
                  file_, "cannot create dataset " + join(path_, name));
  return Dataset(Handle(d), file_, join(path_, name), deferred_);
}

// Variable-length, not fixed-length, strings: libnetcdf 4.9 (netCDF4-python, xarray's default engine) crashes on a
// fixed-length string dataset, while variable-length UTF-8 is netCDF-4's own NC_STRING.
Dataset Node::create_string_dataset(const std::string& name, const std::vector<std::string>& values) const {
  Handle type = vlen_string_type();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  hid_t d = check(H5Dcreate2(id(), name.c_str(), type.id(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), file_,
                  "cannot create dataset " + join(path_, name));
  Dataset ds(Handle(d), file_, join(path_, name), deferred_);
  if (n == 0) return ds;
  if (through_mpio(d)) {
    // HDF5 1.10 writes no variable-length data through MPI-IO: File::close writes the values, serially.
    if (!deferred_) throw OutputError(file_, "internal error: string dataset " + ds.path() + " in a parallel file "
                                             "opened without File::create");
    deferred_->writes.push_back({ds.path(), values});
  } else {
    write_strings(d, file_, ds.path(), values);
  }
  return ds;
}

template <typename T>
Dataset Node::create_small_dataset(const std::string& name, const std::vector<T>& values) const {
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  hid_t d = check(H5Dcreate2(id(), name.c_str(), native_type<T>(), space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  file_, "cannot create dataset " + join(path_, name));
  Handle dxpl = small_write_dxpl(d);
  if (n)
    check(H5Dwrite(d, native_type<T>(), H5S_ALL, H5S_ALL, dxpl.id(), values.data()), file_, "cannot write " + name, 0);
  return Dataset(Handle(d), file_, join(path_, name), deferred_);
}

Dataset Node::create_scalar_dataset(const std::string& name, std::int32_t value) const {
  Handle space(H5Screate(H5S_SCALAR));
  hid_t d = check(H5Dcreate2(id(), name.c_str(), H5T_NATIVE_INT32, space.id(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                  file_, "cannot create dataset " + join(path_, name));
  Handle dxpl = small_write_dxpl(d);
  check(H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, dxpl.id(), &value), file_, "cannot write " + name, 0);
  return Dataset(Handle(d), file_, join(path_, name), deferred_);
}

namespace {
std::atomic<std::uint64_t> slow_lookups{0};
}  // namespace

std::uint64_t slow_chunk_lookups() { return slow_lookups.load(std::memory_order_relaxed); }

std::uint64_t Dataset::write_chunk(const std::vector<hsize_t>& offset, const void* data, size_t bytes) const {
  located_driver::expect(data, bytes);
  const herr_t status = H5Dwrite_chunk(id(), H5P_DEFAULT, 0, offset.data(), bytes, data);
  std::uint64_t address = 0;
  const bool seen = located_driver::found(address);
  if (const int e = located_driver::take_write_errno(); e != 0)
    throw OutputError(file_, "cannot write a chunk of " + path_ + ": " + std::strerror(e));
  check(status, file_, "cannot write a chunk of " + path_, 0);
  if (seen) return address;
  slow_lookups.fetch_add(1, std::memory_order_relaxed);
  const ChunkLocation where = chunk_location(offset);
  if (!where.stored || where.bytes != bytes) throw OutputError(file_, "a chunk of " + path_ + " was not stored as written");
  return where.address;
}

Dataset::ChunkStorage Dataset::chunk_storage() const {
  ChunkStorage out;
  Handle dcpl(check(H5Dget_create_plist(id()), file_, "cannot read the storage of " + path_));
  Handle type(check(H5Dget_type(id()), file_, "cannot read the type of " + path_));
  out.element_bytes = H5Tget_size(type.id());
  H5Pget_fill_value(dcpl.id(), H5T_NATIVE_DOUBLE, &out.fill);
  if (H5Pget_layout(dcpl.id()) != H5D_CHUNKED) return out;
  const int rank = H5Pget_chunk(dcpl.id(), 0, nullptr);
  if (rank <= 0) return out;
  out.chunk.resize(static_cast<size_t>(rank));
  H5Pget_chunk(dcpl.id(), rank, out.chunk.data());
  const int filters = H5Pget_nfilters(dcpl.id());
  for (int k = 0; k < filters; ++k) {
    unsigned flags = 0, config = 0;
    size_t n_values = 0;
    const H5Z_filter_t f = H5Pget_filter2(dcpl.id(), static_cast<unsigned>(k), &flags, &n_values, nullptr, 0, nullptr,
                                          &config);
    if (f == H5Z_FILTER_SHUFFLE && !out.shuffle && !out.deflate) out.shuffle = true;
    else if (f == H5Z_FILTER_DEFLATE && !out.deflate) out.deflate = true;
    else out.other_filters = true;
  }
  return out;
}

Dataset::ChunkLocation Dataset::chunk_location(const std::vector<hsize_t>& offset) const {
  unsigned mask = 0;
  haddr_t address = HADDR_UNDEF;
  hsize_t bytes = 0;
  if (H5Dget_chunk_info_by_coord(id(), offset.data(), &mask, &address, &bytes) < 0)
    throw InputError(file_, "cannot find a chunk of " + path_ + " (" + last_error() + ")");
  ChunkLocation where;
  if (address == HADDR_UNDEF || bytes == 0) return where;  // never written: no storage
  where.address = static_cast<std::uint64_t>(address);
  where.bytes = static_cast<std::uint64_t>(bytes);
  where.stored = true;
  return where;
}

bool Dataset::read_chunk(const std::vector<hsize_t>& offset, std::vector<std::uint8_t>& out) const {
  const ChunkLocation where = chunk_location(offset);
  if (!where.stored) return false;
  out.resize(static_cast<size_t>(where.bytes));
  std::uint32_t skipped = 0;
  if (H5Dread_chunk(id(), H5P_DEFAULT, offset.data(), &skipped, out.data()) < 0)
    throw InputError(file_, "cannot read a chunk of " + path_ + " (" + last_error() + ")");
  if (skipped != 0) throw InputError(file_, "a chunk of " + path_ + " was stored without one of its filters");
  return true;
}

Dataset Node::open_dataset(const std::string& name) const {
  hid_t d = H5Dopen2(id(), name.c_str(), H5P_DEFAULT);
  if (d < 0) throw InputError(file_, "has no dataset " + join(path_, name) + " (" + last_error() + ")");
  return Dataset(Handle(d), file_, join(path_, name), deferred_);
}

namespace {
void write_attr(hid_t obj, const std::string& file, const std::string& name, hid_t type, hid_t space,
                const void* data) {
  if (H5Aexists(obj, name.c_str()) > 0) H5Adelete(obj, name.c_str());
  Handle a(check(H5Acreate2(obj, name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT), file,
                 "cannot create attribute " + name));
  check(H5Awrite(a.id(), type, data), file, "cannot write attribute " + name, 0);
}
}  // namespace

// Attributes hold variable-length UTF-8 strings: h5py and xarray read them as str, not bytes.
void Node::set_attr(const std::string& name, const std::string& value) const {
  Handle type = vlen_string_type();
  Handle space(H5Screate(H5S_SCALAR));
  const char* p = value.c_str();
  write_attr(id(), file_, name, type.id(), space.id(), &p);
}

// An empty list is the scalar "": GDAL's HDF5 driver (3.6) segfaults on an empty string array attribute, and on one
// with a null dataspace; h5py, netCDF4 and h5netcdf read the scalar as '' (length 0).
void Node::set_attr(const std::string& name, const std::vector<std::string>& values) const {
  if (values.empty()) {
    set_attr(name, std::string());
    return;
  }
  std::vector<const char*> ptrs;
  for (auto& v : values) ptrs.push_back(v.c_str());
  Handle type = vlen_string_type();
  hsize_t n = values.size();
  Handle space(H5Screate_simple(1, &n, nullptr));
  write_attr(id(), file_, name, type.id(), space.id(), ptrs.data());
}

void Node::set_attr(const std::string& name, double value) const {
  Handle space(H5Screate(H5S_SCALAR));
  write_attr(id(), file_, name, H5T_NATIVE_DOUBLE, space.id(), &value);
}

void Node::set_attr(const std::string& name, std::int64_t value) const {
  Handle space(H5Screate(H5S_SCALAR));
  write_attr(id(), file_, name, H5T_NATIVE_INT64, space.id(), &value);
}

// An empty list has a null dataspace, as netCDF-4 writes empty attributes: GDAL prints garbage for an empty numeric
// array and skips a null one; netCDF4 and h5netcdf read an empty array, h5py h5py.Empty.
void Node::set_attr(const std::string& name, const std::vector<double>& values) const {
  hsize_t n = values.size();
  Handle space(n ? H5Screate_simple(1, &n, nullptr) : H5Screate(H5S_NULL));
  const double none = 0;
  write_attr(id(), file_, name, H5T_NATIVE_DOUBLE, space.id(), n ? values.data() : &none);
}

bool Node::has_attr(const std::string& name) const { return H5Aexists(id(), name.c_str()) > 0; }

namespace {
Handle open_attr(hid_t obj, const std::string& file, const std::string& path, const std::string& name) {
  hid_t a = H5Aopen(obj, name.c_str(), H5P_DEFAULT);
  if (a < 0) throw InputError(file, path + " has no attribute '" + name + "'");
  return Handle(a);
}
}  // namespace

std::vector<std::string> Node::attr_strings(const std::string& name) const {
  Handle a = open_attr(id(), file_, path_, name);
  Handle type(H5Aget_type(a.id()));
  Handle space(H5Aget_space(a.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<std::string> out;
  if (H5Tget_class(type.id()) != H5T_STRING) throw InputError(file_, path_ + " attribute '" + name + "' is not text");
  if (n <= 0) return out;  // an empty list in files of earlier versions (or a null dataspace)
  const bool scalar = H5Sget_simple_extent_type(space.id()) == H5S_SCALAR;
  if (H5Tis_variable_str(type.id()) > 0) {
    std::vector<char*> ptrs(static_cast<size_t>(n));
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem.id(), H5T_VARIABLE);
    H5Tset_cset(mem.id(), H5Tget_cset(type.id()));
    if (H5Aread(a.id(), mem.id(), ptrs.data()) < 0)
      throw InputError(file_, path_ + " attribute '" + name + "' cannot be read: " + last_error());
    for (auto* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.id(), space.id(), H5P_DEFAULT, ptrs.data());
    if (scalar && out[0].empty()) out.clear();  // the empty list (set_attr)
  } else {
    size_t len = H5Tget_size(type.id());
    std::vector<char> buf(len * static_cast<size_t>(n) + 1, '\0');
    H5Aread(a.id(), type.id(), buf.data());
    for (hssize_t i = 0; i < n; ++i) {
      const char* p = buf.data() + static_cast<size_t>(i) * len;
      out.emplace_back(p, strnlen(p, len));
    }
  }
  return out;
}

std::string Node::attr_string(const std::string& name) const {
  auto v = attr_strings(name);
  return v.empty() ? std::string() : v[0];
}

std::vector<double> Node::attr_doubles(const std::string& name) const {
  Handle a = open_attr(id(), file_, path_, name);
  Handle space(H5Aget_space(a.id()));
  hssize_t n = H5Sget_simple_extent_npoints(space.id());
  std::vector<double> out(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  if (out.empty()) return out;  // a null dataspace (set_attr of an empty list) or an empty array
  if (H5Aread(a.id(), H5T_NATIVE_DOUBLE, out.data()) < 0)
    throw InputError(file_, path_ + " attribute '" + name + "' is not numeric");
  return out;
}

std::int64_t Node::attr_int(const std::string& name) const {
  Handle a = open_attr(id(), file_, path_, name);
  std::int64_t v = 0;
  if (H5Aread(a.id(), H5T_NATIVE_INT64, &v) < 0)
    throw InputError(file_, path_ + " attribute '" + name + "' is not an integer");
  return v;
}

// ---- Dataset ----

std::vector<hsize_t> Dataset::dims() const {
  Handle space(H5Dget_space(id()));
  int rank = H5Sget_simple_extent_ndims(space.id());
  std::vector<hsize_t> d(static_cast<size_t>(std::max(rank, 0)));
  H5Sget_simple_extent_dims(space.id(), d.data(), nullptr);
  return d;
}

template <typename T>
void Dataset::write(const std::vector<hsize_t>& offset, const std::vector<hsize_t>& count, const T* data,
                    bool collective) const {
  Handle file_space(H5Dget_space(id()));
  bool empty = count.empty();
  for (auto c : count) empty = empty || c == 0;
  Handle mem_space;
  if (empty) {
    H5Sselect_none(file_space.id());
    hsize_t one = 1;
    mem_space = Handle(H5Screate_simple(1, &one, nullptr));
    H5Sselect_none(mem_space.id());
  } else {
    check(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr), file_,
          "bad selection in " + path_, 0);
    mem_space = Handle(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  }
  Handle dxpl(H5Pcreate(H5P_DATASET_XFER));
  H5Pset_dxpl_mpio(dxpl.id(), collective ? H5FD_MPIO_COLLECTIVE : H5FD_MPIO_INDEPENDENT);
  T dummy{};
  check(H5Dwrite(id(), native_type<T>(), mem_space.id(), file_space.id(), dxpl.id(), empty ? &dummy : data), file_,
        "cannot write " + path_, 0);
}

template <typename T>
void Dataset::read(const std::vector<hsize_t>& offset, const std::vector<hsize_t>& count, T* out) const {
  Handle file_space(H5Dget_space(id()));
  if (H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr) < 0)
    throw InputError(file_, "bad selection in " + path_ + ": " + last_error());
  Handle mem_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  if (H5Dread(id(), native_type<T>(), mem_space.id(), file_space.id(), H5P_DEFAULT, out) < 0)
    throw InputError(file_, "cannot read " + path_ + ": " + last_error());
}

void Dataset::make_scale(const std::string& dimension_name) const {
  check(H5DSset_scale(id(), dimension_name.c_str()), file_, "cannot make " + path_ + " a dimension scale", 0);
}

void Dataset::attach_scale(const Dataset& scale, unsigned dim) const {
  check(H5DSattach_scale(id(), scale.id(), dim), file_, "cannot attach scale " + scale.path() + " to " + path_, 0);
  std::string name = scale.path().substr(scale.path().rfind('/') + 1);
  check(H5DSset_label(id(), dim, name.c_str()), file_, "cannot label dimension of " + path_, 0);
}

// ---- File ----

namespace {
// H5Fcreate through `fapl` (its driver set) with the settings every s2crop file has.
hid_t create_file(const std::string& path, hid_t fapl) {
  H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18);
  // close() closes the datasets and groups still open in the file (every rank holds the same ones), instead of
  // failing with "objects still open" under the MPI-IO driver's default (semi) degree when a writer's dataset
  // handle outlives its close() call. Handle::reset then sees an invalid id and does nothing.
  H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) throw OutputError(path, "cannot create HDF5 file (" + last_error() + "); is the directory writable?");
  return f;
}
}  // namespace

File File::create(const std::string& path, MPI_Comm comm) {
  quiet_hdf5();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL);
  // All ranks make identical metadata calls; let HDF5 do metadata I/O collectively instead of from every rank.
  H5Pset_all_coll_metadata_ops(fapl.id(), true);
  H5Pset_coll_metadata_write(fapl.id(), true);
  File file;
  file.h_ = Handle(create_file(path, fapl.id()));
  file.file_ = path;
  file.path_ = "/";
  file.comm_ = comm;
  file.deferred_ = std::make_shared<DeferredStrings>();
  return file;
}

File File::create_single_writer(const std::string& path) {
  quiet_hdf5();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  const hid_t driver = located_driver::id();
  if (driver < 0 || H5Pset_driver(fapl.id(), driver, nullptr) < 0)
    throw OutputError(path, "cannot set up HDF5's file driver (" + last_error() + ")");
  File file;
  file.h_ = Handle(create_file(path, fapl.id()));
  file.file_ = path;
  file.path_ = "/";
  return file;
}

File File::open_read(const std::string& path, MPI_Comm comm) {
  quiet_hdf5();
  Handle fapl(H5Pcreate(H5P_FILE_ACCESS));
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl.id(), comm, MPI_INFO_NULL);
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.id());
  if (f < 0) throw InputError(path, "cannot open as HDF5 (" + last_error() + ")");
  File file;
  file.h_ = Handle(f);
  file.file_ = path;
  file.path_ = "/";
  return file;
}

File File::open_update(const std::string& path) {
  quiet_hdf5();
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) throw OutputError(path, "cannot open for update as HDF5 (" + last_error() + ")");
  File file;
  file.h_ = Handle(f);
  file.file_ = path;
  file.path_ = "/";
  return file;
}

void File::flush() const { check(H5Fflush(id(), H5F_SCOPE_GLOBAL), file_, "cannot flush", 0); }

std::mutex& library_mutex() {
  static std::mutex m;
  return m;
}

void File::close() {
  if (!h_.valid()) return;
  // Close explicitly rather than in the destructor, so a failure to write out metadata is reported. A file of
  // create_single_writer is flushed first: its driver turns the first failed write into dropped ones (see
  // located_driver.cpp), so a failure there leaves a close HDF5 can complete, and the errno says what failed.
  const Handle access(H5Fget_access_plist(id()));
  const bool located = access.valid() && H5Pget_driver(access.id()) == located_driver::id();
  if (located) {
    located_driver::take_write_errno();
    H5Fflush(id(), H5F_SCOPE_GLOBAL);
  }
  herr_t status = H5Fclose(h_.release());
  if (const int e = located ? located_driver::take_write_errno() : 0; e != 0)
    throw OutputError(file_, std::string("failed to finish writing: ") + std::strerror(e));
  if (status < 0) throw OutputError(file_, "failed to finish writing (" + last_error() + ")");
  if (!deferred_ || deferred_->writes.empty() || comm_ == MPI_COMM_NULL) return;
  // Every rank created the same string datasets, so every rank is here. Rank 0 writes their values into the closed
  // file, serially; if that fails every rank throws its message.
  auto writes = std::move(deferred_->writes);
  deferred_->writes.clear();
  parallel::root_first(comm_, [&] {
    File f = open_update(file_);
    for (auto& w : writes) {
      Handle d(H5Dopen2(f.id(), w.path.c_str(), H5P_DEFAULT));
      if (!d.valid()) fail(file_, "cannot reopen " + w.path + " to write its strings");
      write_strings(d.id(), file_, w.path, w.values);
    }
    f.close();
  });
}

// Explicit instantiations of the templates used by s2crop.
#define S2CROP_H5_INSTANTIATE(T)                                                                                    \
  template Dataset Node::create_dataset<T>(const std::string&, const std::vector<hsize_t>&,                       \
                                           const std::vector<hsize_t>&, int, T) const;                            \
  template Dataset Node::create_small_dataset<T>(const std::string&, const std::vector<T>&) const;                 \
  template void Dataset::write<T>(const std::vector<hsize_t>&, const std::vector<hsize_t>&, const T*, bool) const; \
  template void Dataset::read<T>(const std::vector<hsize_t>&, const std::vector<hsize_t>&, T*) const;
S2CROP_H5_INSTANTIATE(std::int16_t)
S2CROP_H5_INSTANTIATE(std::uint8_t)
S2CROP_H5_INSTANTIATE(std::uint16_t)
S2CROP_H5_INSTANTIATE(std::int32_t)
S2CROP_H5_INSTANTIATE(std::uint32_t)
S2CROP_H5_INSTANTIATE(std::int64_t)
S2CROP_H5_INSTANTIATE(float)
S2CROP_H5_INSTANTIATE(double)

}  // namespace s2crop::h5
