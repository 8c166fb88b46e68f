// The synthetic TimeSen2Crop writer's choices: which pixels are sampled and which Flag an SCL class becomes.
#include <gtest/gtest.h>

#include <map>

#include "s2crop/synth/fields.hpp"
#include "s2crop/synth/timesen2crop_writer.hpp"

using namespace s2crop::synth;

TEST(SynthTimeSen2Crop, FlagFromScl) {
  const int expected[12] = {1, 1, 0, 2, 0, 0, 0, 0, 1, 1, 1, 3};  // SCL 0..11
  for (int c = 0; c < 12; ++c) EXPECT_EQ(timesen2crop_flag(c), expected[c]) << "SCL " << c;
}

TEST(SynthTimeSen2Crop, PixelsInsideParcelsAwayFromBorders) {
  FieldLayout layout = make_field_layout(96, 12345);
  auto pixels = timesen2crop_pixels(layout, 7);
  ASSERT_FALSE(pixels.empty());
  std::map<int, int> per_class;
  for (const auto& p : pixels) {
    const std::size_t i = static_cast<std::size_t>(p.row) * 96 + p.col;
    const Unit& u = layout.units[static_cast<std::size_t>(layout.unit[i])];
    EXPECT_EQ(u.type, UnitType::Parcel);
    EXPECT_EQ(u.class_id, p.class_id);
    EXPECT_EQ(layout.partner_weight[i], 0.0f);
    EXPECT_GE(p.col, u.x0 + 2);
    EXPECT_LT(p.col, u.x0 + u.width - 2);
    EXPECT_GE(p.row, u.y0 + 2);
    EXPECT_LT(p.row, u.y0 + u.height - 2);
    EXPECT_EQ(p.number, per_class[p.class_id]++);  // files 0, 1, ... per class
  }
  for (const auto& [c, n] : per_class) EXPECT_LE(n, 7) << c;
  EXPECT_GE(per_class.size(), 2u);  // a 96 px tile holds only a few parcels
  auto again = timesen2crop_pixels(make_field_layout(96, 12345), 7);
  ASSERT_EQ(again.size(), pixels.size());
  for (std::size_t k = 0; k < pixels.size(); ++k) EXPECT_EQ(again[k].row * 96 + again[k].col, pixels[k].row * 96 + pixels[k].col);
}
