#include "located_driver.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace s2crop::h5::located_driver {

namespace {

// HDF5 hands the driver's callbacks this struct's first member and frees nothing of it: close() does.
struct LocatedFile {
  H5FD_t pub;
  int fd = -1;
  haddr_t eoa = 0, eof = 0;
  dev_t device = 0;
  ino_t inode = 0;
  // The errno of the file's first failed write. That failure goes back to HDF5 (and to the caller through
  // take_write_errno); later writes to the file are dropped and reported the same way. HDF5 1.10 cannot close a file
  // whose writes keep failing (its close fails half-way and the library crashes when it terminates), and a file
  // that failed is one the stage refuses anyway: never moved into place, its chunks checked before any reuse.
  int failed = 0;
};

LocatedFile* as_file(H5FD_t* f) { return reinterpret_cast<LocatedFile*>(f); }
const LocatedFile* as_file(const H5FD_t* f) { return reinterpret_cast<const LocatedFile*>(f); }

// The largest address an off_t reaches, as in HDF5's sec2 driver.
constexpr haddr_t kMaxAddress = (haddr_t{1} << (8 * sizeof(off_t) - 1)) - 1;

bool out_of_range(haddr_t addr, size_t size) {
  return addr == HADDR_UNDEF || addr > kMaxAddress || size > kMaxAddress || addr + size > kMaxAddress;
}

struct Expected {
  const void* data = nullptr;
  size_t bytes = 0;
  bool active = false;
  int matches = 0;
  haddr_t address = HADDR_UNDEF;
};
thread_local Expected expected;
thread_local int write_errno = 0;

H5FD_t* open_file(const char* name, unsigned flags, hid_t /*fapl*/, haddr_t maxaddr) {
  if (!name || !*name || maxaddr == 0 || maxaddr == HADDR_UNDEF || maxaddr > kMaxAddress) return nullptr;
  int mode = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
  if (flags & H5F_ACC_TRUNC) mode |= O_TRUNC;
  if (flags & H5F_ACC_CREAT) mode |= O_CREAT;
  if (flags & H5F_ACC_EXCL) mode |= O_EXCL;
  const int fd = ::open(name, mode | O_CLOEXEC, 0666);
  if (fd < 0) return nullptr;
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return nullptr;
  }
  auto* f = new (std::nothrow) LocatedFile();
  if (!f) {
    ::close(fd);
    return nullptr;
  }
  f->fd = fd;
  f->eof = static_cast<haddr_t>(st.st_size);
  f->device = st.st_dev;
  f->inode = st.st_ino;
  return &f->pub;
}

herr_t close_file(H5FD_t* file) {
  LocatedFile* f = as_file(file);
  const int status = ::close(f->fd);
  delete f;
  return status == 0 ? 0 : -1;
}

int compare(const H5FD_t* a, const H5FD_t* b) {
  const LocatedFile *x = as_file(a), *y = as_file(b);
  if (x->device != y->device) return x->device < y->device ? -1 : 1;
  if (x->inode != y->inode) return x->inode < y->inode ? -1 : 1;
  return 0;
}

herr_t query(const H5FD_t*, unsigned long* flags) {
  // What sec2 declares: HDF5 aggregates metadata and small raw data into larger writes and sieves reads.
  if (flags)
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA | H5FD_FEAT_POSIX_COMPAT_HANDLE | H5FD_FEAT_DEFAULT_VFD_COMPATIBLE;
  return 0;
}

haddr_t get_eoa(const H5FD_t* file, H5FD_mem_t) { return as_file(file)->eoa; }

herr_t set_eoa(H5FD_t* file, H5FD_mem_t, haddr_t addr) {
  if (addr == HADDR_UNDEF || addr > kMaxAddress) return -1;
  as_file(file)->eoa = addr;
  return 0;
}

haddr_t get_eof(const H5FD_t* file, H5FD_mem_t) { return as_file(file)->eof; }

