// Monthly compositing kernels (see include/s2crop/composite/kernels.hpp for the exact semantics).
//
// Performance notes: these loops run over ~1e11 observation-pixels per tile-year, so nothing here allocates per
// pixel. Per-pixel scratch lives in small stack buffers with one heap fallback per call when the observation (or
// month) count is larger than the stack buffer. Loops over pixels are innermost wherever the data layout allows,
// so the compiler can vectorise apply_offset, the mean and the separable SCL dilation.
#include "s2crop/composite/kernels.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "s2crop/common/errors.hpp"

namespace s2crop::composite {

namespace {

// Clear observations per pixel of one chunk [p0, p0 + len): counted into cnt, stored saturated at 255 into count.
// Shared by the mean and median kernels so both count the same way.
template <typename Count>
void count_clear(const std::uint8_t* valid, std::size_t n_obs, std::size_t n_pixels, std::size_t p0,
                 std::size_t len, Count* cnt, std::uint8_t* count) {
  std::fill(cnt, cnt + len, Count{0});
  for (std::size_t o = 0; o < n_obs; ++o) {
    const std::uint8_t* vr = valid + o * n_pixels + p0;
    for (std::size_t i = 0; i < len; ++i) cnt[i] += static_cast<Count>(vr[i] != 0);
  }
  for (std::size_t i = 0; i < len; ++i) count[p0 + i] = static_cast<std::uint8_t>(std::min<Count>(cnt[i], 255));
}

// floor(num / den) for den > 0, exact for negative numerators too.
inline std::int64_t floor_div(std::int64_t num, std::int64_t den) {
  std::int64_t q = num / den;
  if ((num % den) != 0 && num < 0) --q;
  return q;
}

// floor((a + b + 1) / 2): the even-count median, rounded half up.
inline std::int16_t mid_half_up(std::int32_t a, std::int32_t b) {
  const std::int32_t s = a + b + 1;
  // Floor division by 2 without relying on the sign behaviour of >> before C++20.
  const std::int32_t q = (s >= 0) ? s / 2 : -((-s + 1) / 2);
  return static_cast<std::int16_t>(q);
}

// round_half_up(sum / count) = floor((2 sum + count) / (2 count)), exact in integers.
inline std::int16_t mean_half_up(std::int64_t sum, std::int64_t count) {
  return static_cast<std::int16_t>(floor_div(2 * sum + count, 2 * count));
}

inline void insertion_sort(std::int16_t* v, std::size_t n) {
  for (std::size_t i = 1; i < n; ++i) {
    const std::int16_t x = v[i];
    std::size_t j = i;
    while (j > 0 && v[j - 1] > x) {
      v[j] = v[j - 1];
      --j;
    }
    v[j] = x;
  }
}

// Median of v[0..n) (n >= 1), reordering v. Even counts: floor((a + b + 1) / 2) of the two middle values.
inline std::int16_t median_in_place(std::int16_t* v, std::size_t n) {
  if (n == 1) return v[0];
  if (n == 2) return mid_half_up(v[0], v[1]);
  if (n <= 32) {
    insertion_sort(v, n);
    if (n & 1u) return v[n / 2];
    return mid_half_up(v[n / 2 - 1], v[n / 2]);
  }
  const std::size_t h = n / 2;
  std::nth_element(v, v + h, v + n);
  if (n & 1u) return v[h];
  // The lower middle value is the maximum of the partition below h.
  const std::int16_t lo = *std::max_element(v, v + h);
  return mid_half_up(lo, v[h]);
}

constexpr std::size_t kStackObs = 64;

// Mean path: loops with pixels innermost (vectorisable), over chunks of pixels so the accumulators stay in L1.
// Fast variant (n_obs < 16384): int32 sums, and the rounding floor((2 sum + count) / (2 count)) is done on the
// biased numerator 2 sum + count + 65536 count >= 0 (so truncation is floor) in double, which vectorises. It is
// exact: numerator < 2^31, denominator < 2^15, so the correctly rounded double quotient (< 2^17) is never within
// 1 / denominator of an integer unless it is that integer.
void composite_mean_fast(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs,
                         std::size_t n_bands, std::size_t n_pixels, std::int16_t* out, std::uint8_t* count) {
  constexpr std::size_t kChunk = 512;
  std::int32_t sum[kChunk];
  std::int32_t cnt[kChunk];
  double den[kChunk];
  for (std::size_t p0 = 0; p0 < n_pixels; p0 += kChunk) {
    const std::size_t len = std::min(kChunk, n_pixels - p0);
    count_clear(valid, n_obs, n_pixels, p0, len, cnt, count);
    for (std::size_t i = 0; i < len; ++i) den[i] = static_cast<double>(std::max(2 * cnt[i], 1));
    for (std::size_t b = 0; b < n_bands; ++b) {
      std::fill(sum, sum + len, 0);
      for (std::size_t o = 0; o < n_obs; ++o) {
        const std::uint8_t* vr = valid + o * n_pixels + p0;
        const std::int16_t* xr = obs + (o * n_bands + b) * n_pixels + p0;
        for (std::size_t i = 0; i < len; ++i) {
          // Branch-free select (both operands loaded unconditionally) so the loop vectorises.
          const std::int32_t x = xr[i];
          const std::int32_t m = -static_cast<std::int32_t>(vr[i] != 0);
          sum[i] += x & m;
        }
      }
      std::int16_t* orow = out + b * n_pixels + p0;
      for (std::size_t i = 0; i < len; ++i) {
        const std::int32_t num = 2 * sum[i] + 65537 * cnt[i];
        const std::int32_t q = static_cast<std::int32_t>(static_cast<double>(num) / den[i]) - 32768;
        // cnt == 0 gives num = 0 and q = -32768 = kNoData already.
        orow[i] = static_cast<std::int16_t>(q);
      }
    }
  }
}

// Mean for huge observation counts: int64 sums, exact integer rounding.
void composite_mean_wide(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs,
                         std::size_t n_bands, std::size_t n_pixels, std::int16_t* out, std::uint8_t* count) {
  constexpr std::size_t kChunk = 512;
  std::int64_t sum[kChunk];
  std::int64_t cnt[kChunk];
  for (std::size_t p0 = 0; p0 < n_pixels; p0 += kChunk) {
    const std::size_t len = std::min(kChunk, n_pixels - p0);
    count_clear(valid, n_obs, n_pixels, p0, len, cnt, count);
    for (std::size_t b = 0; b < n_bands; ++b) {
      std::fill(sum, sum + len, 0);
      for (std::size_t o = 0; o < n_obs; ++o) {
        const std::uint8_t* vr = valid + o * n_pixels + p0;
        const std::int16_t* xr = obs + (o * n_bands + b) * n_pixels + p0;
        for (std::size_t i = 0; i < len; ++i) sum[i] += (vr[i] != 0) ? xr[i] : 0;
      }
      std::int16_t* orow = out + b * n_pixels + p0;
      for (std::size_t i = 0; i < len; ++i) orow[i] = (cnt[i] == 0) ? kNoData : mean_half_up(sum[i], cnt[i]);
    }
  }
}

// Scalar median: per pixel, gather the clear observations of each band and sort them. Used for few pixels (no
// setup cost) and for very large observation counts (where a sorting network grows too big).
void composite_median_scalar(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs,
                             std::size_t n_bands, std::size_t n_pixels, std::int16_t* out, std::uint8_t* count) {
  // Scratch: the indices of the clear observations of one pixel and the gathered values of one band.
  std::uint32_t idx_stack[kStackObs];
  std::int16_t val_stack[kStackObs];
  std::vector<std::uint32_t> idx_heap;
  std::vector<std::int16_t> val_heap;
  std::uint32_t* idx = idx_stack;
  std::int16_t* val = val_stack;
  if (n_obs > kStackObs) {
    idx_heap.resize(n_obs);
    val_heap.resize(n_obs);
    idx = idx_heap.data();
    val = val_heap.data();
  }
  const std::size_t band_stride = n_pixels;
  const std::size_t obs_stride = n_bands * n_pixels;
  for (std::size_t p = 0; p < n_pixels; ++p) {
    std::size_t k = 0;
    for (std::size_t o = 0; o < n_obs; ++o) {
      idx[k] = static_cast<std::uint32_t>(o);
      k += (valid[o * n_pixels + p] != 0) ? 1 : 0;
    }
    count[p] = static_cast<std::uint8_t>(std::min<std::size_t>(k, 255));
    if (k == 0) {
      for (std::size_t b = 0; b < n_bands; ++b) out[b * band_stride + p] = kNoData;
      continue;
    }
    const std::int16_t* base = obs + p;
    for (std::size_t b = 0; b < n_bands; ++b) {
      const std::int16_t* bb = base + b * band_stride;
      for (std::size_t j = 0; j < k; ++j) val[j] = bb[idx[j] * obs_stride];
      out[b * band_stride + p] = median_in_place(val, k);
    }
  }
}

// Batcher's odd-even merge sort network for n inputs (any n: comparators reaching past n are dropped, which is
// the network for n padded with +infinity). Flattened pairs (lo, hi), lo < hi.
constexpr std::size_t kMaxNetworkObs = 256;

const std::vector<std::uint16_t>& sorting_network(std::size_t n) {
  thread_local std::vector<std::vector<std::uint16_t>> cache(kMaxNetworkObs + 1);
  std::vector<std::uint16_t>& net = cache[n];
  if (!net.empty() || n < 2) return net;
  for (std::size_t p = 1; p < n; p <<= 1)
    for (std::size_t k = p; k >= 1; k >>= 1)
      for (std::size_t j = k % p; j + k < n; j += 2 * k)
        for (std::size_t i = 0; i < k && i + j + k < n; ++i)
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
            net.push_back(static_cast<std::uint16_t>(i + j));
            net.push_back(static_cast<std::uint16_t>(i + j + k));
          }
  return net;
}

inline void compare_exchange(std::int16_t* __restrict a, std::int16_t* __restrict b, std::size_t len) {
  for (std::size_t i = 0; i < len; ++i) {
    const std::int16_t x = a[i], y = b[i];
    a[i] = x < y ? x : y;
    b[i] = x < y ? y : x;
  }
}

// Vectorised median: for a chunk of pixels, the observations of one band are copied into rows (masked ones
// replaced by +32767, which sorts them last), sorted across all pixels at once by a sorting network of
// lane-wise min/max, and the median of pixel i is read at rows (k-1)/2 and k/2 for its k clear observations.
// A clear value of 32767 equal to the sentinel is harmless: the k smallest values are still the clear ones.
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))  // the CPU's widest vectors, same results
void composite_median_network(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs,
                              std::size_t n_bands, std::size_t n_pixels, std::int16_t* out, std::uint8_t* count) {
  constexpr std::size_t kChunk = 256;
  constexpr std::int16_t kSentinel = 32767;
  const std::vector<std::uint16_t>& net = sorting_network(n_obs);
  std::int16_t buf_stack[kStackObs * kChunk];
  std::vector<std::int16_t> buf_heap;
  std::int16_t* buf = buf_stack;
  if (n_obs > kStackObs) {
    buf_heap.resize(n_obs * kChunk);
    buf = buf_heap.data();
  }
  std::int32_t cnt[kChunk];
  std::uint32_t lo_off[kChunk], hi_off[kChunk];
  for (std::size_t p0 = 0; p0 < n_pixels; p0 += kChunk) {
    const std::size_t len = std::min(kChunk, n_pixels - p0);
    count_clear(valid, n_obs, n_pixels, p0, len, cnt, count);
    for (std::size_t i = 0; i < len; ++i) {
      const std::int32_t kk = std::max(cnt[i], 1);
      lo_off[i] = static_cast<std::uint32_t>(((kk - 1) / 2) * static_cast<std::int32_t>(kChunk) + static_cast<std::int32_t>(i));
      hi_off[i] = static_cast<std::uint32_t>((kk / 2) * static_cast<std::int32_t>(kChunk) + static_cast<std::int32_t>(i));
    }
    for (std::size_t b = 0; b < n_bands; ++b) {
      for (std::size_t o = 0; o < n_obs; ++o) {
        const std::uint8_t* vr = valid + o * n_pixels + p0;
        const std::int16_t* xr = obs + (o * n_bands + b) * n_pixels + p0;
        std::int16_t* row = buf + o * kChunk;
        for (std::size_t i = 0; i < len; ++i) {
          const std::int16_t x = xr[i];
          row[i] = (vr[i] != 0) ? x : kSentinel;
        }
      }
      for (std::size_t c = 0; c < net.size(); c += 2) compare_exchange(buf + net[c] * kChunk, buf + net[c + 1] * kChunk, len);
      std::int16_t* orow = out + b * n_pixels + p0;
      for (std::size_t i = 0; i < len; ++i) {
        const std::int16_t med = mid_half_up(buf[lo_off[i]], buf[hi_off[i]]);
        orow[i] = (cnt[i] == 0) ? kNoData : med;
      }
    }
  }
}

