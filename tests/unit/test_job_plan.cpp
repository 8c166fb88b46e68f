// Job definitions (read as jobs/submit's configparser reads them) and `s2crop plan`'s estimates: interpolation,
// overrides, shell splitting, stage options from args and config files, and how the estimate scales with the work
// and the ranks. The run-time estimate against a measured run is checked on a real Slurm cluster
// (tests/integration/test_slurm.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <unistd.h>

#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/job_definition.hpp"
#include "s2crop/pipeline/job_plan.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using pipeline::JobDefinition;

namespace {

struct TempCheckout {
  fs::path root;
  TempCheckout() {
    root = fs::temp_directory_path() / ("s2crop-plan-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    fs::create_directories(root / "slurm");
    fs::create_directories(root / "configs");
    fs::create_directories(root / "jobs");
  }
  ~TempCheckout() { fs::remove_all(root); }
  std::string write(const std::string& rel, const std::string& text) const {
    std::ofstream(root / rel) << text;
    return (root / rel).string();
  }
};

const char* kCosts =
    "[costs]\nsynth_per_pixel_date = 1e-6\ncomposite_per_pixel_date = 1e-6\nextract_per_pixel = 1e-6\n"
    "import_per_sample = 1e-4\ntrain_per_sample_epoch = 1e-4\ntrain_gpu_speedup = 10\nclassify_per_pixel = 1e-5\n"
    "classify_model_share = 0.5\n"
    "mosaic_per_pixel = 1e-7\nassess_per_pixel = 1e-6\njob_startup = 2\nthread_efficiency = 0.5\n"
    "base_memory_mib = 100\ninput_bytes_per_pixel_date = 7\ncomposite_bytes_per_pixel = 100\n"
    "filesystem_read_gbps = 1000\n";

}  // namespace

TEST(JobDefinition, InterpolatesLikeConfigparser) {
  TempCheckout c;
  auto path = c.write("jobs/j.ini",
                      "# comment\n[DEFAULT]\nworkdir = runs/x\n\n[job]\nname = j\nstages = composite, classify\n"
                      "logs = ${workdir}/logs\n[data]\ntiles = 33UVP\nInput = /data/${data:tiles}\n"
                      "[composite]\nargs = --input ${data:input} --output ${workdir}/c.h5\n  --block-size 256\n"
                      "[classify]\nworkdir = local\nargs = --output ${workdir}/m.h5 --price $$5\n");
  auto job = JobDefinition::read(path);
  EXPECT_EQ(job.name(), "j");
  EXPECT_EQ(job.stages(), (std::vector<std::string>{"composite", "classify"}));
  EXPECT_EQ(job.get("job", "logs"), "runs/x/logs");
  EXPECT_EQ(job.get("data", "input"), "/data/33UVP");  // keys are case-insensitive
  EXPECT_EQ(job.get("composite", "args"), "--input /data/33UVP --output runs/x/c.h5 --block-size 256");
  EXPECT_EQ(job.get("classify", "args"), "--output local/m.h5 --price $5");  // the section's own value wins
  EXPECT_EQ(job.get("composite", "missing", "fb"), "fb");
  EXPECT_EQ(job.root(), c.root.string());  // the folder holding slurm/ and configs/
  EXPECT_EQ(job.resolve("configs/x.ini"), (c.root / "configs/x.ini").string());
  EXPECT_EQ(job.resolve("/abs/p"), "/abs/p");

  auto overridden = JobDefinition::read(path, {"DEFAULT.workdir=/scratch/r", "data.tiles=32TQT"});
  EXPECT_EQ(overridden.get("composite", "args"), "--input /data/32TQT --output /scratch/r/c.h5 --block-size 256");
  EXPECT_THROW(JobDefinition::read(path, {"nodot=1"}), ConfigError);
}

TEST(JobDefinition, ClearErrors) {
  TempCheckout c;
  EXPECT_THROW(JobDefinition::read((c.root / "jobs/none.ini").string()), InputError);
  auto no_job = c.write("jobs/a.ini", "[data]\ntiles = 33UVP\n");
  EXPECT_THROW(JobDefinition::read(no_job), InputError);
  auto bad_line = c.write("jobs/b.ini", "[job]\nstages = composite\nthis line has no equals sign\n");
  try {
    JobDefinition::read(bad_line);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("b.ini:3"), std::string::npos) << e.what();  // file and line
  }
  auto undefined = c.write("jobs/c.ini", "[job]\nstages = composite\n[composite]\nargs = ${nowhere}\n");
  auto job = JobDefinition::read(undefined);
  EXPECT_THROW(job.get("composite", "args"), ConfigError);
  auto cycle = c.write("jobs/d.ini", "[job]\nstages = x\na = ${b}\nb = ${a}\n");
  EXPECT_THROW(JobDefinition::read(cycle).get("job", "a"), ConfigError);
}

