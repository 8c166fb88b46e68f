// The HDF5 RAII layer writes what common readers open: empty lists never as empty array attributes (GDAL's HDF5
// driver crashes on an empty string array) yet read back as empty lists; string datasets as variable-length UTF-8
// (libnetcdf crashes on fixed-length ones), with their values written at close in a file open through MPI-IO.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <memory>

#include <unistd.h>

#include "s2crop/common/errors.hpp"
#include "s2crop/h5/h5.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / ("s2crop_h5_" + std::to_string(getpid()) + "_" + name)).string();
}

// The dataspace class of attribute `name` of the object at `path`.
H5S_class_t attr_space(const h5::Node& file, const std::string& path, const std::string& name) {
  h5::Handle a(H5Aopen_by_name(file.id(), path.c_str(), name.c_str(), H5P_DEFAULT, H5P_DEFAULT));
  h5::Handle space(H5Aget_space(a.id()));
  return H5Sget_simple_extent_type(space.id());
}

}  // namespace

TEST(H5, EmptyListsAreNoEmptyArraysAndReadBackEmpty) {
  const std::string path = temp_path("attrs.h5");
  {
    h5::File f = h5::File::create(path, MPI_COMM_SELF);
    f.set_attr("none", std::vector<std::string>{});
    f.set_attr("one_empty", std::vector<std::string>{""});
    f.set_attr("two", std::vector<std::string>{"a", "bé"});
    f.set_attr("no_numbers", std::vector<double>{});
    f.set_attr("numbers", std::vector<double>{1.5, -2});
    h5::Node g = f.create_group("g");
    g.set_attr("none", std::vector<std::string>{});
    f.close();
  }
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  EXPECT_EQ(attr_space(f, ".", "none"), H5S_SCALAR);
  EXPECT_EQ(attr_space(f, ".", "no_numbers"), H5S_NULL);
  EXPECT_EQ(attr_space(f, "g", "none"), H5S_SCALAR);
  EXPECT_TRUE(f.attr_strings("none").empty());
  EXPECT_EQ(f.attr_string("none"), "");
  EXPECT_EQ(f.attr_strings("one_empty"), std::vector<std::string>{""});
  EXPECT_EQ(f.attr_strings("two"), (std::vector<std::string>{"a", "bé"}));
  EXPECT_TRUE(f.attr_doubles("no_numbers").empty());
  EXPECT_EQ(f.attr_doubles("numbers"), (std::vector<double>{1.5, -2}));
  EXPECT_TRUE(f.open_group("g").attr_strings("none").empty());
  f.close();
  fs::remove(path);
}

TEST(H5, StringDatasetsAreVariableLengthUtf8WrittenAtClose) {
  const std::string path = temp_path("strings.h5");
  const std::vector<std::string> months = {"2021-01", "2021-02", "février"};
  {
    h5::File f = h5::File::create(path, MPI_COMM_SELF);  // MPI-IO: the values wait for close()
    h5::Node g = f.create_group("tiles").create_group("33UVP");
    auto month = g.create_string_dataset("month", months);
    month.make_scale("month");
    auto data = g.create_dataset<float>("data", {3, 2}, {3, 2}, 0, 0.f);
    data.attach_scale(month, 0);
    g.create_string_dataset("none", {});
    f.close();
  }
  {  // a serial file writes at once
    h5::File f = h5::File::open_update(path);
    f.create_string_dataset("later", {"x"});
    f.close();
  }
  h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
  auto read = [&](const std::string& name) {
    h5::Dataset d = f.open_dataset(name);
    h5::Handle type(H5Dget_type(d.id()));
    EXPECT_GT(H5Tis_variable_str(type.id()), 0) << name;
    EXPECT_EQ(H5Tget_cset(type.id()), H5T_CSET_UTF8) << name;
    const size_t n = d.dims().at(0);
    std::vector<char*> ptrs(n, nullptr);
    std::vector<std::string> out;
    if (n == 0) return out;
    h5::Handle space(H5Dget_space(d.id()));
    EXPECT_GE(H5Dread(d.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), 0);
    for (char* p : ptrs) out.emplace_back(p ? p : "<null>");
    H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, ptrs.data());
    return out;
  };
  EXPECT_EQ(read("tiles/33UVP/month"), months);
  EXPECT_TRUE(read("tiles/33UVP/none").empty());
  EXPECT_EQ(read("later"), std::vector<std::string>{"x"});
  f.close();
  fs::remove(path);
}

