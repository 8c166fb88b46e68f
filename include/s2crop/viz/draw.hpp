#pragma once
// Drawing on quicklook Images: filled rectangles and text in a built-in 5x7 bitmap font (printable ASCII), enough
// to label charts and legends without a font library.
#include <cstdint>
#include <string>

#include "s2crop/viz/quicklook.hpp"

namespace s2crop::viz {

struct Colour {
  std::uint8_t r = 0, g = 0, b = 0;
};

// Glyph cell of the font at scale 1 (5 px glyph + 1 px spacing, 7 px + 1 px descender).
inline constexpr int kGlyphWidth = 6;
inline constexpr int kGlyphHeight = 8;

void fill_rect(Image& image, int x, int y, int width, int height, Colour colour);  // clipped to the image
void draw_rect_outline(Image& image, int x, int y, int width, int height, Colour colour);
int text_width(const std::string& text, int scale = 1);
// Draws `text` with its top-left corner at (x, y); characters outside printable ASCII show as '?'. With `upward`
// the text runs bottom to top (rotated 90 degrees counter-clockwise) from (x, y) as its bottom-left corner.
void draw_text(Image& image, int x, int y, const std::string& text, Colour colour, int scale = 1, bool upward = false);

}  // namespace s2crop::viz
