#include "s2crop/synth/generator.hpp"

#include "s2crop/synth/fields.hpp"
#include "s2crop/synth/scene.hpp"
#include "s2crop/synth/timesen2crop_writer.hpp"
#include "s2crop/synth/writers.hpp"

namespace s2crop::synth {

GenerateStats generate(const Region& region, int rank, int ranks, const std::function<void(std::int64_t)>& progress) {
  const SynthConfig& cfg = region.config;
  GenerateStats stats;
  make_dirs(cfg.out_dir);
  std::vector<bool> needed(region.tiles.size(), rank == 0);
  for (size_t i = static_cast<size_t>(rank); i < region.acquisitions.size(); i += static_cast<size_t>(ranks))
    needed[static_cast<size_t>(region.acquisitions[i].tile)] = true;
  std::vector<FieldLayout> layouts(region.tiles.size());
  for (size_t t = 0; t < region.tiles.size(); ++t)
    if (needed[t]) layouts[t] = make_field_layout(cfg.size, region.tiles[t].seed);

  const bool timesen2crop = !cfg.timesen2crop_dir.empty();
  std::vector<std::vector<TimeSen2CropPixel>> sampled(region.tiles.size());
  std::vector<size_t> first_of_tile(region.tiles.size(), 0);  // acquisitions are tile-major in date order
  if (timesen2crop) {
    for (size_t t = 0; t < region.tiles.size(); ++t)
      if (needed[t]) sampled[t] = timesen2crop_pixels(layouts[t], cfg.timesen2crop_per_class);
    for (size_t i = region.acquisitions.size(); i-- > 0;)
      first_of_tile[static_cast<size_t>(region.acquisitions[i].tile)] = i;
  }

  if (rank == 0) {
    write_parcels(cfg.out_dir + "/parcels.gpkg", region.tiles, layouts);
    for (size_t t = 0; t < region.tiles.size(); ++t) write_labels(cfg.out_dir, region.tiles[t], layouts[t]);
    write_region_json(cfg.out_dir + "/region.json", region, layouts);
  }
  for (size_t i = static_cast<size_t>(rank); i < region.acquisitions.size(); i += static_cast<size_t>(ranks)) {
    const Acquisition& a = region.acquisitions[i];
    const TileSpec& tile = region.tiles[static_cast<size_t>(a.tile)];
    Scene scene = render_scene(tile, layouts[static_cast<size_t>(a.tile)], a);
    if (cfg.layout != Layout::Safe) {
      write_stac_item(cfg.out_dir, tile, a, scene);
      stats.files += kSynthBands + 1;
    }
    if (cfg.layout != Layout::Stac) {
      write_safe_product(cfg.out_dir, tile, a, scene, cfg.safe_jp2);
      stats.files += kSynthBands + 1;
    }
    if (timesen2crop)
      stage_timesen2crop_date(cfg.timesen2crop_dir, tile, i - first_of_tile[static_cast<size_t>(a.tile)], scene,
                              sampled[static_cast<size_t>(a.tile)]);
    ++stats.acquisitions;
    if (progress) progress(stats.acquisitions);
  }
  return stats;
}

}  // namespace s2crop::synth
