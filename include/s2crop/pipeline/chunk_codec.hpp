#pragma once
// A block's part payload as the output file stores it: every plane of the block (a month of a band, a layer of a
// map) is one HDF5 chunk, padded to the chunk's edge with the plane's fill value, byte-shuffled and deflated exactly
// as the output dataset's filters (h5::Node::create_dataset: shuffle + deflate) would. The stage computes the block
// into memory once and packed; rank 0 writes the packed chunks into the file with Dataset::write_chunk
// (chunked_output.hpp) without decompressing and compressing again. Bytes written per run: the output's, once.
//
// A block covers one or more whole chunks of each plane (its origin on the chunk grid; the last row and column of
// chunks may reach past the block, at the raster's edge). Packed layout: uint64 chunk count, uint64 compressed size
// of each chunk, then the chunks one after another: plane by plane, row-major within the block.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/geo/grid.hpp"

namespace s2crop::pipeline {

// `planes` consecutive planes of one pixel type, their fill value written where the chunk reaches past the block.
struct PlaneGroup {
  size_t planes = 1;
  size_t element_bytes = 1;  // 1 or 2
  double fill = 0;
};

class ChunkCodec {
 public:
  ChunkCodec() = default;
  ChunkCodec(std::vector<PlaneGroup> groups, int deflate);
  // No groups: the stage keeps raw payloads (the mosaic, whose output is a GeoTIFF).
  bool active() const { return !groups_.empty(); }
  int deflate() const { return deflate_; }
  size_t planes() const { return element_bytes_.size(); }
  size_t element_bytes(size_t plane) const { return element_bytes_.at(plane); }
  // The uncompressed payload of a block: [plane][pixel], planes in group order.
  size_t payload_bytes(size_t pixels) const;
  // Chunks of one plane of a block over `window`: columns x rows.
  static size_t chunks_across(const geo::Window& window, int chunk_width) {
    return static_cast<size_t>((window.width + chunk_width - 1) / chunk_width);
  }
  static size_t chunks_down(const geo::Window& window, int chunk_height) {
    return static_cast<size_t>((window.height + chunk_height - 1) / chunk_height);
  }
  // payload over `window` (chunks of chunk_width x chunk_height from the window's origin) -> packed.
  void pack(const std::uint8_t* payload, const geo::Window& window, int chunk_width, int chunk_height,
            std::vector<std::uint8_t>& packed) const;

 private:
  std::vector<PlaneGroup> groups_;
  std::vector<size_t> element_bytes_;
  std::vector<double> fill_;
  int deflate_ = 0;
};

// One chunk as HDF5 stores it (deflated where `deflated`, byte-shuffled where `shuffled`) decoded into `out`, which
// holds the chunk's size in bytes: libdeflate where the build has it (2-3x faster than HDF5's zlib filter). Throws
// InputError naming `where` when it does not inflate to exactly that size.
void decode_stored_chunk(const std::uint8_t* in, size_t bytes, size_t element_bytes, bool deflated, bool shuffled,
                         std::vector<std::uint8_t>& out, const std::string& where);

// The chunks of a packed payload (its table checked against the codec and the payload's size).
class PackedChunks {
 public:
  // Throws InputError naming `path` when the table does not describe `packed` (`chunks_per_plane` of each plane).
  PackedChunks(const ChunkCodec& codec, const std::vector<std::uint8_t>& packed, size_t chunks_per_plane,
               const std::string& path);
  // Chunk k (row-major within the block) of plane `plane`.
  const std::uint8_t* data(size_t plane, size_t k = 0) const { return base_ + offsets_.at(plane * per_plane_ + k); }
  size_t size(size_t plane, size_t k = 0) const { return sizes_.at(plane * per_plane_ + k); }
  // Plane `plane` decompressed onto the block's window: [pixel] of the plane's type.
  void unpack(size_t plane, const geo::Window& window, int chunk_width, int chunk_height, void* out) const;

 private:
  const ChunkCodec& codec_;
  const std::uint8_t* base_;
  size_t per_plane_;
  std::vector<size_t> offsets_, sizes_;
  std::string path_;
};

}  // namespace s2crop::pipeline
