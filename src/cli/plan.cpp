#include <iostream>

#include "options.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/common/text.hpp"
#include "s2crop/pipeline/job_plan.hpp"

namespace s2crop::cli {

int run_plan(int argc, char** argv, const parallel::MpiContext& mpi) {
  po::options_description opts("Plan options");
  opts.add_options()
      ("job", po::value<std::string>(), "job definition (INI), e.g. jobs/austria.ini")
      ("set", po::value<std::vector<std::string>>()->composing(),
       "override a value of the job definition, SECTION.KEY=VALUE (repeatable; as jobs/submit --set)")
      ("costs", po::value<std::string>()->default_value(""),
       "per-unit costs (default: jobs/costs.ini of the checkout; measured on the development machine)")
      ("target-hours", po::value<double>()->default_value(2.0),
       "suggest the nodes that finish each stage in about this many hours")
      ("cores-per-node", po::value<int>()->default_value(32),
       "cores of a node, for stages whose definition gives no ranks per node")
      ("json", po::value<std::string>()->default_value(""), "also write the estimate as JSON to this file");
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
  std::string costs_path = vm["costs"].as<std::string>();
  if (costs_path.empty()) costs_path = job.resolve("jobs/costs.ini");
  pipeline::PlanOptions options;
  options.target_hours = vm["target-hours"].as<double>();
  options.cores_per_node = vm["cores-per-node"].as<int>();
  if (options.target_hours <= 0 || options.cores_per_node < 1)
    throw ConfigError("plan: --target-hours and --cores-per-node must be positive");
  if (!mpi.is_root()) return 0;
  auto plan = pipeline::plan_job(job, pipeline::UnitCosts::read(costs_path), options);
  pipeline::print_plan(std::cout, plan, options);
  if (auto json = vm["json"].as<std::string>(); !json.empty()) write_text_atomically(json, pipeline::plan_json(plan));
  return 0;
}

}  // namespace s2crop::cli
