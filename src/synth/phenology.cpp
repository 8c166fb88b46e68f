#include "s2crop/synth/phenology.hpp"

#include <algorithm>
#include <cmath>

namespace s2crop::synth {

const std::array<const char*, kSynthBands>& synth_band_names() {
  static const std::array<const char*, kSynthBands> names = {"B02", "B03", "B04", "B05", "B06",
                                                              "B07", "B08", "B8A", "B11", "B12"};
  return names;
}
bool synth_band_is_10m(int i) { return i == 0 || i == 1 || i == 2 || i == 6; }

double season_day(const sentinel2::Date& date) {
  int y = date.month >= 9 ? date.year : date.year - 1;
  return static_cast<double>(date.days_since_epoch() - sentinel2::Date{y, 9, 1}.days_since_epoch());
}

namespace {
inline double sig(double x) { return 1.0 / (1.0 + std::exp(-x)); }
inline double bump(double t, double centre, double width) {
  double z = (t - centre) / width;
  return std::exp(-0.5 * z * z);
}

// A crop calendar in season days (0 = 1 September). Cover rises in up to two phases (autumn establishment of
// winter crops, spring/summer growth), turns from green to dry around `senescence`, and is removed at `harvest`.
struct Curve {
  double a1 = 0, s1 = 0, r1 = 8;  // autumn establishment
  double a2 = 0, s2 = 0, r2 = 8;  // main growth
  double sen = 1e9, rs = 8;       // senescence
  double harvest = 1e9;
  double yellow = 0, yellow_t = 0, yellow_w = 8;
  double white = 0, white_t = 0, white_w = 8;
};

Curve class_curve(int c, const FieldParams& p) {
  Curve k;
  switch (c) {
    case 0:  // Legumes (peas, field beans): spring sown, early harvest
      k.a2 = 0.75, k.s2 = 230, k.r2 = 8, k.sen = 293, k.rs = 7, k.harvest = 316;
      k.white = 0.12, k.white_t = 268, k.white_w = 8;
      break;
    case 2:  // Maize: late, green June-September
      k.a2 = 0.92, k.s2 = 287, k.r2 = 9, k.sen = 372, k.rs = 9, k.harvest = 398;
      break;
    case 3:  // Potato: planted April, haulm killing in August
      k.a2 = 0.8, k.s2 = 262, k.r2 = 7, k.sen = 328, k.rs = 6, k.harvest = 372;
      k.white = 0.1, k.white_t = 300, k.white_w = 8;
      break;
    case 4:  // Sunflower: yellow heads in July, brown in August
      k.a2 = 0.72, k.s2 = 270, k.r2 = 9, k.sen = 333, k.rs = 7, k.harvest = 385;
      k.yellow = 0.32, k.yellow_t = 318, k.yellow_w = 7;
      break;
    case 5:  // Soy: late, yellowing in September
      k.a2 = 0.82, k.s2 = 282, k.r2 = 8, k.sen = 358, k.rs = 7, k.harvest = 392;
      break;
    case 6:  // Winter barley: earliest winter cereal
      k.a1 = 0.32, k.s1 = 52, k.r1 = 7, k.a2 = 0.58, k.s2 = 200, k.r2 = 9, k.sen = 283, k.rs = 6, k.harvest = 303;
      break;
    case 7:  // Winter caraway: established the year before, white flowers in June
      k.a1 = 0.45, k.s1 = -40, k.r1 = 10, k.a2 = 0.45, k.s2 = 212, k.r2 = 10, k.sen = 300, k.rs = 7, k.harvest = 318;
      k.white = 0.28, k.white_t = 276, k.white_w = 9;
      break;
    case 8:  // Rye
      k.a1 = 0.38, k.s1 = 50, k.r1 = 7, k.a2 = 0.52, k.s2 = 206, k.r2 = 9, k.sen = 290, k.rs = 8, k.harvest = 314;
      break;
    case 9:  // Rapeseed: strong autumn canopy, yellow flowering late April, harvest early July
      k.a1 = 0.62, k.s1 = 22, k.r1 = 9, k.a2 = 0.33, k.s2 = 196, k.r2 = 8, k.sen = 290, k.rs = 7, k.harvest = 310;
      k.yellow = 0.45, k.yellow_t = 240, k.yellow_w = 9;
      break;
    case 10:  // Beet: slow canopy closure, green until the October harvest
      k.a2 = 0.92, k.s2 = 268, k.r2 = 12, k.sen = 430, k.rs = 10, k.harvest = 400;
      break;
    case 11:  // Spring cereals
      k.a2 = 0.8, k.s2 = 238, k.r2 = 8, k.sen = 305, k.rs = 7, k.harvest = 330;
      break;
    case 12:  // Winter wheat
      k.a1 = 0.28, k.s1 = 65, k.r1 = 7, k.a2 = 0.64, k.s2 = 214, k.r2 = 10, k.sen = 302, k.rs = 7, k.harvest = 327;
      break;
    case 13:  // Winter triticale
      k.a1 = 0.3, k.s1 = 58, k.r1 = 7, k.a2 = 0.6, k.s2 = 210, k.r2 = 10, k.sen = 296, k.rs = 7, k.harvest = 320;
      break;
    case 15:  // Other crops: a random calendar per field
      if (p.other_winter) {
        k.a1 = 0.3 * p.other_amplitude, k.s1 = p.other_start, k.a2 = 0.6 * p.other_amplitude, k.s2 = 215;
        k.sen = 215 + p.other_length, k.harvest = k.sen + 22;
      } else {
        k.a2 = p.other_amplitude, k.s2 = p.other_start, k.sen = p.other_start + p.other_length;
        k.harvest = k.sen + 22;
      }
      break;
    default:
      break;
  }
  return k;
}

// Canopy of a curve on day t (without previous-crop handling).
Canopy curve_canopy(const Curve& k, double t, double rate, double amplitude) {
  Canopy c;
  if (t >= k.harvest) {
    // Stubble, then ploughed: dry residue decays, a little weed regrowth.
    double since = t - k.harvest;
    c.dry = 0.3 * std::exp(-since / 35.0);
    c.green = 0.08 * (1.0 - std::exp(-since / 25.0)) * std::exp(-since / 90.0);
    return c;
  }
  double cover = k.a1 * sig((t - k.s1) / (k.r1 * rate)) + k.a2 * sig((t - k.s2) / (k.r2 * rate));
  cover = std::min(0.97, cover * amplitude);
  double greenness = 1.0 - sig((t - k.sen) / (k.rs * rate));
  c.green = cover * greenness;
  c.dry = cover - c.green;
  if (k.yellow > 0) c.yellow = k.yellow * amplitude * bump(t, k.yellow_t, k.yellow_w);
  if (k.white > 0) c.white = k.white * amplitude * bump(t, k.white_t, k.white_w);
  // Flowers cover part of the canopy.
  double f = c.yellow + c.white;
  c.green = std::max(0.0, c.green - f);
  return c;
}

Canopy grass(double t, const FieldParams& p, bool cuts) {
  Canopy c;
  // Evergreen, dormant in winter (min mid-December), peak in June.
  double seasonal = 0.5 + 0.5 * std::cos(2.0 * M_PI * (t - 285.0) / 365.0);
  c.green = (0.5 + 0.38 * seasonal) * p.amplitude;
  if (cuts) {
    for (int i = 0; i < p.cuts && i < 4; ++i) {
      double cd = p.cut_day[static_cast<size_t>(i)];
      for (double d : {cd, cd - 365.0}) {  // a cut late in the season shows again before its date next year
        if (t >= d && t - d < 60) {
          double since = t - d;
          double drop = 0.65 * std::exp(-since / (13.0 * p.rate));
          c.dry += c.green * 0.8 * drop * std::exp(-since / 5.0);  // hay lying on the field
          c.green *= 1.0 - drop;
        }
      }
    }
  }
  c.green = std::min(c.green, 0.95);
  return c;
}
}  // namespace

Canopy crop_canopy(int class_id, double t_in, const FieldParams& p) {
  double t = t_in - p.shift_days;
  if (class_id == 1) return grass(t, p, true);
  if (class_id == 14) {
    // Permanent plantation (orchards, vineyards): grass between rows plus a leaf-on canopy April-October.
    double leaf = t < 150 ? 1.0 - sig((t - 55.0) / 9.0) : sig((t - 228.0) / (8.0 * p.rate));
    Canopy c;
    c.green = (0.28 + 0.42 * leaf) * p.amplitude;
    c.dry = 0.06 + 0.08 * (1.0 - leaf);
    return c;
  }
  // The previous season's crop is still on the field in September/October until its harvest.
  if (p.previous_class >= 0 && p.previous_class != class_id) {
    Curve prev = class_curve(p.previous_class, p);
    if (t + 365.0 < prev.harvest) return curve_canopy(prev, t + 365.0, p.rate, p.amplitude);
    Curve cur = class_curve(class_id, p);
    Canopy c = curve_canopy(cur, t, p.rate, p.amplitude);
    double since = t + 365.0 - prev.harvest;
    if (since >= 0 && since < 120 && t < cur.s1 + 10 && t < cur.s2) c.dry += 0.3 * std::exp(-since / 35.0);
    return c;
  }
  Curve cur = class_curve(class_id, p);
  if (t + 365.0 < cur.harvest) return curve_canopy(cur, t + 365.0, p.rate, p.amplitude);
  return curve_canopy(cur, t, p.rate, p.amplitude);
}

Canopy landscape_canopy(UnitType type, double t) {
  Canopy c;
  if (type == UnitType::Forest) {
    // Mixed forest: conifers green all year, broadleaves April to October.
    double leaf = t < 150 ? 1.0 - sig((t - 60.0) / 8.0) : sig((t - 235.0) / 7.0);
    c.green = 0.62 + 0.3 * leaf;
    c.dry = 0.05;
  } else if (type == UnitType::Margin) {
    FieldParams p;
    c = grass(t, p, false);
    c.green *= 0.85;
    c.dry += 0.08;
  }
  return c;
}

const Spectrum& soil_spectrum() {
  static const Spectrum s = {0.075f, 0.105f, 0.135f, 0.165f, 0.185f, 0.2f, 0.215f, 0.225f, 0.31f, 0.255f};
  return s;
}
const Spectrum& dry_vegetation_spectrum() {
  static const Spectrum s = {0.085f, 0.125f, 0.165f, 0.21f, 0.25f, 0.28f, 0.3f, 0.31f, 0.38f, 0.28f};
  return s;
}
const Spectrum& yellow_flower_spectrum() {
  static const Spectrum s = {0.045f, 0.16f, 0.15f, 0.23f, 0.33f, 0.4f, 0.42f, 0.43f, 0.24f, 0.12f};
  return s;
}
const Spectrum& white_flower_spectrum() {
  static const Spectrum s = {0.2f, 0.24f, 0.25f, 0.3f, 0.38f, 0.42f, 0.44f, 0.45f, 0.25f, 0.13f};
  return s;
}
const Spectrum& water_spectrum() {
  static const Spectrum s = {0.05f, 0.06f, 0.04f, 0.03f, 0.02f, 0.018f, 0.015f, 0.012f, 0.008f, 0.005f};
  return s;
}
const Spectrum& road_spectrum() {
  static const Spectrum s = {0.1f, 0.12f, 0.14f, 0.155f, 0.165f, 0.175f, 0.185f, 0.19f, 0.24f, 0.22f};
  return s;
}
const Spectrum& built_spectrum() {
  static const Spectrum s = {0.11f, 0.125f, 0.14f, 0.16f, 0.18f, 0.195f, 0.21f, 0.215f, 0.26f, 0.23f};
  return s;
}
const Spectrum& cloud_spectrum() {
  static const Spectrum s = {0.62f, 0.61f, 0.62f, 0.63f, 0.64f, 0.64f, 0.65f, 0.65f, 0.45f, 0.32f};
  return s;
}
const Spectrum& cirrus_spectrum() {
  static const Spectrum s = {0.5f, 0.48f, 0.46f, 0.45f, 0.44f, 0.43f, 0.42f, 0.42f, 0.35f, 0.28f};
  return s;
}

Spectrum green_spectrum(int class_id) {
  static const Spectrum base = {0.03f, 0.075f, 0.032f, 0.115f, 0.32f, 0.42f, 0.45f, 0.46f, 0.2f, 0.09f};
  // Per class: (visible, NIR plateau, SWIR) factors: leaf structure, pigments and water differ between crops.
  static const float f[16][3] = {
      {1.0f, 1.05f, 1.0f},  {1.05f, 0.95f, 1.06f}, {0.9f, 1.0f, 0.94f},  {1.0f, 1.1f, 1.0f},
      {1.06f, 1.04f, 0.95f}, {1.0f, 1.08f, 0.97f}, {1.1f, 0.92f, 1.06f}, {1.0f, 1.0f, 1.03f},
      {0.95f, 1.05f, 1.0f}, {1.15f, 1.02f, 0.94f}, {0.94f, 1.12f, 0.94f}, {1.05f, 0.95f, 1.03f},
      {1.0f, 1.0f, 1.0f},   {0.97f, 0.98f, 1.05f}, {1.0f, 0.88f, 1.0f},  {1.0f, 1.0f, 1.0f}};
  Spectrum s = base;
  if (class_id < 0 || class_id > 15) return s;
  const float* k = f[class_id];
  for (int b = 0; b < kSynthBands; ++b) {
    float m = b <= 3 ? k[0] : (b <= 7 ? k[1] : k[2]);
    if (b == 3) m = 0.5f * (k[0] + k[1]);  // B05 on the red edge
    s[static_cast<size_t>(b)] *= m;
  }
  return s;
}

Spectrum mix(const Canopy& c, const Spectrum& green, double soil_factor) {
  double veg = c.green + c.dry + c.yellow + c.white;
  double soil = std::max(0.0, 1.0 - veg);
  const Spectrum& so = soil_spectrum();
  const Spectrum& dr = dry_vegetation_spectrum();
  const Spectrum& ye = yellow_flower_spectrum();
  const Spectrum& wh = white_flower_spectrum();
  Spectrum out;
  for (size_t b = 0; b < out.size(); ++b)
    out[b] = static_cast<float>(soil * so[b] * soil_factor + c.green * green[b] + c.dry * dr[b] + c.yellow * ye[b] +
                                c.white * wh[b]);
  return out;
}

}  // namespace s2crop::synth
