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

namespace {

// Scalar gap filling, one pixel at a time (few pixels, or more than kMaxVectorMonths months).
void fill_gaps_scalar(std::int16_t* values, const std::uint8_t* count, std::size_t n_months, std::size_t n_bands,
                      std::size_t n_pixels) {
  constexpr std::size_t kStackMonths = 64;
  std::uint32_t filled_stack[kStackMonths];
  std::vector<std::uint32_t> filled_heap;
  std::uint32_t* filled = filled_stack;
  if (n_months > kStackMonths) {
    filled_heap.resize(n_months);
    filled = filled_heap.data();
  }
  const std::size_t month_stride = n_bands * n_pixels;
  for (std::size_t p = 0; p < n_pixels; ++p) {
    std::size_t nf = 0;
    for (std::size_t m = 0; m < n_months; ++m) {
      filled[nf] = static_cast<std::uint32_t>(m);
      nf += (count[m * n_pixels + p] != 0) ? 1 : 0;
    }
    if (nf == n_months) continue;  // nothing to fill
    if (nf == 0) {
      for (std::size_t m = 0; m < n_months; ++m)
        for (std::size_t b = 0; b < n_bands; ++b) values[m * month_stride + b * n_pixels + p] = kNoData;
      continue;
    }
    std::int16_t* base = values + p;
    for (std::size_t b = 0; b < n_bands; ++b) {
      std::int16_t* v = base + b * n_pixels;  // v[m * month_stride] is month m of this band and pixel
      // Leading empty months hold the first filled value.
      const std::size_t first = filled[0];
      const std::int16_t vfirst = v[first * month_stride];
      for (std::size_t m = 0; m < first; ++m) v[m * month_stride] = vfirst;
      // Interior gaps: linear interpolation, rounded half up.
      for (std::size_t f = 0; f + 1 < nf; ++f) {
        const std::size_t m0 = filled[f], m1 = filled[f + 1];
        if (m1 == m0 + 1) continue;
        // round_half_up(num / den) = floor((2 num + den) / (2 den)). The values are biased by +32768 so the
        // numerator is >= 0 and truncation is floor; the double quotient is exact (numerator < 2^53, quotient
        // < 2^17, so its rounding error is far below the 1 / (2 den) distance of a non-integer quotient to an
        // integer) and much cheaper than a 64-bit integer division.
        const std::int64_t v0 = static_cast<std::int64_t>(v[m0 * month_stride]) + 32768;
        const std::int64_t v1 = static_cast<std::int64_t>(v[m1 * month_stride]) + 32768;
        const std::int64_t den = static_cast<std::int64_t>(m1 - m0);
        const double den2 = static_cast<double>(2 * den);
        for (std::size_t m = m0 + 1; m < m1; ++m) {
          const std::int64_t num =
              v0 * static_cast<std::int64_t>(m1 - m) + v1 * static_cast<std::int64_t>(m - m0);
          const std::int64_t q = static_cast<std::int64_t>(static_cast<double>(2 * num + den) / den2);
          v[m * month_stride] = static_cast<std::int16_t>(q - 32768);
        }
      }
      // Trailing empty months hold the last filled value.
      const std::size_t last = filled[nf - 1];
      const std::int16_t vlast = v[last * month_stride];
      for (std::size_t m = last + 1; m < n_months; ++m) v[m * month_stride] = vlast;
    }
  }
}

// Branch-free gap filling over a chunk of pixels at a time, lanes = pixels (vectorisable). Per band, a backward
// pass over the months records for each month the next filled value and month, then a forward pass carries the
// previous filled value and month and fills the empty months.
// Interpolation round_half_up(num / den) = floor((2 num + den) / (2 den)) on values biased by +32768 (so the
// numerator is >= 0 and truncation is floor), divided in float: with den <= 63 the numerator is < 2^24 (exact) and
// the quotient < 2^17 has a rounding error <= 2^-7 < 1 / (2 den), so the result is exact.
constexpr std::size_t kMaxVectorMonths = 64;

// One chunk of lanes in which no lane has an empty month between two filled ones (the season seen in one month or
// in consecutive ones, the common case): every empty month holds the lane's first filled value before it and its
// last after it, so no interpolation and no per-month carry is needed. fm / lm: each lane's first / last filled
// month (n_months / -1 where none); full / none: months filled in every lane / in no lane of the chunk.
[[gnu::always_inline]] inline void fill_gaps_ends(std::int16_t* vb, const std::uint8_t* count, std::size_t n_months,
                                                  std::size_t month_stride, std::size_t n_pixels, std::size_t p0,
                                                  std::size_t len, const std::int16_t* fm, const std::int16_t* lm,
                                                  const std::uint8_t* full, const std::uint8_t* none,
                                                  std::int16_t first_lo, std::int16_t first_hi, std::int16_t last_lo,
                                                  std::int16_t last_hi, std::int16_t* first_v, std::int16_t* last_v) {
  // The lanes' first and last filled values, from the few months where some lane's first / last one lies.
  std::fill(first_v, first_v + len, kNoData);
  std::fill(last_v, last_v + len, kNoData);
  for (std::int16_t m = first_lo; m <= first_hi; ++m) {
    const std::int16_t* row = vb + static_cast<std::size_t>(m) * month_stride;
    for (std::size_t i = 0; i < len; ++i) {
      const std::int16_t x = row[i], v = first_v[i];  // both loaded: a conditional load is not vectorised
      first_v[i] = fm[i] == m ? x : v;
    }
  }
  for (std::int16_t m = last_lo; m <= last_hi; ++m) {
    const std::int16_t* row = vb + static_cast<std::size_t>(m) * month_stride;
    for (std::size_t i = 0; i < len; ++i) {
      const std::int16_t x = row[i], v = last_v[i];
      last_v[i] = lm[i] == m ? x : v;
    }
  }
  for (std::size_t mm = 0; mm < n_months; ++mm) {
    if (full[mm]) continue;  // filled in every lane: unchanged
    std::int16_t* row = vb + mm * month_stride;
    const std::int16_t m = static_cast<std::int16_t>(mm);
    // A lane with no filled month has fm = n_months > m: it gets first_v, which is kNoData.
    if (none[mm]) {
      for (std::size_t i = 0; i < len; ++i) {
        const std::int16_t first = first_v[i], last = last_v[i];
        row[i] = m < fm[i] ? first : last;
      }
    } else {
      const std::uint8_t* c = count + mm * n_pixels + p0;
      for (std::size_t i = 0; i < len; ++i) {
        const std::int16_t first = first_v[i], last = last_v[i], x = row[i];
        const std::int16_t fill = m < fm[i] ? first : last;
        row[i] = c[i] != 0 ? x : fill;
      }
    }
  }
}

__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))  // the CPU's widest vectors, same results
void fill_gaps_vector(std::int16_t* values, const std::uint8_t* count, std::size_t n_months, std::size_t n_bands,
                      std::size_t n_pixels) {
  // Long pixel runs keep the hardware prefetcher streaming along each (month, band) row.
  constexpr std::size_t kChunk = 1024;
  std::vector<std::int16_t> next_buf(2 * n_months * kChunk);  // one allocation per call
  std::int16_t* next_v = next_buf.data();
  std::int16_t* next_m = next_v + n_months * kChunk;
  std::int16_t carry_v[kChunk];
  std::int16_t carry_m[kChunk];
  std::int16_t interp[kChunk] = {};  // read only in lanes the interpolation below wrote
  std::int16_t fm[kChunk], lm[kChunk], nf[kChunk];
  std::uint8_t full[kMaxVectorMonths], none[kMaxVectorMonths];
  const std::size_t month_stride = n_bands * n_pixels;
  const std::int16_t n_months16 = static_cast<std::int16_t>(n_months);
  for (std::size_t p0 = 0; p0 < n_pixels; p0 += kChunk) {
    const std::size_t len = std::min(kChunk, n_pixels - p0);
    // Each lane's first and last filled month and number of filled months; the months filled in every lane / none.
    std::fill(fm, fm + len, n_months16);
    std::fill(lm, lm + len, std::int16_t(-1));
    std::fill(nf, nf + len, std::int16_t(0));
    bool any_empty = false;
    for (std::size_t mm = 0; mm < n_months; ++mm) {
      const std::uint8_t* c = count + mm * n_pixels + p0;
      const std::int16_t m = static_cast<std::int16_t>(mm);
      std::int16_t n_filled = 0;
      for (std::size_t i = 0; i < len; ++i) {
        const std::int16_t f = c[i] != 0 ? 1 : 0, first = fm[i], last = lm[i];
        fm[i] = ((f != 0) & (first == n_months16)) ? m : first;
        lm[i] = f != 0 ? m : last;
        nf[i] = static_cast<std::int16_t>(nf[i] + f);
        n_filled = static_cast<std::int16_t>(n_filled + f);
      }
      full[mm] = static_cast<std::size_t>(n_filled) == len;
      none[mm] = n_filled == 0;
      any_empty |= !full[mm];
    }
    if (!any_empty) continue;  // every month of every lane filled
    // Interior gaps (an empty month between two filled ones) in some lane? Else the chunk takes fill_gaps_ends.
    std::int16_t interior = 0;
    std::int16_t first_lo = n_months16, first_hi = -1, last_lo = n_months16, last_hi = -1;
    for (std::size_t i = 0; i < len; ++i) {
      const bool has = nf[i] > 0;
      interior |= static_cast<std::int16_t>(has & (lm[i] - fm[i] + 1 != nf[i]));
      first_lo = std::min(first_lo, fm[i]);
      first_hi = std::max(first_hi, has ? fm[i] : std::int16_t(-1));
      last_lo = std::min(last_lo, has ? lm[i] : n_months16);
      last_hi = std::max(last_hi, lm[i]);
    }
    if (!interior) {
      for (std::size_t b = 0; b < n_bands; ++b)
        fill_gaps_ends(values + b * n_pixels + p0, count, n_months, month_stride, n_pixels, p0, len, fm, lm, full,
                       none, first_lo, first_hi, last_lo, last_hi, carry_v, carry_m);
      continue;
    }
    for (std::size_t b = 0; b < n_bands; ++b) {
      std::int16_t* vb = values + b * n_pixels + p0;  // month m row: vb + m * month_stride
      // Backward pass: next filled value / month at or after m (month -1 = none).
      std::fill(carry_v, carry_v + len, std::int16_t(0));
      std::fill(carry_m, carry_m + len, std::int16_t(-1));
      for (std::size_t mm = n_months; mm-- > 0;) {
        const std::uint8_t* c = count + mm * n_pixels + p0;
        const std::int16_t* row = vb + mm * month_stride;
        std::int16_t* nv = next_v + mm * kChunk;
        std::int16_t* nm = next_m + mm * kChunk;
        const std::int16_t mval = static_cast<std::int16_t>(mm);
        for (std::size_t i = 0; i < len; ++i) {
          const bool f = c[i] != 0;
          const std::int16_t x = row[i];
          carry_v[i] = f ? x : carry_v[i];
          carry_m[i] = f ? mval : carry_m[i];
          nv[i] = carry_v[i];
          nm[i] = carry_m[i];
        }
      }
      // Forward pass: previous filled value / month, fill the empty months.
      std::fill(carry_v, carry_v + len, std::int16_t(0));
      std::fill(carry_m, carry_m + len, std::int16_t(-1));
      for (std::size_t mm = 0; mm < n_months; ++mm) {
        const std::uint8_t* c = count + mm * n_pixels + p0;
        std::int16_t* row = vb + mm * month_stride;
        const std::int16_t* nv = next_v + mm * kChunk;
        const std::int16_t* nm = next_m + mm * kChunk;
        const std::int32_t m = static_cast<std::int32_t>(mm);
        // Interpolation only where some empty lane lies between two filled months: a season observed in one
        // month (or in a run of consecutive ones) needs none, and the division is most of this loop's cost.
        std::int16_t between = 0;
        for (std::size_t i = 0; i < len; ++i)
          between |= static_cast<std::int16_t>((c[i] == 0) & (carry_m[i] >= 0) & (nm[i] >= 0));
        // Interpolated value for every lane, without selects: a select here lets GCC branch around the float
        // division, which then blocks vectorisation under -ftrapping-math. pm is in [-1, m - 1] so w1 >= 1 and
        // den >= 1; lanes without both neighbours compute a finite value that the next loop discards.
        if (between) {
          for (std::size_t i = 0; i < len; ++i) {
            const std::int32_t pv = carry_v[i], pm = carry_m[i];
            const std::int32_t qv = nv[i], qm = nm[i];  // qm = -1 (none) or in [m, n_months)
            // All terms are integers below 2^24, so the float products and sums are exact.
            const float w0 = static_cast<float>(std::max(qm - m, 0));
            const float w1 = static_cast<float>(m - pm);
            const float den = w0 + w1;
            const float num = static_cast<float>(pv + 32768) * w0 + static_cast<float>(qv + 32768) * w1;
            const float qf = (2.0f * num + den) / (2.0f * den);
            interp[i] = static_cast<std::int16_t>(static_cast<std::int32_t>(qf) - 32768);
          }
        }
        for (std::size_t i = 0; i < len; ++i) {
          const std::int16_t x = row[i];
          const std::int16_t pv = carry_v[i], pm = carry_m[i];
          const std::int16_t qv = nv[i], qm = nm[i];
          const std::int16_t iv = interp[i];
          const bool f = c[i] != 0;
          const bool hp = pm >= 0;
          const bool hn = qm >= 0;
          std::int16_t r = hn ? qv : kNoData;  // before the first filled month: the next value
          r = hp ? pv : r;                     // after the last: the previous value
          r = (hp & hn) ? iv : r;              // between: interpolation
          r = f ? x : r;                       // filled months unchanged
          row[i] = r;
          carry_v[i] = f ? x : pv;
          carry_m[i] = f ? static_cast<std::int16_t>(m) : pm;
        }
      }
    }
  }
}

}  // namespace

void fill_gaps(std::int16_t* values, const std::uint8_t* count, std::size_t n_months, std::size_t n_bands,
               std::size_t n_pixels) {
  if (n_months == 0 || n_pixels == 0) return;
  if (n_months <= kMaxVectorMonths && n_pixels >= 16)
    fill_gaps_vector(values, count, n_months, n_bands, n_pixels);
  else
    fill_gaps_scalar(values, count, n_months, n_bands, n_pixels);
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
