// I/O floor of compositing: reads every raster file listed in a composite plan (bands and masks) once, whole bands
// at native resolution, with GDAL and the same GDAL settings as s2crop, and reports the time and the throughput in
// the stage's unit (acquisition-band-pixels per second: acquisitions x bands x tile pixels at 10 m).
//
//   s2crop composite --input DIR --output X.h5 --list > plan.tsv
//   bench_read_floor plan.tsv [--repeat N] [--block-size N]
//
// One process, one core: compare with the per-rank throughput of `s2crop composite`.
// With --block-size N the same pixels are read the way the stage reads them instead: block after block (N x N on
// the 10 m grid, the window scaled to each file's resolution), every acquisition of the block, all files kept open.
// The difference to the whole-band floor is the cost of the block-wise access pattern alone (GDAL window reads,
// COG tiles straddling block edges decoded more than once when the block cache cannot keep them).
#include <gdal_priv.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "s2crop/geo/raster.hpp"

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> f;
  size_t start = 0;
  while (true) {
    size_t t = s.find(sep, start);
    f.push_back(s.substr(start, t == std::string::npos ? std::string::npos : t - start));
    if (t == std::string::npos) break;
    start = t + 1;
  }
  return f;
}

struct Plan {
  std::map<std::string, std::pair<long long, long long>> tile_size;  // tile -> (width, height) at 10 m
  long long acq_band_pixels = 0;
  long long acquisitions = 0;
  // Distinct files in first-use order, with the bands of each that the plan uses.
  std::vector<std::string> files;
  std::map<std::string, std::set<int>> bands_of;
  std::map<std::string, bool> is_mask;
  // Per tile, per acquisition: (path, band, is_mask) in the order the stage reads them (mask first).
  std::map<std::string, std::vector<std::vector<std::tuple<std::string, int, bool>>>> reads;
  std::vector<std::string> tile_order;
};

void use(Plan& p, const std::string& path, int band, bool mask) {
  if (p.bands_of.find(path) == p.bands_of.end()) {
    p.files.push_back(path);
    p.is_mask[path] = mask;
  }
  p.bands_of[path].insert(band);
}

Plan read_plan(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    std::exit(2);
  }
  Plan p;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto f = split(line, '\t');
    if (f[0] == "#tile") {
      p.tile_size[f[1]] = {std::stoll(f[2]), std::stoll(f[3])};
      p.tile_order.push_back(f[1]);
      continue;
    }
    if (f[0][0] == '#') continue;
    if (f.size() < 8) {
      std::fprintf(stderr, "bad plan line: %s\n", line.c_str());
      std::exit(2);
    }
    auto ts = p.tile_size.at(f[0]);
    size_t n_bands = f.size() - 7;
    p.acq_band_pixels += static_cast<long long>(n_bands) * ts.first * ts.second;
    ++p.acquisitions;
    auto& acq = p.reads[f[0]].emplace_back();
    if (f[4] != "none") {
      use(p, f[5], std::stoi(f[6]), true);
      acq.emplace_back(f[5], std::stoi(f[6]), true);
    }
    for (size_t i = 7; i < f.size(); ++i) {
      auto b = split(f[i], '|');
      use(p, b[0], std::stoi(b[1]), false);
      acq.emplace_back(b[0], std::stoi(b[1]), false);
    }
  }
  return p;
}

struct Totals {
  double seconds = 0;
  long long pixels_read = 0, bytes_read = 0;
  std::uint64_t checksum = 0;
};

GDALDataset* open_or_die(const std::string& path) {
  auto* ds =
      static_cast<GDALDataset*>(GDALOpenEx(path.c_str(), GDAL_OF_RASTER | GDAL_OF_READONLY, nullptr, nullptr, nullptr));
  if (!ds) {
    std::fprintf(stderr, "cannot open %s\n", path.c_str());
    std::exit(1);
  }
  return ds;
}

// Reads one window of one band (masks as bytes, reflectance as uint16) and accounts for it in t.
void read_window(GDALDataset* ds, const std::string& path, int band, bool mask, int x, int y, int w, int h,
                 std::vector<std::uint16_t>& u16, std::vector<std::uint8_t>& u8, Totals& t) {
  const size_t n = static_cast<size_t>(w) * static_cast<size_t>(h);
  CPLErr err;
  if (mask) {
    u8.resize(n);
    err = ds->GetRasterBand(band)->RasterIO(GF_Read, x, y, w, h, u8.data(), w, h, GDT_Byte, 0, 0, nullptr);
    t.checksum += u8[n / 2];
    t.bytes_read += static_cast<long long>(n);
  } else {
    u16.resize(n);
    err = ds->GetRasterBand(band)->RasterIO(GF_Read, x, y, w, h, u16.data(), w, h, GDT_UInt16, 0, 0, nullptr);
    t.checksum += u16[n / 2];
    t.bytes_read += static_cast<long long>(2 * n);
  }
  if (err != CE_None) {
    std::fprintf(stderr, "read failed: %s band %d: %s\n", path.c_str(), band, CPLGetLastErrorMsg());
    std::exit(1);
  }
  t.pixels_read += static_cast<long long>(n);
}

