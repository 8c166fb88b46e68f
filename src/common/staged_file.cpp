#include "s2crop/common/staged_file.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <cerrno>
#include <utility>

#include "s2crop/common/errors.hpp"

namespace s2crop {

std::string StagedFile::default_suffix() { return ".tmp" + std::to_string(::getpid()); }

StagedFile::StagedFile(std::string final_path, std::string suffix)
    : final_(std::move(final_path)), temp_(final_ + suffix) {
  if (suffix.empty()) throw Error("StagedFile: the temporary of " + final_ + " needs a suffix");
}

StagedFile::StagedFile(StagedFile&& other) noexcept
    : final_(std::move(other.final_)), temp_(std::move(other.temp_)), done_(other.done_),
      committed_(other.committed_) {
  other.done_ = true;
}

StagedFile::~StagedFile() { discard(); }

void StagedFile::discard() noexcept {
  if (done_) return;
  done_ = true;
  std::remove(temp_.c_str());
}

void StagedFile::commit() {
  if (done_) throw OutputError(final_, committed_ ? "already committed" : "its temporary was discarded");
  if (std::rename(temp_.c_str(), final_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    discard();
    throw OutputError(final_, "cannot move the finished file into place (from " + temp_ + "): " + why);
  }
  done_ = committed_ = true;
}

}  // namespace s2crop