void composite_median(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs, std::size_t n_bands,
                      std::size_t n_pixels, std::int16_t* out, std::uint8_t* count) {
  if (n_pixels < 16 || n_obs > kMaxNetworkObs)
    composite_median_scalar(obs, valid, n_obs, n_bands, n_pixels, out, count);
  else
    composite_median_network(obs, valid, n_obs, n_bands, n_pixels, out, count);
}

inline bool is_cloud_class(std::uint8_t c) { return c == 3 || c == 8 || c == 9 || c == 10; }

}  // namespace

Method parse_method(const std::string& name) {
  if (name == "median") return Method::Median;
  if (name == "mean") return Method::Mean;
  throw ConfigError("Unknown compositing method '" + name + "': use 'median' or 'mean'.");
}

void composite_month(const std::int16_t* obs, const std::uint8_t* valid, std::size_t n_obs, std::size_t n_bands,
                     std::size_t n_pixels, Method method, std::int16_t* out, std::uint8_t* count) {
  if (n_pixels == 0) return;
  if (method == Method::Mean) {
    if (n_obs < 16384)
      composite_mean_fast(obs, valid, n_obs, n_bands, n_pixels, out, count);
    else
      composite_mean_wide(obs, valid, n_obs, n_bands, n_pixels, out, count);
    return;
  }
  composite_median(obs, valid, n_obs, n_bands, n_pixels, out, count);
}

