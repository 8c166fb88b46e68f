#pragma once
// Deterministic, portable randomness for the synthetic region. Every stream is derived from (seed, tile, date or
// field) by hashing, so a result never depends on which rank computed it or in which order. No std:: distributions
// (their output differs between standard libraries).
#include <cmath>
#include <cstdint>
#include <string>

#include "s2crop/common/hash.hpp"

namespace s2crop::synth {

using hash::mix64;  // SplitMix64 finaliser: a good 64-bit mixing function
inline std::uint64_t hash_combine(std::uint64_t h, std::uint64_t v) { return mix64(h ^ mix64(v)); }
std::uint64_t hash_string(const std::string& text);  // FNV-1a, then mixed
// Uniform in [0, 1) from a key.
inline double hash_uniform(std::uint64_t key) { return static_cast<double>(mix64(key) >> 11) * 0x1.0p-53; }

// Sequential generator (SplitMix64 stream): fast, tiny state, reproducible everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    return hash::splitmix64(state_);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  int index(int n) { return static_cast<int>(uniform() * n); }
  bool chance(double p) { return uniform() < p; }
  // Approximately standard normal (Irwin-Hall of 4 x 16-bit uniforms, rescaled): cheap and portable.
  double normal() {
    std::uint64_t r = next();
    double s = static_cast<double>(r & 0xffff) + static_cast<double>((r >> 16) & 0xffff) +
               static_cast<double>((r >> 32) & 0xffff) + static_cast<double>(r >> 48);
    return (s / 65536.0 - 2.0) * 1.7320508075688772;
  }

 private:
  std::uint64_t state_;
};

// Smooth value noise in [0, 1] with unit lattice spacing (smoothstep-interpolated hashed lattice values).
float value_noise(double x, double y, std::uint64_t seed);
// Fractal sum of `octaves` value-noise layers; `scale` is the largest feature size in pixels. Result in ~[0, 1].
float fbm(double x, double y, double scale, int octaves, std::uint64_t seed);

}  // namespace s2crop::synth
