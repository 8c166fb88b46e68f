#pragma once
// Write-to-a-temporary-then-rename, as one RAII object: every file s2crop finishes (parts, models, checkpoints,
// COGs, quicklooks, HDF5 outputs, manifests) appears under its final name only whole. A write that fails or
// unwinds removes its temporary; only a process killed outright leaves one, under a name no reader takes for the
// finished file.
#include <string>

namespace s2crop {

class StagedFile {
 public:
  // The temporary is `final_path + suffix`. The default suffix carries the process id, so ranks (or runs) writing
  // the same final name never share a temporary; a file written collectively by all ranks (parallel HDF5) needs one
  // name on every rank and passes a fixed suffix (".partial.h5"). A suffix ending in the final extension keeps
  // format-sniffing tools (GDAL) happy.
  explicit StagedFile(std::string final_path, std::string suffix = default_suffix());
  ~StagedFile();  // removes the temporary unless committed (or released)
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;
  StagedFile(StagedFile&& other) noexcept;
  StagedFile& operator=(StagedFile&&) = delete;

  // Where to write.
  const std::string& path() const { return temp_; }
  const std::string& final_path() const { return final_; }
  // Moves the temporary into place (atomic on one file system). Throws OutputError naming the final path, after
  // removing the temporary.
  void commit();
  // Removes the temporary now (what the destructor does); a later commit() throws.
  void discard() noexcept;
  // Gives up ownership without removing anything: for a temporary that another rank commits.
  void release() noexcept { done_ = true; }
  bool committed() const { return committed_; }

  static std::string default_suffix();  // ".tmp<pid>"

 private:
  std::string final_, temp_;
  bool done_ = false, committed_ = false;
};

}  // namespace s2crop
