#include "s2crop/viz/class_map.hpp"

#include <algorithm>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/viz/draw.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::viz {

namespace {
constexpr Colour kNoData{64, 64, 64};
constexpr Colour kUnknown{0, 0, 0};
constexpr Colour kInk{20, 20, 20};
}  // namespace

ClassLegend crop_legend() {
  ClassLegend legend;
  for (const CropClass& c : crop_classes()) {
    legend.names.push_back(c.name);
    legend.colours.push_back({c.r, c.g, c.b});
  }
  return legend;
}

ClassLegend class_legend(const std::vector<std::string>& names) {
  ClassLegend legend;
  legend.names = names;
  for (size_t i = 0; i < names.size(); ++i) {
    const int id = crop_class_id(names[i]);
    if (id >= 0) {
      const CropClass& c = crop_class(id);
      legend.colours.push_back({c.r, c.g, c.b});
    } else {  // a class outside TimeSen2Crop's: a distinct grey level
      const auto v = static_cast<std::uint8_t>(60 + (i * 37) % 160);
      legend.colours.push_back({v, v, v});
    }
  }
  return legend;
}

Image legend_image(const std::vector<LegendEntry>& entries, const std::string& heading) {
  const int scale = 2, gap = 16, swatch = kGlyphHeight * scale, row_h = swatch + 8;
  int label_w = text_width(heading, scale);
  for (auto& e : entries) label_w = std::max(label_w, swatch + 8 + text_width(e.label, scale));
  const int panel_w = label_w + 2 * gap;
  const int panel_h = gap + row_h + static_cast<int>(entries.size()) * row_h + gap;
  Image img(panel_w, panel_h);
  fill_rect(img, 0, 0, img.width, img.height, {255, 255, 255});
  int x0 = gap, y = gap;
  draw_text(img, x0, y, heading, kInk, scale);
  y += row_h;
  for (auto& e : entries) {
    const Colour c{e.colour[0], e.colour[1], e.colour[2]};
    fill_rect(img, x0, y, swatch, swatch, c);
    draw_rect_outline(img, x0, y, swatch, swatch, kInk);
    draw_text(img, x0 + swatch + 8, y, e.label, kInk, scale);
    y += row_h;
  }
  return img;
}

void write_class_quicklook(const std::string& png, const std::uint8_t* classes, int width, int height,
                           const ClassLegend& legend, std::uint8_t nodata, int max_side) {
  if (width <= 0 || height <= 0) throw OutputError(png, "class map quicklook of an empty map");
  if (max_side < 1) throw OutputError(png, "quicklook size must be at least 1 pixel");
  if (legend.colours.size() != legend.names.size())
    throw OutputError(png, "legend has " + std::to_string(legend.names.size()) + " names but " +
                               std::to_string(legend.colours.size()) + " colours");
  auto colour_of = [&](std::uint8_t v) -> Colour {
    if (v == nodata) return kNoData;
    if (v < legend.colours.size()) return {legend.colours[v][0], legend.colours[v][1], legend.colours[v][2]};
    return kUnknown;
  };

  // Majority of each factor x factor block: unlike nearest-neighbour it keeps the look of the dominant crop and
  // does not let a thin road or hedge row of one class alias into stripes.
  const int factor = (std::max(width, height) + max_side - 1) / max_side;
  const int map_w = (width + factor - 1) / factor, map_h = (height + factor - 1) / factor;
  std::vector<std::int64_t> present(256, 0);
  for (long long k = 0; k < static_cast<long long>(width) * height; ++k) ++present[classes[k]];
  std::vector<int> votes(256);
  std::vector<std::uint8_t> reduced(static_cast<size_t>(map_w) * map_h);
  for (int by = 0; by < map_h; ++by)
    for (int bx = 0; bx < map_w; ++bx) {
      std::uint8_t best = nodata;
      if (factor == 1) {
        best = classes[static_cast<size_t>(by) * width + bx];
      } else {
        std::fill(votes.begin(), votes.end(), 0);
        int y1 = std::min(height, (by + 1) * factor), x1 = std::min(width, (bx + 1) * factor);
        for (int y = by * factor; y < y1; ++y)
          for (int x = bx * factor; x < x1; ++x) ++votes[classes[static_cast<size_t>(y) * width + x]];
        int best_votes = -1;
        for (int v = 0; v < 256; ++v)  // ties go to the smaller value: deterministic
          if (votes[v] > best_votes) best_votes = votes[v], best = static_cast<std::uint8_t>(v);
      }
      reduced[static_cast<size_t>(by) * map_w + bx] = best;
    }

  // Legend entries: the classes present in the full-resolution map, in class order, then no data.
  std::vector<LegendEntry> entries;
  for (int v = 0; v < 256; ++v) {
    if (!present[v] || v == nodata) continue;
    const Colour c = colour_of(static_cast<std::uint8_t>(v));
    entries.push_back({{c.r, c.g, c.b},
                       v < static_cast<int>(legend.names.size()) ? legend.names[static_cast<size_t>(v)]
                                                                 : "class " + std::to_string(v)});
  }
  if (present[nodata]) entries.push_back({{kNoData.r, kNoData.g, kNoData.b}, "no data"});

  Image map(map_w, map_h);
  for (int y = 0; y < map_h; ++y)
    for (int x = 0; x < map_w; ++x) {
      Colour c = colour_of(reduced[static_cast<size_t>(y) * map_w + x]);
      map.set(x, y, c.r, c.g, c.b);
    }
  const Image img = side_by_side(map, legend_image(entries), 0);
  write_png(png, img);
}

}  // namespace s2crop::viz