Totals read_all(const Plan& p) {
  using clock = std::chrono::steady_clock;
  Totals t;
  std::vector<std::uint16_t> u16;
  std::vector<std::uint8_t> u8;
  auto t0 = clock::now();
  for (const auto& path : p.files) {
    GDALDataset* ds = open_or_die(path);
    const int w = ds->GetRasterXSize(), h = ds->GetRasterYSize();
    const bool mask = p.is_mask.at(path);
    for (int band : p.bands_of.at(path)) read_window(ds, path, band, mask, 0, 0, w, h, u16, u8, t);
    GDALClose(ds);
  }
  t.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return t;
}

// The stage's access pattern without its computation: per tile, per block, per acquisition, per file a window read.
Totals read_blockwise(const Plan& p, int block_size) {
  using clock = std::chrono::steady_clock;
  Totals t;
  std::vector<std::uint16_t> u16;
  std::vector<std::uint8_t> u8;
  auto t0 = clock::now();
  std::map<std::string, GDALDataset*> open;
  for (const auto& tile : p.tile_order) {
    auto [tw, th] = p.tile_size.at(tile);
    auto it = p.reads.find(tile);
    if (it == p.reads.end()) continue;
    for (const auto& acq : it->second)
      for (const auto& r : acq)
        if (!open.count(std::get<0>(r))) open[std::get<0>(r)] = open_or_die(std::get<0>(r));
    for (long long y0 = 0; y0 < th; y0 += block_size)
      for (long long x0 = 0; x0 < tw; x0 += block_size) {
        const long long bw = std::min<long long>(block_size, tw - x0), bh = std::min<long long>(block_size, th - y0);
        for (const auto& acq : it->second)
          for (const auto& [path, band, mask] : acq) {
            GDALDataset* ds = open.at(path);
            const long long f = tw / ds->GetRasterXSize();  // 1, 2 or 6: the file's pixel is f x 10 m
            const int cx = static_cast<int>(x0 / f), cy = static_cast<int>(y0 / f);
            const int cw = static_cast<int>((x0 + bw - 1) / f - cx + 1), ch = static_cast<int>((y0 + bh - 1) / f - cy + 1);
            read_window(ds, path, band, mask, cx, cy, cw, ch, u16, u8, t);
          }
      }
  }
  for (auto& [path, ds] : open) GDALClose(ds);
  t.seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return t;
}

}  // namespace

int main(int argc, char** argv) {
  std::string plan_path;
  int repeat = 1, block_size = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) {
      repeat = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--block-size" && i + 1 < argc) {
      block_size = std::atoi(argv[++i]);
      if (block_size < 16) {
        std::fprintf(stderr, "--block-size must be >= 16\n");
        return 2;
      }
    } else if (a == "-h" || a == "--help") {
      std::printf("usage: bench_read_floor PLAN.tsv [--repeat N] [--block-size N]\n"
                  "Reads every raster of a `s2crop composite --list` plan once (whole bands, GDAL) and prints the\n"
                  "time and acquisition-band-pixels/s; with --repeat, the best of N passes; with --block-size,\n"
                  "block-wise windows in the order s2crop composite reads them.\n");
      return 0;
    } else if (plan_path.empty()) {
      plan_path = a;
    } else {
      std::fprintf(stderr, "unexpected argument %s\n", a.c_str());
      return 2;
    }
  }
  if (plan_path.empty()) {
    std::fprintf(stderr, "usage: bench_read_floor PLAN.tsv [--repeat N] [--block-size N]\n");
    return 2;
  }
  s2crop::geo::init_gdal();  // same driver registration and GDAL_CACHEMAX as s2crop
  Plan p = read_plan(plan_path);
  if (p.acquisitions == 0) {
    std::fprintf(stderr, "%s lists no acquisition\n", plan_path.c_str());
    return 1;
  }
  Totals best;
  for (int r = 0; r < repeat; ++r) {
    Totals t = block_size ? read_blockwise(p, block_size) : read_all(p);
    if (r == 0 || t.seconds < best.seconds) best = t;
  }
  std::string mode = block_size ? "block-wise read (block " + std::to_string(block_size) + ")" : "read floor";
  std::printf("%s: %lld acquisitions, %zu files, %lld native pixels (%.1f MiB decoded), %.3f s, "
              "%.4g acquisition-band-pixels/s\n",
              mode.c_str(), p.acquisitions, p.files.size(), best.pixels_read, static_cast<double>(best.bytes_read) / 1048576.0,
              best.seconds, static_cast<double>(p.acq_band_pixels) / best.seconds);
  std::fprintf(stderr, "(checksum %llu)\n", static_cast<unsigned long long>(best.checksum));
  return 0;
}
