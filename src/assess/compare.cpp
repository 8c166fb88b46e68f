#include "s2crop/assess/compare.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/text.hpp"

namespace s2crop::assess {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Interval interval(double value, const std::vector<double>& replicates) {
  return Interval{value, percentile(replicates, 0.025), percentile(replicates, 0.975)};
}

bool clear_of_zero(const Interval& d) { return d.value > 0 ? d.lower > 0 : (d.value < 0 ? d.upper < 0 : false); }

}  // namespace

bool PairDifference::overall_clear() const { return clear_of_zero(overall); }
bool PairDifference::macro_f1_clear() const { return clear_of_zero(macro_f1); }

double percentile(std::vector<double> values, double q) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return !std::isfinite(v); }), values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const double at = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  return values[lo] + (at - static_cast<double>(lo)) * (values[hi] - values[lo]);
}

Comparison compare_models(const std::vector<std::string>& class_names, const std::vector<std::uint8_t>& reference,
                          const std::vector<std::int64_t>& unit, const std::vector<ModelPredictions>& models,
                          int replicates, std::uint64_t seed) {
  const int C = static_cast<int>(class_names.size());
  const size_t n = reference.size(), M = models.size();
  if (n == 0) throw Error("no samples to compare the models on");
  if (M < 2) throw Error("a comparison needs at least 2 models");
  if (replicates < 100) throw Error("--bootstrap " + std::to_string(replicates) + ": at least 100 replicates");
  if (unit.size() != n) throw Error("sampling units and references disagree in length");
  for (const auto& m : models) {
    if (m.predicted.size() != n)
      throw Error(m.name + " gave " + std::to_string(m.predicted.size()) + " predictions for " + std::to_string(n) +
                  " samples");
  }
  for (size_t k = 0; k < n; ++k)
    if (reference[k] >= C) throw Error("reference class " + std::to_string(reference[k]) + " is out of range");

  // Units in order of first appearance; each unit's own confusion counts per model (few classes: a sparse list).
  std::map<std::int64_t, size_t> index;
  std::vector<std::vector<size_t>> members;
  for (size_t k = 0; k < n; ++k) {
    auto [it, fresh] = index.emplace(unit[k], members.size());
    if (fresh) members.emplace_back();
    members[it->second].push_back(k);
  }
  const size_t U = members.size();

  Comparison c;
  c.class_names = class_names;
  c.samples = n;
  c.units = U;
  c.replicates = replicates;
  c.seed = seed;
  std::vector<ConfusionMatrix> full(M, ConfusionMatrix(C));
  for (size_t m = 0; m < M; ++m)
    for (size_t k = 0; k < n; ++k) full[m].add(models[m].predicted[k], reference[k]);  // range-checked there

  // Replicates: every model's metrics on the same resample of units.
  const size_t R = static_cast<size_t>(replicates);
  std::vector<std::vector<double>> oa(M, std::vector<double>(R)), kappa(M, std::vector<double>(R)),
      f1(M, std::vector<double>(R));
  std::vector<std::vector<std::vector<double>>> class_f1(
      M, std::vector<std::vector<double>>(static_cast<size_t>(C), std::vector<double>(R, kNaN)));
  std::vector<std::uint32_t> draws(U);
  std::uint64_t state = hash::mix64(seed ^ 0xB0075742ULL);
  for (size_t r = 0; r < R; ++r) {
    std::fill(draws.begin(), draws.end(), 0u);
    for (size_t d = 0; d < U; ++d) {
      // Multiply-shift reduction of a 64-bit draw to [0, U): no modulo bias worth the name for U << 2^32.
      const std::uint64_t x = hash::splitmix64(state) >> 32;
      ++draws[static_cast<size_t>((x * U) >> 32)];
    }
    for (size_t m = 0; m < M; ++m) {
      ConfusionMatrix cm(C);
      for (size_t u = 0; u < U; ++u)
        if (draws[u])
          for (size_t k : members[u]) cm.add(models[m].predicted[k], reference[k], draws[u]);
      const Accuracy a = accuracy(cm);
      oa[m][r] = a.overall;
      kappa[m][r] = a.kappa;
      f1[m][r] = a.macro_f1;
      for (int k = 0; k < C; ++k)
        if (cm.reference_total(k) > 0) class_f1[m][static_cast<size_t>(k)][r] = a.per_class[static_cast<size_t>(k)].f1;
    }
  }
  for (size_t m = 0; m < M; ++m) {
    ModelScores s;
    s.name = models[m].name;
    s.accuracy = accuracy(full[m]);
    s.overall = interval(s.accuracy.overall, oa[m]);
    s.kappa = interval(s.accuracy.kappa, kappa[m]);
    s.macro_f1 = interval(s.accuracy.macro_f1, f1[m]);
    for (int k = 0; k < C; ++k) {
      const double v = full[m].reference_total(k) > 0 ? s.accuracy.per_class[static_cast<size_t>(k)].f1 : kNaN;
      s.class_f1.push_back(interval(v, class_f1[m][static_cast<size_t>(k)]));
    }
    c.models.push_back(std::move(s));
  }
  auto minus = [&](const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<double> d(R);
    for (size_t r = 0; r < R; ++r) d[r] = x[r] - y[r];
    return d;
  };
  for (size_t a = 0; a < M; ++a)
    for (size_t b = a + 1; b < M; ++b) {
      PairDifference p;
      p.a = a;
      p.b = b;
      p.overall = interval(c.models[a].overall.value - c.models[b].overall.value, minus(oa[a], oa[b]));
      p.kappa = interval(c.models[a].kappa.value - c.models[b].kappa.value, minus(kappa[a], kappa[b]));
      p.macro_f1 = interval(c.models[a].macro_f1.value - c.models[b].macro_f1.value, minus(f1[a], f1[b]));
      c.pairs.push_back(p);
    }
  return c;
}

