#include "s2crop/synth/fields.hpp"

#include <algorithm>
#include <cmath>

#include "s2crop/common/crop_classes.hpp"
#include "s2crop/synth/random.hpp"

namespace s2crop::synth {

const std::array<double, 16>& class_frequencies() {
  // Roughly TimeSen2Crop's imbalance: grassland, maize and winter wheat common, winter caraway rare.
  static const std::array<double, 16> f = [] {
    std::array<double, 16> w = {3.5, 24.0, 15.0, 3.0, 3.0, 5.0, 8.0, 0.5, 3.0, 4.5, 3.0, 5.5, 12.0, 4.0, 3.0, 3.0};
    double s = 0;
    for (double v : w) s += v;
    for (double& v : w) v /= s;
    return w;
  }();
  return f;
}

int FieldLayout::parcel_count() const {
  int n = 0;
  for (auto& u : units) n += u.type == UnitType::Parcel;
  return n;
}

std::vector<std::uint8_t> FieldLayout::class_raster() const {
  std::vector<std::uint8_t> out(unit.size(), kNoCropLabel);
  for (size_t i = 0; i < unit.size(); ++i) {
    const Unit& u = units[static_cast<size_t>(unit[i])];
    if (u.type == UnitType::Parcel) out[i] = static_cast<std::uint8_t>(u.class_id);
  }
  return out;
}

std::vector<std::uint32_t> FieldLayout::parcel_raster() const {
  std::vector<std::uint32_t> out(unit.size(), 0);
  for (size_t i = 0; i < unit.size(); ++i) out[i] = static_cast<std::uint32_t>(units[static_cast<size_t>(unit[i])].parcel_id);
  return out;
}

namespace {

struct Rect {
  int x0, y0, w, h;
};

constexpr int kMinField = 15;
constexpr int kMaxField = 80;

void subdivide(const Rect& r, Rng& rng, std::vector<Rect>& leaves) {
  int limit = static_cast<int>(rng.uniform(40, kMaxField));
  bool small = r.w <= limit && r.h <= limit;
  bool can_split_x = r.w >= 2 * kMinField, can_split_y = r.h >= 2 * kMinField;
  if ((!can_split_x && !can_split_y) || (small && rng.chance(0.75))) {
    leaves.push_back(r);
    return;
  }
  bool split_x;
  if (can_split_x && can_split_y) {
    // Prefer cutting across the long side: strip-shaped fields stay, squares get cut.
    double px = static_cast<double>(r.w) / (r.w + r.h);
    split_x = rng.chance(0.15 + 0.7 * px);
  } else {
    split_x = can_split_x;
  }
  int len = split_x ? r.w : r.h;
  int cut = static_cast<int>(std::lround(len * rng.uniform(0.3, 0.7)));
  cut = std::clamp(cut, kMinField, len - kMinField);
  if (split_x) {
    subdivide({r.x0, r.y0, cut, r.h}, rng, leaves);
    subdivide({r.x0 + cut, r.y0, r.w - cut, r.h}, rng, leaves);
  } else {
    subdivide({r.x0, r.y0, r.w, cut}, rng, leaves);
    subdivide({r.x0, r.y0 + cut, r.w, r.h - cut}, rng, leaves);
  }
}

std::vector<int> road_positions(int size, Rng& rng) {
  std::vector<int> pos;
  int p = static_cast<int>(rng.uniform(60, 300));
  while (p < size - 30) {
    pos.push_back(p);
    p += static_cast<int>(rng.uniform(150, 380));
  }
  return pos;
}

int draw_class(Rng& rng) {
  double u = rng.uniform(), acc = 0;
  const auto& f = class_frequencies();
  for (int c = 0; c < 16; ++c) {
    acc += f[static_cast<size_t>(c)];
    if (u < acc) return c;
  }
  return 15;
}

FieldParams draw_params(int class_id, Rng& rng) {
  FieldParams p;
  p.shift_days = 6.0 * rng.normal();
  p.rate = rng.uniform(0.8, 1.25);
  p.amplitude = rng.uniform(0.82, 1.05);
  p.soil_brightness = rng.uniform(0.75, 1.3);
  // Previous season's crop (rotation): only arable classes; permanent ones keep their own.
  static const int arable[] = {2, 2, 2, 12, 12, 6, 11, 10, 3, 4, 5, 9, 0, 15, 8, 13};
  if (class_id == 1 || class_id == 14 || class_id == 7)
    p.previous_class = class_id;
  else
    p.previous_class = arable[rng.index(16)];
  if (class_id == 1) {
    // Grassland: 2-4 cuts between mid-May and late September (season days 255 .. 390).
    p.cuts = 2 + rng.index(3);
    static const double base[4] = {255, 300, 345, 25 + 365};
    for (int i = 0; i < 4; ++i) p.cut_day[static_cast<size_t>(i)] = base[i] + 8.0 * rng.normal();
    if (p.cuts == 2) p.cut_day = {262 + 8.0 * rng.normal(), 330 + 8.0 * rng.normal(), 1e9, 1e9};
    if (p.cuts == 3) p.cut_day[3] = 1e9;
  }
  p.other_winter = rng.chance(0.3);
  p.other_start = p.other_winter ? rng.uniform(40, 80) : rng.uniform(200, 300);
  p.other_length = rng.uniform(50, 120);
  p.other_amplitude = rng.uniform(0.45, 0.9);
  return p;
}

}  // namespace

FieldLayout make_field_layout(int size, std::uint64_t tile_seed) {
  Rng rng(hash_combine(tile_seed, 0x6669656c6473ULL));  // "fields"
  FieldLayout L;
  L.size = size;
  size_t n = static_cast<size_t>(size) * static_cast<size_t>(size);
  L.units.resize(3);
  L.units[0].type = UnitType::Road;
  L.units[1].type = UnitType::Margin;
  L.units[2].type = UnitType::Built;
  L.unit.assign(n, 1);

  // Road grid: roads 1-2 px wide cut the tile into blocks.
  auto rx = road_positions(size, rng), ry = road_positions(size, rng);
  std::vector<int> xs = {0}, ys = {0};
  std::vector<int> xe, ye;
  for (int p : rx) {
    int w = 1 + rng.index(2);
    for (int y = 0; y < size; ++y)
      for (int x = p; x < std::min(size, p + w); ++x) L.unit[static_cast<size_t>(y) * size + x] = 0;
    xe.push_back(p);
    xs.push_back(p + w);
  }
  xe.push_back(size);
  for (int p : ry) {
    int w = 1 + rng.index(2);
    for (int y = p; y < std::min(size, p + w); ++y)
      for (int x = 0; x < size; ++x) L.unit[static_cast<size_t>(y) * size + x] = 0;
    ye.push_back(p);
    ys.push_back(p + w);
  }
  ye.push_back(size);

  int next_parcel = 1;
  for (size_t by = 0; by < ys.size(); ++by) {
    for (size_t bx = 0; bx < xs.size(); ++bx) {
      Rect block{xs[bx], ys[by], xe[bx] - xs[bx], ye[by] - ys[by]};
      if (block.w <= 0 || block.h <= 0) continue;
      std::vector<Rect> leaves;
      subdivide(block, rng, leaves);
      for (const Rect& r : leaves) {
        // A 1 px margin (path, hedge, grass strip) along the bottom or right edge of some fields.
        Rect f = r;
        double m = rng.uniform();
        if (m < 0.3 && f.h > kMinField) f.h -= 1;
        else if (m < 0.55 && f.w > kMinField) f.w -= 1;
        double kind = rng.uniform();
        Unit u;
        if (kind < 0.055) {
          u.type = UnitType::Forest;
        } else if (kind < 0.075) {
          u.type = UnitType::Built;
        } else if (kind < 0.087) {
          u.type = UnitType::Water;
        } else {
          u.type = UnitType::Parcel;
          u.class_id = draw_class(rng);
          u.params = draw_params(u.class_id, rng);
        }
        int idx;
        if (u.type == UnitType::Built) {
          idx = 2;
        } else {
          if (u.type == UnitType::Parcel) {
            u.parcel_id = next_parcel++;
            u.x0 = f.x0, u.y0 = f.y0, u.width = f.w, u.height = f.h;
          }
          idx = static_cast<int>(L.units.size());
          L.units.push_back(u);
        }
        double cx = f.x0 + f.w / 2.0, cy = f.y0 + f.h / 2.0;
        for (int y = f.y0; y < f.y0 + f.h; ++y)
          for (int x = f.x0; x < f.x0 + f.w; ++x) {
            if (u.type == UnitType::Water) {
              // An elliptic pond inside the cell, grass around it.
              double dx = (x + 0.5 - cx) / (f.w / 2.0), dy = (y + 0.5 - cy) / (f.h / 2.0);
              if (dx * dx + dy * dy > 0.8) continue;
            }
            L.unit[static_cast<size_t>(y) * size + x] = idx;
          }
      }
    }
  }

  // Static within-field variation (soil patches, vigour) and border mixing with the neighbour.
  L.heterogeneity.resize(n);
  L.partner.assign(n, -1);
  L.partner_weight.assign(n, 0.0f);
  std::uint64_t hseed = hash_combine(tile_seed, 0x686574ULL);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      size_t i = static_cast<size_t>(y) * size + x;
      double smooth = 2.0 * fbm(x, y, 24.0, 3, hseed) - 1.0;
      double white = 2.0 * hash_uniform(hseed ^ (i * 0x9e3779b97f4a7c15ULL)) - 1.0;
      L.heterogeneity[i] = static_cast<float>(std::clamp(1.3 * smooth + 0.35 * white, -1.0, 1.0));
      std::int32_t u = L.unit[i];
      std::int32_t nb = -1;
      if (x + 1 < size && L.unit[i + 1] != u) nb = L.unit[i + 1];
      else if (y + 1 < size && L.unit[i + size] != u) nb = L.unit[i + size];
      else if (x > 0 && L.unit[i - 1] != u) nb = L.unit[i - 1];
      else if (y > 0 && L.unit[i - size] != u) nb = L.unit[i - size];
      if (nb >= 0) {
        L.partner[i] = nb;
        L.partner_weight[i] = static_cast<float>(0.15 + 0.3 * hash_uniform(hseed ^ (i * 0xc2b2ae3d27d4eb4fULL)));
      }
    }
  }
  return L;
}

}  // namespace s2crop::synth
