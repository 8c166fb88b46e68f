#include "s2crop/samples/ndvi_series.hpp"

#include <algorithm>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"

namespace s2crop::samples {

namespace {
int band_index(const std::vector<std::string>& bands, const std::string& name) {
  auto it = std::find(bands.begin(), bands.end(), name);
  return it == bands.end() ? -1 : static_cast<int>(it - bands.begin());
}
}  // namespace

std::vector<float> ndvi_series(const std::vector<std::int16_t>& x, const TrainingSetHeader& header,
                               const std::string& source) {
  const int red = band_index(header.bands, "B04");
  int nir = band_index(header.bands, "B08");
  if (nir < 0) nir = band_index(header.bands, "B8A");
  if (red < 0 || nir < 0) throw ConfigError(source + " lacks B04 or B08/B8A: no NDVI can be computed");
  const size_t nb = header.bands.size(), n = x.size() / (nb * kSeasonMonths);
  std::vector<float> out(n * kSeasonMonths);
  for (size_t i = 0; i < n * kSeasonMonths; ++i) out[i] = ndvi_of(x[i * nb + red], x[i * nb + nir]);
  return out;
}

std::uint64_t ndvi_hash(std::uint64_t seed, std::uint64_t sample, std::uint64_t month, std::uint64_t step) {
  return hash::mix64(hash::mix64(hash::mix64(hash::mix64(seed) ^ sample) ^ (month + 0x51ULL)) ^ step);
}

std::vector<std::uint8_t> gapfill_hidden(const std::uint8_t* clear, std::uint64_t seed, std::uint64_t sample,
                                         std::uint64_t step, double p) {
  std::vector<std::uint8_t> hidden(kSeasonMonths, 0);
  int observed = 0, n_hidden = 0;
  for (int m = 0; m < kSeasonMonths; ++m) observed += clear[m] != 0;
  if (observed < 2) return hidden;
  std::uint64_t best = ~0ULL, keep_best = ~0ULL;
  int forced = -1, kept = -1;
  for (int m = 0; m < kSeasonMonths; ++m) {
    if (!clear[m]) continue;
    const std::uint64_t h = ndvi_hash(seed, sample, static_cast<std::uint64_t>(m), step);
    if (static_cast<double>(h >> 11) * 0x1.0p-53 < p) {
      hidden[m] = 1;
      ++n_hidden;
    }
    if (h < best) best = h, forced = m;
    const std::uint64_t k = hash::mix64(h);
    if (k < keep_best) keep_best = k, kept = m;
  }
  if (n_hidden == 0) hidden[forced] = 1, n_hidden = 1;
  if (n_hidden == observed) {  // keep one visible: the one with the smallest second hash (not the forced one)
    if (kept == forced) {
      for (int m = 0; m < kSeasonMonths; ++m)
        if (clear[m] && m != forced) {
          kept = m;
          break;
        }
    }
    hidden[kept] = 0;
  }
  return hidden;
}

float persistence(const float* ndvi, const std::uint8_t* visible, int m) {
  for (int k = std::min(m, kSeasonMonths - 1); k >= 0; --k)
    if (visible[k]) return ndvi[k];
  return kNoNdvi;
}

float linear_fill(const float* ndvi, const std::uint8_t* visible, int m) {
  int before = -1, after = -1;
  for (int k = m; k >= 0; --k)
    if (visible[k]) {
      before = k;
      break;
    }
  for (int k = m; k < kSeasonMonths; ++k)
    if (visible[k]) {
      after = k;
      break;
    }
  if (before < 0 && after < 0) return kNoNdvi;
  if (before < 0) return ndvi[after];
  if (after < 0 || after == before) return ndvi[before];
  const float w = static_cast<float>(m - before) / static_cast<float>(after - before);
  return ndvi[before] + w * (ndvi[after] - ndvi[before]);
}

Climatology climatology(const std::vector<float>& ndvi, const std::vector<std::uint8_t>& clear,
                        const std::vector<std::uint8_t>& y, const std::vector<std::uint32_t>& samples, int classes) {
  Climatology c;
  c.classes = classes;
  std::vector<double> sum(static_cast<size_t>(classes + 1) * kSeasonMonths, 0.0), count(sum.size(), 0.0);
  for (auto i : samples)
    for (int m = 0; m < kSeasonMonths; ++m) {
      const size_t k = static_cast<size_t>(i) * kSeasonMonths + m;
      if (!clear[k]) continue;
      for (size_t row : {static_cast<size_t>(y[i]), static_cast<size_t>(classes)}) {
        sum[row * kSeasonMonths + m] += ndvi[k];
        count[row * kSeasonMonths + m] += 1;
      }
    }
  // A row's months without observations: linear interpolation in time between its observed months (ends hold the
  // nearest); a class without any observation takes the all-class row.
  const size_t rows = static_cast<size_t>(classes) + 1;
  std::vector<float> filled(rows * kSeasonMonths, kNoNdvi);
  std::vector<std::uint8_t> any(rows, 0);
  for (size_t r = 0; r < rows; ++r) {
    float v[kSeasonMonths];
    std::uint8_t seen[kSeasonMonths];
    for (int m = 0; m < kSeasonMonths; ++m) {
      seen[m] = count[r * kSeasonMonths + m] > 0;
      v[m] = seen[m] ? static_cast<float>(sum[r * kSeasonMonths + m] / count[r * kSeasonMonths + m]) : 0.f;
      any[r] = any[r] || seen[m];
    }
    for (int m = 0; m < kSeasonMonths; ++m) filled[r * kSeasonMonths + m] = any[r] ? linear_fill(v, seen, m) : 0.f;
  }
  c.mean.assign(static_cast<size_t>(classes) * kSeasonMonths, 0.0);
  for (int cls = 0; cls < classes; ++cls)
    for (int m = 0; m < kSeasonMonths; ++m)
      c.mean[static_cast<size_t>(cls) * kSeasonMonths + m] =
          filled[(any[static_cast<size_t>(cls)] ? static_cast<size_t>(cls) : rows - 1) * kSeasonMonths + m];
  return c;
}

}  // namespace s2crop::samples
