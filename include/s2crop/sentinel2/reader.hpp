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
geo::Grid inspect(const Acquisition& acquisition, const std::vector<std::string>& bands);

class AcquisitionReader {
 public:
  // Takes the files from `files` (kept open across blocks); `tile_grid` must equal inspect()'s grid.
  AcquisitionReader(const Acquisition& acquisition, const geo::Grid& tile_grid, const std::vector<std::string>& bands,
                    geo::RasterCache& files);
  // refl: [n_bands][window pixels] reflectance x 10000; valid: [window pixels] 1 = clear.
  void read(const geo::Window& window, const MaskOptions& mask, std::int16_t* refl, std::uint8_t* valid);

 private:
  struct Source {
    geo::RasterReader* file;
    int band;
    int factor;
    int offset;
    bool has_nodata;
    std::uint16_t nodata;
  };
  void read_resampled_u16(const Source& s, const geo::Window& w, std::uint16_t* out);
  void read_resampled_u8(const Source& s, const geo::Window& w, std::uint8_t* out);
  const Acquisition& acquisition_;
  geo::Grid grid_;
  std::vector<Source> bands_;
  Source mask_{};
  bool has_mask_ = false;
  std::vector<std::uint16_t> dn_, coarse_u16_;
  std::vector<std::uint8_t> mask_buf_, coarse_u8_, halo_valid_;
};

}  // namespace s2crop::sentinel2