// A file of one writing process: write_chunk returns each chunk's address as its driver saw the bytes go, equal to
// what HDF5's chunk index says (the slow lookup it replaces), for stored chunks of every size (tiny ones, which HDF5
// may place in its small-data block, among them) with metadata written in between; the bytes are at that address,
// and HDF5 reads them back. The MPI-IO file of File::create gets the same answer from the lookup.
TEST(H5, WriteChunkReturnsWhereTheChunkIsInTheFile) {
  for (const bool single_writer : {true, false}) {
    const std::string path = temp_path(single_writer ? "located.h5" : "mpio.h5");
    std::vector<std::vector<std::uint8_t>> written;
    std::vector<std::uint64_t> addresses;
    const hsize_t grid = single_writer ? 24 : 6, edge = 4096;
    auto origin = [&](size_t k) { return std::vector<hsize_t>{k / grid, (k % grid) * edge}; };
    const std::uint64_t lookups_before = h5::slow_chunk_lookups();
    {
      h5::File f = single_writer ? h5::File::create_single_writer(path) : h5::File::create(path, MPI_COMM_SELF);
      h5::Dataset d = f.create_dataset<std::uint8_t>("d", {grid, grid * edge}, {1, edge}, 1, std::uint8_t{0});
      std::uint32_t seed = 7;
      for (size_t k = 0; k < grid * grid; ++k) {
        seed = seed * 1664525u + 1013904223u;
        const size_t bytes = k % 3 == 0 ? 1 + seed % 40 : 1 + seed % 9000;  // as deflate leaves them: any size
        std::vector<std::uint8_t> chunk(bytes);
        for (auto& b : chunk) b = static_cast<std::uint8_t>((seed = seed * 1664525u + 1013904223u) >> 24);
        addresses.push_back(d.write_chunk(origin(k), chunk.data(), chunk.size()));
        written.push_back(std::move(chunk));
        if (k % 50 == 0) f.create_group("g" + std::to_string(k)).set_attr("k", static_cast<std::int64_t>(k));
      }
      // The single writer's driver saw every chunk go: none needed the slow lookup.
      EXPECT_EQ(h5::slow_chunk_lookups() - lookups_before, single_writer ? 0u : written.size());
      for (size_t k = 0; k < written.size(); ++k) {
        const auto where = d.chunk_location(origin(k));
        ASSERT_TRUE(where.stored) << k;
        EXPECT_EQ(where.address, addresses[k]) << "chunk " << k;
        EXPECT_EQ(where.bytes, written[k].size()) << "chunk " << k;
      }
      f.close();
    }
    FILE* raw = std::fopen(path.c_str(), "rb");
    ASSERT_NE(raw, nullptr);
    for (size_t k = 0; k < written.size(); ++k) {
      std::vector<std::uint8_t> back(written[k].size());
      ASSERT_EQ(std::fseek(raw, static_cast<long>(addresses[k]), SEEK_SET), 0);
      ASSERT_EQ(std::fread(back.data(), 1, back.size(), raw), back.size());
      EXPECT_EQ(back, written[k]) << "chunk " << k;
    }
    std::fclose(raw);
    h5::File f = h5::File::open_read(path, MPI_COMM_NULL);
    h5::Dataset d = f.open_dataset("d");
    for (size_t k = 0; k < written.size(); ++k) {
      std::vector<std::uint8_t> back;
      ASSERT_TRUE(d.read_chunk(origin(k), back)) << k;
      EXPECT_EQ(back, written[k]) << "chunk " << k;
    }
    EXPECT_EQ(f.open_group("g0").attr_int("k"), 0);
    std::remove(path.c_str());
  }
}

// A chunk that cannot be written says why, naming the file: the disk is full (/dev/full fails every write with
// ENOSPC), not only that HDF5 could not write. Run alone (as ctest does), the process must also end cleanly.
TEST(H5, AChunkThatCannotBeWrittenSaysWhy) {
  std::unique_ptr<h5::File> f;
  try {
    f = std::make_unique<h5::File>(h5::File::create_single_writer("/dev/full"));
  } catch (const OutputError&) {
    GTEST_SKIP() << "HDF5 cannot even start a file on /dev/full here";
  }
  h5::Dataset d = f->create_dataset<std::uint8_t>("d", {4, 4096}, {1, 4096}, 1, std::uint8_t{0});
  const std::vector<std::uint8_t> chunk(3000, 7);
  try {
    d.write_chunk({0, 0}, chunk.data(), chunk.size());
    FAIL() << "a chunk written to /dev/full was taken as written";
  } catch (const OutputError& e) {
    EXPECT_EQ(e.path(), "/dev/full");
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
  // Closing writes metadata to the same full disk: refused as well, and HDF5 is left able to close it (it used to
  // crash when the library terminated after a failed close).
  try {
    f->close();
    FAIL() << "a file on a full disk closed as if written";
  } catch (const OutputError& e) {
    EXPECT_NE(std::string(e.what()).find("No space left on device"), std::string::npos) << e.what();
  }
}
