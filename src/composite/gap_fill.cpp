// Gap filling of monthly composites (see include/s2crop/composite/kernels.hpp for the exact semantics): empty
// months take the first observed value before the season's first observation, the last after its last, and a
// linear interpolation (rounded half up) between two; kNoData where a pixel is never observed. Split from
// kernels.cpp: the scalar reference path, the vectorised chunked path and its fast path without inner gaps.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "s2crop/composite/kernels.hpp"

namespace s2crop::composite {

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

}  // namespace s2crop::composite
