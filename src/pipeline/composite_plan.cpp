#include <algorithm>
#include <cmath>
#include <numeric>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "composite_internal.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/log.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/sentinel2/reader.hpp"
#include "s2crop/version.hpp"

namespace fs = std::filesystem;

namespace s2crop::pipeline::composite_detail {

std::string month_label(int year, int month, int index) {
  int m = month - 1 + index;
  char buf[16];
  std::snprintf(buf, sizeof buf, "%04d-%02d", year + m / 12, m % 12 + 1);
  return buf;
}

int month_index(const Plan& p, const Date& d) {
  return (d.year * 12 + d.month - 1) - (p.season_year * 12 + p.season_month - 1);
}

namespace {

constexpr std::int64_t kFormatVersion = kCompositeFormatVersion;

std::string escape(std::string s) {
  for (auto& c : s)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  return s;
}

std::string grid_text(const geo::Grid& g) {
  std::ostringstream o;
  o.precision(17);
  o << g.width << '\t' << g.height;
  for (double v : g.geotransform) o << '\t' << v;
  o << '\t' << escape(g.crs_wkt);
  return o.str();
}

geo::Grid grid_from(const std::vector<std::string>& f, size_t at) {
  geo::Grid g;
  g.width = std::stoi(f[at]);
  g.height = std::stoi(f[at + 1]);
  for (int i = 0; i < 6; ++i) g.geotransform[static_cast<size_t>(i)] = std::stod(f[at + 2 + static_cast<size_t>(i)]);
  g.crs_wkt = f[at + 8];
  return g;
}

// Rank 0: discovery and the decisions that need the whole picture.
std::string make_plan_on_root(const CompositeSettings& s, const std::vector<std::string>& inspections,
                              const std::vector<Acquisition>& acqs, std::vector<sentinel2::Skipped> skipped,
                              int season_year, int season_month) {
  // inspections: per acquisition, "G\t<grid>" or "E\t<path>\t<problem>"
  std::map<std::string, std::vector<size_t>> by_tile;
  for (size_t i = 0; i < acqs.size(); ++i) by_tile[acqs[i].tile].push_back(i);
  std::ostringstream plan;
  plan << "P\t" << season_year << '\t' << season_month << '\n';
  for (auto& [tile, idx] : by_tile) {
    // The tile's grid is the one most of its acquisitions agree on (ties: the earliest acquisition's), so one stray
    // product on another grid is reported as the odd one out.
    std::map<std::string, std::pair<int, size_t>> votes;
    for (size_t i : idx) {
      auto f = split_fields(inspections[i]);
      if (f[0] != "G") continue;
      std::string key = inspections[i];
      auto& v = votes[key];
      if (v.first == 0) v.second = i;
      v.first++;
    }
    std::string best;
    int best_n = 0;
    size_t best_first = 0;
    for (auto& [k, v] : votes)
      if (v.first > best_n || (v.first == best_n && v.second < best_first)) {
        best = k;
        best_n = v.first;
        best_first = v.second;
      }
    geo::Grid ref;
    if (!best.empty()) ref = grid_from(split_fields(best), 1);
    std::vector<size_t> kept;
    for (size_t i : idx) {
      auto f = split_fields(inspections[i]);
      std::string problem, where;
      if (f[0] == "E") {
        where = f[1];
        problem = f[2];
      } else if (inspections[i] != best) {
        geo::Grid g = grid_from(f, 1);
        where = acqs[i].bands.begin()->second.path;
        problem = "acquisition " + acqs[i].id + " is on another grid (" + g.describe() + ") than tile " + tile + " (" +
                  ref.describe() + ")";
      }
      if (problem.empty()) {
        kept.push_back(i);
      } else if (s.skip_bad) {
        log::warn("skipping " + where + ": " + problem);
        skipped.push_back({where, problem});
      } else {
        throw InputError(where, problem + " (use --on-error skip to leave bad acquisitions out)");
      }
    }
    if (kept.empty()) {
      log::warn("tile " + tile + " has no usable acquisition; left out");
      continue;
    }
    plan << "T\t" << tile << '\t' << grid_text(ref) << '\n';
    std::vector<Acquisition> mine;
    for (size_t i : kept) mine.push_back(acqs[i]);
    plan << sentinel2::serialise(mine);
    // What each file is on disk, so the fingerprint changes when an input is rewritten in place (same path, new
    // pixels) and no part of the old file's blocks is reused; metadata files (small) by their content.
    std::set<std::string> files;
    for (auto& a : mine) {
      for (auto& [band, src] : a.bands) files.insert(src.path);
      if (a.mask_kind != sentinel2::MaskKind::None) files.insert(a.mask.path);
    }
    for (auto& f : files) plan << "F\t" << f << '\t' << hash::file_identity(f) << '\n';
    for (auto& a : mine) {
      std::error_code ec;
      if (fs::is_regular_file(a.source, ec) && fs::file_size(a.source, ec) < (1u << 22))
        plan << "M\t" << a.source << '\t' << hash::hex64(hash::file_content(a.source)) << '\n';
    }
  }
  for (auto& k : skipped) plan << "S\t" << escape(k.what) << '\t' << escape(k.reason) << '\n';
  return plan.str();
}

Plan parse_plan(const std::string& text, const CompositeSettings& s, int block_size) {
  Plan p;
  p.block_size = block_size;
  std::istringstream in(text);
  std::string line, acq_text;
  auto flush_acqs = [&] {
    if (!p.tiles.empty() && !acq_text.empty()) p.tiles.back().acquisitions = sentinel2::deserialise(acq_text);
    acq_text.clear();
  };
  while (std::getline(in, line)) {
    auto f = split_fields(line);
    if (f[0] == "P") {
      p.season_year = std::stoi(f[1]);
      p.season_month = std::stoi(f[2]);
    } else if (f[0] == "T") {
      flush_acqs();
      TilePlan t;
      t.name = f[1];
      t.grid = grid_from(f, 2);
      p.tiles.push_back(std::move(t));
    } else if (f[0] == "S") {
      p.skipped.push_back({f[1], f.size() > 2 ? f[2] : ""});
    } else if (f[0] == "F" || f[0] == "M") {
      // file identities: only part of the fingerprint
    } else {
      acq_text += line + "\n";
    }
  }
  flush_acqs();
  for (auto& t : p.tiles) {
    t.by_month.assign(kMonths, {});
    for (size_t i = 0; i < t.acquisitions.size(); ++i) {
      int m = month_index(p, t.acquisitions[i].date);
      if (m >= 0 && m < kMonths) t.by_month[static_cast<size_t>(m)].push_back(i);
    }
    t.blocks = geo::cut_blocks(t.grid.width, t.grid.height, block_size);
  }
  std::vector<int> valid = s.valid_scl;
  std::sort(valid.begin(), valid.end());
  valid.erase(std::unique(valid.begin(), valid.end()), valid.end());
  std::vector<std::string> valid_text;
  for (int c : valid) valid_text.push_back(std::to_string(c));
  // The plan text holds every acquisition with its files' identities and its metadata's content (make_plan_on_root).
  Fingerprint fp;
  fp.add("s2crop", kVersion).add("format", std::to_string(kFormatVersion)).add("bands", join_items(s.bands, " "));
  fp.add("method", std::to_string(static_cast<int>(s.method))).add("block", std::to_string(block_size));
  fp.add("dilation", std::to_string(s.dilation)).add("valid", join_items(valid_text, " ")).add("plan", text);
  p.fingerprint = fp.hex();
  // The finished file also depends on how it is written and what is exported with it.
  fp.add("deflate", std::to_string(s.deflate)).add("cog", s.cog_dir);
  fp.add("quicklook", s.quicklook_dir + " " + s.quicklook_month);
  p.output_fingerprint = fp.hex();
  return p;
}
}  // namespace

Plan make_plan(const CompositeSettings& s, const parallel::MpiContext& mpi) {
  // ---- plan: discovery on rank 0
  std::vector<Acquisition> acqs;
  std::vector<sentinel2::Skipped> skipped;
  int season_year = 0, season_month = 0;
  parallel::root_first(mpi.world(), [&] {
    sentinel2::DiscoveryOptions opt;
    opt.allow_unmasked = s.allow_unmasked;
    opt.bands = s.bands;
    opt.offset_mode = s.offset_mode;
    opt.tiles = s.tiles;
    acqs = sentinel2::discover(s.inputs, opt, s.skip_bad, skipped);
    if (acqs.empty()) {
      std::string in;
      for (auto& i : s.inputs) in += " " + i;
      throw InputError(in.substr(1), "no Sentinel-2 L2A acquisition with bands " +
                                         [&] {
                                           std::string b;
                                           for (auto& x : s.bands) b += (b.empty() ? "" : ",") + x;
                                           return b;
                                         }() +
                                         " found (STAC items, SAFE folders/zips or band GeoTIFF folders)");
    }
    for (auto& t : s.tiles)
      if (std::none_of(acqs.begin(), acqs.end(), [&](const Acquisition& a) { return a.tile == t; }))
        throw InputError(join_items(s.inputs), "no acquisition of tile " + t + " (asked for with --tiles) found");
    if (s.season_start == "auto") {
      // The season is the agronomic year (starting in month --season-month) of the acquisitions. Where they span
      // several, a guess would composite the wrong year (or one stray item's): the user chooses.
      std::map<int, int> per_season;
      for (auto& a : acqs) per_season[a.date.month >= s.season_month ? a.date.year : a.date.year - 1]++;
      season_year = per_season.begin()->first;
      season_month = s.season_month;
      if (per_season.size() > 1) {
        std::vector<std::string> counts;
        for (auto& [year, n] : per_season)
          counts.push_back(month_label(year, s.season_month, 0) + ": " + std::to_string(n));
        throw ConfigError("--season-start auto: the acquisitions found span " + std::to_string(per_season.size()) +
                          " seasons (acquisitions per season starting " + join_items(counts) +
                          "); pass --season-start YYYY-MM to choose one");
      }
    } else {
      Date d;
      try {
        d = Date::parse(s.season_start + "-01");
      } catch (const Error&) {
        throw ConfigError("--season-start must be YYYY-MM or auto (got '" + s.season_start + "')");
      }
      season_year = d.year;
      season_month = d.month;
    }
    Plan probe;
    probe.season_year = season_year;
    probe.season_month = season_month;
    std::vector<Acquisition> in_season;
    for (auto& a : acqs) {
      int m = month_index(probe, a.date);
      if (m >= 0 && m < kMonths) in_season.push_back(a);
    }
    if (s.allow_unmasked) {
      size_t unmasked = static_cast<size_t>(std::count_if(acqs.begin(), acqs.end(), [](const Acquisition& a) {
        return a.mask_kind == sentinel2::MaskKind::None;
      }));
      if (unmasked > 0)
        log::warn(std::to_string(unmasked) + " acquisition(s) have no cloud mask and are composited unmasked, clouds "
                  "included (--allow-unmasked)");
    }
    log::info("found " + std::to_string(acqs.size()) + " acquisitions, " + std::to_string(in_season.size()) +
              " in the season starting " + month_label(season_year, season_month, 0));
    if (in_season.empty()) throw InputError(s.inputs.front(), "no acquisition falls in the season starting " +
                                                                  month_label(season_year, season_month, 0));
    // A tile whose acquisitions all fall outside the season would be missing from the output without a word.
    std::map<std::string, std::pair<int, int>> per_tile;  // tile -> (found, in season)
    for (auto& a : acqs) per_tile[a.tile].first++;
    for (auto& a : in_season) per_tile[a.tile].second++;
    for (auto& [tile, n] : per_tile)
      if (n.second == 0)
        throw InputError(join_items(s.inputs), "tile " + tile + " has " + std::to_string(n.first) +
                                                   " acquisition(s), none in the season " +
                                                   month_label(season_year, season_month, 0) + " to " +
                                                   month_label(season_year, season_month, kMonths - 1) +
                                                   ": choose its season with --season-start, or leave it out with "
                                                   "--tiles");
    acqs = std::move(in_season);
  });
  // ---- plan: every rank inspects its share of the files (opening thousands of files is slow on parallel FS)
  std::vector<Acquisition> all = sentinel2::deserialise(parallel::broadcast_string(
      mpi.world(), mpi.is_root() ? sentinel2::serialise(acqs) : std::string()));
  std::string mine;
  int footprint = 0;  // the largest JPEG 2000 footprint among the acquisitions
  for (size_t i = static_cast<size_t>(mpi.rank()); i < all.size(); i += static_cast<size_t>(mpi.size())) {
    std::string line;
    try {
      int acquisition_footprint = 0;
      line = "G\t" + grid_text(sentinel2::inspect(all[i], s.bands, &acquisition_footprint));
      footprint = std::max(footprint, acquisition_footprint);
    } catch (const InputError& e) {
      line = "E\t" + escape(e.path()) + "\t" + escape(std::string(e.what()).substr(e.path().size() + 2));
    }
    mine += std::to_string(i) + "\t" + line + "\n";
  }
  auto gathered = parallel::gather_strings(mpi.world(), mine);
  std::string plan_text;
  parallel::root_first(mpi.world(), [&] {
    std::vector<std::string> inspections(all.size());
    for (auto& chunk : gathered) {
      std::istringstream in(chunk);
      std::string line;
      while (std::getline(in, line)) {
        size_t tab = line.find('\t');
        inspections[std::stoul(line.substr(0, tab))] = line.substr(tab + 1);
      }
    }
    plan_text = make_plan_on_root(s, inspections, all, skipped, season_year, season_month);
  });
  plan_text = parallel::broadcast_string(mpi.world(), plan_text);
  MPI_Allreduce(MPI_IN_PLACE, &footprint, 1, MPI_INT, MPI_MAX, mpi.world());
  std::string why;
  Plan p = parse_plan(plan_text, s, choose_block_size(s.block_size, footprint, why));
  p.jpeg2000_footprint = footprint;
  if (mpi.is_root()) log::info("block size " + std::to_string(p.block_size) + " px (" + why + ")");
  return p;
}

int choose_block_size(int requested, int footprint, std::string& why) {
  const std::string tiles = "the inputs' JPEG 2000 tiles cover " + std::to_string(footprint) + " px on the 10 m grid";
  if (requested > 0) {
    why = "--block-size";
    if (footprint > 0 && (requested % footprint != 0 || requested < footprint)) {
      // A tile straddling k blocks is decoded k times per acquisition: the cost of JPEG 2000 input is its decoding.
      const double k = std::pow(static_cast<double>(footprint) / std::gcd(requested, footprint), 2);
      why += "; " + tiles + ": each is decoded about " + std::to_string(static_cast<int>(std::lround(k))) +
             " times per acquisition (--block-size auto or a multiple of " + std::to_string(footprint) +
             " decodes it once)";
    }
    return requested;
  }
  if (footprint <= 0) {
    why = "auto (--block-size)";
    return kDefaultCompositeBlock;
  }
  if (footprint > kCompositeBlockSizes.max) {
    why = "auto, the largest allowed; " + tiles + ", so some are decoded more than once";
    return kCompositeBlockSizes.max;
  }
  const int block = footprint * ((kDefaultCompositeBlock + footprint - 1) / footprint);
  why = "auto, aligned to the JPEG 2000 tiles (" + tiles + "): each is decoded once per acquisition";
  return block;
}

// The plan as TSV for people and scripts (the NumPy reference compositor in bench/ reads it).
void print_plan(const Plan& p, const CompositeSettings& s) {
  std::ostringstream o;
  o << "#season_start\t" << month_label(p.season_year, p.season_month, 0) << "\n";
  o << "#columns\ttile\tdate\tmonth\tid\tmask_kind\tmask_path\tmask_band";
  for (auto& b : s.bands) o << "\t" << b << "(path|band|offset)";
  o << "\n";
  static const char* kinds[] = {"none", "scl", "valid"};
  for (auto& t : p.tiles) {
    o << "#tile\t" << t.name << "\t" << grid_text(t.grid) << "\n";
    for (auto& a : t.acquisitions) {
      o << t.name << '\t' << a.date.iso() << '\t' << month_index(p, a.date) << '\t' << a.id << '\t'
        << kinds[static_cast<int>(a.mask_kind)] << '\t' << a.mask.path << '\t' << a.mask.band;
      for (auto& b : s.bands) {
        auto& src = a.bands.at(b);
        o << '\t' << src.path << '|' << src.band << '|' << src.offset;
      }
      o << '\n';
    }
  }
  for (auto& k : p.skipped) o << "#skipped\t" << k.what << "\t" << k.reason << "\n";
  std::fputs(o.str().c_str(), stdout);
  std::fflush(stdout);
}


}  // namespace s2crop::pipeline::composite_detail
