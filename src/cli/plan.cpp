#include <filesystem>
#include <iostream>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/pipeline/job_plan.hpp"

namespace s2crop::cli {

namespace {

// The plan reads each stage's --config file (default configs/<stage>.ini) line by line: a FIFO, a terminal or
// /dev/stdin would make it wait forever, so anything but a regular file is refused by name. The stages the plan
// reads: every stage of the job, and composite, extract and train for the inputs of the others.
void check_stage_configs(const pipeline::JobDefinition& job) {
  std::vector<std::string> stages = job.stages();
  for (const char* also : {"composite", "extract", "train"}) stages.emplace_back(also);
  for (const auto& stage : stages) {
    const std::string script = job.get(stage, "script");
    std::string config = job.resolve("configs/" + (script.empty() ? stage : script) + ".ini");
    const auto args = job.stage_args(stage);
    for (size_t i = 0; i < args.size(); ++i) {  // the last --config wins, as in JobDefinition::stage_option
      if (args[i] == "--config" && i + 1 < args.size()) config = job.resolve(args[i + 1]);
      if (args[i].rfind("--config=", 0) == 0) config = job.resolve(args[i].substr(9));
    }
    std::error_code ec;
    if (std::filesystem::exists(config, ec) && !std::filesystem::is_regular_file(config, ec))
      throw ConfigError("plan: stage " + stage + ": --config " + config + " is not a regular file");
  }
}

}  // namespace

int run_plan(int argc, char** argv, const parallel::MpiContext& mpi) {
  pipeline::PlanOptions options;
  std::string costs_path, json;
  po::options_description opts("Plan options");
  opts.add_options()
      ("job", po::value<std::string>(), "job definition (INI), e.g. jobs/austria.ini")
      ("set", po::value<std::vector<std::string>>()->composing(),
       "override a value of the job definition, SECTION.KEY=VALUE (repeatable; as jobs/submit --set)");
  OptionBinder b(opts);
  b.add("costs", costs_path,
        "per-unit costs (default: jobs/costs.ini of the checkout; measured on the development machine)")
      .add("target-hours", options.target_hours, "suggest the nodes that finish each stage in about this many hours",
           Range<double>::above(0))
      .add("cores-per-node", options.cores_per_node,
           "cores of a node, for stages whose definition gives no ranks per node", Range<int>{1})
      .add("json", json, "also write the estimate as JSON to this file");
  po::positional_options_description positional;
  positional.add("job", 1);
  po::variables_map vm;
  if (!parse_options("plan", "JOB.ini [--set SECTION.KEY=VALUE ...] [options]",
                     "Estimates, before submitting, what a job definition will cost: input volume (scanned when the "
                     "input is on disk, else from the definition's tile size and acquisition count), output sizes, "
                     "memory per rank, run time per stage with the definition's nodes, ranks and threads, node-hours, "
                     "and the node count per stage that finishes it in --target-hours. Run time comes from measured "
                     "per-unit costs (jobs/costs.ini): on other hardware measure the demo job once and scale them. "
                     "Runs on one rank.",
                     opts, &positional, argc, argv, vm, mpi.is_root()))
    return 0;
  if (!vm.count("job")) throw ConfigError("plan: give a job definition, e.g. s2crop plan jobs/demo.ini");
  std::vector<std::string> overrides;
  if (vm.count("set")) overrides = vm["set"].as<std::vector<std::string>>();
  auto job = pipeline::JobDefinition::read(vm["job"].as<std::string>(), overrides);
  if (costs_path.empty()) costs_path = job.resolve("jobs/costs.ini");
  check_stage_configs(job);
  if (!mpi.is_root()) return 0;
  auto plan = pipeline::plan_job(job, pipeline::UnitCosts::read(costs_path), options);
  pipeline::print_plan(std::cout, plan, options);
  if (!json.empty()) write_text_atomically(json, pipeline::plan_json(plan));
  return 0;
}

}  // namespace s2crop::cli