TEST(JobDefinition, ShellSplitAndStageOptions) {
  EXPECT_EQ(pipeline::shell_split(R"(--a 'b c' "d \"e\"" f\ g  --h=i)"),
            (std::vector<std::string>{"--a", "b c", "d \"e\"", "f g", "--h=i"}));
  EXPECT_THROW(pipeline::shell_split("--a 'open"), ConfigError);

  TempCheckout c;
  c.write("configs/train.ini", "hidden = 128\nepochs = 30\n");
  c.write("configs/small.ini", "hidden = 32\n");
  auto path = c.write("jobs/j.ini",
                      "[job]\nstages = train, other\n[train]\nargs = --epochs 5 --ndvi --batch-size=64\n"
                      "[other]\nscript = train\nargs = --config configs/small.ini\n");
  auto job = JobDefinition::read(path);
  EXPECT_EQ(job.stage_option("train", "epochs"), "5");        // args win
  EXPECT_EQ(job.stage_option("train", "batch-size"), "64");   // --key=value
  EXPECT_EQ(job.stage_option("train", "ndvi"), "true");       // a switch
  EXPECT_EQ(job.stage_option("train", "hidden"), "128");      // configs/<stage>.ini
  EXPECT_EQ(job.stage_option("other", "hidden"), "32");       // the stage's own --config
  EXPECT_EQ(job.stage_option("train", "lr", "0.002"), "0.002");
}

TEST(JobPlan, ScalesWithWorkAndRanks) {
  TempCheckout c;
  auto costs_path = c.write("jobs/costs.ini", kCosts);
  auto costs = pipeline::UnitCosts::read(costs_path);
  const std::string base =
      "[job]\nstages = composite, classify\n[data]\ntiles = 33UVP,33UWP\ninput = /nonexistent\ntile_size = 1000\n"
      "acquisitions_per_tile = 50\n[composite]\nargs = --block-size 100\n[classify]\nargs = --block-size 100\n";
  pipeline::PlanOptions options;
  auto plan1 = pipeline::plan_job(JobDefinition::read(c.write("jobs/a.ini", "[DEFAULT]\nntasks = 1\n" + base)), costs, options);
  ASSERT_EQ(plan1.stages.size(), 2u);
  EXPECT_EQ(plan1.tiles.size(), 2u);
  EXPECT_DOUBLE_EQ(plan1.pixels_per_tile, 1e6);
  EXPECT_NE(plan1.input_source.find("estimated"), std::string::npos);
  EXPECT_DOUBLE_EQ(plan1.input_bytes, 2 * 1e6 * 50 * 7);
  const auto& comp = plan1.stages[0];
  EXPECT_DOUBLE_EQ(comp.cpu_seconds, 2 * 1e6 * 50 * 1e-6);  // tiles x px x acquisitions x cost
  EXPECT_DOUBLE_EQ(comp.wall_seconds, 2 + comp.cpu_seconds);
  EXPECT_EQ(comp.units, 200);  // 2 tiles x 10 x 10 blocks
  EXPECT_GT(comp.memory_mib, 100);

  // Resources in [DEFAULT] apply to every stage. 4 ranks with 2 threads each: compositing (one thread per rank) 4x faster, classification 4 x 1.5 x faster.
  auto plan4 = pipeline::plan_job(
      JobDefinition::read(c.write("jobs/b.ini", "[DEFAULT]\nntasks = 4\ncpus_per_task = 2\n" + base)), costs, options);
  EXPECT_NEAR(plan4.stages[0].wall_seconds - 2, (plan1.stages[0].wall_seconds - 2) / 4, 1e-9);
  EXPECT_NEAR(plan4.stages[1].wall_seconds - 2, (plan1.stages[1].wall_seconds - 2) / 6, 1e-9);
  EXPECT_NEAR(plan1.wall_seconds, plan1.stages[0].wall_seconds + plan1.stages[1].wall_seconds, 1e-9);

  // More ranks than units: no faster than one rank per unit, and said so.
  auto plan_many = pipeline::plan_job(JobDefinition::read(c.write("jobs/c.ini", "[DEFAULT]\nntasks = 1000\n" + base)), costs,
                                      options);
  EXPECT_NEAR(plan_many.stages[1].wall_seconds - 2, (plan1.stages[1].wall_seconds - 2) / 200, 1e-9);
  EXPECT_FALSE(plan_many.warnings.empty());

  // Suggested nodes shrink the stage below the target time.
  options.target_hours = 0.001;  // 3.6 s
  options.cores_per_node = 4;
  auto suggested = pipeline::plan_job(JobDefinition::read(c.write("jobs/d.ini", base)), costs, options);
  EXPECT_EQ(suggested.stages[0].suggested_nodes, static_cast<int>(std::ceil(100.0 / 1.6 / 4)));
  // A missing cost is an error naming the key.
  auto partial = c.write("jobs/partial.ini", "[costs]\njob_startup = 1\n");
  EXPECT_THROW(pipeline::plan_job(JobDefinition::read(c.write("jobs/e.ini", base)), pipeline::UnitCosts::read(partial),
                                  options),
               ConfigError);
}

