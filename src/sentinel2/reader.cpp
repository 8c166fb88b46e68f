#include "s2crop/sentinel2/reader.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "s2crop/common/errors.hpp"
#include "s2crop/composite/kernels.hpp"

namespace s2crop::sentinel2 {

MaskOptions MaskOptions::from(const std::vector<int>& valid_classes, int dilation) {
  MaskOptions m;
  for (int c : valid_classes) {
    if (c < 0 || c > 255) throw ConfigError("SCL class " + std::to_string(c) + " out of range 0-255");
    m.valid_scl[static_cast<size_t>(c)] = 1;
  }
  if (dilation < 0) throw ConfigError("--dilation must be >= 0");
  m.dilation = dilation;
  return m;
}

namespace {
std::vector<std::string> files_of(const Acquisition& a, const std::vector<std::string>& bands) {
  std::vector<std::string> paths;
  for (auto& b : bands) paths.push_back(a.bands.at(b).path);
  if (a.mask_kind != MaskKind::None) paths.push_back(a.mask.path);
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  return paths;
}
}  // namespace

geo::Grid inspect(const Acquisition& a, const std::vector<std::string>& bands, int* jpeg2000_footprint) {
  if (jpeg2000_footprint) *jpeg2000_footprint = 0;
  std::vector<geo::RasterReader> files;
  for (auto& p : files_of(a, bands)) {
    files.emplace_back(p);
    files.back().check_complete();
  }
  const geo::RasterReader* finest = &files.front();
  for (auto& f : files)
    if (f.grid().pixel_size_x() < finest->grid().pixel_size_x()) finest = &f;
  geo::Grid fine = finest->grid();
  for (auto& f : files) {
    int factor = 0;
    if (!fine.is_aligned_coarser(f.grid(), factor))
      throw InputError(f.path(), "not on the grid of the rest of acquisition " + a.id + ": it is " +
                                     f.grid().describe() + ", " + finest->path() + " is " + fine.describe());
    if (jpeg2000_footprint && f.jpeg2000_tile_size() > 0) {
      const long long edge = static_cast<long long>(f.jpeg2000_tile_size()) * factor;
      *jpeg2000_footprint = static_cast<int>(*jpeg2000_footprint ? std::lcm(*jpeg2000_footprint, edge) : edge);
    }
  }
  for (auto& b : bands) {
    const BandSource& s = a.bands.at(b);
    for (auto& f : files) {
      if (f.path() != s.path) continue;
      if (s.band > f.band_count())
        throw InputError(s.path, "has " + std::to_string(f.band_count()) + " band(s); band " + b +
                                     " was expected in band " + std::to_string(s.band));
      // L2A bands are integer digital numbers (reflectance x 10000 - offset). Floating-point reflectance (0..1, or
      // any rescaled product) would be read as DN 0 or 1: no data or black everywhere, a composite that looks whole.
      if (f.is_floating_point(s.band))
        throw InputError(s.path, "band " + b + " is " + f.data_type(s.band) + ": s2crop needs Sentinel-2 L2A digital "
                                 "numbers (integers, reflectance x 10000), not floating-point reflectance; convert it "
                                 "(e.g. gdal_translate -ot UInt16 -scale 0 1 0 10000)");
    }
  }
  return fine;
}

AcquisitionReader::AcquisitionReader(const Acquisition& a, const geo::Grid& tile_grid,
                                     const std::vector<std::string>& bands, geo::RasterCache& files)
    : mask_kind_(a.mask_kind), grid_(tile_grid) {
  auto open = [&](const BandSource& s) -> Source {
    const geo::RasterReader& f = files.get(s.path);
    int factor = 0;
    if (!grid_.is_aligned_coarser(f.grid(), factor))
      throw InputError(s.path, "not on the tile grid (" + f.grid().describe() + " vs " + grid_.describe() + ")");
    double nd = 0;
    bool has = f.nodata(s.band, nd);
    // A declared no-data outside uint16 (e.g. -9999 on a float file) cannot match a DN: ignore it.
    bool usable = has && nd >= 0 && nd <= 65535 && nd == std::floor(nd);
    return Source{s.path, s.band, factor, s.offset, usable, static_cast<std::uint16_t>(usable ? nd : 0)};
  };
  for (auto& b : bands) bands_.push_back(open(a.bands.at(b)));
  if (a.mask_kind != MaskKind::None) {
    mask_ = open(a.mask);
    has_mask_ = true;
  }
}

bool AcquisitionReader::read(const geo::Window& w, const MaskOptions& mask, geo::RasterCache& files,
                             ReadScratch& scratch, std::int16_t* refl, std::uint8_t* valid) const {
  const size_t n = static_cast<size_t>(w.pixels());
  std::fill(valid, valid + n, std::uint8_t{1});
  if (has_mask_) {
    const geo::RasterReader& mf = files.get(mask_.path);
    if (mask_kind_ == MaskKind::Scl && mask.dilation > 0) {
      // Dilation must see clouds just outside the block, or results would depend on the block layout.
      int d = mask.dilation;
      geo::Window h{std::max(0, w.x0 - d), std::max(0, w.y0 - d), 0, 0};
      h.width = std::min(grid_.width, w.x0 + w.width + d) - h.x0;
      h.height = std::min(grid_.height, w.y0 + w.height + d) - h.y0;
      scratch.mask.resize(static_cast<size_t>(h.pixels()));
      scratch.halo_valid.resize(scratch.mask.size());
      geo::read_replicated(mf, mask_.band, mask_.factor, h, scratch.coarse_u8, scratch.mask.data());
      composite::scl_to_valid(scratch.mask.data(), h.width, h.height, mask.valid_scl.data(), d,
                              scratch.halo_valid.data());
      for (int y = 0; y < w.height; ++y) {
        const std::uint8_t* src =
            scratch.halo_valid.data() + static_cast<size_t>(w.y0 - h.y0 + y) * h.width + (w.x0 - h.x0);
        std::copy(src, src + w.width, valid + static_cast<size_t>(y) * w.width);
      }
    } else {
      scratch.mask.resize(n);
      geo::read_replicated(mf, mask_.band, mask_.factor, w, scratch.coarse_u8, scratch.mask.data());
      if (mask_kind_ == MaskKind::Scl) {
        composite::scl_to_valid(scratch.mask.data(), w.width, w.height, mask.valid_scl.data(), 0, valid);
      } else {
        for (size_t i = 0; i < n; ++i) valid[i] = scratch.mask[i] != 0;
      }
    }
  }
  // Decoding the bands is most of the cost: skip it when the mask already rules out every pixel.
  if (has_mask_ && std::find(valid, valid + n, std::uint8_t{1}) == valid + n) return false;
  scratch.dn.resize(n);
  for (size_t b = 0; b < bands_.size(); ++b) {
    const Source& s = bands_[b];
    geo::read_replicated(files.get(s.path), s.band, s.factor, w, scratch.coarse_u16, scratch.dn.data());
    composite::apply_offset(scratch.dn.data(), n, s.offset, s.has_nodata, s.nodata, refl + b * n, valid);
  }
  return true;
}

}  // namespace s2crop::sentinel2
