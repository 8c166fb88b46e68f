// A plain POSIX file driver for HDF5 (what HDF5's sec2 driver does: pread/pwrite on one file descriptor) that also
// notices where the library writes the raw chunk it was handed. HDF5 1.10 can only find a chunk's address by walking
// every chunk of the dataset (H5Dget_chunk_info_by_coord: 1.3 ms per chunk at 58 000 chunks, quadratic over a full
// tile), while the writer of a chunk needs it at once, for the block index a rerun checks the chunk against.
// Private to the h5 module: File::create_single_writer and Dataset::write_chunk use it.
#pragma once

#include <hdf5.h>

#include <cstddef>
#include <cstdint>

namespace s2crop::h5::located_driver {

// The driver's id, registered with HDF5 on first use (callers hold library_mutex, or are single-threaded).
hid_t id();

// Around one H5Dwrite_chunk on this thread: expect() before it, found() after it. found() is true when the driver saw
// exactly one raw-data write of these bytes (the same buffer, or the same content) and gives its address.
void expect(const void* data, std::size_t bytes);
bool found(std::uint64_t& address);

// The errno of this thread's last failed write through the driver (0: none since the last call), for messages that
// say why (ENOSPC: the disk is full) where HDF5's own say only that a write failed.
int take_write_errno();

}  // namespace s2crop::h5::located_driver