void scl_to_valid(const std::uint8_t* scl, int width, int height, const std::uint8_t* valid_classes, int dilation,
                  std::uint8_t* valid) {
  if (width <= 0 || height <= 0) return;
  const std::size_t w = static_cast<std::size_t>(width), h = static_cast<std::size_t>(height);
  const std::size_t n = w * h;

  // Class lookup: valid class and not a cloud/shadow class (a cloud pixel lies inside its own dilation square).
  std::uint8_t lut_ok[256];
  std::uint8_t lut_cloud[256];
  for (int c = 0; c < 256; ++c) {
    lut_cloud[c] = is_cloud_class(static_cast<std::uint8_t>(c)) ? 1 : 0;
    lut_ok[c] = (valid_classes[c] != 0 && !lut_cloud[c]) ? 1 : 0;
  }
  bool any_cloud = false;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t c = scl[i];
    valid[i] = lut_ok[c];
    any_cloud |= (lut_cloud[c] != 0);
  }
  if (dilation <= 0 || !any_cloud) return;

  // Separable square dilation with running window counts: O(1) per pixel whatever the dilation.
  // Row pass: hmask[y][x] = any cloud in row y within [x - d, x + d].
  const std::size_t d = static_cast<std::size_t>(dilation);
  std::vector<std::uint8_t> hmask(n);
  for (std::size_t y = 0; y < h; ++y) {
    const std::uint8_t* srow = scl + y * w;
    std::uint8_t* hrow = hmask.data() + y * w;
    std::size_t cnt = 0;
    const std::size_t init_end = std::min(d, w - 1);
    for (std::size_t x = 0; x <= init_end; ++x) cnt += lut_cloud[srow[x]];
    for (std::size_t x = 0; x < w; ++x) {
      hrow[x] = cnt != 0 ? 1 : 0;
      if (x + d + 1 < w) cnt += lut_cloud[srow[x + d + 1]];
      if (x >= d) cnt -= lut_cloud[srow[x - d]];
    }
  }
  // Column pass: per-column running count of row-dilated cloud pixels within [y - d, y + d].
  std::vector<std::uint32_t> colcnt(w, 0);
  const std::size_t init_end = std::min(d, h - 1);
  for (std::size_t y = 0; y <= init_end; ++y) {
    const std::uint8_t* hrow = hmask.data() + y * w;
    for (std::size_t x = 0; x < w; ++x) colcnt[x] += hrow[x];
  }
  for (std::size_t y = 0; y < h; ++y) {
    std::uint8_t* vrow = valid + y * w;
    for (std::size_t x = 0; x < w; ++x) vrow[x] = (colcnt[x] == 0) ? vrow[x] : std::uint8_t(0);
    if (y + d + 1 < h) {
      const std::uint8_t* add = hmask.data() + (y + d + 1) * w;
      for (std::size_t x = 0; x < w; ++x) colcnt[x] += add[x];
    }
    if (y >= d) {
      const std::uint8_t* sub = hmask.data() + (y - d) * w;
      for (std::size_t x = 0; x < w; ++x) colcnt[x] -= sub[x];
    }
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))  // the CPU's widest vectors, same results
void apply_offset(const std::uint16_t* dn, std::size_t n, int offset, bool has_nodata, std::uint16_t nodata_dn,
                  std::int16_t* out, std::uint8_t* valid) {
  // With dn in [0, 65535] any offset beyond +-100000 clamps every value to the same bound, so clamping the offset
  // first keeps the arithmetic in int32 (vectorisable) without changing any result.
  const std::int32_t off = std::max(-100000, std::min(100000, offset));
  const std::uint16_t nd = has_nodata ? nodata_dn : std::uint16_t(0);  // 0 is invalid anyway
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint16_t x = dn[i];
    const bool ok = (x != 0) & (x != nd);
    std::int32_t r = static_cast<std::int32_t>(x) + off;
    r = r < -32767 ? -32767 : r;
    r = r > 32767 ? 32767 : r;
    out[i] = ok ? static_cast<std::int16_t>(r) : kNoData;
    valid[i] = ok ? valid[i] : std::uint8_t(0);
  }
}

}  // namespace s2crop::composite
