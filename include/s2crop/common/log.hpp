#pragma once
// Line-oriented logging for batch jobs: every line carries time and rank so interleaved Slurm logs of many
// ranks stay readable. Lines are written with one write() each so they do not tear between ranks.
#include <chrono>
#include <cstdint>
#include <string>

namespace s2crop::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

void set_rank(int rank, int size);
void set_level(Level level);
Level level();

void debug(const std::string& message);
void info(const std::string& message);   // every rank
void warn(const std::string& message);
void error(const std::string& message);
void root(const std::string& message);   // rank 0 only, at Info level

// Progress of a counted job on rank 0: prints "label: done/total unit (pct), rate unit/s, ETA h:mm:ss",
// at most once every `interval` seconds plus the final line. Meant for log files, not terminals: no \r.
class Progress {
 public:
  Progress(std::string label, std::string unit, std::int64_t total, double interval_seconds = 5.0);
  void update(std::int64_t done);  // absolute count, monotonic
  // Units already done before this run (a resumed job): counted in done/total, not in the rate and ETA.
  void set_base(std::int64_t already_done) { base_ = already_done; }
  void finish();
 private:
  void print(std::int64_t done);
  std::string label_, unit_;
  std::int64_t total_;
  double interval_;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::int64_t last_done_ = -1;
  std::int64_t base_ = 0;
  bool finished_ = false;
};

std::string format_duration(double seconds);
// Current UTC time as ISO 8601 ("2026-11-24T16:25:00Z"), the `created` stamp of every output.
std::string utc_timestamp();

}  // namespace s2crop::log
