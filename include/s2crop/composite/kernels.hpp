#pragma once
// Monthly compositing kernels: pure functions on arrays, no I/O, no MPI. The drivers (composite, TimeSen2Crop
// import) feed them blocks of observations.
//
// Conventions (pinned by tests/unit/test_kernels.cpp):
//  - values are int16 reflectance x 10000 (offset already applied); kNoData marks "no value".
//  - median of an even count is the mean of the two middle values rounded half up: floor((a + b + 1) / 2).
//  - mean is the sum / count rounded half up: floor(sum / count + 1/2), computed exactly in integers.
//  - gap filling per pixel and band over the months: an empty month (count 0) between filled months m0 < m < m1
//    gets round_half_up((v0 * (m1 - m) + v1 * (m - m0)) / (m1 - m0)); empty months before the first / after the
//    last filled month take the nearest filled value; a pixel with no filled month stays kNoData.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace s2crop::composite {

constexpr std::int16_t kNoData = -32768;
constexpr int kMonths = 12;

enum class Method { Median, Mean };
Method parse_method(const std::string& name);  // "median" | "mean", throws ConfigError

// One month of one block.
//   obs:   [n_obs][n_bands][n_pixels] values (entries of invalid observations are ignored)
//   valid: [n_obs][n_pixels] 1 = clear observation, 0 = masked
//   out:   [n_bands][n_pixels] composite, kNoData where no clear observation
//   count: [n_pixels] number of clear observations (saturates at 255)
void composite_month(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs, std::size_t n_bands,
                     std::size_t n_pixels, Method method, std::int16_t* out, std::uint8_t* count);

// Gap filling in place over the months.
//   values: [kMonths or n_months][n_bands][n_pixels], count: [n_months][n_pixels] (0 = empty month)
// Every value of an empty month is written (leading months: the first filled value, trailing: the last, between:
// linear interpolation rounded half up, kNoData where a pixel has no filled month) and never read before, so it may
// hold anything on entry.
void fill_gaps(std::int16_t* values, const std::uint8_t* count, std::size_t n_months, std::size_t n_bands,
               std::size_t n_pixels);

// Cloud masking from a scene classification layer.
//   scl: [n_pixels] (width x height, row-major); valid_classes: 256-entry lookup (1 = valid)
//   dilation: pixels of square dilation around cloud/shadow classes (3, 8, 9, 10) that are also masked
//   out valid: [n_pixels] 1 = clear
void scl_to_valid(const std::uint8_t* scl, int width, int height, const std::uint8_t* valid_classes, int dilation,
                  std::uint8_t* valid);

// DN to reflectance x 10000 with the product's additive offset; DN 0 (and `nodata_dn` when has_nodata) -> invalid.
// Results are clamped to [-32767, 32767]. valid is AND-ed in place.
void apply_offset(const std::uint16_t* dn, std::size_t n, int offset, bool has_nodata, std::uint16_t nodata_dn,
                  std::int16_t* out, std::uint8_t* valid);

}  // namespace s2crop::composite
