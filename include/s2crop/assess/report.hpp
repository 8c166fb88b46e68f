#pragma once
// Accuracy reports: JSON for machines (every number, class names) and Markdown for people (summary, per-class,
// confusion matrix and area tables). Both are written atomically (temporary name, then rename).
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "s2crop/assess/accuracy.hpp"

namespace s2crop::assess {

struct AccuracyReport {
  std::string title;                     // e.g. "Accuracy of maps/austria.h5"
  std::vector<std::string> class_names;  // one per matrix class
  ConfusionMatrix matrix{1};
  Accuracy accuracy;
  std::optional<AreaAdjustedAccuracy> area_adjusted;
  std::string sample_description;        // one sentence: how the sample was drawn and what the strata are
  std::vector<std::pair<std::string, std::string>> provenance;  // inputs, version, creation time, ...
  std::string confusion_figure;          // file name of the confusion-matrix PNG, relative to the Markdown file
};

void write_json_report(const std::string& path, const AccuracyReport& report);
void write_markdown_report(const std::string& path, const AccuracyReport& report);

}  // namespace s2crop::assess
