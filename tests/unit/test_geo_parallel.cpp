// Grids and blocks, raster round trips and truncation checks, and the deterministic load balancing.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "s2crop/common/errors.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/parallel/mpi.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

TEST(GeoBlocks, CoverTheGridExactlyOnce) {
  for (auto [w, h, b] : {std::tuple{1098, 1098, 512}, {96, 96, 32}, {24, 42, 16}, {5, 3, 16}}) {
    auto blocks = geo::cut_blocks(w, h, b);
    std::vector<int> hits(static_cast<size_t>(w) * h, 0);
    for (auto& bl : blocks) {
      EXPECT_LE(bl.width, b);
      for (int y = bl.y0; y < bl.y0 + bl.height; ++y)
        for (int x = bl.x0; x < bl.x0 + bl.width; ++x) hits[static_cast<size_t>(y) * w + x]++;
    }
    EXPECT_TRUE(std::all_of(hits.begin(), hits.end(), [](int v) { return v == 1; })) << w << "x" << h;
  }
}

TEST(GeoGrid, AlignmentOfCoarserBands) {
  geo::Grid fine{geo::wkt_from_epsg(32633), {399960, 10, 0, 5400000, 0, -10}, 1098, 1098};
  geo::Grid coarse{geo::wkt_from_epsg(32633), {399960, 20, 0, 5400000, 0, -20}, 549, 549};
  int f = 0;
  EXPECT_TRUE(fine.is_aligned_coarser(coarse, f));
  EXPECT_EQ(f, 2);
  EXPECT_TRUE(fine.is_aligned_coarser(fine, f));
  EXPECT_EQ(f, 1);
  geo::Grid shifted = coarse;
  shifted.geotransform[0] += 10;
  EXPECT_FALSE(fine.is_aligned_coarser(shifted, f));
  geo::Grid other_zone = coarse;
  other_zone.crs_wkt = geo::wkt_from_epsg(32632);
  EXPECT_FALSE(fine.is_aligned_coarser(other_zone, f));
  geo::Grid too_small = coarse;
  too_small.width = 500;
  EXPECT_FALSE(fine.is_aligned_coarser(too_small, f));
  EXPECT_EQ(geo::crs_short_name(fine.crs_wkt), "EPSG:32633");
}

TEST(GeoRaster, RoundTripAndTruncationIsCaught) {
  std::string dir = testing::TempDir() + "/s2crop_geo";
  fs::create_directories(dir);
  geo::Grid g{geo::wkt_from_epsg(32632), {699960, 10, 0, 5300040, 0, -10}, 300, 200};
  std::vector<std::uint16_t> v(300 * 200);
  std::iota(v.begin(), v.end(), 1);
  std::string path = dir + "/band.tif";
  geo::write_raster(path, g, geo::PixelType::UInt16, {{v.data(), "B04"}});
  geo::RasterReader r(path);
  EXPECT_TRUE(r.grid().same_as(g));
  std::vector<std::uint16_t> out(10 * 5);
  r.read(1, {7, 9, 10, 5}, out.data());
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 10; ++x) EXPECT_EQ(out[y * 10 + x], v[(9 + y) * 300 + 7 + x]);
  EXPECT_NO_THROW(r.check_complete());
  EXPECT_THROW(r.read(1, {295, 0, 10, 5}, out.data()), InputError);  // outside
  // Cut the file short: check_complete names it before any pixel is read.
  fs::resize_file(path, fs::file_size(path) * 2 / 3);
  try {
    geo::RasterReader t(path);
    t.check_complete();
    FAIL() << "truncated file accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.path(), path);
  }
  EXPECT_THROW(geo::RasterReader(dir + "/missing.tif"), InputError);
}

TEST(ParallelBalance, DeterministicCompleteAndBalanced) {
  std::vector<double> costs;
  for (int i = 0; i < 200; ++i) costs.push_back(1 + (i * 7919 % 13));  // uneven units
  for (int ranks : {1, 2, 3, 7}) {
    auto a = parallel::balance(costs, ranks);
    EXPECT_EQ(a, parallel::balance(costs, ranks));
    std::vector<size_t> all;
    std::vector<double> load;
    for (auto& r : a) {
      all.insert(all.end(), r.begin(), r.end());
      double l = 0;
      for (auto u : r) l += costs[u];
      load.push_back(l);
      EXPECT_TRUE(std::is_sorted(r.begin(), r.end()));
    }
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i);
    double max = *std::max_element(load.begin(), load.end()), min = *std::min_element(load.begin(), load.end());
    EXPECT_LE(max - min, 13.0) << ranks << " ranks";  // LPT: within one largest unit
  }
}

// A rank with other work (rank 0 writing every rank's chunks) gets less to compute: loads plus head starts even out.
TEST(ParallelBalance, HeadStartTakesWorkFromThatRank) {
  const std::vector<double> costs(10, 1.0);
  const auto a = parallel::balance(costs, 2, {3.0, 0.0});
  EXPECT_EQ(a[0], (std::vector<size_t>{3, 5, 7, 9}));
  EXPECT_EQ(a[1], (std::vector<size_t>{0, 1, 2, 4, 6, 8}));
  // A head start larger than a fair share: that rank computes nothing.
  const auto b = parallel::balance(costs, 3, {20.0, 0.0, 0.0});
  EXPECT_TRUE(b[0].empty());
  EXPECT_EQ(b[1].size() + b[2].size(), 10u);
  EXPECT_EQ(parallel::balance(costs, 2, {}), parallel::balance(costs, 2));
}

TEST(Placement, HostsInOrderOfTheirFirstRankWithNodeLocalRanks) {
  using s2crop::parallel::describe_placement;
  // 3 nodes x 2 ranks, placed by node (Slurm's block distribution).
  EXPECT_EQ(describe_placement({"node1", "node1", "node2", "node2", "node3", "node3"}, {0, 1, 0, 1, 0, 1}),
            "6 rank(s) on 3 host(s): node1 ranks 0-1 (node-local 0-1), node2 ranks 2-3 (node-local 0-1), node3 ranks "
            "4-5 (node-local 0-1)");
  // Cyclic distribution: ranks interleave, node-local ranks still 0-1 on each.
  EXPECT_EQ(describe_placement({"a", "b", "a", "b"}, {0, 0, 1, 1}),
            "4 rank(s) on 2 host(s): a ranks 0,2 (node-local 0-1), b ranks 1,3 (node-local 0-1)");
  // A node-local rank seen twice on one host (a broken MPI_COMM_TYPE_SHARED split) shows as such.
  EXPECT_EQ(describe_placement({"a", "a"}, {0, 0}), "2 rank(s) on 1 host(s): a ranks 0-1 (node-local 0,0)");
  std::vector<std::string> many;
  for (int i = 0; i < 20; ++i) many.push_back("n" + std::to_string(i));
  const std::string text = describe_placement(many, std::vector<int>(20, 0));
  EXPECT_NE(text.find("n15 ranks 15 (node-local 0), and 4 more host(s)"), std::string::npos) << text;
  EXPECT_EQ(text.find("n16"), std::string::npos) << text;
}
