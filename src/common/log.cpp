#include "s2crop/common/log.hpp"

#include <unistd.h>

#include <cstdio>
#include <ctime>

namespace s2crop::log {
namespace {
int g_rank = 0;
int g_size = 1;
Level g_level = Level::Info;

void emit(const char* tag, const std::string& message) {
  char stamp[32];
  std::time_t now = std::time(nullptr);
  std::tm tm_utc;
  gmtime_r(&now, &tm_utc);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  std::string line = std::string(stamp) + " [" + std::to_string(g_rank) + "/" + std::to_string(g_size) + "] " +
                     tag + message + "\n";
  // One write per line: the stream is shared by all ranks of a node in a Slurm log.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}
}  // namespace

void set_rank(int rank, int size) {
  g_rank = rank;
  g_size = size;
}
void set_level(Level level) { g_level = level; }
Level level() { return g_level; }

void debug(const std::string& m) {
  if (g_level <= Level::Debug) emit("debug: ", m);
}
void info(const std::string& m) {
  if (g_level <= Level::Info) emit("", m);
}
void warn(const std::string& m) {
  if (g_level <= Level::Warn) emit("warning: ", m);
}
void error(const std::string& m) { emit("error: ", m); }
void root(const std::string& m) {
  if (g_rank == 0) info(m);
}

std::string utc_timestamp() {
  char stamp[32];
  std::time_t t = std::time(nullptr);
  std::tm tm_utc;
  gmtime_r(&t, &tm_utc);
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  return stamp;
}

std::string format_duration(double seconds) {
  if (!(seconds >= 0 && seconds <= 1e8)) return "--:--:--";  // NaN too: its conversion to long is undefined
  long s = static_cast<long>(seconds + 0.5);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  return buf;
}

Progress::Progress(std::string label, std::string unit, std::int64_t total, double interval_seconds)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), interval_(interval_seconds),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void Progress::update(std::int64_t done) {
  auto now = std::chrono::steady_clock::now();
  if (done >= total_ || std::chrono::duration<double>(now - last_print_).count() >= interval_) {
    if (done != last_done_) print(done);
  }
}

void Progress::finish() {
  if (!finished_ && last_done_ != total_) print(total_);
  finished_ = true;
}

void Progress::print(std::int64_t done) {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done - base_) / elapsed : 0.0;
  double eta = rate > 0 ? (total_ - done) / rate : -1.0;
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s: %lld/%lld %s (%.0f%%), %.2f %s/s, elapsed %s, ETA %s", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), unit_.c_str(),
                total_ > 0 ? 100.0 * done / total_ : 100.0, rate, unit_.c_str(), format_duration(elapsed).c_str(),
                format_duration(eta).c_str());
  root(buf);
  last_print_ = now;
  last_done_ = done;
}

}  // namespace s2crop::log