// Found by fuzz/fuzz_job_definition: "nan", "inf" and absurd sizes were undefined double -> int conversions, and
// cpus_per_task = 0 an integer division by zero. Slurm counts must be whole numbers; estimates saturate.
TEST(JobPlan, RejectsNonNumbersAndSaturatesAbsurdSizes) {
  TempCheckout c;
  auto costs = pipeline::UnitCosts::read(c.write("jobs/costs.ini", kCosts));
  pipeline::PlanOptions options;
  const std::string base = "[job]\nstages = composite, classify\n[data]\ntiles = 33UVP\ninput = /nonexistent\n"
                           "acquisitions_per_tile = 50\n[composite]\n[classify]\n";
  auto plan = [&](const std::string& name, const std::string& text) {
    return pipeline::plan_job(JobDefinition::parse(text, (c.root / "jobs" / name).string()), costs, options);
  };
  for (std::string bad : {"[DEFAULT]\nnodes = inf\n", "[DEFAULT]\nntasks = nan\n", "[DEFAULT]\ncpus_per_task = 0\n",
                          "[DEFAULT]\nntasks_per_node = 2.5\n", "[DEFAULT]\nnodes = 1e300\n",
                          "[DEFAULT]\ngpus_per_node = -1\n", "[DEFAULT]\ntile_size = nan\n"}) {
    EXPECT_THROW(plan("bad.ini", bad + base), ConfigError) << bad;
  }
  EXPECT_THROW(plan("block.ini", "[DEFAULT]\nargs = --block-size 0\n" + base), ConfigError);
  // Valid but absurd: 1e200 px tiles give saturated unit counts and a printable plan, not undefined behaviour.
  auto huge = plan("huge.ini", "[DEFAULT]\ntile_size = 1e200\n" + base);
  ASSERT_EQ(huge.stages.size(), 2u);
  EXPECT_EQ(huge.stages[0].units, std::numeric_limits<long>::max());
  EXPECT_GE(huge.stages[0].suggested_nodes, 1);
  std::ostringstream out;
  pipeline::print_plan(out, huge, options);
  EXPECT_FALSE(pipeline::plan_json(huge).empty());
}

