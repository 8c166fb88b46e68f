// The HDF5 RAII layer writes what common readers open: empty lists never as empty array attributes (GDAL's HDF5
// driver crashes on an empty string array) yet read back as empty lists; string datasets as variable-length UTF-8
// (libnetcdf crashes on fixed-length ones), with their values written at close in a file open through MPI-IO.
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>

#include <unistd.h>

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
