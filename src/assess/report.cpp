#include "s2crop/assess/report.hpp"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"

namespace s2crop::assess {

namespace {

// Ten significant digits: accuracies and areas, not bit patterns.
std::string json_number(double v) { return s2crop::json_number(v, 10); }

std::string json_estimate(const Estimate& e) {
  return "{\"value\": " + json_number(e.value) + ", \"standard_error\": " + json_number(e.standard_error) +
         ", \"ci95\": [" + json_number(e.lower()) + ", " + json_number(e.upper()) + "]}";
}

std::string fixed(double v, int digits) {
  if (!std::isfinite(v)) return "n/a";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string with_ci(const Estimate& e, int digits) {
  if (!std::isfinite(e.value)) return "n/a";
  if (!std::isfinite(e.standard_error)) return fixed(e.value, digits) + " ± n/a";
  return fixed(e.value, digits) + " ± " + fixed(e.half_width(), digits);
}

std::string markdown_cell(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
  return o;
}

// Classes that appear anywhere in the assessment: the Markdown tables leave out the rest (the JSON keeps all).
std::vector<int> classes_present(const AccuracyReport& r) {
  std::vector<int> out;
  for (int k = 0; k < r.matrix.classes(); ++k) {
    bool mapped_area = r.area_adjusted && r.area_adjusted->per_class[static_cast<size_t>(k)].mapped_pixels > 0;
    if (r.matrix.map_total(k) > 0 || r.matrix.reference_total(k) > 0 || mapped_area) out.push_back(k);
  }
  return out;
}

void check_names(const AccuracyReport& r, const std::string& path) {
  if (static_cast<int>(r.class_names.size()) != r.matrix.classes())
    throw OutputError(path, "report has " + std::to_string(r.class_names.size()) + " class names for a " +
                                std::to_string(r.matrix.classes()) + "-class confusion matrix");
}

}  // namespace

void write_json_report(const std::string& path, const AccuracyReport& r) {
  check_names(r, path);
  const int C = r.matrix.classes();
  std::ostringstream j;
  j << "{\n  \"title\": " << json_string(r.title) << ",\n";
  j << "  \"convention\": \"confusion_matrix[i][j]: sample units mapped as class i whose reference is class j "
       "(rows = map, columns = reference, as Olofsson et al. 2014)\",\n";
  j << "  \"sample\": " << json_string(r.sample_description) << ",\n";
  j << "  \"provenance\": {";
  for (size_t k = 0; k < r.provenance.size(); ++k)
    j << (k ? ", " : "") << json_string(r.provenance[k].first) << ": " << json_string(r.provenance[k].second);
  j << "},\n  \"class_names\": [";
  for (int k = 0; k < C; ++k) j << (k ? ", " : "") << json_string(r.class_names[static_cast<size_t>(k)]);
  const Accuracy& a = r.accuracy;
  j << "],\n  \"samples\": " << a.samples << ",\n  \"overall_accuracy\": " << json_number(a.overall)
    << ",\n  \"kappa\": " << json_number(a.kappa) << ",\n  \"macro_f1\": " << json_number(a.macro_f1)
    << ",\n  \"macro_f1_classes\": " << a.macro_f1_classes << ",\n  \"per_class\": [\n";
  for (int k = 0; k < C; ++k) {
    const ClassAccuracy& c = a.per_class[static_cast<size_t>(k)];
    j << "    {\"class\": " << k << ", \"name\": " << json_string(r.class_names[static_cast<size_t>(k)])
      << ", \"mapped\": " << c.mapped << ", \"reference\": " << c.reference << ", \"correct\": " << c.correct
      << ", \"producers_accuracy\": " << json_number(c.producers) << ", \"users_accuracy\": " << json_number(c.users)
      << ", \"f1\": " << json_number(c.f1) << "}" << (k + 1 < C ? "," : "") << "\n";
  }
  j << "  ],\n  \"confusion_matrix\": [\n";
  for (int i = 0; i < C; ++i) {
    j << "    [";
    for (int jj = 0; jj < C; ++jj) j << (jj ? ", " : "") << r.matrix.at(i, jj);
    j << "]" << (i + 1 < C ? "," : "") << "\n";
  }
  j << "  ]";
  if (r.area_adjusted) {
    const AreaAdjustedAccuracy& aa = *r.area_adjusted;
    j << ",\n  \"area_adjusted\": {\n    \"method\": \"stratified estimator, strata = map classes, weights = mapped "
         "area (Olofsson et al. 2014, RSE 148:42-57); 95 % CI = estimate ± 1.96 SE\",\n"
      << "    \"total_pixels\": " << json_number(aa.total_pixels) << ",\n    \"pixel_area_m2\": "
      << json_number(aa.pixel_area_m2) << ",\n    \"overall_accuracy\": " << json_estimate(aa.overall)
      << ",\n    \"unsampled_strata\": [";
    for (size_t k = 0; k < aa.unsampled_strata.size(); ++k) j << (k ? ", " : "") << aa.unsampled_strata[k];
    j << "],\n    \"per_class\": [\n";
    for (int k = 0; k < C; ++k) {
      const AreaAdjustedClass& c = aa.per_class[static_cast<size_t>(k)];
      j << "      {\"class\": " << k << ", \"name\": " << json_string(r.class_names[static_cast<size_t>(k)])
        << ", \"mapped_pixels\": " << json_number(c.mapped_pixels) << ", \"weight\": " << json_number(c.weight)
        << ", \"users_accuracy\": " << json_estimate(c.users)
        << ", \"producers_accuracy\": " << json_estimate(c.producers)
        << ", \"area_proportion\": " << json_estimate(c.area_proportion)
        << ", \"area_pixels\": " << json_estimate(c.area_pixels)
        << ", \"area_hectares\": " << json_estimate(c.area_hectares) << "}" << (k + 1 < C ? "," : "") << "\n";
    }
    j << "    ],\n    \"estimated_proportions\": [\n";
    for (int i = 0; i < C; ++i) {
      j << "      [";
      for (int jj = 0; jj < C; ++jj)
        j << (jj ? ", " : "") << json_number(aa.proportions[static_cast<size_t>(i) * C + jj]);
      j << "]" << (i + 1 < C ? "," : "") << "\n";
    }
    j << "    ]\n  }";
  }
  j << "\n}\n";
  write_text_atomically(path, j.str());
}

void write_markdown_report(const std::string& path, const AccuracyReport& r) {
  check_names(r, path);
  const std::vector<int> shown = classes_present(r);
  auto name = [&](int k) { return markdown_cell(r.class_names[static_cast<size_t>(k)]); };
  const Accuracy& a = r.accuracy;
  std::ostringstream m;
  m << "# " << r.title << "\n\n";
  if (!r.sample_description.empty()) m << "**Sample.** " << r.sample_description << "\n\n";
  m << "Confusion matrix convention (Olofsson et al. 2014): rows = map class, columns = reference class. "
       "Producer's accuracy = 1 - omission error (per reference class), user's accuracy = 1 - commission error "
       "(per map class).\n\n";

  m << "## Summary\n\n| measure | value |\n|---|---|\n";
  m << "| sample units | " << a.samples << " |\n";
  m << "| overall accuracy | " << fixed(a.overall, 4) << " |\n";
  m << "| Cohen's kappa | " << fixed(a.kappa, 4) << " |\n";
  m << "| macro-F1 (" << a.macro_f1_classes << " reference classes) | " << fixed(a.macro_f1, 4) << " |\n";
  if (r.area_adjusted) m << "| area-adjusted overall accuracy (95 % CI) | " << with_ci(r.area_adjusted->overall, 4) << " |\n";
  m << "\n";

  m << "## Per class\n\n| class | reference | mapped | producer's acc. | user's acc. | F1 |";
  if (r.area_adjusted) m << " area-adj. PA (95 % CI) | area-adj. UA (95 % CI) |";
  m << "\n|---|---:|---:|---:|---:|---:|" << (r.area_adjusted ? "---:|---:|" : "") << "\n";
  for (int k : shown) {
    const ClassAccuracy& c = a.per_class[static_cast<size_t>(k)];
    m << "| " << name(k) << " | " << c.reference << " | " << c.mapped << " | " << fixed(c.producers, 4) << " | "
      << fixed(c.users, 4) << " | " << fixed(c.f1, 4) << " |";
    if (r.area_adjusted) {
      const AreaAdjustedClass& aa = r.area_adjusted->per_class[static_cast<size_t>(k)];
      m << " " << with_ci(aa.producers, 4) << " | " << with_ci(aa.users, 4) << " |";
    }
    m << "\n";
  }
  m << "\n";

  m << "## Confusion matrix\n\n";
  if (!r.confusion_figure.empty())
    m << "![Confusion matrix, rows = map, columns = reference, shade = share of the row](" << r.confusion_figure
      << ")\n\n";
  m << "| map \\ reference |";
  for (int k : shown) m << " " << name(k) << " |";
  m << " total |\n|---|";
  for (size_t k = 0; k < shown.size(); ++k) m << "---:|";
  m << "---:|\n";
  for (int i : shown) {
    m << "| **" << name(i) << "** |";
    for (int j : shown) m << " " << (i == j ? "**" + std::to_string(r.matrix.at(i, j)) + "**" : std::to_string(r.matrix.at(i, j))) << " |";
    m << " " << r.matrix.map_total(i) << " |\n";
  }
  m << "| total |";
  for (int j : shown) m << " " << r.matrix.reference_total(j) << " |";
  m << " " << r.matrix.total() << " |\n\n";

  if (r.area_adjusted) {
    const AreaAdjustedAccuracy& aa = *r.area_adjusted;
    double ha_per_pixel = aa.pixel_area_m2 / 10000.0;
    m << "## Area estimates\n\nStratified estimator with the map classes as strata, weighted by mapped area "
         "(Olofsson et al. 2014, RSE 148:42-57); 95 % confidence interval = estimate ± 1.96 SE. Pixel area "
      << fixed(aa.pixel_area_m2, 1) << " m².\n\n";
    m << "| class | mapped pixels | mapped ha | estimated ha (95 % CI) | estimated pixels (95 % CI) | area share |\n"
         "|---|---:|---:|---:|---:|---:|\n";
    for (int k : shown) {
      const AreaAdjustedClass& c = aa.per_class[static_cast<size_t>(k)];
      m << "| " << name(k) << " | " << fixed(c.mapped_pixels, 0) << " | " << fixed(c.mapped_pixels * ha_per_pixel, 1)
        << " | " << with_ci(c.area_hectares, 1) << " | " << with_ci(c.area_pixels, 0) << " | "
        << fixed(c.area_proportion.value, 4) << " |\n";
    }
    m << "\n";
    if (!aa.unsampled_strata.empty()) {
      m << "**Warning:** mapped classes without any sample unit were left out of the estimate (their area cannot "
           "be apportioned):";
      for (int k : aa.unsampled_strata)
        m << " " << name(k) << " (" << fixed(aa.per_class[static_cast<size_t>(k)].mapped_pixels, 0) << " px)";
      m << ".\n\n";
    }
  }

  if (!r.provenance.empty()) {
    m << "## Provenance\n\n";
    for (auto& [k, v] : r.provenance) m << "- " << k << ": `" << v << "`\n";
  }
  write_text_atomically(path, m.str());
}

}  // namespace s2crop::assess