TEST(JobDefinition, ParseMatchesRead) {
  TempCheckout c;
  const std::string text = "[DEFAULT]\nw = x\n[job]\nstages = a\n[a]\nargs = --out ${w}/o\n  --more\n";
  auto path = c.write("jobs/j.ini", text);
  auto read = JobDefinition::read(path), parsed = JobDefinition::parse(text, path);
  EXPECT_EQ(parsed.get("a", "args"), read.get("a", "args"));
  EXPECT_EQ(parsed.get("a", "args"), "--out x/o --more");
  EXPECT_EQ(parsed.root(), read.root());
  try {
    JobDefinition::parse("[job]\nno equals sign\n", "/elsewhere/j.ini");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/elsewhere/j.ini:2"), std::string::npos) << e.what();
  }
}

TEST(JobDefinition, ExponentialExpansionIsAnError) {
  // Each level names the next one ten times: 10^6 copies of a 100-character value, built without a limit.
  std::string text = "[job]\nstages = a\nv0 = " + std::string(100, 'x') + "\n";
  for (int level = 1; level <= 6; ++level) {
    text += "v" + std::to_string(level) + " =";
    for (int k = 0; k < 10; ++k) text += " ${v" + std::to_string(level - 1) + "}";
    text += "\n";
  }
  auto job = JobDefinition::parse(text, "/nowhere/laughs.ini");
  EXPECT_EQ(job.get("job", "v2").size(), 10u * (10 * 100 + 9) + 9);  // small expansions still work
  EXPECT_THROW(job.get("job", "v6"), ConfigError);
}

// A plan whose estimate is not a number (inf x 0) prints unknown times instead of converting NaN to a long.
TEST(JobPlan, NotANumberDurationsPrintAsUnknown) {
  TempCheckout c;
  auto costs = pipeline::UnitCosts::read(c.write("jobs/costs.ini", kCosts));
  pipeline::PlanOptions options;
  auto plan = pipeline::plan_job(
      JobDefinition::parse("[DEFAULT]\ntile_size = 1e200\n[job]\nstages = composite\n[data]\ntiles = 33UVP\n"
                           "acquisitions_per_tile = 0\n[composite]\n",
                           (c.root / "jobs/nan.ini").string()),
      costs, options);
  ASSERT_EQ(plan.stages.size(), 1u);
  EXPECT_TRUE(std::isnan(plan.stages[0].cpu_seconds));
  std::ostringstream out;
  pipeline::print_plan(out, plan, options);
  EXPECT_NE(out.str().find("--:--:--"), std::string::npos) << out.str();
}

// Only the model's share of classify's per-pixel cost grows with the model (hidden^2 x layers): reading, features
// and writing do not. classify_per_pixel is for hidden 64 x 2; without a [train] section the model is 128 x 2.
TEST(JobPlan, ClassifyScalesOnlyItsModelShare) {
  TempCheckout c;
  auto costs = pipeline::UnitCosts::read(c.write("jobs/costs.ini", kCosts));  // share 0.5, 1e-5 s per pixel
  pipeline::PlanOptions options;
  const std::string base = "[DEFAULT]\nntasks = 1\n[job]\nstages = classify\n[data]\ntiles = 33UVP\n"
                           "input = /nonexistent\ntile_size = 1000\nacquisitions_per_tile = 50\n[classify]\n";
  auto classify_cpu = [&](const std::string& name, const std::string& train) {
    auto plan = pipeline::plan_job(JobDefinition::read(c.write("jobs/" + name, base + train)), costs, options);
    return plan.stages.at(0).cpu_seconds;
  };
  EXPECT_NEAR(classify_cpu("h64.ini", "[train]\nargs = --hidden 64\n"), 1e6 * 1e-5, 1e-6);
  EXPECT_NEAR(classify_cpu("h128.ini", "[train]\nargs = --hidden 128\n"), 1e6 * 1e-5 * (0.5 + 0.5 * 4), 1e-6);
  EXPECT_NEAR(classify_cpu("h128x4.ini", "[train]\nargs = --hidden 128 --layers 4\n"), 1e6 * 1e-5 * (0.5 + 0.5 * 8),
              1e-6);
  EXPECT_NEAR(classify_cpu("none.ini", ""), classify_cpu("h128b.ini", "[train]\nargs = --hidden 128\n"), 1e-6);
}
