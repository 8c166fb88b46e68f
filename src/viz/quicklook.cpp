#include "s2crop/viz/quicklook.hpp"

#ifndef S2CROP_WITHOUT_GDAL
#include <cpl_vsi.h>
#include <gdal_priv.h>
#endif

#include <algorithm>
#include <cmath>
#include <memory>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/viz/draw.hpp"

namespace s2crop::viz {

void Image::set(int x, int y, std::uint8_t r, std::uint8_t g, std::uint8_t b) {
  size_t i = (static_cast<size_t>(y) * width + x) * 3;
  rgb[i] = r;
  rgb[i + 1] = g;
  rgb[i + 2] = b;
}

std::uint8_t stretch(int value, int lo, int hi) {
  double t = (static_cast<double>(value) - lo) / (hi - lo);
  t = std::clamp(t, 0.0, 1.0);
  return static_cast<std::uint8_t>(std::lround(255.0 * std::pow(t, 1.0 / 1.6)));
}

void ndvi_colour(double ndvi, std::uint8_t rgb[3]) {
  // Piecewise ramp: soil brown -> straw -> light green -> dark green.
  static const double stops[][4] = {{-0.2, 120, 80, 50}, {0.2, 200, 170, 100}, {0.5, 120, 190, 70}, {0.9, 0, 100, 20}};
  double v = std::clamp(ndvi, stops[0][0], stops[3][0]);
  for (int i = 0; i < 3; ++i) {
    if (v <= stops[i + 1][0]) {
      double t = (v - stops[i][0]) / (stops[i + 1][0] - stops[i][0]);
      for (int c = 0; c < 3; ++c)
        rgb[c] = static_cast<std::uint8_t>(std::lround(stops[i][c + 1] + t * (stops[i + 1][c + 1] - stops[i][c + 1])));
      return;
    }
  }
}

Image side_by_side(const Image& a, const Image& b, int gap) {
  Image out(a.width + gap + b.width, std::max(a.height, b.height));
  std::fill(out.rgb.begin(), out.rgb.end(), std::uint8_t{255});
  for (int y = 0; y < a.height; ++y)
    std::copy_n(a.rgb.data() + static_cast<size_t>(y) * a.width * 3, a.width * 3,
                out.rgb.data() + static_cast<size_t>(y) * out.width * 3);
  for (int y = 0; y < b.height; ++y)
    std::copy_n(b.rgb.data() + static_cast<size_t>(y) * b.width * 3, b.width * 3,
                out.rgb.data() + (static_cast<size_t>(y) * out.width + a.width + gap) * 3);
  return out;
}

#ifdef S2CROP_WITHOUT_GDAL
void write_png(const std::string& path, const Image&) {
  throw ConfigError(path + ": this s2crop was built without GDAL (model stages only) and writes no PNG; rebuild with "
                    "-DS2CROP_WITH_GDAL=ON for quicklooks and plots");
}
#else
void write_png(const std::string& path, const Image& image) {
  geo::init_gdal();
  GDALDriver* mem = GetGDALDriverManager()->GetDriverByName("MEM");
  GDALDriver* png = GetGDALDriverManager()->GetDriverByName("PNG");
  if (!mem || !png) throw OutputError(path, "GDAL PNG driver not available");
  std::unique_ptr<GDALDataset> src(mem->Create("", image.width, image.height, 3, GDT_Byte, nullptr));
  if (!src) throw OutputError(path, std::string("cannot create the image in memory: ") + CPLGetLastErrorMsg());
  for (int b = 0; b < 3; ++b)
    if (src->GetRasterBand(b + 1)->RasterIO(GF_Write, 0, 0, image.width, image.height,
                                            const_cast<std::uint8_t*>(image.rgb.data()) + b, image.width,
                                            image.height, GDT_Byte, 3, static_cast<GSpacing>(image.width) * 3,
                                            nullptr) != CE_None)
      throw OutputError(path, std::string("cannot fill the image: ") + CPLGetLastErrorMsg());
  StagedFile staged(path, ".tmp.png");
  GDALDataset* out = png->CreateCopy(staged.path().c_str(), src.get(), FALSE, nullptr, nullptr, nullptr);
  if (!out) throw OutputError(path, std::string("cannot write PNG: ") + CPLGetLastErrorMsg());
  GDALClose(out);
  VSIUnlink((staged.path() + ".aux.xml").c_str());
  staged.commit();
}
#endif

Image panel_image(int width, int height, const std::vector<std::string>& titles,
                  const std::function<void(size_t plane)>& load,
                  const std::function<void(int x, int y, std::uint8_t rgb[3])>& colour, int columns, int min_side) {
  const int longer = std::max(width, height);
  const int zoom = min_side > longer ? (min_side + longer - 1) / longer : 1;
  const int step = zoom > 1 ? 1 : std::max(1, (longer + 299) / 300);
  const int pw = (width + step - 1) / step * zoom, ph = (height + step - 1) / step * zoom;
  const int title_h = kGlyphHeight + 4, gap = 6;
  int cell_w = pw;
  for (auto& t : titles) cell_w = std::max(cell_w, text_width(t));
  const int cols = std::max(1, std::min<int>(std::max(columns, 1), static_cast<int>(titles.size())));
  const int rows = (static_cast<int>(titles.size()) + cols - 1) / cols;
  Image image(std::max(cols * cell_w + (cols - 1) * gap, 1), std::max(rows * (ph + title_h) + (rows - 1) * gap, 1));
  std::fill(image.rgb.begin(), image.rgb.end(), std::uint8_t{255});
  for (size_t k = 0; k < titles.size(); ++k) {
    load(k);
    const int x0 = static_cast<int>(k % static_cast<size_t>(cols)) * (cell_w + gap);
    const int y0 = static_cast<int>(k / static_cast<size_t>(cols)) * (ph + title_h + gap);
    draw_text(image, x0, y0 + 2, titles[k], Colour{0, 0, 0});
    for (int y = 0; y < ph; ++y)
      for (int x = 0; x < pw; ++x) {
        std::uint8_t rgb[3];
        colour(x / zoom * step, y / zoom * step, rgb);
        image.set(x0 + x, y0 + title_h + y, rgb[0], rgb[1], rgb[2]);
      }
  }
  return image;
}

void write_panel_quicklook(const std::string& path, int width, int height, const std::vector<std::string>& titles,
                           const std::function<void(size_t plane)>& load,
                           const std::function<void(int x, int y, std::uint8_t rgb[3])>& colour) {
  write_png(path, panel_image(width, height, titles, load, colour));
}

}  // namespace s2crop::viz
