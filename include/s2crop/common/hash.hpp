#pragma once
// The one home of what reproducibility and resume depend on: FNV-1a for fingerprints, SplitMix64 for portable seeded
// randomness (std::shuffle and the std distributions differ between standard libraries), and the identity of a file
// on disk, so a rerun never reuses work whose inputs changed in place.
#include <cstddef>
#include <cstdint>
#include <string>

namespace s2crop::hash {

// The FNV-1a 64-bit offset basis. (Three stages had copied it as 1469598103934665603, a digit short: their run
// fingerprints changed when they moved here, nothing else did.)
inline constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;

// FNV-1a over `n` bytes, continuing from `h`.
inline std::uint64_t fnv1a(const void* data, size_t n, std::uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}
inline std::uint64_t fnv1a(const std::string& text, std::uint64_t h = kFnvOffset) {
  return fnv1a(text.data(), text.size(), h);
}

// The SplitMix64 finaliser of x: a good 64-bit mixing function.
inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
// The next value of a SplitMix64 stream whose state is `state` (advanced).
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// 16 lower-case hex digits.
std::string hex64(std::uint64_t v);

// FNV-1a of a file's bytes; throws InputError naming the file if it cannot be read.
std::uint64_t file_content(const std::string& path);

// "<size> <modification time in ns>" of a file (GDAL /vsi paths through VSIStatL, seconds only), or "missing": changes
// when the file is rewritten in place, without reading it.
std::string file_identity(const std::string& path);

}  // namespace s2crop::hash
