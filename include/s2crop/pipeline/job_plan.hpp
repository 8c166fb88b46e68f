#pragma once
// `s2crop plan JOB`: before submitting, what a job definition will cost — input volume, output sizes, memory per
// rank, run time per stage and node-hours — from the job's tiles (scanned when the input is on disk already) and
// measured per-unit costs (jobs/costs.ini), with a suggested node count per stage for a target wall time.
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "s2crop/pipeline/job_definition.hpp"

namespace s2crop::pipeline {

struct UnitCosts {
  std::map<std::string, double> values;  // [costs] of jobs/costs.ini
  double at(const std::string& key) const;  // throws ConfigError naming the missing key
  static UnitCosts read(const std::string& path);
};

struct PlanOptions {
  double target_hours = 2.0;   // suggested nodes: the count that finishes each stage in about this time
  int cores_per_node = 32;     // for stages whose definition gives no ranks per node
};

struct StagePlan {
  std::string name;
  std::string work;            // the units, in words ("3 tiles x 1205604 px x 66 acquisitions")
  long units = 0;              // independent work units (blocks, samples shards, ...): the useful rank limit
  int nodes = 1, ranks = 1, threads = 1, gpus_per_node = 0;
  double cpu_seconds = 0;      // one-core seconds of work
  double wall_seconds = 0;     // with the definition's ranks and threads, startup included
  double memory_mib = 0;       // peak per rank
  double memory_limit_mib = 0; // what the definition asks of Slurm per rank (0: not given)
  double output_bytes = 0;
  int suggested_nodes = 1;
  int suggested_ranks_per_node = 1;
};

struct JobPlan {
  std::string job, name;
  std::vector<std::string> tiles;
  double pixels_per_tile = 0, acquisitions_per_tile = 0;
  double input_bytes = 0;
  std::string input_source;    // "scanned DIR" or "estimated: ..."
  std::vector<StagePlan> stages;
  double wall_seconds = 0, node_hours = 0;
  std::vector<std::string> warnings;
};

JobPlan plan_job(const JobDefinition& job, const UnitCosts& costs, const PlanOptions& options);
void print_plan(std::ostream& out, const JobPlan& plan, const PlanOptions& options);
std::string plan_json(const JobPlan& plan);

}  // namespace s2crop::pipeline
