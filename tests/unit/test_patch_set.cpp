// Patch sets: the label layers of a patch (crop type, field boundary, cropland) and their independence of where the
// patch is cut; the writer and the torch-free reader (round trip of a scattered write, slices, clear errors for
// another format, a mis-shaped dataset, a range outside the file).
#include <gtest/gtest.h>
#include <mpi.h>

#include <filesystem>
#include <numeric>

#include <unistd.h>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/geo/parcel_labels.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/samples/extract.hpp"
#include "s2crop/samples/patch_set.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {

// A 6 x 8 tile: parcel 1 (class 3) in columns 0-3 of rows 0-3, parcel 2 (class 3) in columns 4-7 of rows 0-3,
// parcel 3 (class 5) in columns 2-5 of row 5; everything else unlabelled.
geo::ParcelLabels small_tile() {
  geo::ParcelLabels l(geo::Window{0, 0, 8, 6});
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) {
      const size_t i = static_cast<size_t>(y * 8 + x);
      if (y < 4) {
        l.label[i] = 3;
        l.parcel[i] = x < 4 ? 1 : 2;
      } else if (y == 5 && x >= 2 && x < 6) {
        l.label[i] = 5;
        l.parcel[i] = 3;
      }
    }
  return l;
}

geo::ParcelLabels sub(const geo::ParcelLabels& all, const geo::Window& w) {
  geo::ParcelLabels out(w);
  for (int y = 0; y < w.height; ++y)
    for (int x = 0; x < w.width; ++x) {
      const size_t o = static_cast<size_t>((w.y0 + y) * all.window.width + w.x0 + x),
                   i = static_cast<size_t>(y * w.width + x);
      out.label[i] = all.label[o];
      out.parcel[i] = all.parcel[o];
    }
  return out;
}

std::string temp_dir() {
  auto d = fs::temp_directory_path() / ("s2crop-patch-test-" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d.string();
}

samples::PatchSetHeader header(int S) {
  samples::PatchSetHeader h;
  h.bands = {"B02", "B04"};
  for (int m = 0; m < 12; ++m) h.months.push_back("2017-" + std::to_string(m + 1));
  h.season_start_month = 1;
  h.tiles = {"33UVP", "32TQT"};
  h.patch_size = S;
  h.label_layers = samples::patch_label_layer_names();
  for (auto& c : crop_classes()) h.class_names.push_back(c.name);
  return h;
}

}  // namespace

TEST(PatchLabels, LayersOfTheWholeTile) {
  const auto l = small_tile();
  std::vector<std::uint8_t> out(3 * 48);
  samples::patch_label_layers(l, l.window, out.data());
  const std::uint8_t* crop = out.data();
  const std::uint8_t* edge = out.data() + 48;
  const std::uint8_t* land = out.data() + 96;
  // Expected boundary: parcels 1/2 meet between columns 3 and 4; row 3 borders the unlabelled row 4; parcel 3 is
  // one row with unlabelled neighbours above and at its ends, and the tile edge below (no boundary from there).
  const char* expected[6] = {"00011000",
                             "00011000",
                             "00011000",
                             "11111111",
                             "00000000",
                             "00111100"};
  for (int y = 0; y < 6; ++y)
    for (int x = 0; x < 8; ++x) {
      const size_t i = static_cast<size_t>(y * 8 + x);
      EXPECT_EQ(crop[i], l.label[i]) << y << "," << x;
      EXPECT_EQ(land[i], l.label[i] != kNoCropLabel ? 1 : 0) << y << "," << x;
      EXPECT_EQ(edge[i], expected[y][x] - '0') << "boundary at " << y << "," << x;
    }
}

TEST(PatchLabels, UnknownParcelIdsFallBackToTheClass) {
  auto l = small_tile();
  for (auto& p : l.parcel) p = geo::kNoParcel;
  std::vector<std::uint8_t> out(3 * 48);
  samples::patch_label_layers(l, l.window, out.data());
  // Parcels 1 and 2 have the same class: without ids they are one field, so no boundary between them.
  EXPECT_EQ(out[48 + 3], 0);
  EXPECT_EQ(out[48 + 4], 0);
  EXPECT_EQ(out[48 + 3 * 8 + 3], 1);  // next to the unlabelled row
}

TEST(PatchLabels, IndependentOfTheCut) {
  const auto l = small_tile();
  std::vector<std::uint8_t> whole(3 * 48);
  samples::patch_label_layers(l, l.window, whole.data());
  // Every 3 x 3 patch, with labels read one pixel around it (clipped to the tile), as extract reads them.
  for (int y0 = 0; y0 + 3 <= 6; ++y0)
    for (int x0 = 0; x0 + 3 <= 8; ++x0) {
      const geo::Window inner{x0, y0, 3, 3};
      const auto grown = geo::grow_window(inner, 1, 8, 6);
      std::vector<std::uint8_t> part(27);
      samples::patch_label_layers(sub(l, grown), inner, part.data());
      for (int layer = 0; layer < 3; ++layer)
        for (int y = 0; y < 3; ++y)
          for (int x = 0; x < 3; ++x)
            EXPECT_EQ(part[static_cast<size_t>(layer * 9 + y * 3 + x)],
                      whole[static_cast<size_t>(layer * 48 + (y0 + y) * 8 + x0 + x)])
                << "patch at " << y0 << "," << x0 << " layer " << layer;
    }
  EXPECT_THROW(samples::patch_label_layers(sub(l, {1, 1, 3, 3}), geo::Window{0, 0, 3, 3}, whole.data()), Error);
}

