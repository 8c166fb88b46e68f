// Parts that hold the output's chunks (ChunkCodec): a block packed as shuffled, deflated chunks and copied into a real
// HDF5 file with write_chunk reads back, through HDF5's own filters, as the block that was computed - full blocks and
// edge blocks (chunks padded with the fill), int16 and uint8 planes, compressed and not; the part round-trips
// through its file; a chunk table that does not describe the part is refused naming it.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "mpi_environment.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"
#include "s2crop/pipeline/part_file.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::pipeline;

namespace {

constexpr PartKind kKind = {'C', 'O', 'D', 'E', 'C', 'T', 'S', 'T'};

// Two int16 planes (fill -32768), then one uint8 plane (fill 0), over a 40 x 24 raster in chunks of 16, in blocks of
// `block` px (16: a chunk per plane; 32: up to 2 x 2 chunks per plane, some reaching past the raster).
void round_trip(int deflate, int block) {
  const std::string dir = testing::TempDir() + "/s2crop_chunk_codec_" + std::to_string(deflate) + "_" +
                          std::to_string(block);
  fs::remove_all(dir);
  fs::create_directories(dir);
  const ChunkCodec codec({{2, 2, -32768.0}, {1, 1, 0.0}}, deflate);
  const int W = 40, H = 24, C = 16;
  const auto blocks = geo::cut_blocks(W, H, block);
  std::mt19937 rng(7);
  std::vector<std::int16_t> want16(2 * static_cast<size_t>(W * H));
  std::vector<std::uint8_t> want8(static_cast<size_t>(W * H));
  {
    h5::File f = h5::File::create(dir + "/out.h5", MPI_COMM_SELF);
    auto refl = f.create_dataset<std::int16_t>("refl", {2, H, W}, {1, C, C}, deflate, std::int16_t{-32768});
    auto count = f.create_dataset<std::uint8_t>("count", {H, W}, {C, C}, deflate, std::uint8_t{0});
    for (size_t b = 0; b < blocks.size(); ++b) {
      const geo::Window& w = blocks[b];
      const size_t n = static_cast<size_t>(w.pixels());
      std::vector<std::uint8_t> payload(codec.payload_bytes(n));
      auto* p16 = reinterpret_cast<std::int16_t*>(payload.data());
      for (size_t i = 0; i < 2 * n; ++i) p16[i] = static_cast<std::int16_t>(rng() % 20000) - 1000;
      for (size_t i = 0; i < n; ++i) payload[4 * n + i] = static_cast<std::uint8_t>(rng() % 7);
      for (int y = 0; y < w.height; ++y)
        for (int x = 0; x < w.width; ++x) {
          const size_t i = static_cast<size_t>(y * w.width + x), at = static_cast<size_t>((w.y0 + y) * W + w.x0 + x);
          want16[at] = p16[i];
          want16[static_cast<size_t>(W * H) + at] = p16[n + i];
          want8[at] = payload[4 * n + i];
        }
      std::vector<std::uint8_t> packed;
      codec.pack(payload.data(), w, C, C, packed);
      const std::string path = dir + "/" + std::to_string(b) + ".part";
      write_part(path, kKind, w, packed);
      const std::vector<std::uint8_t> part = read_part(path, kKind, w, kAnyPayloadSize);
      ASSERT_EQ(part, packed);
      const size_t across = ChunkCodec::chunks_across(w, C), per_plane = across * ChunkCodec::chunks_down(w, C);
      const PackedChunks chunks(codec, part, per_plane, path);
      for (size_t plane = 0; plane < 3; ++plane) {  // unpacking gives the block back
        std::vector<std::uint8_t> back(n * codec.element_bytes(plane));
        chunks.unpack(plane, w, C, C, back.data());
        const size_t at = plane == 2 ? 4 * n : plane * 2 * n;
        ASSERT_TRUE(std::equal(back.begin(), back.end(), payload.begin() + static_cast<long>(at))) << "plane " << plane;
      }
      for (size_t k = 0; k < per_plane; ++k) {
        const hsize_t y0 = static_cast<hsize_t>(w.y0 + C * static_cast<int>(k / across));
        const hsize_t x0 = static_cast<hsize_t>(w.x0 + C * static_cast<int>(k % across));
        refl.write_chunk({0, y0, x0}, chunks.data(0, k), chunks.size(0, k));
        refl.write_chunk({1, y0, x0}, chunks.data(1, k), chunks.size(1, k));
        count.write_chunk({y0, x0}, chunks.data(2, k), chunks.size(2, k));
      }
    }
    f.close();
  }
  h5::File f = h5::File::open_read(dir + "/out.h5", MPI_COMM_NULL);
  std::vector<std::int16_t> got16(want16.size());
  std::vector<std::uint8_t> got8(want8.size());
  f.open_dataset("refl").read<std::int16_t>({0, 0, 0}, {2, H, W}, got16.data());
  f.open_dataset("count").read<std::uint8_t>({0, 0}, {H, W}, got8.data());
  EXPECT_EQ(got16, want16);
  EXPECT_EQ(got8, want8);
}

}  // namespace

TEST(ChunkCodec, PackedChunksCopiedIntoHdf5ReadBackThroughItsFilters) {
  for (int block : {16, 32}) {
    round_trip(1, block);
    round_trip(6, block);
    round_trip(0, block);
  }
}

TEST(ChunkCodec, AChunkTableThatDoesNotDescribeThePartIsRefused) {
  const ChunkCodec codec({{3, 2, 0.0}}, 1);
  const geo::Window w{0, 0, 8, 8};
  std::vector<std::uint8_t> payload(codec.payload_bytes(64), 5), packed;
  codec.pack(payload.data(), w, 8, 8, packed);
  EXPECT_NO_THROW(PackedChunks(codec, packed, 1, "p.part"));
  const ChunkCodec other({{4, 2, 0.0}}, 1);  // another layout (more planes)
  EXPECT_THROW(PackedChunks(other, packed, 1, "p.part"), InputError);
  EXPECT_THROW(PackedChunks(codec, packed, 4, "p.part"), InputError);  // another chunking
  auto truncated = packed;
  truncated.pop_back();
  EXPECT_THROW(PackedChunks(codec, truncated, 1, "p.part"), InputError);
  auto corrupt = packed;
  corrupt[8 * 4 + 2] ^= 0xff;  // inside the first chunk's deflate stream
  const PackedChunks chunks(codec, corrupt, 1, "p.part");
  std::vector<std::int16_t> out(64);
  try {
    chunks.unpack(0, w, 8, 8, out.data());
    ADD_FAILURE() << "a corrupt chunk inflated";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("p.part"), std::string::npos) << e.what();
  }
}
