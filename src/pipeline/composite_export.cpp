#include <cpl_conv.h>
#include <gdal_priv.h>

#include <algorithm>
#include <string>
#include <vector>

#include "composite_internal.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::pipeline::composite_detail {

// One COG per (tile, month) with the bands as named bands, built block by block from the finished composite file.
void write_cog(const Plan& p, size_t ti, int month, const CompositeSettings& s, const CompositeFile& composites) {
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
  const CompositeTile& file_tile = composites.tile(t.name);
  for (size_t bi = 0; bi < t.blocks.size(); ++bi) {
    const geo::Window& w = t.blocks[bi];
    std::vector<std::int16_t> refl = composites.read_reflectance(file_tile, w, month);
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

void write_quicklook(const Plan& p, size_t ti, int month, const CompositeSettings& s, const CompositeFile& composites) {
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
  int step = std::max(1, (std::max(t.grid.width, t.grid.height) + 1023) / 1024);
  int W = (t.grid.width + step - 1) / step, H = (t.grid.height + step - 1) / step;
  viz::Image rgb(W, H), ndvi(W, H);
  const CompositeTile& file_tile = composites.tile(t.name);
  for (size_t bi = 0; bi < t.blocks.size(); ++bi) {
    const geo::Window& w = t.blocks[bi];
    std::vector<std::int16_t> refl = composites.read_reflectance(file_tile, w, month);
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

}  // namespace s2crop::pipeline::composite_detail