herr_t get_handle(H5FD_t* file, hid_t, void** handle) {
  if (!handle) return -1;
  *handle = &as_file(file)->fd;
  return 0;
}

herr_t read_at(H5FD_t* file, H5FD_mem_t, hid_t, haddr_t addr, size_t size, void* buffer) {
  const LocatedFile* f = as_file(file);
  if (out_of_range(addr, size)) return -1;
  auto* out = static_cast<unsigned char*>(buffer);
  while (size > 0) {
    const ssize_t got = ::pread(f->fd, out, size, static_cast<off_t>(addr));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -1;
    if (got == 0) {  // past the end of the file: zeros, as sec2 reads them
      std::memset(out, 0, size);
      break;
    }
    out += got;
    addr += static_cast<haddr_t>(got);
    size -= static_cast<size_t>(got);
  }
  return 0;
}

herr_t write_at(H5FD_t* file, H5FD_mem_t type, hid_t, haddr_t addr, size_t size, const void* buffer) {
  LocatedFile* f = as_file(file);
  if (out_of_range(addr, size)) return -1;
  if (f->failed) {
    write_errno = f->failed;
    return 0;
  }
  if (expected.active && type == H5FD_MEM_DRAW && size == expected.bytes &&
      (buffer == expected.data || std::memcmp(buffer, expected.data, size) == 0)) {
    ++expected.matches;
    expected.address = addr;
  }
  const auto* in = static_cast<const unsigned char*>(buffer);
  const haddr_t end = addr + size;
  while (size > 0) {
    const ssize_t put = ::pwrite(f->fd, in, size, static_cast<off_t>(addr));
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) {
      f->failed = write_errno = put < 0 ? errno : ENOSPC;  // HDF5 reports only that the write failed
      return -1;
    }
    in += put;
    addr += static_cast<haddr_t>(put);
    size -= static_cast<size_t>(put);
  }
  if (end > f->eof) f->eof = end;
  return 0;
}

herr_t truncate_to_eoa(H5FD_t* file, hid_t, hbool_t) {
  LocatedFile* f = as_file(file);
  if (f->failed) write_errno = f->failed;
  if (f->eoa == f->eof || f->failed) return 0;
  if (::ftruncate(f->fd, static_cast<off_t>(f->eoa)) != 0) {
    f->failed = write_errno = errno;  // at close: reported by File::close, and HDF5's close still completes
    return 0;
  }
  f->eof = f->eoa;
  return 0;
}

H5FD_class_t make_class() {
  H5FD_class_t c;
  std::memset(&c, 0, sizeof c);
  c.name = "s2crop_located";
  c.maxaddr = kMaxAddress;
  c.fc_degree = H5F_CLOSE_WEAK;
  c.open = open_file;
  c.close = close_file;
  c.cmp = compare;
  c.query = query;
  c.get_eoa = get_eoa;
  c.set_eoa = set_eoa;
  c.get_eof = get_eof;
  c.get_handle = get_handle;
  c.read = read_at;
  c.write = write_at;
  c.truncate = truncate_to_eoa;
  const H5FD_mem_t map[H5FD_MEM_NTYPES] = H5FD_FLMAP_DICHOTOMY;
  std::memcpy(c.fl_map, map, sizeof map);
  return c;
}

}  // namespace

hid_t id() {
  static const H5FD_class_t cls = make_class();
  static hid_t registered = -1;
  if (registered < 0 || H5Iis_valid(registered) <= 0) registered = H5FDregister(&cls);
  return registered;
}

void expect(const void* data, size_t bytes) { expected = Expected{data, bytes, true, 0, HADDR_UNDEF}; }

bool found(std::uint64_t& address) {
  const bool one = expected.active && expected.matches == 1;
  if (one) address = static_cast<std::uint64_t>(expected.address);
  expected = Expected{};
  return one;
}

int take_write_errno() {
  const int e = write_errno;
  write_errno = 0;
  return e;
}

}  // namespace s2crop::h5::located_driver
