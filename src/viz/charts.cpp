#include "s2crop/viz/charts.hpp"

#include <algorithm>
#include <cstdio>

#include "s2crop/common/errors.hpp"
#include "s2crop/viz/draw.hpp"
#include "s2crop/viz/quicklook.hpp"

namespace s2crop::viz {

namespace {
constexpr Colour kInk{20, 20, 20};
constexpr Colour kGrid{200, 200, 200};

// White (0) to dark blue (1): a sequential ramp that prints well in grey too.
Colour shade(double t) {
  t = std::clamp(t, 0.0, 1.0);
  auto mix = [t](int a, int b) { return static_cast<std::uint8_t>(a + (b - a) * t + 0.5); };
  return {mix(247, 8), mix(251, 48), mix(255, 107)};
}
}  // namespace

std::string compact_count(std::int64_t count) {
  char buf[32];
  if (count < 10000)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(count));
  else if (count < 1000000)
    std::snprintf(buf, sizeof buf, "%.*fk", count < 100000 ? 1 : 0, count / 1e3);
  else if (count < 1000000000)
    std::snprintf(buf, sizeof buf, "%.*fM", count < 100000000 ? 2 : 0, count / 1e6);
  else
    std::snprintf(buf, sizeof buf, "%.2fG", count / 1e9);
  return buf;
}

void write_confusion_png(const std::string& path, const std::vector<std::int64_t>& counts,
                         const std::vector<std::string>& names, const std::string& title) {
  const size_t C = names.size();
  if (C == 0 || counts.size() != C * C)
    throw OutputError(path, "confusion matrix has " + std::to_string(counts.size()) + " cells for " +
                                std::to_string(C) + " class names");
  auto at = [&](size_t i, size_t j) { return counts[i * C + j]; };
  std::vector<size_t> shown;
  std::vector<std::int64_t> row_total(C, 0);
  for (size_t k = 0; k < C; ++k) {
    std::int64_t col = 0;
    for (size_t o = 0; o < C; ++o) {
      row_total[k] += at(k, o);
      col += at(o, k);
    }
    if (row_total[k] > 0 || col > 0) shown.push_back(k);
  }
  if (shown.empty()) shown.push_back(0);  // an empty matrix still gets a readable (empty) figure

  const int scale = 2;
  const int n = static_cast<int>(shown.size());
  int label_width = 0, count_width = text_width("0", scale);
  for (size_t k : shown) {
    label_width = std::max(label_width, text_width(names[k], scale));
    for (size_t o : shown) count_width = std::max(count_width, text_width(compact_count(at(k, o)), scale));
  }
  const int pad = 8;
  const std::string column_caption = "reference (columns)", row_caption = "map (rows)";
  const std::string heading = title.empty() ? "Confusion matrix" : title;
  label_width = std::max(label_width, text_width(row_caption, scale));
  const int cell_w = count_width + 2 * pad, cell_h = kGlyphHeight * scale + 2 * pad;
  const int margin = 16;
  const int line_h = kGlyphHeight * scale + margin;
  const int left = margin + label_width + pad;
  const int top = margin + 2 * line_h + label_width + pad;
  // Wide enough for the grid and for the captions when there are only one or two classes.
  const int width = std::max({left + n * cell_w, left + text_width(column_caption, scale),
                              margin + text_width(heading, scale)}) + margin;
  const int height = top + n * cell_h + margin;
  Image img(width, height);
  fill_rect(img, 0, 0, width, height, {255, 255, 255});

  draw_text(img, margin, margin, heading, kInk, scale);
  draw_text(img, left, margin + line_h, column_caption, kInk, scale);
  draw_text(img, left - pad - text_width(row_caption, scale), top - pad - kGlyphHeight * scale, row_caption, kInk,
            scale);

  for (int c = 0; c < n; ++c) {
    const std::string& name = names[shown[static_cast<size_t>(c)]];
    // Column names run upwards, ending just above their column.
    draw_text(img, left + c * cell_w + (cell_w - kGlyphHeight * scale) / 2, top - pad, name, kInk, scale, true);
    draw_text(img, left - pad - text_width(name, scale), top + c * cell_h + pad, name, kInk, scale);
  }
  for (int r = 0; r < n; ++r) {
    size_t i = shown[static_cast<size_t>(r)];
    for (int c = 0; c < n; ++c) {
      size_t j = shown[static_cast<size_t>(c)];
      double share = row_total[i] > 0 ? static_cast<double>(at(i, j)) / static_cast<double>(row_total[i]) : 0.0;
      int x = left + c * cell_w, y = top + r * cell_h;
      fill_rect(img, x, y, cell_w, cell_h, shade(share));
      draw_rect_outline(img, x, y, cell_w + 1, cell_h + 1, kGrid);
      std::string text = compact_count(at(i, j));
      Colour ink = share > 0.5 ? Colour{255, 255, 255} : kInk;
      draw_text(img, x + (cell_w - text_width(text, scale)) / 2, y + pad, text, ink, scale);
    }
    // The diagonal cell framed in black: where agreement sits.
    draw_rect_outline(img, left + r * cell_w, top + r * cell_h, cell_w + 1, cell_h + 1, kInk);
  }
  write_png(path, img);
}

}  // namespace s2crop::viz
