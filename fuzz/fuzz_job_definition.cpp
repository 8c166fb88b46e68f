// libFuzzer target: a job definition (jobs/*.ini) as `s2crop plan` reads it: JobDefinition::parse (sections, keys,
// continuation lines, [DEFAULT], ${key} and ${section:key} interpolation), every value interpolated, the stages'
// args split like a shell, then plan_job over the definition with the unit costs of jobs/costs.ini and both
// printed. Relative paths resolve against the checkout (S2CROP_ROOT, so configs/<stage>.ini are the real ones);
// [data] input is overridden to empty so that planning never scans a folder. Expected failures are s2crop::Error;
// anything else escaping is a finding.
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/job_definition.hpp"
#include "s2crop/pipeline/job_plan.hpp"

using namespace s2crop;
using namespace s2crop::pipeline;

namespace {
UnitCosts demo_costs() {  // jobs/costs.ini
  UnitCosts c;
  c.values = {{"synth_per_pixel_date", 7.6e-7}, {"composite_per_pixel_date", 7.5e-7},
              {"import_per_sample", 3e-4},      {"extract_per_pixel", 3.9e-6},
              {"train_per_sample_epoch", 1.9e-4}, {"train_gpu_speedup", 20},
              {"classify_per_pixel", 5.8e-5},   {"classify_model_share", 0.57},
              {"mosaic_per_pixel", 4e-7},
              {"assess_per_pixel", 1.5e-6},     {"filesystem_read_gbps", 2},
              {"job_startup", 3},               {"thread_efficiency", 0.7},
              {"base_memory_mib", 250},         {"input_bytes_per_pixel_date", 7.2},
              {"composite_bytes_per_pixel", 105}};
  return c;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("S2CROP_ROOT", S2CROP_FUZZ_SOURCE_DIR, 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const UnitCosts costs = demo_costs();
  try {
    JobDefinition job = JobDefinition::parse(text, S2CROP_FUZZ_SOURCE_DIR "/jobs/fuzz.ini", {"data.input="});
    (void)job.name();
    for (auto& stage : job.stages()) {
      if (!job.has_section(stage)) continue;
      (void)job.get(stage, "script");
      (void)job.stage_args(stage);
      (void)job.stage_option(stage, "tiles");
    }
    PlanOptions options;
    JobPlan plan = plan_job(job, costs, options);
    std::ostringstream out;
    print_plan(out, plan, options);
    (void)plan_json(plan);
  } catch (const Error&) {
  }
  try {
    (void)split_comma_list(text);
    (void)shell_split(text);
  } catch (const Error&) {
  }
  return 0;
}
