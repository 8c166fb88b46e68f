#pragma once
// Reading one acquisition on a tile's 10 m grid: coarser bands are replicated (nearest neighbour) onto it, the
// offset is applied and the validity mask built, one block at a time so memory follows the block size.
#include <array>
#include <memory>
#include <cstdint>
#include <vector>

#include "s2crop/geo/grid.hpp"
#include "s2crop/geo/raster.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace s2crop::sentinel2 {

struct MaskOptions {
  std::array<std::uint8_t, 256> valid_scl{};  // 1 = valid SCL class
  int dilation = 0;                           // pixels (on the 10 m grid) around clouds and shadows
  static MaskOptions from(const std::vector<int>& valid_classes, int dilation);
};

// Opens every file of the acquisition, checks it is complete and that all bands sit on one grid family, and returns
// the finest grid among them (the acquisition's 10 m grid). Throws InputError naming the offending file.
// `jpeg2000_footprint`, if given, receives the edge on the 10 m grid that the JPEG 2000 tiles of all its files align
// to (the least common multiple of their tiles' footprints; 0 without tiled JPEG 2000 files).
geo::Grid inspect(const Acquisition& acquisition, const std::vector<std::string>& bands,
                  int* jpeg2000_footprint = nullptr);

// Scratch buffers for reading, owned by the caller and reused for every acquisition and block, so memory does not
// grow with the number of dates.
struct ReadScratch {
  std::vector<std::uint16_t> dn, coarse_u16;
  std::vector<std::uint8_t> mask, coarse_u8, halo_valid;
};

class AcquisitionReader {
 public:
  // Works out once per acquisition how each file sits on the tile grid (`tile_grid` must equal inspect()'s grid).
  // Files are not held: every read takes them from `files`, so thousands of acquisitions never exhaust descriptors.
  AcquisitionReader(const Acquisition& acquisition, const geo::Grid& tile_grid, const std::vector<std::string>& bands,
                    geo::RasterCache& files);
  // refl: [n_bands][window pixels] reflectance x 10000; valid: [window pixels] 1 = clear.
  // The mask is read first: where it leaves no clear pixel in the window (a cloudy date, the no-data part of an
  // orbit) the bands are not decoded at all, refl is left untouched and false is returned.
  bool read(const geo::Window& window, const MaskOptions& mask, geo::RasterCache& files, ReadScratch& scratch,
            std::int16_t* refl, std::uint8_t* valid) const;

 private:
  struct Source {
    std::string path;
    int band;
    int factor;
    int offset;
    bool has_nodata;
    std::uint16_t nodata;
  };
  MaskKind mask_kind_;
  geo::Grid grid_;
  std::vector<Source> bands_;
  Source mask_{};
  bool has_mask_ = false;
};

}  // namespace s2crop::sentinel2