namespace {

std::string json_interval(const Interval& i) {
  return "{\"value\": " + json_number(i.value, 10) + ", \"ci95\": [" + json_number(i.lower, 10) + ", " +
         json_number(i.upper, 10) + "]}";
}

std::string fixed(double v, int digits = 3) {
  if (!std::isfinite(v)) return "n/a";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string cell(const Interval& i) {
  if (!std::isfinite(i.value)) return "n/a";
  return fixed(i.value) + " [" + fixed(i.lower) + ", " + fixed(i.upper) + "]";
}

std::string signed_cell(const Interval& i) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%+.3f [%+.3f, %+.3f]", i.value, i.lower, i.upper);
  return buf;
}

}  // namespace

void write_comparison_json(const std::string& path, const Comparison& c) {
  std::ostringstream j;
  j << "{\n  \"samples\": " << c.samples << ",\n  \"units\": " << c.units << ",\n  \"unit\": " << json_string(c.unit_kind)
    << ",\n  \"bootstrap_replicates\": " << c.replicates << ",\n  \"bootstrap_seed\": " << c.seed
    << ",\n  \"interval\": \"95 % percentile bootstrap over sampling units, paired across models\",\n  \"class_names\": [";
  for (size_t k = 0; k < c.class_names.size(); ++k) j << (k ? ", " : "") << json_string(c.class_names[k]);
  j << "],\n  \"models\": [\n";
  for (size_t m = 0; m < c.models.size(); ++m) {
    const ModelScores& s = c.models[m];
    j << "    {\"name\": " << json_string(s.name) << ", \"overall_accuracy\": " << json_interval(s.overall)
      << ", \"kappa\": " << json_interval(s.kappa) << ", \"macro_f1\": " << json_interval(s.macro_f1)
      << ",\n     \"class_f1\": [";
    for (size_t k = 0; k < s.class_f1.size(); ++k) j << (k ? ", " : "") << json_interval(s.class_f1[k]);
    j << "]}" << (m + 1 < c.models.size() ? "," : "") << "\n";
  }
  j << "  ],\n  \"differences\": [\n";
  for (size_t p = 0; p < c.pairs.size(); ++p) {
    const PairDifference& d = c.pairs[p];
    j << "    {\"a\": " << json_string(c.models[d.a].name) << ", \"b\": " << json_string(c.models[d.b].name)
      << ", \"overall_accuracy\": " << json_interval(d.overall) << ", \"kappa\": " << json_interval(d.kappa)
      << ", \"macro_f1\": " << json_interval(d.macro_f1) << "}" << (p + 1 < c.pairs.size() ? "," : "") << "\n";
  }
  j << "  ]\n}\n";
  write_text_atomically(path, j.str());
}

void write_comparison_markdown(const std::string& path, const Comparison& c, const std::string& title) {
  std::ostringstream m;
  m << "# " << title << "\n\n"
    << c.samples << " held-out samples in " << c.units << " sampling units (" << c.unit_kind << "s). Brackets: 95 % "
    << "confidence intervals, percentiles of " << c.replicates << " bootstrap resamples of the units (seed " << c.seed
    << "), the same resamples for every model.\n\n"
    << "| model | OA | kappa | macro-F1 |\n|---|---|---|---|\n";
  for (const auto& s : c.models)
    m << "| " << s.name << " | " << cell(s.overall) << " | " << cell(s.kappa) << " | " << cell(s.macro_f1) << " |\n";
  m << "\n## F1 per class\n\n| class |";
  for (const auto& s : c.models) m << " " << s.name << " |";
  m << "\n|---|";
  for (size_t k = 0; k < c.models.size(); ++k) m << "---|";
  m << "\n";
  for (size_t k = 0; k < c.class_names.size(); ++k) {
    if (!std::isfinite(c.models[0].class_f1[k].value)) continue;  // not in the reference
    m << "| " << c.class_names[k] << " |";
    for (const auto& s : c.models) m << " " << cell(s.class_f1[k]) << " |";
    m << "\n";
  }
  m << "\n## Differences (row model minus column model)\n\n"
    << "A difference is clear where its interval excludes 0.\n\n| models | OA | kappa | macro-F1 | clear |\n|---|---|---|---|---|\n";
  for (const auto& d : c.pairs) {
    std::string clear;
    if (d.overall_clear()) clear += "OA";
    if (d.macro_f1_clear()) clear += clear.empty() ? "macro-F1" : ", macro-F1";
    m << "| " << c.models[d.a].name << " - " << c.models[d.b].name << " | " << signed_cell(d.overall) << " | "
      << signed_cell(d.kappa) << " | " << signed_cell(d.macro_f1) << " | " << (clear.empty() ? "no" : clear) << " |\n";
  }
  write_text_atomically(path, m.str());
}

}  // namespace s2crop::assess
