// CompositeFile reads stored chunks itself (decode_stored_chunk: libdeflate) instead of through HDF5's zlib filter:
// every window - inside one chunk, across chunks, at the raster's edge, over chunks never written (the fill value)
// - equals what HDF5's own read gives, compressed (shuffle + deflate) and not; a window past the raster and a chunk
// that does not inflate are refused, the latter naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "mpi_environment.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"
#include "s2crop/pipeline/composite_file.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {

constexpr int W = 70, H = 45, C = 16, kBands = 2;

// A composite of one tile whose chunks are written except a few (their pixels read as the fill value).
std::string make_composite(const std::string& dir, int deflate) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = dir + "/comp.h5";
  h5::File f = h5::File::create(path, MPI_COMM_SELF);
  f.set_attr("format", std::string(pipeline::kCompositeFormat));
  f.set_attr("format_version", pipeline::kCompositeFormatVersion);
  h5::Node g = f.create_group("tiles").create_group("T");
  g.set_attr("crs_wkt", std::string("LOCAL_CS[\"test\"]"));
  g.set_attr("geotransform", std::vector<double>{0, 10, 0, 0, 0, -10});
  g.set_attr("year", std::int64_t{2022});
  g.set_attr("season_start", std::string("2022-01"));
  g.set_attr("bands", std::vector<std::string>{"B04", "B08"});
  g.set_attr("block_size", std::int64_t{C});
  f.close();
  // The datasets through HDF5's serial driver, whose chunks are allocated when written (files written through
  // MPI-IO allocate every chunk at creation): chunks never written must read as the fill value.
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t group = H5Gopen2(file, "/tiles/T", H5P_DEFAULT);
  auto create = [&](const char* name, hid_t type, std::vector<hsize_t> dims, std::vector<hsize_t> chunk,
                    const void* fill) {
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, static_cast<int>(chunk.size()), chunk.data());
    H5Pset_fill_value(dcpl, type, fill);
    if (deflate > 0) {
      H5Pset_shuffle(dcpl);
      H5Pset_deflate(dcpl, static_cast<unsigned>(deflate));
    }
    hid_t d = H5Dcreate2(group, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
  };
  const std::int16_t no_data = -32768;
  const std::uint8_t zero = 0;
  hid_t refl = create("reflectance", H5T_NATIVE_INT16, {12, kBands, H, W}, {1, 1, C, C}, &no_data);
  hid_t count = create("clear_count", H5T_NATIVE_UINT8, {12, H, W}, {1, C, C}, &zero);
  auto write = [](hid_t d, hid_t type, std::vector<hsize_t> offset, std::vector<hsize_t> extent, const void* data) {
    hid_t file_space = H5Dget_space(d);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, offset.data(), nullptr, extent.data(), nullptr);
    hid_t mem = H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr);
    ASSERT_GE(H5Dwrite(d, type, mem, file_space, H5P_DEFAULT, data), 0);
    H5Sclose(mem);
    H5Sclose(file_space);
  };
  std::mt19937 rng(11);
  for (int y0 = 0; y0 < H; y0 += C)
    for (int x0 = 0; x0 < W; x0 += C) {
      if ((x0 / C + y0 / C) % 5 == 3) continue;  // never written
      const hsize_t h = static_cast<hsize_t>(std::min(C, H - y0)), w = static_cast<hsize_t>(std::min(C, W - x0));
      const hsize_t y = static_cast<hsize_t>(y0), x = static_cast<hsize_t>(x0);
      std::vector<std::int16_t> v(12 * kBands * h * w);
      for (auto& e : v) e = static_cast<std::int16_t>(static_cast<int>(rng() % 12000) - 500);
      write(refl, H5T_NATIVE_INT16, {0, 0, y, x}, {12, kBands, h, w}, v.data());
      std::vector<std::uint8_t> c(12 * h * w);
      for (auto& e : c) e = static_cast<std::uint8_t>(1 + rng() % 9);
      write(count, H5T_NATIVE_UINT8, {0, y, x}, {12, h, w}, c.data());
    }
  H5Dclose(refl);
  H5Dclose(count);
  H5Gclose(group);
  H5Fclose(file);
  return path;
}

void compare_windows(int deflate) {
  const std::string path = make_composite(testing::TempDir() + "/s2crop_composite_reader_" + std::to_string(deflate),
                                          deflate);
  const pipeline::CompositeFile comp(path);
  const pipeline::CompositeTile& tile = comp.tile("T");
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  h5::Node g = f.open_group("tiles").open_group("T");
  int fills = 0;
  for (const geo::Window w : {geo::Window{0, 0, W, H}, geo::Window{3, 5, 10, 7}, geo::Window{15, 14, 20, 19},
                              geo::Window{60, 40, 10, 5}, geo::Window{16, 16, 16, 16}, geo::Window{47, 0, 23, 45}}) {
    const auto refl = comp.read_reflectance(tile, w);
    std::vector<std::int16_t> want(refl.size());
    g.open_dataset("reflectance")
        .read<std::int16_t>({0, 0, static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)},
                            {12, kBands, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)}, want.data());
    EXPECT_EQ(refl, want) << "reflectance, window at " << w.x0 << "," << w.y0 << " " << w.width << "x" << w.height;
    const auto count = comp.read_clear_count(tile, w);
    std::vector<std::uint8_t> want_count(count.size());
    g.open_dataset("clear_count")
        .read<std::uint8_t>({0, static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)},
                            {12, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)}, want_count.data());
    EXPECT_EQ(count, want_count) << "clear_count, window at " << w.x0 << "," << w.y0;
    fills += static_cast<int>(std::count(refl.begin(), refl.end(), std::int16_t{-32768})) +
             static_cast<int>(std::count(count.begin(), count.end(), std::uint8_t{0}));
  }
  EXPECT_GT(fills, 0) << "no window crossed a chunk never written";  // written values are never the fill
  // A window past the raster is refused, not filled.
  EXPECT_THROW(comp.read_reflectance(tile, geo::Window{60, 40, 20, 10}), Error);
  EXPECT_THROW(comp.read_clear_count(tile, geo::Window{0, 44, 5, 2}), Error);
}

}  // namespace

TEST(CompositeReader, ReadsEveryWindowAsHdf5Does) {
  compare_windows(1);  // shuffle + deflate: decoded by s2crop
  compare_windows(0);  // no filter: the stored bytes as they are
}

TEST(CompositeReader, ADamagedChunkIsRefusedNamingTheFile) {
  std::vector<std::uint8_t> garbage(100, 0xAB), out(512);
  try {
    pipeline::decode_stored_chunk(garbage.data(), garbage.size(), 2, true, true, out, "/data/comp.h5");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/data/comp.h5"), std::string::npos) << e.what();
  }
}
