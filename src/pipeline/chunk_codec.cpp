#include "s2crop/pipeline/chunk_codec.hpp"

#include <zlib.h>
#ifdef S2CROP_WITH_LIBDEFLATE
#include <libdeflate.h>
#endif

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>

#include "s2crop/common/errors.hpp"

namespace s2crop::pipeline {

namespace {

// HDF5's shuffle filter for 2-byte elements, applied while the block's rows are copied into a chunk of `elements`
// (chunk_width x chunk_height) elements: the low bytes of every element, then the high bytes. One pass instead of a
// copy and a shuffle; the restrict pointers let it vectorise (2 s of 10 s packing a 2196 px tile before).
__attribute__((target_clones("avx2", "default")))
void shuffle_rows16(const std::uint8_t* __restrict src, size_t src_stride, size_t width, size_t height,
                    size_t chunk_width, size_t elements, std::uint8_t* __restrict out) {
  for (size_t y = 0; y < height; ++y) {
    const std::uint8_t* __restrict row = src + y * src_stride;
    std::uint8_t* __restrict lo = out + y * chunk_width;
    std::uint8_t* __restrict hi = out + elements + y * chunk_width;
    for (size_t x = 0; x < width; ++x) {
      lo[x] = row[2 * x];
      hi[x] = row[2 * x + 1];
    }
  }
}

// 2-byte elements (reflectance): the two byte planes interleaved, in a loop the compiler vectorises. Every reader of
// a composite (classify, extract, segment and ndvi predict) decodes each chunk it touches: 11 % of segment predict.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
void unshuffle16(const std::uint8_t* __restrict in, size_t elements, std::uint8_t* __restrict out) {
  const std::uint8_t* __restrict lo = in;
  const std::uint8_t* __restrict hi = in + elements;
  for (size_t i = 0; i < elements; ++i) {
    out[2 * i] = lo[i];
    out[2 * i + 1] = hi[i];
  }
}

// HDF5's shuffle filter, undone: the low bytes of every element come first, then the high bytes.
void unshuffle(const std::uint8_t* in, size_t elements, size_t element_bytes, std::uint8_t* out) {
  if (element_bytes == 2) return unshuffle16(in, elements, out);
  for (size_t i = 0; i < elements; ++i)
    for (size_t b = 0; b < element_bytes; ++b) out[element_bytes * i + b] = in[b * elements + i];
}

// zlib streams (what HDF5's deflate filter reads): through libdeflate where the build has it (2-3x faster than zlib
// at the same level, same format), else zlib.
void deflate_append(const std::uint8_t* in, size_t n, int level, std::vector<std::uint8_t>& out) {
#ifdef S2CROP_WITH_LIBDEFLATE
  thread_local std::unique_ptr<libdeflate_compressor, void (*)(libdeflate_compressor*)> c(nullptr,
                                                                                         libdeflate_free_compressor);
  thread_local int c_level = -1;
  if (!c || c_level != level) {
    c.reset(libdeflate_alloc_compressor(level));
    c_level = level;
    if (!c) throw Error("libdeflate: cannot allocate a compressor");
  }
  // Compressed into a scratch buffer that only grows, then appended: resizing `out` by the bound would zero-fill
  // (and fault in) more memory than the stream takes.
  thread_local std::vector<std::uint8_t> scratch;
  const size_t bound = libdeflate_zlib_compress_bound(c.get(), n);
  if (scratch.size() < bound) scratch.resize(bound);
  const size_t got = libdeflate_zlib_compress(c.get(), in, n, scratch.data(), bound);
  if (got == 0) throw Error("deflate failed while packing a block");
  out.insert(out.end(), scratch.data(), scratch.data() + got);
#else
  const size_t at = out.size();
  uLongf bound = compressBound(static_cast<uLong>(n));
  out.resize(at + bound);
  if (compress2(out.data() + at, &bound, in, static_cast<uLong>(n), level) != Z_OK)
    throw Error("deflate failed while packing a block");
  out.resize(at + bound);
#endif
}

bool inflate_exact(const std::uint8_t* in, size_t n, std::uint8_t* out, size_t out_n) {
#ifdef S2CROP_WITH_LIBDEFLATE
  thread_local std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> d(
      libdeflate_alloc_decompressor(), libdeflate_free_decompressor);
  return d && libdeflate_zlib_decompress(d.get(), in, n, out, out_n, nullptr) == LIBDEFLATE_SUCCESS;
#else
  uLongf got = static_cast<uLongf>(out_n);
  return uncompress(out, &got, in, static_cast<uLong>(n)) == Z_OK && got == out_n;
#endif
}


}  // namespace

void decode_stored_chunk(const std::uint8_t* in, size_t bytes, size_t element_bytes, bool deflated, bool shuffled,
                         std::vector<std::uint8_t>& out, const std::string& where) {
  const bool unshuffle_after = shuffled && element_bytes > 1;
  thread_local std::vector<std::uint8_t> raw;
  const std::uint8_t* data = in;
  if (deflated) {
    std::uint8_t* target = out.data();  // inflated straight into `out` unless the bytes still need unshuffling
    if (unshuffle_after) {
      raw.resize(out.size());
      target = raw.data();
    }
    if (!inflate_exact(in, bytes, target, out.size()))
      throw InputError(where, "a chunk does not inflate to its size (" + std::to_string(out.size()) + " bytes)");
    if (!unshuffle_after) return;
    data = raw.data();
  } else if (bytes != out.size()) {
    throw InputError(where, "a chunk holds " + std::to_string(bytes) + " bytes, " + std::to_string(out.size()) +
                                " expected");
  }
  if (unshuffle_after)
    unshuffle(data, out.size() / element_bytes, element_bytes, out.data());
  else
    std::memcpy(out.data(), data, out.size());
}

ChunkCodec::ChunkCodec(std::vector<PlaneGroup> groups, int deflate) : groups_(std::move(groups)), deflate_(deflate) {
  for (const PlaneGroup& g : groups_) {
    if (g.element_bytes != 1 && g.element_bytes != 2) throw Error("ChunkCodec: planes of 1 or 2 bytes only");
    element_bytes_.insert(element_bytes_.end(), g.planes, g.element_bytes);
    fill_.insert(fill_.end(), g.planes, g.fill);
  }
}

size_t ChunkCodec::payload_bytes(size_t pixels) const {
  size_t n = 0;
  for (size_t eb : element_bytes_) n += eb * pixels;
  return n;
}

void ChunkCodec::pack(const std::uint8_t* payload, const geo::Window& w, int chunk_width, int chunk_height,
                      std::vector<std::uint8_t>& packed) const {
  const size_t n = static_cast<size_t>(w.pixels());
  const size_t cw = static_cast<size_t>(chunk_width), ch = static_cast<size_t>(chunk_height);
  const size_t across = chunks_across(w, chunk_width), down = chunks_down(w, chunk_height);
  const size_t count = planes() * across * down;
  const size_t header = 8 * (1 + count);
  packed.resize(header);
  std::vector<std::uint64_t> table(1 + count);
  table[0] = count;
  std::vector<std::uint8_t> chunk;
  const std::uint8_t* plane = payload;
  size_t k = 0;
  for (size_t p = 0; p < planes(); ++p, plane += n * element_bytes_[p - 1]) {
    const size_t eb = element_bytes_[p];
    for (size_t cy = 0; cy < down; ++cy)
      for (size_t cx = 0; cx < across; ++cx, ++k) {
        // The chunk as HDF5 holds it: full chunk size, the fill beyond the block's (the raster's) edge.
        const size_t x0 = cx * cw, y0 = cy * ch;
        const size_t width = std::min(cw, static_cast<size_t>(w.width) - x0);
        const size_t height = std::min(ch, static_cast<size_t>(w.height) - y0);
        const size_t elements = cw * ch;
        const bool partial = width != cw || height != ch;
        const std::uint8_t* src = plane + (y0 * static_cast<size_t>(w.width) + x0) * eb;
        const size_t stride = static_cast<size_t>(w.width) * eb;
        chunk.resize(elements * eb);
        if (deflate_ > 0 && eb == 2) {  // through HDF5's shuffle filter, as the dataset's filters say
          if (partial) {  // the fill, shuffled: its low byte everywhere, then its high byte
            const auto f = static_cast<std::uint16_t>(static_cast<std::int16_t>(fill_[p]));
            std::memset(chunk.data(), f & 0xff, elements);
            std::memset(chunk.data() + elements, f >> 8, elements);
          }
          shuffle_rows16(src, stride, width, height, cw, elements, chunk.data());
        } else {
          if (partial) {
            if (eb == 1) {
              std::memset(chunk.data(), static_cast<int>(fill_[p]), chunk.size());
            } else {
              const std::int16_t f = static_cast<std::int16_t>(fill_[p]);
              for (size_t i = 0; i < elements; ++i) std::memcpy(chunk.data() + 2 * i, &f, 2);
            }
          }
          for (size_t y = 0; y < height; ++y) std::memcpy(chunk.data() + y * cw * eb, src + y * stride, width * eb);
        }
        const std::uint8_t* raw = chunk.data();
        const size_t at = packed.size();
        if (deflate_ == 0)
          packed.insert(packed.end(), raw, raw + chunk.size());
        else
          deflate_append(raw, chunk.size(), deflate_, packed);
        table[1 + k] = packed.size() - at;
      }
  }
  std::memcpy(packed.data(), table.data(), header);
}

PackedChunks::PackedChunks(const ChunkCodec& codec, const std::vector<std::uint8_t>& packed, size_t chunks_per_plane,
                           const std::string& path)
    : codec_(codec), base_(packed.data()), per_plane_(chunks_per_plane), path_(path) {
  const size_t chunks = codec.planes() * chunks_per_plane;
  std::uint64_t count = 0;
  if (packed.size() >= 8) std::memcpy(&count, packed.data(), 8);
  if (count != chunks || packed.size() < 8 * (1 + chunks))
    throw InputError(path, "holds " + std::to_string(count) + " chunks, " + std::to_string(chunks) +
                               " expected; delete it and rerun to recompute it");
  size_t at = 8 * (1 + chunks);
  for (size_t k = 0; k < chunks; ++k) {
    std::uint64_t size = 0;
    std::memcpy(&size, packed.data() + 8 * (1 + k), 8);
    if (size > packed.size() - at)
      throw InputError(path, "chunk table runs past the part's end; delete it and rerun to recompute it");
    offsets_.push_back(at);
    sizes_.push_back(size);
    at += size;
  }
  if (at != packed.size()) throw InputError(path, "chunk table does not cover the part; delete it and rerun");
}

void PackedChunks::unpack(size_t plane, const geo::Window& w, int chunk_width, int chunk_height, void* out) const {
  const size_t eb = codec_.element_bytes(plane);
  const size_t cw = static_cast<size_t>(chunk_width), ch = static_cast<size_t>(chunk_height);
  const size_t across = ChunkCodec::chunks_across(w, chunk_width), down = ChunkCodec::chunks_down(w, chunk_height);
  std::vector<std::uint8_t> chunk(cw * ch * eb), raw(chunk.size());
  auto* o = static_cast<std::uint8_t*>(out);
  for (size_t cy = 0; cy < down; ++cy)
    for (size_t cx = 0; cx < across; ++cx) {
      const size_t k = cy * across + cx;
      if (codec_.deflate() == 0) {
        if (size(plane, k) != chunk.size())
          throw InputError(path_, "uncompressed chunk of the wrong size; delete it and rerun");
        std::memcpy(chunk.data(), data(plane, k), chunk.size());
      } else {
        if (!inflate_exact(data(plane, k), size(plane, k), raw.data(), raw.size()))
          throw InputError(path_, "a chunk does not inflate to its size; delete it and rerun to recompute it");
        if (eb == 2) {
          unshuffle(raw.data(), cw * ch, eb, chunk.data());
        } else {
          chunk.swap(raw);
        }
      }
      const size_t x0 = cx * cw, y0 = cy * ch;
      const size_t width = std::min(cw, static_cast<size_t>(w.width) - x0);
      const size_t height = std::min(ch, static_cast<size_t>(w.height) - y0);
      for (size_t y = 0; y < height; ++y)
        std::memcpy(o + ((y0 + y) * static_cast<size_t>(w.width) + x0) * eb, chunk.data() + y * cw * eb, width * eb);
    }
}

}  // namespace s2crop::pipeline
