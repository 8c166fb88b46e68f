#include "s2crop/pipeline/job_plan.hpp"

#include <gdal_priv.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/sentinel2/acquisition.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline {
namespace {

constexpr int kClasses = 16;  // TimeSen2Crop's crop classes: what a per-class cap multiplies
constexpr int kMonths = 12;

double number(const std::string& text, const std::string& what, double fallback) {
  if (text.empty()) return fallback;
  try {
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && std::isfinite(v)) return v;  // stod also reads "nan" and "inf"
  } catch (const std::exception&) {
  }
  throw ConfigError(what + ": '" + text + "' is not a number");
}

// A Slurm count (nodes, tasks, CPUs, GPUs): a whole number from `min` to 1e6.
int count(const std::string& text, const std::string& what, int fallback, int min) {
  double v = number(text, what, fallback);
  if (v != std::floor(v) || v < min || v > 1e6)
    throw ConfigError(what + ": '" + text + "' is not a whole number from " + std::to_string(min) + " to 1000000");
  return static_cast<int>(v);
}

// An estimate as an integer; out of range (absurd but valid inputs) it saturates instead of being undefined.
template <class T>
T saturate(double v) {
  if (std::isnan(v)) return 0;
  if (!(v > static_cast<double>(std::numeric_limits<T>::min()))) return std::numeric_limits<T>::min();
  if (!(v < static_cast<double>(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
  return static_cast<T>(v);
}

// Slurm memory ("2G", "500M", "4000" = MiB) in MiB; 0 when empty.
double memory_mib(const std::string& text, const std::string& what) {
  if (text.empty()) return 0;
  double factor = 1;
  std::string digits = text;
  switch (std::toupper(static_cast<unsigned char>(text.back()))) {
    case 'K': factor = 1.0 / 1024; digits.pop_back(); break;
    case 'M': digits.pop_back(); break;
    case 'G': factor = 1024; digits.pop_back(); break;
    case 'T': factor = 1024 * 1024; digits.pop_back(); break;
    default: break;
  }
  return number(digits, what, 0) * factor;
}

std::string bytes_text(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (bytes >= 1024 && u < 5) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

// The file behind a GDAL path: /vsizip/a.zip/x.jp2 -> a.zip.
std::string physical_file(const std::string& gdal_path) {
  if (gdal_path.rfind("/vsizip/", 0) == 0) {
    auto rest = gdal_path.substr(8);
    auto zip = rest.find(".zip");
    return zip == std::string::npos ? rest : rest.substr(0, zip + 4);
  }
  return gdal_path;
}

struct InputScan {
  bool found = false;
  std::map<std::string, int> acquisitions;  // per tile
  std::map<std::string, double> pixels;     // per tile, at 10 m
  double bytes = 0;
};

InputScan scan_input(const std::string& input, const std::vector<std::string>& tiles) {
  InputScan scan;
  if (input.empty() || !fs::exists(input)) return scan;
  sentinel2::DiscoveryOptions options;
  options.tiles = tiles;
  std::vector<sentinel2::Skipped> skipped;
  auto acquisitions = sentinel2::discover({input}, options, /*skip_bad=*/true, skipped);
  if (acquisitions.empty()) return scan;
  scan.found = true;
  std::set<std::string> files;
  for (auto& a : acquisitions) {
    scan.acquisitions[a.tile]++;
    for (auto& [band, source] : a.bands) files.insert(physical_file(source.path));
    if (!a.mask.path.empty()) files.insert(physical_file(a.mask.path));
    if (!scan.pixels.count(a.tile)) {
      // The tile's 10 m grid: the size of a 10 m band (B04 is in every layout).
      auto it = a.bands.find("B04");
      const auto& source = it != a.bands.end() ? it->second : a.bands.begin()->second;
      if (GDALDatasetH ds = GDALOpen(source.path.c_str(), GA_ReadOnly)) {
        scan.pixels[a.tile] = static_cast<double>(GDALGetRasterXSize(ds)) * GDALGetRasterYSize(ds);
        GDALClose(ds);
      }
    }
  }
  for (auto& f : files) {
    std::error_code ec;
    auto size = fs::file_size(f, ec);
    if (!ec) scan.bytes += static_cast<double>(size);
  }
  return scan;
}

}  // namespace

double UnitCosts::at(const std::string& key) const {
  auto it = values.find(key);
  if (it == values.end()) throw ConfigError("unit costs: no value for '" + key + "' (see jobs/costs.ini)");
  return it->second;
}

UnitCosts UnitCosts::read(const std::string& path) {
  auto file = JobDefinition::read_ini_section(path, "costs");
  UnitCosts costs;
  for (auto& [key, value] : file) costs.values[key] = number(value, path + ": " + key, 0);
  return costs;
}

JobPlan plan_job(const JobDefinition& job, const UnitCosts& costs, const PlanOptions& options) {
  JobPlan plan;
  plan.job = job.path();
  plan.name = job.name();
  plan.tiles = split_comma_list(job.get("data", "tiles"));
  const std::string input = job.resolve(job.get("data", "input"));
  auto scan = scan_input(input, plan.tiles);
  const double assumed_side = number(job.get("data", "tile_size", "10980"), "[data] tile_size", 10980);
  const double assumed_acquisitions =
      number(job.get("data", "acquisitions_per_tile", "73"), "[data] acquisitions_per_tile", 73);
  if (scan.found) {
    if (plan.tiles.empty())
      for (auto& [t, n] : scan.acquisitions) plan.tiles.push_back(t);
    double acq = 0, px = 0;
    for (auto& t : plan.tiles) {
      if (!scan.acquisitions.count(t)) plan.warnings.push_back("tile " + t + " has no acquisition in " + input);
      acq += scan.acquisitions[t];
      px += scan.pixels.count(t) ? scan.pixels[t] : assumed_side * assumed_side;
    }
    plan.acquisitions_per_tile = acq / std::max<size_t>(1, plan.tiles.size());
    plan.pixels_per_tile = px / std::max<size_t>(1, plan.tiles.size());
    plan.input_bytes = scan.bytes;
    plan.input_source = "scanned " + input;
  } else {
    if (plan.tiles.empty()) throw ConfigError(job.path() + ": [data] tiles is empty and the input is not on disk");
    plan.acquisitions_per_tile = assumed_acquisitions;
    plan.pixels_per_tile = assumed_side * assumed_side;
    plan.input_bytes = static_cast<double>(plan.tiles.size()) * plan.pixels_per_tile * plan.acquisitions_per_tile *
                       costs.at("input_bytes_per_pixel_date");
    char buf[200];
    std::snprintf(buf, sizeof buf, "estimated: input %s not on disk yet; %.0f px tiles, %.0f acquisitions per tile",
                  input.empty() ? "(none given)" : input.c_str(), assumed_side, assumed_acquisitions);
    plan.input_source = buf;
  }
  const double n_tiles = static_cast<double>(plan.tiles.size());
  const double px = plan.pixels_per_tile, acq = plan.acquisitions_per_tile;
  const double side = std::sqrt(px);
  const double startup = costs.at("job_startup"), thread_eff = costs.at("thread_efficiency");
  const double base_mib = costs.at("base_memory_mib");
  const double bands = static_cast<double>(split_comma_list(job.stage_option("composite", "bands",
      "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12")).size());
  auto tiles_of = [&](const std::string& stage, const std::string& key) {
    auto list = split_comma_list(job.stage_option(stage, key));
    return list.empty() ? n_tiles : static_cast<double>(list.size());
  };
  auto model_factor = [&](const std::string& stage_with_model) {
    double hidden = number(job.stage_option(stage_with_model, "hidden", "128"), "train --hidden", 128);
    double layers = number(job.stage_option(stage_with_model, "layers", "2"), "train --layers", 2);
    return (hidden / 64.0) * (hidden / 64.0) * (layers / 2.0);
  };
  const bool has_train = job.has_section("train");
  // classify_per_pixel is for hidden 64 x 2 layers; only the model's share of it (not reading, features, writing)
  // grows with the model. Without a [train] section the model is the default 128 x 2.
  const double model_share = costs.at("classify_model_share");
  const double classify_factor = (1 - model_share) + model_share * (has_train ? model_factor("train") : 4.0);

  for (auto& name : job.stages()) {
    if (!job.has_section(name)) throw ConfigError(job.path() + ": stage " + name + " has no [" + name + "] section");
    StagePlan s;
    s.name = name;
    const double nodes = count(job.get(name, "nodes"), "[" + name + "] nodes", 1, 1);
    const double per_node = count(job.get(name, "ntasks_per_node"), "[" + name + "] ntasks_per_node", 0, 0);
    const double ntasks = count(job.get(name, "ntasks"), "[" + name + "] ntasks", 0, 0);
    s.nodes = static_cast<int>(nodes);
    s.ranks = saturate<int>(ntasks > 0 ? ntasks : (per_node > 0 ? per_node * nodes : nodes));
    s.threads = count(job.get(name, "cpus_per_task"), "[" + name + "] cpus_per_task", 1, 1);
    s.gpus_per_node = count(job.get(name, "gpus_per_node"), "[" + name + "] gpus_per_node", 0, 0);
    s.memory_limit_mib = memory_mib(job.get(name, "mem_per_cpu", job.get("slurm", "mem_per_cpu")), "mem_per_cpu") *
                         s.threads;
    bool threaded = false;
    char work[300];
    // composite's auto is 512 px, or the JPEG 2000 tiles' footprint (2048 px for Sentinel-2 SAFE), which the plan
    // cannot see: it counts 512.
    std::string block_text = job.stage_option(name, "block-size", "512");
    if (name == "composite" && block_text == "auto") block_text = "512";
    const double block = number(block_text, name + " --block-size", 512);
    if (block < 1)
      throw ConfigError(name + " --block-size: '" + job.stage_option(name, "block-size") + "' is not positive");
    const double blocks_per_tile = std::ceil(side / block) * std::ceil(side / block);
    if (name == "synth") {
      s.cpu_seconds = n_tiles * px * acq * costs.at("synth_per_pixel_date");
      s.units = saturate<long>(n_tiles * acq);
      s.memory_mib = base_mib + px * 2.0 * 3 / 1048576.0;
      s.output_bytes = n_tiles * px * acq * costs.at("input_bytes_per_pixel_date");
      std::snprintf(work, sizeof work, "%.0f tiles x %.0f px x %.0f acquisitions", n_tiles, px, acq);
    } else if (name == "composite") {
      s.cpu_seconds = n_tiles * px * acq * costs.at("composite_per_pixel_date");
      s.units = saturate<long>(n_tiles * blocks_per_tile);
      s.memory_mib = base_mib + 12.0 * block * block * acq / 1048576.0;
      s.output_bytes = n_tiles * px * costs.at("composite_bytes_per_pixel") * bands / 10.0;
      std::snprintf(work, sizeof work, "%.0f tiles x %.0f px x %.0f acquisitions, %ld blocks", n_tiles, px, acq, s.units);
    } else if (name == "extract") {
      double t = tiles_of(name, "tiles");
      double cap = number(job.stage_option(name, "per-class", "2000"), "extract --per-class", 2000);
      double samples = cap > 0 ? cap * kClasses : 0.05 * t * px;
      s.cpu_seconds = t * px * costs.at("extract_per_pixel");
      s.units = saturate<long>(t * blocks_per_tile);
      s.memory_mib = base_mib + samples * kMonths * bands * 2 * 3 / 1048576.0;
      s.output_bytes = samples * (kMonths * bands * 2 + 24);
      std::snprintf(work, sizeof work, "%.0f tiles scanned, about %.0f samples", t, samples);
    } else if (name == "import") {
      double samples = number(job.get("data", "samples", "1200000"), "[data] samples", 1.2e6);
      s.cpu_seconds = samples * costs.at("import_per_sample");
      s.units = saturate<long>(samples);
      s.memory_mib = base_mib + samples / s.ranks * kMonths * bands * 2 / 1048576.0;
      s.output_bytes = samples * (kMonths * bands * 2 + 24) * 0.6;
      std::snprintf(work, sizeof work, "%.0f labelled pixel series (one CSV file each)", samples);
    } else if (name == "train") {
      double cap = number(job.has_section("extract") ? job.stage_option("extract", "per-class", "2000") : "2000",
                          "extract --per-class", 2000);
      double set_tiles = job.has_section("extract") ? tiles_of("extract", "tiles") : n_tiles;
      double set_samples = job.has_section("import") ? number(job.get("data", "samples", "1200000"), "[data] samples", 1.2e6)
                                                     : (cap > 0 ? cap * kClasses : 0.05 * set_tiles * px);
      double samples = set_samples * tiles_of(name, "tiles") / set_tiles;
      double val = number(job.stage_option(name, "val-fraction", "0.1"), "train --val-fraction", 0.1);
      double epochs = number(job.stage_option(name, "epochs", "30"), "train --epochs", 30);
      double train_samples = samples * (1 - val);
      s.cpu_seconds = train_samples * epochs * costs.at("train_per_sample_epoch") * model_factor(name);
      if (s.gpus_per_node > 0) s.cpu_seconds /= costs.at("train_gpu_speedup");
      s.units = saturate<long>(std::max(1.0, train_samples / 64));  // at least a batch per rank and step
      s.memory_mib = base_mib + 150 + samples / s.ranks * kMonths * bands * 4 * 2 / 1048576.0;
      s.output_bytes = 4.0 * 4 * 128 * 128 * 2 * 3;  // parameters, model file and checkpoint: small
      threaded = s.gpus_per_node == 0;  // on GPUs the CPU threads only feed the device
      std::snprintf(work, sizeof work, "about %.0f training samples x %.0f epochs (early stopping may end sooner)%s",
                    train_samples, epochs, s.gpus_per_node ? ", on GPUs" : "");
    } else if (name == "classify") {
      double t = tiles_of(name, "tiles");
      s.cpu_seconds = t * px * costs.at("classify_per_pixel") * classify_factor;
      s.units = saturate<long>(t * blocks_per_tile);
      s.memory_mib = base_mib + block * block * kMonths * bands * 4 / 1048576.0;
      s.output_bytes = t * px * 2 * 0.35 * 2;  // class + confidence, deflated, HDF5 and COG
      threaded = true;
      std::snprintf(work, sizeof work, "%.0f tiles x %.0f px, %ld blocks", t, px, s.units);
    } else if (name == "mosaic") {
      double out_px = n_tiles * px * 1.15;  // reprojection frames every tile in a slightly larger box
      s.cpu_seconds = out_px * costs.at("mosaic_per_pixel");
      s.units = saturate<long>(std::ceil(out_px / (1024.0 * 1024.0)));
      s.memory_mib = base_mib + 4.0 * px * 2 / 1048576.0;
      s.output_bytes = out_px * 0.35 * 1.33;  // deflated classes with overviews
      std::snprintf(work, sizeof work, "about %.0f output px from %.0f tiles", out_px, n_tiles);
    } else if (name == "assess" && !job.stage_option(name, "model").empty()) {
      // A model on held-out samples: prediction of those samples only.
      double t = tiles_of(name, "tiles");
      double samples = number(job.get("data", "samples", "1200000"), "[data] samples", 1.2e6) * t / n_tiles;
      s.cpu_seconds = samples * costs.at("classify_per_pixel") * classify_factor;
      s.units = saturate<long>(std::max(1.0, samples / 2048));
      s.memory_mib = base_mib + 150 + samples / s.ranks * kMonths * bands * 4 / 1048576.0;
      s.output_bytes = 200e3;
      threaded = true;
      std::snprintf(work, sizeof work, "model on about %.0f held-out samples", samples);
    } else if (name == "assess") {
      double t = tiles_of(name, "tiles");
      s.cpu_seconds = t * px * costs.at("assess_per_pixel");
      s.units = saturate<long>(t);
      s.memory_mib = base_mib + px * 3 / 1048576.0;
      s.output_bytes = 200e3;
      std::snprintf(work, sizeof work, "%.0f tiles x %.0f px against the reference", t, px);
    } else {
      plan.warnings.push_back("stage " + name + ": no cost model, not estimated");
      std::snprintf(work, sizeof work, "not estimated");
    }
    s.work = work;
    const double per_rank_speed = threaded ? 1 + thread_eff * (s.threads - 1) : 1.0;
    const double useful_ranks = std::max(1.0, std::min<double>(s.ranks, static_cast<double>(std::max(1L, s.units))));
    s.wall_seconds = startup + s.cpu_seconds / (useful_ranks * per_rank_speed);
    // Stages that read the whole input cannot go faster than the file system delivers it.
    if (name == "composite") {
      double io_seconds = startup + plan.input_bytes / (costs.at("filesystem_read_gbps") * 1e9);
      if (io_seconds > s.wall_seconds) {
        s.wall_seconds = io_seconds;
        s.work += " (bound by reading the input)";
      }
    }
    if (s.units > 0 && s.ranks > s.units)
      plan.warnings.push_back(name + ": " + std::to_string(s.ranks) + " ranks but only " + std::to_string(s.units) +
                              " work units: the extra ranks idle");
    if (s.memory_limit_mib > 0 && s.memory_mib > s.memory_limit_mib)
      plan.warnings.push_back(name + ": about " + std::to_string(saturate<long>(s.memory_mib)) +
                              " MiB per rank needed but mem_per_cpu x cpus_per_task gives " +
                              std::to_string(saturate<long>(s.memory_limit_mib)) + " MiB");
    // Suggested nodes: ranks per node as defined (or the node's cores over threads; GPUs for GPU training).
    int rpn = per_node > 0 ? static_cast<int>(per_node)
                           : std::max(1, s.gpus_per_node > 0 ? s.gpus_per_node : options.cores_per_node / s.threads);
    s.suggested_ranks_per_node = rpn;
    const double target = options.target_hours * 3600.0;
    double nodes_needed = std::ceil(s.cpu_seconds / std::max(1.0, target - startup) / (rpn * per_rank_speed));
    double nodes_useful = std::ceil(static_cast<double>(std::max(1L, s.units)) / rpn);
    s.suggested_nodes = saturate<int>(std::max(1.0, std::min(nodes_needed, nodes_useful)));
    plan.wall_seconds += s.wall_seconds;
    plan.node_hours += s.wall_seconds * std::max(1, s.nodes) / 3600.0;
    plan.stages.push_back(s);
  }
  return plan;
}

void print_plan(std::ostream& out, const JobPlan& p, const PlanOptions& options) {
  char line[400];
  out << "plan for job '" << p.name << "' (" << p.job << ")\n";
  std::snprintf(line, sizeof line, "  %zu tile(s), %.0f px per tile (%.0f x %.0f at 10 m), %.1f acquisitions per tile\n",
                p.tiles.size(), p.pixels_per_tile, std::sqrt(p.pixels_per_tile), std::sqrt(p.pixels_per_tile),
                p.acquisitions_per_tile);
  out << line << "  input: " << bytes_text(p.input_bytes) << " (" << p.input_source << ")\n\n";
  std::snprintf(line, sizeof line, "  %-10s %6s %6s %5s %11s %11s %10s %10s   %s\n", "stage", "nodes", "ranks", "thr",
                "core-hours", "wall", "mem/rank", "output", "work");
  out << line;
  for (auto& s : p.stages) {
    std::snprintf(line, sizeof line, "  %-10s %6d %6d %5d %11.2f %11s %7.0f MiB %10s   %s\n", s.name.c_str(), s.nodes,
                  s.ranks, s.threads, s.cpu_seconds / 3600.0, log::format_duration(s.wall_seconds).c_str(),
                  s.memory_mib, bytes_text(s.output_bytes).c_str(), s.work.c_str());
    out << line;
  }
  std::snprintf(line, sizeof line, "\n  estimated run time %s (stages one after the other), %.2f node-hours\n",
                log::format_duration(p.wall_seconds).c_str(), p.node_hours);
  out << line;
  out << "\n  suggested nodes to finish each stage in about " << options.target_hours << " h:\n";
  for (auto& s : p.stages) {
    std::snprintf(line, sizeof line, "    %-10s %4d node(s) x %d rank(s)%s\n", s.name.c_str(), s.suggested_nodes,
                  s.suggested_ranks_per_node, s.gpus_per_node ? " (one per GPU)" : "");
    out << line;
  }
  for (auto& w : p.warnings) out << "  warning: " << w << "\n";
}

std::string plan_json(const JobPlan& p) {
  std::ostringstream o;
  o.precision(10);
  o << "{\"job\": " << json_string(p.job) << ", \"name\": " << json_string(p.name) << ", \"tiles\": [";
  for (size_t i = 0; i < p.tiles.size(); ++i) o << (i ? ", " : "") << json_string(p.tiles[i]);
  o << "], \"pixels_per_tile\": " << p.pixels_per_tile << ", \"acquisitions_per_tile\": " << p.acquisitions_per_tile
    << ", \"input_bytes\": " << p.input_bytes << ", \"input_source\": " << json_string(p.input_source)
    << ", \"wall_seconds\": " << p.wall_seconds << ", \"node_hours\": " << p.node_hours << ", \"stages\": [";
  for (size_t i = 0; i < p.stages.size(); ++i) {
    auto& s = p.stages[i];
    o << (i ? ", " : "") << "{\"name\": " << json_string(s.name) << ", \"nodes\": " << s.nodes << ", \"ranks\": " << s.ranks
      << ", \"threads\": " << s.threads << ", \"units\": " << s.units << ", \"cpu_seconds\": " << s.cpu_seconds
      << ", \"wall_seconds\": " << s.wall_seconds << ", \"memory_mib\": " << s.memory_mib
      << ", \"output_bytes\": " << s.output_bytes << ", \"suggested_nodes\": " << s.suggested_nodes << "}";
  }
  o << "], \"warnings\": [";
  for (size_t i = 0; i < p.warnings.size(); ++i) o << (i ? ", " : "") << json_string(p.warnings[i]);
  o << "]}\n";
  return o.str();
}

}  // namespace s2crop::pipeline
