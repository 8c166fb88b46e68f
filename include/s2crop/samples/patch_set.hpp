#pragma once
// Patch sets: labelled square patches of monthly composites for segmentation models (U-Net, issue 6) and for
// self-supervised pre-training, in one HDF5 file. `s2crop extract --patches S` writes them; the trainer reads a
// contiguous slice per rank (read_patch_set). No LibTorch here: readers hand out plain arrays.
// Layout (format "s2crop patch set", format_version 1):
//   attrs   format, format_version, s2crop_version, created, config, inputs,
//           bands [B], months [12] ("YYYY-MM"), season_start_month, tiles [T], patch_size S,
//           label_layers [L] (extract: ["crop_type", "field_boundary", "cropland"]), class_names [K],
//           label_scope "pixel" (labels of each pixel; the default when absent) or "patch" (one set of labels per
//           patch broadcast to its pixels, as BigEarthNet's image-level labels: import-bigearthnet)
//   x       int16  [n][12][B][S][S]  reflectance x 10000 as in the composite file (scale_factor 1e-4);
//                                    -32768 = no data (a pixel without any clear observation all season)
//   labels  uint8  [n][L][S][S]      one plane per label layer. A layer named crop_type holds class indices
//                                    0..K-1, 255 where unlabelled; every other layer is binary: 0/1, 255 unknown.
//                                    The layers extract writes:
//                                    layer 0 crop_type: class index 0..K-1, 255 where unlabelled;
//                                    layer 1 field_boundary: 1 on a labelled pixel with a 4-neighbour in another
//                                      parcel (another parcel id, or another class where parcel ids are unknown) or
//                                      unlabelled; 0 on other labelled pixels and on unlabelled pixels. Neighbours
//                                      beyond the tile edge are unknown and make no boundary; neighbours outside
//                                      the patch but inside the tile count, so the layer never depends on the cut;
//                                    layer 2 cropland: 1 on labelled pixels, 0 elsewhere
//   clear   uint8  [n][12][S][S]     1 where the month had at least one clear observation (0: gap-filled)
//   tile    uint16 [n]               index into attrs tiles
//   row/col int32  [n]               top-left pixel of the patch in the tile grid, -1 where unknown
//                                    (import-bigearthnet)
//   patch_name, acquisition_date     optional string datasets [n] (import-bigearthnet: the BigEarthNet patch
//                                    name and "YYYY-MM-DD"); readers ignore them
// x, labels and clear are chunked one patch per chunk (deflate 1, shuffle), so a reader of any slice decompresses
// only its patches. Patch order: tile order of the composite file, then row-major window order; it never depends
// on the rank count.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/parallel/mpi.hpp"
#include "s2crop/samples/training_set.hpp"

namespace s2crop::samples {

inline constexpr const char* kPatchSetFormat = "s2crop patch set";
inline constexpr std::int64_t kPatchSetVersion = 1;
inline constexpr int kPatchLabelLayers = 3;  // the layers extract writes (patch_label_layer_names)
inline constexpr int kCropTypeLayer = 0, kFieldBoundaryLayer = 1, kCroplandLayer = 2;
inline constexpr std::uint8_t kNoPatchLabel = 255;  // crop_type of an unlabelled pixel
inline constexpr int kMinPatchSize = 8, kMaxPatchSize = 1024;

// The label_layers extract writes, in layer order.
const std::vector<std::string>& patch_label_layer_names();
inline constexpr const char* kCropTypeLayerName = "crop_type";
// Empty when `layers` are valid label layer names (non-empty, unique, at most 255), else the problem.
std::string check_label_layers(const std::vector<std::string>& layers);

// Metadata of a patch set.
struct PatchSetHeader {
  std::vector<std::string> bands;
  std::vector<std::string> months;  // kSeasonMonths "YYYY-MM" labels
  int season_start_month = 9;
  std::vector<std::string> tiles;
  int patch_size = 0;
  std::vector<std::string> label_layers;  // extract: patch_label_layer_names()
  std::vector<std::string> class_names;   // classes of the crop_type layer (may be empty without one)
  std::string label_scope = "pixel";      // pixel | patch (image-level labels broadcast to every pixel)
  std::size_t patches = 0;                // n: patches in the file (filled in by the reader)

  std::size_t x_values() const;      // values of x per patch: 12 * B * S * S
  std::size_t label_values() const;  // L * S * S
  int layer_index(const std::string& name) const;  // -1 when the set has no such layer
  std::size_t clear_values() const;  // 12 * S * S
};

// A contiguous slice [begin, begin + size()) of the patches of a file (or a rank's batch being written).
struct PatchSet {
  PatchSetHeader header;
  std::size_t begin = 0;
  std::vector<std::int16_t> x;       // [patch][12][B][S][S]
  std::vector<std::uint8_t> labels;  // [patch][L][S][S]
  std::vector<std::uint8_t> clear;   // [patch][12][S][S]
  std::vector<std::uint16_t> tile;
  std::vector<std::int32_t> row, col;

  std::size_t size() const { return tile.size(); }
};

// Collective writer of one patch set over `comm`. Every rank makes the same calls in the same order:
//   PatchSetWriter w(path, header, provenance, total, my_first, my_tile, my_row, my_col, comm);
//   for each round (the same count on every rank): w.write(indices, x, labels, clear);   // possibly empty
//   w.finish();
// Writes `path`.partial.h5 and renames it into place in finish(), so a failed run leaves no file that looks whole.
class PatchSetWriter {
 public:
  // Creates the file with every attribute and dataset for `total` patches and writes tile/row/col of this rank's
  // patches [first, first + tile.size()) (the ranks' slices are contiguous and consecutive in rank order).
  PatchSetWriter(const std::string& path, const PatchSetHeader& header, const Provenance& provenance,
                 std::size_t total, std::size_t first, const std::vector<std::uint16_t>& tile,
                 const std::vector<std::int32_t>& row, const std::vector<std::int32_t>& col, MPI_Comm comm);
  ~PatchSetWriter();
  PatchSetWriter(const PatchSetWriter&) = delete;
  PatchSetWriter& operator=(const PatchSetWriter&) = delete;

  // Collective: patches at the global `indices` (ascending, any gaps) from buffers holding indices.size() patches
  // in that order ([patch][12][B][S][S], [patch][L][S][S], [patch][12][S][S]). Empty `indices`: this rank has
  // nothing in this round.
  void write(const std::vector<std::size_t>& indices, const std::int16_t* x, const std::uint8_t* labels,
             const std::uint8_t* clear);
  // Collective: closes the file and moves it into place.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Attributes and patch count; validates the format, version, attributes and the shapes of every dataset.
// Serial read. Throws InputError naming the file and the problem.
PatchSetHeader read_patch_set_header(const std::string& path);

// Patches [begin, end) with their header: each trainer rank reads only its shard. Serial read.
// Throws InputError naming the file for a range outside it, a missing or mis-shaped dataset or another format.
// `images` false: x and clear stay empty (labels and metadata only).
PatchSet read_patch_set(const std::string& path, std::size_t begin, std::size_t end, bool images = true);
// Every patch's labels, tile, row and col without the images: what every trainer rank needs of the whole set to
// split it and to weigh each patch's loss.
PatchSet read_patch_set_labels(const std::string& path);
// The tile index of every patch (dataset `tile`), checked against the header's tiles: what selecting patches by
// tile needs, without reading any label or image. Serial read.
std::vector<std::uint16_t> read_patch_set_tiles(const std::string& path, const PatchSetHeader& header);

}  // namespace s2crop::samples
