#pragma once
// The block stages' option limits, without their dependencies (HDF5, MPI): the CLI and the fuzz targets include it.
namespace s2crop::pipeline {

// Valid block edges (pixels) per stage: the stages check them (library callers too) and the CLI declares --block-size
// with them; one source for both. A block of 4 px still holds whole 20 m pixels; inference needs room for its model's
// windows; the mosaic's blocks are only warped.
struct BlockSizeLimits {
  int min, max;
};
inline constexpr BlockSizeLimits kCompositeBlockSizes{4, 4096};
inline constexpr int kDefaultCompositeBlock = 512;  // --block-size auto without JPEG 2000 inputs
inline constexpr BlockSizeLimits kInferenceBlockSizes{16, 4096};  // classify, ndvi predict, segment predict
inline constexpr BlockSizeLimits kMosaicBlockSizes{16, 8192};
// ConfigError "--block-size must be MIN-MAX (got N)", the CLI's wording.
void check_block_size(int block_size, BlockSizeLimits limits);
// ConfigError "--deflate must be 0-9 (got N)".
void check_deflate(int level);

}  // namespace s2crop::pipeline
