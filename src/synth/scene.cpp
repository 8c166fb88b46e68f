#include "s2crop/synth/scene.hpp"

#include <algorithm>
#include <cmath>

#include "s2crop/synth/random.hpp"

namespace s2crop::synth {

namespace {

// Per-unit spectra for one date: the mean and the derivative along the pixel's heterogeneity value.
struct UnitSpectra {
  Spectrum mean;
  Spectrum slope;
  bool water = false;
};

UnitSpectra unit_spectra(const Unit& u, double t, double moisture) {
  UnitSpectra s{};
  const Spectrum& soil = soil_spectrum();
  switch (u.type) {
    case UnitType::Road:
      s.mean = road_spectrum();
      for (size_t b = 0; b < s.slope.size(); ++b) s.slope[b] = 0.08f * s.mean[b];
      return s;
    case UnitType::Built: {
      // Roofs, streets and gardens: strong texture.
      Canopy c;
      c.green = 0.2;
      Spectrum g = green_spectrum(-1);
      for (size_t b = 0; b < s.mean.size(); ++b) {
        s.mean[b] = static_cast<float>(0.8 * built_spectrum()[b] + c.green * g[b]);
        s.slope[b] = 0.3f * s.mean[b];
      }
      return s;
    }
    case UnitType::Water:
      s.mean = water_spectrum();
      for (size_t b = 0; b < s.slope.size(); ++b) s.slope[b] = 0.1f * s.mean[b];
      s.water = true;
      return s;
    case UnitType::Forest:
    case UnitType::Margin: {
      Canopy c = landscape_canopy(u.type, t);
      Spectrum g = green_spectrum(-1);
      if (u.type == UnitType::Forest) {
        // Darker visible and SWIR, lower NIR than crops (shade in the canopy).
        for (size_t b = 0; b < g.size(); ++b) g[b] *= (b <= 2 ? 0.7f : (b >= 8 ? 0.7f : 0.72f));
      }
      s.mean = mix(c, g, moisture);
      for (size_t b = 0; b < s.slope.size(); ++b) s.slope[b] = static_cast<float>(0.15 * c.green * (g[b] - soil[b]));
      return s;
    }
    case UnitType::Parcel: {
      Canopy c = crop_canopy(u.class_id, t, u.params);
      Spectrum g = green_spectrum(u.class_id);
      double soil_factor = u.params.soil_brightness * moisture * (u.class_id == 3 ? 1.1 : 1.0);
      s.mean = mix(c, g, soil_factor);
      // Heterogeneity: +-22 % green cover (vigour) and +-10 % soil brightness inside a field.
      double bare = std::max(0.0, 1.0 - c.green - c.dry - c.yellow - c.white);
      for (size_t b = 0; b < s.slope.size(); ++b)
        s.slope[b] = static_cast<float>(0.22 * c.green * (g[b] - soil[b] * soil_factor) +
                                        0.1 * bare * soil[b] * soil_factor);
      return s;
    }
  }
  return s;
}

inline std::uint16_t to_dn(float reflectance, int offset) {
  // DN = reflectance * 10000 - offset, real data strictly > 0.
  long v = std::lround(static_cast<double>(reflectance) * 10000.0) - offset;
  return static_cast<std::uint16_t>(std::clamp(v, 1L, 65535L));
}

}  // namespace

Scene render_scene(const TileSpec& tile, const FieldLayout& L, const Acquisition& acq) {
  const int n10 = L.size, n20 = L.size / 2;
  Scene sc;
  sc.size10 = n10;
  sc.size20 = n20;
  sc.boa_offset = acq.boa_offset();
  const int offset = sc.boa_offset;
  const double t = season_day(acq.date);
  (void)tile;

  Rng rng(hash_combine(acq.seed, 0x7363656e65ULL));
  // Soil moisture of the date: wetter (darker) soils in winter, random rain events.
  double winter = 0.5 + 0.5 * std::cos(2.0 * M_PI * (t - 135.0) / 365.0);
  double moisture = (1.0 - 0.12 * winter) * rng.uniform(0.9, 1.06);

  std::vector<UnitSpectra> spectra(L.units.size());
  for (size_t u = 0; u < L.units.size(); ++u) spectra[u] = unit_spectra(L.units[u], t, moisture);

  CloudField clouds = make_clouds(n10, acq.cloud_target, acq.cirrus, acq.seed);

  // No-data wedge at the swath edge on a few acquisitions (defined on the 20 m grid so all bands agree).
  int wedge_side = rng.index(2);
  double wedge_top = rng.uniform(0.15, 0.45) * n20;
  auto nodata20 = [&](int x20, int y20) {
    if (!acq.nodata_wedge) return false;
    double limit = wedge_top * (1.0 - static_cast<double>(y20) / n20);
    return wedge_side == 0 ? x20 < limit : (n20 - 1 - x20) < limit;
  };

  for (int b = 0; b < kSynthBands; ++b) {
    size_t cnt = synth_band_is_10m(b) ? static_cast<size_t>(n10) * n10 : static_cast<size_t>(n20) * n20;
    sc.dn[static_cast<size_t>(b)].assign(cnt, 0);
  }
  // Accumulators of the 20 m bands (and B04 for the SCL's vegetation test), sum of four 10 m pixels.
  static const int k20[6] = {3, 4, 5, 7, 8, 9};
  std::vector<float> acc(static_cast<size_t>(n20) * n20 * 7, 0.0f);
  std::vector<float> cloud20(static_cast<size_t>(n20) * n20, 0.0f);

  const Spectrum& cs = cloud_spectrum();
  const Spectrum& cis = cirrus_spectrum();
  Rng noise(hash_combine(acq.seed, 0x6e6f697365ULL));
  float r[kSynthBands];
  for (int y = 0; y < n10; ++y) {
    const int y20 = y / 2;
    for (int x = 0; x < n10; ++x) {
      const size_t i = static_cast<size_t>(y) * n10 + x;
      const int x20 = x / 2;
      const size_t i20 = static_cast<size_t>(y20) * n20 + x20;
      if (nodata20(x20, y20)) continue;  // DN stays 0
      const UnitSpectra& us = spectra[static_cast<size_t>(L.unit[i])];
      const float h = L.heterogeneity[i];
      for (int b = 0; b < kSynthBands; ++b) r[b] = us.mean[static_cast<size_t>(b)] + h * us.slope[static_cast<size_t>(b)];
      const float w = L.partner_weight[i];
      if (w > 0) {
        const UnitSpectra& ps = spectra[static_cast<size_t>(L.partner[i])];
        for (int b = 0; b < kSynthBands; ++b)
          r[b] = (1 - w) * r[b] + w * (ps.mean[static_cast<size_t>(b)] + h * ps.slope[static_cast<size_t>(b)]);
      }
      // Sensor and atmospheric-correction noise: additive + relative.
      for (int b = 0; b < kSynthBands; ++b) r[b] += static_cast<float>(noise.normal()) * (0.004f + 0.025f * r[b]);
      float c, s, ci;
      clouds.sample10(x, y, c, s, ci);
      if (s > 0) {
        float dark = 1.0f - s * (1.0f - c);
        for (int b = 0; b < kSynthBands; ++b) r[b] *= dark;
      }
      if (ci > 0)
        for (int b = 0; b < kSynthBands; ++b) r[b] = r[b] * (1 - ci) + ci * cis[static_cast<size_t>(b)];
      if (c > 0)
        for (int b = 0; b < kSynthBands; ++b) r[b] = r[b] * (1 - c) + c * cs[static_cast<size_t>(b)];
      for (int b : {0, 1, 2, 6}) sc.dn[static_cast<size_t>(b)][i] = to_dn(r[b], offset);
      float* a = &acc[i20 * 7];
      for (int k = 0; k < 6; ++k) a[k] += r[k20[k]];
      a[6] += r[2];
    }
  }

  // 20 m bands and SCL.
  long valid = 0, cloudy = 0, nodata = 0;
  sc.scl.assign(static_cast<size_t>(n20) * n20, 0);
  Rng scl_rng(hash_combine(acq.seed, 0x73636cULL));
  for (int y = 0; y < n20; ++y) {
    for (int x = 0; x < n20; ++x) {
      const size_t i20 = static_cast<size_t>(y) * n20 + x;
      double u = scl_rng.uniform();
      if (nodata20(x, y)) {
        ++nodata;
        continue;  // DN 0, SCL 0
      }
      float* a = &acc[i20 * 7];
      for (int k = 0; k < 6; ++k) sc.dn[static_cast<size_t>(k20[k])][i20] = to_dn(0.25f * a[k], offset);
      float red = 0.25f * a[6], nir = 0.25f * a[3];  // B04, B8A
      const size_t c10 = static_cast<size_t>(2 * y) * n10 + 2 * x;
      bool water = spectra[static_cast<size_t>(L.unit[c10])].water && spectra[static_cast<size_t>(L.unit[c10 + 1])].water;
      float c = 0, s = 0, ci = 0;
      if (!clouds.empty) {
        c = clouds.cloud[i20];
        s = clouds.shadow[i20];
        ci = clouds.cirrus[i20];
      }
      std::uint8_t cls;
      if (c >= CloudField::kHighThreshold) cls = sentinel2::scl::CloudHigh;
      else if (c >= CloudField::kMediumThreshold) cls = sentinel2::scl::CloudMedium;
      else if (ci >= CloudField::kCirrusThreshold) cls = sentinel2::scl::ThinCirrus;
      else if (s * (1 - c) >= CloudField::kShadowThreshold) cls = sentinel2::scl::CloudShadow;
      else if (water) cls = sentinel2::scl::Water;
      else if (u < 0.002) cls = sentinel2::scl::Unclassified;
      else {
        float ndvi = (nir - red) / std::max(1e-6f, nir + red);
        cls = ndvi > 0.4f ? sentinel2::scl::Vegetation : sentinel2::scl::NotVegetated;
      }
      sc.scl[i20] = cls;
      ++valid;
      if (cls == sentinel2::scl::CloudHigh || cls == sentinel2::scl::CloudMedium || cls == sentinel2::scl::ThinCirrus)
        ++cloudy;
    }
  }
  sc.cloud_cover_percent = valid > 0 ? std::round(10000.0 * cloudy / valid) / 100.0 : 100.0;
  sc.nodata_percent = std::round(10000.0 * nodata / (static_cast<double>(n20) * n20)) / 100.0;
  return sc;
}

}  // namespace s2crop::synth
