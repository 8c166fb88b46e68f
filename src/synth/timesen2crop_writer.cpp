#include "s2crop/synth/timesen2crop_writer.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/synth/writers.hpp"

namespace s2crop::synth {

namespace fs = std::filesystem;

namespace {

// Synth band indices (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12) of TimeSen2Crop's columns B1..B9 (no B08).
constexpr int kColumns[9] = {0, 1, 2, 3, 4, 5, 7, 8, 9};
constexpr int kEdgeDistance = 2;

std::string staging_dir(const std::string& dir) { return dir + "/.staging"; }
std::string staged_date_path(const std::string& dir, const std::string& tile, std::size_t index) {
  char name[32];
  std::snprintf(name, sizeof name, "/%06zu.txt", index);
  return staging_dir(dir) + "/" + tile + name;
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw OutputError(path, "cannot open for writing");
  out << text;
  out.flush();
  if (!out) throw OutputError(path, "write failed (disk full?)");
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "staged TimeSen2Crop date missing (did every rank finish rendering?)");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

}  // namespace

std::vector<TimeSen2CropPixel> timesen2crop_pixels(const FieldLayout& layout, int per_class) {
  std::vector<std::vector<std::pair<int, int>>> candidates(kCropClassCount);
  const int n = layout.size;
  for (int y = 0; y < n; ++y) {
    for (int x = 0; x < n; ++x) {
      const std::size_t i = static_cast<std::size_t>(y) * n + x;
      const Unit& u = layout.units[static_cast<std::size_t>(layout.unit[i])];
      if (u.type != UnitType::Parcel || u.class_id < 0 || u.class_id >= kCropClassCount) continue;
      if (layout.partner[i] >= 0 || layout.partner_weight[i] > 0) continue;
      if (x < u.x0 + kEdgeDistance || x >= u.x0 + u.width - kEdgeDistance || y < u.y0 + kEdgeDistance ||
          y >= u.y0 + u.height - kEdgeDistance)
        continue;
      candidates[static_cast<std::size_t>(u.class_id)].push_back({y, x});
    }
  }
  std::vector<TimeSen2CropPixel> out;
  for (int c = 0; c < kCropClassCount; ++c) {
    const auto& cand = candidates[static_cast<std::size_t>(c)];
    const std::size_t take = std::min(cand.size(), static_cast<std::size_t>(per_class));
    for (std::size_t k = 0; k < take; ++k) {
      const auto& [row, col] = cand[k * cand.size() / take];
      out.push_back({c, static_cast<int>(k), row, col});
    }
  }
  return out;
}

int timesen2crop_flag(int scl_class) {
  switch (scl_class) {
    case 0: case 1: case 8: case 9: case 10: return 1;
    case 3: return 2;
    case 11: return 3;
    default: return 0;
  }
}

void stage_timesen2crop_date(const std::string& dir, const TileSpec& tile, std::size_t index_in_tile,
                             const Scene& scene, const std::vector<TimeSen2CropPixel>& pixels) {
  make_dirs(staging_dir(dir) + "/" + tile.name);
  std::ostringstream o;
  for (const auto& p : pixels) {
    const std::size_t i10 = static_cast<std::size_t>(p.row) * scene.size10 + p.col;
    const std::size_t i20 = static_cast<std::size_t>(p.row / 2) * scene.size20 + p.col / 2;
    for (int b : kColumns) {
      const std::uint16_t dn = scene.dn[static_cast<std::size_t>(b)][synth_band_is_10m(b) ? i10 : i20];
      // Reflectance x 10000 as TimeSen2Crop stores it: the offset applied, DN 0 (no data) kept as 0.
      o << (dn == 0 ? 0 : static_cast<int>(dn) + scene.boa_offset) << ',';
    }
    o << timesen2crop_flag(scene.scl[i20]) << '\n';
  }
  write_file(staged_date_path(dir, tile.name, index_in_tile), o.str());
}

std::int64_t assemble_timesen2crop(const Region& region, int rank, int ranks) {
  const std::string& dir = region.config.timesen2crop_dir;
  std::int64_t written = 0;
  std::ostringstream pixels_tsv;
  pixels_tsv << "tile\tclass\tfile\trow\tcol\n";
  for (std::size_t t = 0; t < region.tiles.size(); ++t) {
    const TileSpec& tile = region.tiles[t];
    std::vector<sentinel2::Date> dates;
    for (const auto& a : region.acquisitions)
      if (a.tile == tile.index) dates.push_back(a.date);
    const std::string tile_dir = dir + "/" + tile.name;
    if (rank == 0) {
      make_dirs(tile_dir);
      std::string text = "acquisition_date\n";
      for (const auto& d : dates) text += d.compact() + "\n";
      write_file(tile_dir + "/dates.csv", text);
    }
    // (tile, class) units round-robin over the ranks; rank 0 needs every tile's pixels for pixels.tsv.
    bool mine = rank == 0;
    for (int c = 0; c < kCropClassCount; ++c)
      mine = mine || static_cast<int>((t * kCropClassCount + static_cast<std::size_t>(c)) % static_cast<std::size_t>(ranks)) == rank;
    if (!mine) continue;
    const std::vector<TimeSen2CropPixel> pixels =
        timesen2crop_pixels(make_field_layout(region.config.size, tile.seed), region.config.timesen2crop_per_class);
    if (rank == 0)
      for (const auto& p : pixels)
        pixels_tsv << tile.name << '\t' << p.class_id << '\t' << tile.name << '/' << p.class_id << '/' << p.number
                   << ".csv\t" << p.row << '\t' << p.col << '\n';
    std::vector<std::vector<std::string>> staged;  // [date][pixel]
    auto load = [&] {
      if (!staged.empty()) return;
      for (std::size_t d = 0; d < dates.size(); ++d) {
        staged.push_back(read_lines(staged_date_path(dir, tile.name, d)));
        if (staged.back().size() != pixels.size())
          throw InputError(staged_date_path(dir, tile.name, d), "staged date has " +
                                                                    std::to_string(staged.back().size()) +
                                                                    " pixels, expected " + std::to_string(pixels.size()));
      }
    };
    for (std::size_t k = 0; k < pixels.size(); ++k) {
      const auto& p = pixels[k];
      const std::size_t unit = t * kCropClassCount + static_cast<std::size_t>(p.class_id);
      if (static_cast<int>(unit % static_cast<std::size_t>(ranks)) != rank) continue;
      load();
      const std::string class_dir = tile_dir + "/" + std::to_string(p.class_id);
      make_dirs(class_dir);
      std::string text = "B1,B2,B3,B4,B5,B6,B7,B8,B9,Flag\n";
      for (const auto& date : staged) text += date[k] + "\n";
      write_file(class_dir + "/" + std::to_string(p.number) + ".csv", text);
      ++written;
    }
  }
  if (rank == 0) write_file(dir + "/pixels.tsv", pixels_tsv.str());
  return written;
}

void remove_timesen2crop_staging(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(staging_dir(dir), ec);
  if (ec) throw OutputError(staging_dir(dir), "cannot remove the staged dates: " + ec.message());
}

}  // namespace s2crop::synth