TEST(PatchSet, WriteAndReadSlices) {
  const std::string dir = temp_dir(), path = dir + "/p.h5";
  const int S = 8;
  auto h = header(S);
  const size_t n = 5;
  std::vector<std::uint16_t> tile{0, 0, 0, 1, 1};
  std::vector<std::int32_t> row{0, 0, 8, 0, 16}, col{0, 8, 0, 0, 8};
  samples::PatchSetWriter w(path, h, samples::Provenance{"patches = 8", {"in.h5"}}, n, 0, tile, row, col,
                            MPI_COMM_SELF);
  // Patch p holds value p everywhere; written in two rounds with gaps (3, 0 and 4, then 1 and 2 in another round).
  auto fill = [&](const std::vector<size_t>& idx, std::vector<std::int16_t>& x, std::vector<std::uint8_t>& lab,
                  std::vector<std::uint8_t>& clr) {
    x.clear();
    lab.clear();
    clr.clear();
    for (size_t p : idx) {
      x.insert(x.end(), h.x_values(), static_cast<std::int16_t>(100 + p));
      lab.insert(lab.end(), h.label_values(), static_cast<std::uint8_t>(p));
      clr.insert(clr.end(), h.clear_values(), static_cast<std::uint8_t>(p % 2));
    }
  };
  std::vector<std::int16_t> x;
  std::vector<std::uint8_t> lab, clr;
  fill({0, 3, 4}, x, lab, clr);
  w.write({0, 3, 4}, x.data(), lab.data(), clr.data());
  fill({1, 2}, x, lab, clr);
  w.write({1, 2}, x.data(), lab.data(), clr.data());
  EXPECT_THROW(w.write({2, 1}, x.data(), lab.data(), clr.data()), Error);  // not ascending
  w.finish();
  ASSERT_TRUE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".partial.h5"));

  const auto rh = samples::read_patch_set_header(path);
  EXPECT_EQ(rh.patches, n);
  EXPECT_EQ(rh.patch_size, S);
  EXPECT_EQ(rh.bands, h.bands);
  EXPECT_EQ(rh.months, h.months);
  EXPECT_EQ(rh.tiles, h.tiles);
  EXPECT_EQ(rh.class_names.size(), 16u);
  EXPECT_EQ(rh.label_layers, samples::patch_label_layer_names());

  const auto s = samples::read_patch_set(path, 1, 4);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s.begin, 1u);
  EXPECT_EQ(s.x.size(), 3 * h.x_values());
  EXPECT_EQ(s.labels.size(), 3 * h.label_values());
  EXPECT_EQ(s.clear.size(), 3 * h.clear_values());
  for (size_t k = 0; k < 3; ++k) {
    const size_t p = k + 1;
    EXPECT_EQ(s.x[k * h.x_values()], 100 + static_cast<int>(p));
    EXPECT_EQ(s.x[(k + 1) * h.x_values() - 1], 100 + static_cast<int>(p));
    EXPECT_EQ(s.labels[k * h.label_values() + 5], p);
    EXPECT_EQ(s.clear[k * h.clear_values() + 7], p % 2);
    EXPECT_EQ(s.tile[k], tile[p]);
    EXPECT_EQ(s.row[k], row[p]);
    EXPECT_EQ(s.col[k], col[p]);
  }
  EXPECT_EQ(samples::read_patch_set(path, 2, 2).size(), 0u);
  EXPECT_THROW(samples::read_patch_set(path, 4, 6), InputError);
  fs::remove_all(dir);
}

TEST(PatchSet, ReaderRejectsOtherFiles) {
  const std::string dir = temp_dir();
  try {
    samples::read_patch_set_header(dir + "/missing.h5");
    FAIL() << "no error for a missing file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos);
  }
  {
    auto f = h5::File::create(dir + "/other.h5", MPI_COMM_SELF);
    f.set_attr("format", std::string("s2crop training set"));
    f.close();
  }
  try {
    samples::read_patch_set_header(dir + "/other.h5");
    FAIL() << "no error for a training set";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("not an s2crop patch set"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("other.h5"), std::string::npos);
  }
  // A patch set whose labels have 2 layers instead of 3.
  {
    auto h = header(8);
    auto f = h5::File::create(dir + "/bad.h5", MPI_COMM_SELF);
    f.set_attr("format", std::string(samples::kPatchSetFormat));
    f.set_attr("format_version", samples::kPatchSetVersion);
    f.set_attr("bands", h.bands);
    f.set_attr("months", h.months);
    f.set_attr("season_start_month", std::int64_t{1});
    f.set_attr("tiles", h.tiles);
    f.set_attr("patch_size", std::int64_t{8});
    f.set_attr("label_layers", h.label_layers);
    f.set_attr("class_names", h.class_names);
    f.create_dataset<std::int16_t>("x", {2, 12, 2, 8, 8}, {1, 12, 2, 8, 8}, 1, -32768);
    f.create_dataset<std::uint8_t>("labels", {2, 2, 8, 8}, {1, 2, 8, 8}, 1, 255);
    f.close();
  }
  try {
    samples::read_patch_set(dir + "/bad.h5", 0, 1);
    FAIL() << "no error for a mis-shaped dataset";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'labels'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bad.h5"), std::string::npos);
  }
  fs::remove_all(dir);
}
