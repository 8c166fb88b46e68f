#include "s2crop/pipeline/composite_stage.hpp"
#include "s2crop/pipeline/composite_file.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/stage_support.hpp"

#include <cpl_vsi.h>
#include <gdal_priv.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/sentinel2/reader.hpp"
#include "s2crop/version.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {

using composite::kMonths;
using sentinel2::Acquisition;
using sentinel2::Date;

namespace {

constexpr const char* kFormat = kCompositeFormat;
constexpr std::int64_t kFormatVersion = kCompositeFormatVersion;

// ---------------------------------------------------------------- plan

struct TilePlan {
  std::string name;
  geo::Grid grid;
  std::vector<Acquisition> acquisitions;        // sorted by date
  std::vector<std::vector<size_t>> by_month;    // month -> indices into acquisitions
  std::vector<geo::Window> blocks;
};

struct Plan {
  int season_year = 0, season_month = 0;
  std::vector<TilePlan> tiles;
  std::vector<sentinel2::Skipped> skipped;
  std::string fingerprint;         // identifies everything a block's result depends on (part files)
  std::string output_fingerprint;  // ... plus the output and export options (the finished file)
};

std::string month_label(int year, int month, int index) {
  int m = month - 1 + index;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", year + m / 12, m % 12 + 1);
  return buf;
}

int month_index(const Plan& p, const Date& d) {
  return (d.year * 12 + d.month - 1) - (p.season_year * 12 + p.season_month - 1);
}

std::string escape(std::string s) {
  for (auto& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string grid_text(const geo::Grid& g) {
  std::ostringstream o;
  o.precision(17);
  o << g.width << '\t' << g.height;
  for (double v : g.geotransform) o << '\t' << v;
  o << '\t' << escape(g.crs_wkt);
  return o.str();
}

geo::Grid grid_from(const std::vector<std::string>& f, size_t at) {
  geo::Grid g;
  g.width = std::stoi(f[at]);
  g.height = std::stoi(f[at + 1]);
  for (int i = 0; i < 6; ++i) g.geotransform[static_cast<size_t>(i)] = std::stod(f[at + 2 + static_cast<size_t>(i)]);
  g.crs_wkt = f[at + 8];
  return g;
}

// A block's part payload: reflectance [month][band][pixel] (int16), then clear counts [month][pixel].
size_t payload_bytes(const geo::Window& w, size_t n_bands) {
  const size_t n = static_cast<size_t>(w.pixels());
  return kMonths * n_bands * n * 2 + kMonths * n;
}

constexpr PartKind kPartKind = {'C', 'O', 'M', 'P', 'O', 'S', 'I', '1'};

// Rank 0: discovery and the decisions that need the whole picture.
std::string make_plan_on_root(const CompositeSettings& s, const std::vector<std::string>& inspections,
                              const std::vector<Acquisition>& acqs, std::vector<sentinel2::Skipped> skipped,
                              int season_year, int season_month) {
  // inspections: per acquisition, "G\t<grid>" or "E\t<path>\t<problem>"
  std::map<std::string, std::vector<size_t>> by_tile;
  for (size_t i = 0; i < acqs.size(); ++i) by_tile[acqs[i].tile].push_back(i);
  std::ostringstream plan;
  plan << "P\t" << season_year << '\t' << season_month << '\n';
  for (auto& [tile, idx] : by_tile) {
    // The tile's grid is the one most of its acquisitions agree on (ties: the earliest acquisition's), so one stray
    // product on another grid is reported as the odd one out.
    std::map<std::string, std::pair<int, size_t>> votes;
    for (size_t i : idx) {
      auto f = split_fields(inspections[i]);
      if (f[0] != "G") continue;
      std::string key = inspections[i];
      auto& v = votes[key];
      if (v.first == 0) v.second = i;
      v.first++;
    }
    std::string best;
    int best_n = 0;
    size_t best_first = 0;
    for (auto& [k, v] : votes)
      if (v.first > best_n || (v.first == best_n && v.second < best_first)) {
        best = k;
        best_n = v.first;
        best_first = v.second;
      }
    geo::Grid ref;
    if (!best.empty()) ref = grid_from(split_fields(best), 1);
    std::vector<size_t> kept;
    for (size_t i : idx) {
      auto f = split_fields(inspections[i]);
      std::string problem, where;
      if (f[0] == "E") {
        where = f[1];
        problem = f[2];
      } else if (inspections[i] != best) {
        geo::Grid g = grid_from(f, 1);
        where = acqs[i].bands.begin()->second.path;
        problem = "acquisition " + acqs[i].id + " is on another grid (" + g.describe() + ") than tile " + tile + " (" +
                  ref.describe() + ")";
      }
      if (problem.empty()) {
        kept.push_back(i);
      } else if (s.skip_bad) {
        log::warn("skipping " + where + ": " + problem);
        skipped.push_back({where, problem});
      } else {
        throw InputError(where, problem + " (use --on-error skip to leave bad acquisitions out)");
      }
    }
    if (kept.empty()) {
      log::warn("tile " + tile + " has no usable acquisition; left out");
      continue;
    }
    plan << "T\t" << tile << '\t' << grid_text(ref) << '\n';
    std::vector<Acquisition> mine;
    for (size_t i : kept) mine.push_back(acqs[i]);
    plan << sentinel2::serialise(mine);
    // What each file is on disk, so the fingerprint changes when an input is rewritten in place (same path, new
    // pixels) and no part of the old file's blocks is reused; metadata files (small) by their content.
    std::set<std::string> files;
    for (auto& a : mine) {
      for (auto& [band, src] : a.bands) files.insert(src.path);
      if (a.mask_kind != sentinel2::MaskKind::None) files.insert(a.mask.path);
    }
    for (auto& f : files) plan << "F\t" << f << '\t' << hash::file_identity(f) << '\n';
    for (auto& a : mine) {
      std::error_code ec;
      if (fs::is_regular_file(a.source, ec) && fs::file_size(a.source, ec) < (1u << 22))
        plan << "M\t" << a.source << '\t' << hash::hex64(hash::file_content(a.source)) << '\n';
    }
  }
  for (auto& k : skipped) plan << "S\t" << escape(k.what) << '\t' << escape(k.reason) << '\n';
  return plan.str();
}

Plan parse_plan(const std::string& text, const CompositeSettings& s) {
  Plan p;
  std::istringstream in(text);
  std::string line, acq_text;
  auto flush_acqs = [&] {
    if (!p.tiles.empty() && !acq_text.empty()) p.tiles.back().acquisitions = sentinel2::deserialise(acq_text);
    acq_text.clear();
  };
  while (std::getline(in, line)) {
    auto f = split_fields(line);
    if (f[0] == "P") {
      p.season_year = std::stoi(f[1]);
      p.season_month = std::stoi(f[2]);
    } else if (f[0] == "T") {
      flush_acqs();
      TilePlan t;
      t.name = f[1];
      t.grid = grid_from(f, 2);
      p.tiles.push_back(std::move(t));
    } else if (f[0] == "S") {
      p.skipped.push_back({f[1], f.size() > 2 ? f[2] : ""});
    } else if (f[0] == "F" || f[0] == "M") {
      // file identities: only part of the fingerprint
    } else {
      acq_text += line + "\n";
    }
  }
  flush_acqs();
  for (auto& t : p.tiles) {
    t.by_month.assign(kMonths, {});
    for (size_t i = 0; i < t.acquisitions.size(); ++i) {
      int m = month_index(p, t.acquisitions[i].date);
      if (m >= 0 && m < kMonths) t.by_month[static_cast<size_t>(m)].push_back(i);
    }
    t.blocks = geo::cut_blocks(t.grid.width, t.grid.height, s.block_size);
  }
  std::vector<int> valid = s.valid_scl;
  std::sort(valid.begin(), valid.end());
  valid.erase(std::unique(valid.begin(), valid.end()), valid.end());
  std::vector<std::string> valid_text;
  for (int c : valid) valid_text.push_back(std::to_string(c));
  // The plan text holds every acquisition with its files' identities and its metadata's content (make_plan_on_root).
  Fingerprint fp;
  fp.add("s2crop", kVersion).add("format", std::to_string(kFormatVersion)).add("bands", join_items(s.bands, " "));
  fp.add("method", std::to_string(static_cast<int>(s.method))).add("block", std::to_string(s.block_size));
  fp.add("dilation", std::to_string(s.dilation)).add("valid", join_items(valid_text, " ")).add("plan", text);
  p.fingerprint = fp.hex();
  // The finished file also depends on how it is written and what is exported with it.
  fp.add("deflate", std::to_string(s.deflate)).add("cog", s.cog_dir);
  fp.add("quicklook", s.quicklook_dir + " " + s.quicklook_month);
  p.output_fingerprint = fp.hex();
  return p;
}

// ---------------------------------------------------------------- compute

// Everything a rank reuses from block to block: readers of the current tile's acquisitions (grid checks done
// once), open files, and the buffers, so memory follows the block size and nothing is rebuilt per block.
struct Workspace {
  explicit Workspace(size_t file_capacity) : files(file_capacity) {}
  geo::RasterCache files;
  size_t tile = static_cast<size_t>(-1);
  std::vector<std::unique_ptr<sentinel2::AcquisitionReader>> readers;
  sentinel2::ReadScratch scratch;
  std::vector<std::int16_t> obs;
  std::vector<std::uint8_t> valid;
  std::int64_t reads = 0, reads_skipped = 0;  // (acquisition, block) reads, and those the mask made unnecessary
};

// Composites one block into refl [month][band][pixel] and count [month][pixel] (the mapped part file).
void composite_block(size_t tile_index, const TilePlan& t, const geo::Window& w, const CompositeSettings& s,
                     const sentinel2::MaskOptions& mask, Workspace& ws, std::int16_t* refl, std::uint8_t* count) {
  const size_t n = static_cast<size_t>(w.pixels()), nb = s.bands.size();
  if (ws.tile != tile_index) {
    // Files of the previous tile are done with: closing them keeps memory from growing with the number of tiles.
    ws.readers.clear();
    ws.files.clear();
    ws.readers.resize(t.acquisitions.size());
    ws.tile = tile_index;
  }
  // composite_month writes every pixel of a month it composites; only empty months need their no-data written.
  auto mark_empty = [&](int m) {
    std::fill(refl + static_cast<size_t>(m) * nb * n, refl + static_cast<size_t>(m + 1) * nb * n, composite::kNoData);
    std::fill(count + static_cast<size_t>(m) * n, count + static_cast<size_t>(m + 1) * n, std::uint8_t{0});
  };
  for (int m = 0; m < kMonths; ++m) {
    const auto& idx = t.by_month[static_cast<size_t>(m)];
    if (idx.empty()) {
      mark_empty(m);
      continue;
    }
    // Only one month of observations is held at a time: memory follows block size x acquisitions per month.
    ws.obs.resize(idx.size() * nb * n);
    ws.valid.resize(idx.size() * n);
    size_t used = 0;  // observations with at least one clear pixel; fully masked ones are dropped, not composited
    for (size_t k = 0; k < idx.size(); ++k) {
      auto& reader = ws.readers[idx[k]];
      if (!reader)
        reader = std::make_unique<sentinel2::AcquisitionReader>(t.acquisitions[idx[k]], t.grid, s.bands, ws.files);
      ++ws.reads;
      if (reader->read(w, mask, ws.files, ws.scratch, ws.obs.data() + used * nb * n, ws.valid.data() + used * n))
        ++used;
      else
        ++ws.reads_skipped;
    }
    if (used == 0) {  // the month stays empty (count 0) and is gap-filled
      mark_empty(m);
      continue;
    }
    composite::composite_month(ws.obs.data(), ws.valid.data(), used, nb, n, s.method,
                               refl + static_cast<size_t>(m) * nb * n, count + static_cast<size_t>(m) * n);
  }
  composite::fill_gaps(refl, count, kMonths, nb, n);
}

// ---------------------------------------------------------------- assemble

// Collective from start to end. noexcept on purpose: an exception on one rank must not unwind through the HDF5
// handles, whose destructors close collectively and would wait for the other ranks forever. Escaping here ends in
// std::terminate without unwinding, and main's terminate handler aborts every rank with the message.
void write_hdf5(const Plan& p, const CompositeSettings& s, BlockStage& stage, const parallel::MpiContext& mpi,
                std::vector<double>& clear_per_tile) noexcept(true) {
  clear_per_tile.assign(p.tiles.size(), 0.0);
  const size_t nb = s.bands.size();
  const hsize_t bs = static_cast<hsize_t>(s.block_size);
  h5::File file = h5::File::create(stage.staged_output(), mpi.world());
  stage.write_file_attrs(file, kFormat, kFormatVersion, s.config_text);
  file.set_attr("inputs", s.inputs);
  std::vector<std::string> skipped;
  for (auto& k : p.skipped) skipped.push_back(k.what + ": " + k.reason);
  file.set_attr("skipped_acquisitions", skipped);
  std::vector<std::string> months;
  for (int m = 0; m < kMonths; ++m) months.push_back(month_label(p.season_year, p.season_month, m));
  std::int64_t total_blocks = 0;
  for (auto& t : p.tiles) total_blocks += static_cast<std::int64_t>(t.blocks.size());
  log::Progress progress("write " + fs::path(s.output).filename().string(), "blocks", total_blocks, 10.0);
  std::int64_t written = 0;
  {
  h5::Node tiles = file.create_group("tiles");
  for (auto& t : p.tiles) {
    h5::Node g = tiles.create_group(t.name);
    auto [x_ds, y_ds] = write_tile_georeference(g, t.grid);
    g.set_attr("year", static_cast<std::int64_t>(p.season_year));
    g.set_attr("season_start", month_label(p.season_year, p.season_month, 0));
    g.set_attr("bands", s.bands);
    g.set_attr("months", months);
    g.set_attr("method", std::string(s.method == composite::Method::Median ? "median" : "mean"));
    g.set_attr("block_size", static_cast<std::int64_t>(s.block_size));
    std::vector<std::string> acq;
    for (auto& a : t.acquisitions)
      acq.push_back(a.date.iso() + " " + a.id + " (offset " + std::to_string(a.bands.begin()->second.offset) + ", " +
                    a.offset_origin + ")");
    g.set_attr("acquisitions", acq);
    const hsize_t H = static_cast<hsize_t>(t.grid.height), W = static_cast<hsize_t>(t.grid.width);
    auto refl = g.create_dataset<std::int16_t>("reflectance", {kMonths, nb, H, W},
                                               {1, 1, std::min(bs, H), std::min(bs, W)}, s.deflate,
                                               composite::kNoData);
    refl.set_attr("nodata", static_cast<double>(composite::kNoData));
    refl.set_attr("scale_factor", 1e-4);
    refl.set_attr("long_name", std::string("surface reflectance x 10000, monthly composite, gap-filled"));
    auto count = g.create_dataset<std::uint8_t>("clear_count", {kMonths, H, W}, {1, std::min(bs, H), std::min(bs, W)},
                                                s.deflate, std::uint8_t{0});
    count.set_attr("long_name", std::string("clear observations per month (0: month gap-filled)"));
    // Dimension scales, so h5py/xarray users see named, georeferenced axes.
    auto month_ds = g.create_string_dataset("month", months);
    auto band_ds = g.create_string_dataset("band", s.bands);
    month_ds.make_scale("month");
    band_ds.make_scale("band");
    refl.attach_scale(month_ds, 0);
    refl.attach_scale(band_ds, 1);
    refl.attach_scale(y_ds, 2);
    refl.attach_scale(x_ds, 3);
    count.attach_scale(month_ds, 0);
    count.attach_scale(y_ds, 1);
    count.attach_scale(x_ds, 2);

    // Collective writes of compressed data: every rank calls once per round, ranks without a block select nothing.
    const size_t ti = static_cast<size_t>(&t - p.tiles.data());
    const std::int64_t before = written;
    std::int64_t round = 0;
    stage.collective_rounds(t.blocks.size(), [&](size_t b) {
      if (b != BlockStage::kNone) {
        const geo::Window& w = t.blocks[b];
        const size_t n = static_cast<size_t>(w.pixels());
        const std::vector<std::uint8_t> part = stage.read_part(stage.unit_of(ti, b));
        const auto* block_refl = reinterpret_cast<const std::int16_t*>(part.data());
        const std::uint8_t* block_count = part.data() + kMonths * nb * n * 2;
        double clear = 0;
        for (size_t i = 0; i < kMonths * n; ++i) clear += block_count[i];
        clear_per_tile[ti] += clear;
        std::vector<hsize_t> off = {0, 0, static_cast<hsize_t>(w.y0), static_cast<hsize_t>(w.x0)};
        std::vector<hsize_t> cnt = {kMonths, nb, static_cast<hsize_t>(w.height), static_cast<hsize_t>(w.width)};
        refl.write(off, cnt, block_refl, true);
        count.write({0, off[2], off[3]}, {kMonths, cnt[2], cnt[3]}, block_count, true);
      } else {
        refl.write<std::int16_t>({}, {}, nullptr, true);
        count.write<std::uint8_t>({}, {}, nullptr, true);
      }
      ++round;
      written = before + std::min<std::int64_t>(static_cast<std::int64_t>(t.blocks.size()), round * mpi.size());
      progress.update(written);
    });
  }
  }  // every group and dataset is closed before the file
  file.close();
  progress.finish();
}

// One month of a block's reflectance, [band][pixel], read by seeking to it. Only for exports, which run after the
// assembly has read (and checked) every part: a COG per month need not read the other eleven months.
std::vector<std::int16_t> read_part_month(const BlockStage& stage, size_t ti, size_t block, size_t nb, int month) {
  const size_t unit = stage.unit_of(ti, block);
  const size_t n = static_cast<size_t>(stage.units()[unit].window.pixels());
  std::vector<std::int16_t> refl(nb * n);
  stage.read_part_range(unit, static_cast<size_t>(month) * nb * n * 2, refl.size() * 2, refl.data());
  return refl;
}

// One COG per (tile, month) with the bands as named bands, built block by block from the parts.
void write_cog(const Plan& p, size_t ti, int month, const CompositeSettings& s, const BlockStage& stage) {
  const TilePlan& t = p.tiles[ti];
  const size_t nb = s.bands.size();
  std::string dir = s.cog_dir + "/" + t.name;
  std::string label = month_label(p.season_year, p.season_month, month);
  std::string path = dir + "/" + t.name + "_" + label + ".tif";
  // Neither temporary ends in .tif: a killed export leaves nothing that globs take for a finished COG.
  StagedFile scratch(path, ".stage" + StagedFile::default_suffix()), staged(path);
  const std::string& tmp = scratch.path();
  GDALDriver* gtiff = GetGDALDriverManager()->GetDriverByName("GTiff");
  GDALDriver* cog = GetGDALDriverManager()->GetDriverByName("COG");
  const char* tmp_opts[] = {"TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=LZW", "BIGTIFF=IF_SAFER",
                            nullptr};
  GDALDataset* ds = gtiff->Create(tmp.c_str(), t.grid.width, t.grid.height, static_cast<int>(nb), GDT_Int16,
                                  const_cast<char**>(tmp_opts));
  if (!ds) throw OutputError(tmp, std::string("cannot create: ") + CPLGetLastErrorMsg());
  ds->SetGeoTransform(const_cast<double*>(t.grid.geotransform.data()));
  ds->SetProjection(t.grid.crs_wkt.c_str());
  for (size_t b = 0; b < nb; ++b) {
    GDALRasterBand* band = ds->GetRasterBand(static_cast<int>(b) + 1);
    band->SetNoDataValue(composite::kNoData);
    band->SetDescription(s.bands[b].c_str());
  }
  for (size_t bi = 0; bi < t.blocks.size(); ++bi) {
    const geo::Window& w = t.blocks[bi];
    std::vector<std::int16_t> refl = read_part_month(stage, ti, bi, nb, month);
    size_t n = static_cast<size_t>(w.pixels());
    for (size_t b = 0; b < nb; ++b) {
      std::int16_t* src = refl.data() + b * n;
      if (ds->GetRasterBand(static_cast<int>(b) + 1)
              ->RasterIO(GF_Write, w.x0, w.y0, w.width, w.height, src, w.width, w.height, GDT_Int16, 0, 0, nullptr) !=
          CE_None) {
        GDALClose(ds);
        throw OutputError(tmp, std::string("write failed: ") + CPLGetLastErrorMsg());
      }
    }
  }
  ds->SetMetadataItem("MONTH", label.c_str());
  ds->SetMetadataItem("SCALE_FACTOR", "0.0001");
  const char* cog_opts[] = {"COMPRESS=DEFLATE", "PREDICTOR=2", "BLOCKSIZE=512", "BIGTIFF=IF_SAFER", nullptr};
  GDALDataset* out = cog->CreateCopy(staged.path().c_str(), ds, FALSE, const_cast<char**>(cog_opts), nullptr, nullptr);
  GDALClose(ds);
  if (!out) throw OutputError(path, std::string("cannot write COG: ") + CPLGetLastErrorMsg());
  GDALClose(out);
  staged.commit();
}

void write_quicklook(const Plan& p, size_t ti, int month, const CompositeSettings& s, const BlockStage& stage) {
  const TilePlan& t = p.tiles[ti];
  auto find = [&](const std::string& b) -> int {
    auto it = std::find(s.bands.begin(), s.bands.end(), b);
    return it == s.bands.end() ? -1 : static_cast<int>(it - s.bands.begin());
  };
  int red = find("B04"), green = find("B03"), blue = find("B02"), nir = find("B08");
  if (nir < 0) nir = find("B8A");
  if (red < 0 || green < 0 || blue < 0) {
    log::warn("quicklook of " + t.name + " skipped: needs bands B02, B03, B04");
    return;
  }
  const size_t nb = s.bands.size();
  int step = std::max(1, (std::max(t.grid.width, t.grid.height) + 1023) / 1024);
  int W = (t.grid.width + step - 1) / step, H = (t.grid.height + step - 1) / step;
  viz::Image rgb(W, H), ndvi(W, H);
  for (size_t bi = 0; bi < t.blocks.size(); ++bi) {
    const geo::Window& w = t.blocks[bi];
    std::vector<std::int16_t> refl = read_part_month(stage, ti, bi, nb, month);
    size_t n = static_cast<size_t>(w.pixels());
    auto at = [&](int band, int x, int y) {
      return refl[static_cast<size_t>(band) * n + static_cast<size_t>(y) * w.width + x];
    };
    for (int y = (step - w.y0 % step) % step; y < w.height; y += step)
      for (int x = (step - w.x0 % step) % step; x < w.width; x += step) {
        int X = (w.x0 + x) / step, Y = (w.y0 + y) / step;
        if (at(red, x, y) == composite::kNoData) {
          rgb.set(X, Y, 40, 40, 40);
          ndvi.set(X, Y, 40, 40, 40);
          continue;
        }
        rgb.set(X, Y, viz::stretch(at(red, x, y)), viz::stretch(at(green, x, y)), viz::stretch(at(blue, x, y)));
        if (nir >= 0) {
          double r4 = at(red, x, y), r8 = at(nir, x, y);
          double v = (r8 + r4) != 0 ? (r8 - r4) / (r8 + r4) : 0.0;
          std::uint8_t c[3];
          viz::ndvi_colour(v, c);
          ndvi.set(X, Y, c[0], c[1], c[2]);
        }
      }
  }
  std::string label = month_label(p.season_year, p.season_month, month);
  viz::write_png(s.quicklook_dir + "/" + t.name + "_" + label + "_rgb_ndvi.png", viz::side_by_side(rgb, ndvi));
}

// The plan as TSV for people and scripts (the NumPy reference compositor in bench/ reads it).
void print_plan(const Plan& p, const CompositeSettings& s) {
  std::ostringstream o;
  o << "#season_start\t" << month_label(p.season_year, p.season_month, 0) << "\n";
  o << "#columns\ttile\tdate\tmonth\tid\tmask_kind\tmask_path\tmask_band";
  for (auto& b : s.bands) o << "\t" << b << "(path|band|offset)";
  o << "\n";
  static const char* kinds[] = {"none", "scl", "valid"};
  for (auto& t : p.tiles) {
    o << "#tile\t" << t.name << "\t" << grid_text(t.grid) << "\n";
    for (auto& a : t.acquisitions) {
      o << t.name << '\t' << a.date.iso() << '\t' << month_index(p, a.date) << '\t' << a.id << '\t'
        << kinds[static_cast<int>(a.mask_kind)] << '\t' << a.mask.path << '\t' << a.mask.band;
      for (auto& b : s.bands) {
        auto& src = a.bands.at(b);
        o << '\t' << src.path << '|' << src.band << '|' << src.offset;
      }
      o << '\n';
    }
  }
  for (auto& k : p.skipped) o << "#skipped\t" << k.what << "\t" << k.reason << "\n";
  std::fputs(o.str().c_str(), stdout);
  std::fflush(stdout);
}


// As many open rasters as the descriptor limit allows (raised to the hard limit), leaving room for the rest.
size_t raster_cache_capacity() {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 65536);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 256;
  return static_cast<size_t>(std::clamp<rlim_t>(rl.rlim_cur / 2, 64, 4096));
}


}  // namespace

void run_composite(const CompositeSettings& s, const parallel::MpiContext& mpi) {
  using clock = std::chrono::steady_clock;
  if (s.inputs.empty()) throw ConfigError("composite: no input given (--input DIR ...)");
  if (s.output.empty()) throw ConfigError("composite: no output given (--output FILE.h5)");
  if (s.block_size < 4 || s.block_size > 4096) throw ConfigError("--block-size must be between 4 and 4096 pixels");
  if (s.deflate < 0 || s.deflate > 9) throw ConfigError("--deflate must be 0-9");
  if (!s.quicklook_month.empty()) {
    try {
      Date::parse(s.quicklook_month + "-01");
    } catch (const Error&) {
      throw ConfigError("--quicklook-month must be YYYY-MM (got '" + s.quicklook_month + "')");
    }
  }
  auto mask = sentinel2::MaskOptions::from(s.valid_scl, s.dilation);
  geo::init_gdal();
  BlockStageConfig config;
  config.stage = "composite";
  config.part_kind = kPartKind;
  config.output = s.output;
  config.export_dirs = {s.cog_dir, s.quicklook_dir};
  config.overwrite = s.overwrite;
  config.stored_fingerprint = [](const std::string& path) {
    try {
      return h5::File::open_read(path, MPI_COMM_NULL).attr_string("run_fingerprint");
    } catch (const Error&) {
      return std::string();
    }
  };
  BlockStage stage(config, mpi);
  // Export folders are checked now, not after hours of compositing.
  stage.check_outputs();

  // ---- plan: discovery on rank 0
  std::vector<Acquisition> acqs;
  std::vector<sentinel2::Skipped> skipped;
  int season_year = 0, season_month = 0;
  parallel::root_first(mpi.world(), [&] {
    sentinel2::DiscoveryOptions opt;
    opt.allow_unmasked = s.allow_unmasked;
    opt.bands = s.bands;
    opt.offset_mode = s.offset_mode;
    opt.tiles = s.tiles;
    acqs = sentinel2::discover(s.inputs, opt, s.skip_bad, skipped);
    if (acqs.empty()) {
      std::string in;
      for (auto& i : s.inputs) in += " " + i;
      throw InputError(in.substr(1), "no Sentinel-2 L2A acquisition with bands " +
                                         [&] {
                                           std::string b;
                                           for (auto& x : s.bands) b += (b.empty() ? "" : ",") + x;
                                           return b;
                                         }() +
                                         " found (STAC items, SAFE folders/zips or band GeoTIFF folders)");
    }
    for (auto& t : s.tiles)
      if (std::none_of(acqs.begin(), acqs.end(), [&](const Acquisition& a) { return a.tile == t; }))
        throw InputError(join_items(s.inputs), "no acquisition of tile " + t + " (asked for with --tiles) found");
    if (s.season_start == "auto") {
      // The season is the agronomic year (starting in month --season-month) of the acquisitions. Where they span
      // several, a guess would composite the wrong year (or one stray item's): the user chooses.
      std::map<int, int> per_season;
      for (auto& a : acqs) per_season[a.date.month >= s.season_month ? a.date.year : a.date.year - 1]++;
      season_year = per_season.begin()->first;
      season_month = s.season_month;
      if (per_season.size() > 1) {
        std::vector<std::string> counts;
        for (auto& [year, n] : per_season)
          counts.push_back(month_label(year, s.season_month, 0) + ": " + std::to_string(n));
        throw ConfigError("--season-start auto: the acquisitions found span " + std::to_string(per_season.size()) +
                          " seasons (acquisitions per season starting " + join_items(counts) +
                          "); pass --season-start YYYY-MM to choose one");
      }
    } else {
      Date d;
      try {
        d = Date::parse(s.season_start + "-01");
      } catch (const Error&) {
        throw ConfigError("--season-start must be YYYY-MM or auto (got '" + s.season_start + "')");
      }
      season_year = d.year;
      season_month = d.month;
    }
    Plan probe;
    probe.season_year = season_year;
    probe.season_month = season_month;
    std::vector<Acquisition> in_season;
    for (auto& a : acqs) {
      int m = month_index(probe, a.date);
      if (m >= 0 && m < kMonths) in_season.push_back(a);
    }
    if (s.allow_unmasked) {
      size_t unmasked = static_cast<size_t>(std::count_if(acqs.begin(), acqs.end(), [](const Acquisition& a) {
        return a.mask_kind == sentinel2::MaskKind::None;
      }));
      if (unmasked > 0)
        log::warn(std::to_string(unmasked) + " acquisition(s) have no cloud mask and are composited unmasked, clouds "
                  "included (--allow-unmasked)");
    }
    log::info("found " + std::to_string(acqs.size()) + " acquisitions, " + std::to_string(in_season.size()) +
              " in the season starting " + month_label(season_year, season_month, 0));
    if (in_season.empty()) throw InputError(s.inputs.front(), "no acquisition falls in the season starting " +
                                                                  month_label(season_year, season_month, 0));
    // A tile whose acquisitions all fall outside the season would be missing from the output without a word.
    std::map<std::string, std::pair<int, int>> per_tile;  // tile -> (found, in season)
    for (auto& a : acqs) per_tile[a.tile].first++;
    for (auto& a : in_season) per_tile[a.tile].second++;
    for (auto& [tile, n] : per_tile)
      if (n.second == 0)
        throw InputError(join_items(s.inputs), "tile " + tile + " has " + std::to_string(n.first) +
                                                   " acquisition(s), none in the season " +
                                                   month_label(season_year, season_month, 0) + " to " +
                                                   month_label(season_year, season_month, kMonths - 1) +
                                                   ": choose its season with --season-start, or leave it out with "
                                                   "--tiles");
    acqs = std::move(in_season);
  });
  // ---- plan: every rank inspects its share of the files (opening thousands of files is slow on parallel FS)
  std::vector<Acquisition> all = sentinel2::deserialise(parallel::broadcast_string(
      mpi.world(), mpi.is_root() ? sentinel2::serialise(acqs) : std::string()));
  std::string mine;
  for (size_t i = static_cast<size_t>(mpi.rank()); i < all.size(); i += static_cast<size_t>(mpi.size())) {
    std::string line;
    try {
      line = "G\t" + grid_text(sentinel2::inspect(all[i], s.bands));
    } catch (const InputError& e) {
      line = "E\t" + escape(e.path()) + "\t" + escape(std::string(e.what()).substr(e.path().size() + 2));
    }
    mine += std::to_string(i) + "\t" + line + "\n";
  }
  auto gathered = parallel::gather_strings(mpi.world(), mine);
  std::string plan_text;
  parallel::root_first(mpi.world(), [&] {
    std::vector<std::string> inspections(all.size());
    for (auto& chunk : gathered) {
      std::istringstream in(chunk);
      std::string line;
      while (std::getline(in, line)) {
        size_t tab = line.find('\t');
        inspections[std::stoul(line.substr(0, tab))] = line.substr(tab + 1);
      }
    }
    plan_text = make_plan_on_root(s, inspections, all, skipped, season_year, season_month);
  });
  plan_text = parallel::broadcast_string(mpi.world(), plan_text);
  Plan plan = parse_plan(plan_text, s);
  if (plan.tiles.empty()) throw AgreedError("no tile has a usable acquisition");
  int ql_month = kMonths - 2;  // every rank knows the plan: checked here, before any work
  if (!s.quicklook_month.empty()) {
    ql_month = month_index(plan, Date::parse(s.quicklook_month + "-01"));
    if (ql_month < 0 || ql_month >= kMonths)
      throw ConfigError("--quicklook-month " + s.quicklook_month + " is outside the season " +
                        month_label(plan.season_year, plan.season_month, 0) + " to " +
                        month_label(plan.season_year, plan.season_month, kMonths - 1));
  }
  if (s.list_only) {
    if (mpi.is_root()) print_plan(plan, s);
    return;
  }

  // ---- resume state: rank 0 takes the output's lock, then looks at the output and the parts of an interrupted run
  std::vector<std::string> groups;
  for (auto& t : plan.tiles) groups.push_back(t.name);
  if (!stage.begin(plan.fingerprint, plan.output_fingerprint, groups)) return;
  std::vector<BlockUnit> units;
  for (size_t ti = 0; ti < plan.tiles.size(); ++ti) {
    const TilePlan& t = plan.tiles[ti];
    for (size_t b = 0; b < t.blocks.size(); ++b)
      // Cost model: pixels x acquisitions read (dominant: decoding the inputs).
      units.push_back({ti, b, t.blocks[b], payload_bytes(t.blocks[b], s.bands.size()),
                       static_cast<double>(t.blocks[b].pixels()) * static_cast<double>(t.acquisitions.size() + 1)});
  }
  const std::vector<size_t> todo = stage.resume(units);

  // ---- compute
  long long total_obs_px = 0;
  for (size_t u : todo)
    total_obs_px += units[u].window.pixels() * static_cast<long long>(plan.tiles[units[u].group].acquisitions.size());
  if (mpi.is_root()) {
    size_t n_acq = 0;
    for (auto& t : plan.tiles) n_acq += t.acquisitions.size();
    log::info("plan: " + std::to_string(plan.tiles.size()) + " tile(s), " + std::to_string(n_acq) +
              " acquisitions, " + std::to_string(units.size()) + " blocks of " + std::to_string(s.block_size) +
              " px, " + std::to_string(stage.units_done_before()) + " already done, " + std::to_string(todo.size()) +
              " to compute on " + std::to_string(mpi.size()) + " rank(s); season " +
              month_label(plan.season_year, plan.season_month, 0) + " to " +
              month_label(plan.season_year, plan.season_month, kMonths - 1));
    for (auto& k : plan.skipped) log::warn("skipped " + k.what + ": " + k.reason);
  }
  auto t_compute = clock::now();
  // Units are in (tile, block) order, so the readers and open files of a tile serve block after block.
  Workspace ws(raster_cache_capacity());
  stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
    const BlockUnit& unit = units[u];
    const size_t n = static_cast<size_t>(unit.window.pixels());
    composite_block(unit.group, plan.tiles[unit.group], unit.window, s, mask, ws,
                    reinterpret_cast<std::int16_t*>(payload), payload + kMonths * s.bands.size() * n * 2);
  });
  double compute_s = std::chrono::duration<double>(clock::now() - t_compute).count();
  if (mpi.is_root() && !todo.empty()) {
    char line[256];
    std::snprintf(line, sizeof line, "composited %zu blocks in %.3f s (%.4g acquisition-band-pixels/s per rank)",
                  todo.size(), compute_s,
                  static_cast<double>(total_obs_px) * static_cast<double>(s.bands.size()) /
                      std::max(compute_s, 1e-9) / mpi.size());
    log::info(line);
  }
  {
    std::int64_t reads = parallel::sum(mpi.world(), ws.reads);
    std::int64_t skipped = parallel::sum(mpi.world(), ws.reads_skipped);
    if (mpi.is_root() && reads > 0)
      log::info(std::to_string(skipped) + " of " + std::to_string(reads) +
                " acquisition-block reads skipped: no clear pixel in the mask (cloudy or no data)");
  }
  log_peak_memory(mpi, "after compositing");

  // ---- assemble
  std::vector<double> clear_per_tile;
  write_hdf5(plan, s, stage, mpi, clear_per_tile);
  MPI_Allreduce(MPI_IN_PLACE, clear_per_tile.data(), static_cast<int>(clear_per_tile.size()), MPI_DOUBLE, MPI_SUM,
                mpi.world());
  for (size_t ti = 0; ti < plan.tiles.size(); ++ti)
    if (clear_per_tile[ti] == 0) {
      // Every pixel of every month no data: a mask that keeps nothing (--valid-scl), reflectance delivered in
      // another scale or type, or a mask file that marks everything invalid. A map made from it would be empty.
      throw AgreedError("tile " + plan.tiles[ti].name + " has no clear observation in any month (" +
                        std::to_string(plan.tiles[ti].acquisitions.size()) + " acquisitions; every pixel would be no "
                        "data): check --valid-scl (" + join_items([&] {
                          std::vector<std::string> v;
                          for (int c : s.valid_scl) v.push_back(std::to_string(c));
                          return v;
                        }()) + "), the masks and the bands' values (L2A digital numbers, reflectance x 10000)");
    }
  if (!s.cog_dir.empty() || !s.quicklook_dir.empty()) {
    parallel::root_first(mpi.world(), [&] {
      if (!s.cog_dir.empty())
        for (auto& t : plan.tiles) ensure_dir(s.cog_dir + "/" + t.name);
      if (!s.quicklook_dir.empty()) ensure_dir(s.quicklook_dir);
    });
    size_t job = 0;
    for (size_t ti = 0; ti < plan.tiles.size(); ++ti) {
      if (!s.cog_dir.empty())
        for (int m = 0; m < kMonths; ++m, ++job)
          if (job % static_cast<size_t>(mpi.size()) == static_cast<size_t>(mpi.rank())) write_cog(plan, ti, m, s, stage);
      if (!s.quicklook_dir.empty()) {
        if (job % static_cast<size_t>(mpi.size()) == static_cast<size_t>(mpi.rank()))
          write_quicklook(plan, ti, ql_month, s, stage);
        ++job;
      }
    }
    MPI_Barrier(mpi.world());
  }
  stage.finish(s.output + " (" + std::to_string(plan.tiles.size()) + " tile(s))");
  if (mpi.is_root()) {
    if (!s.cog_dir.empty()) log::info("COGs in " + s.cog_dir);
    if (!s.quicklook_dir.empty()) log::info("quicklooks in " + s.quicklook_dir);
  }
}

}  // namespace s2crop::pipeline
