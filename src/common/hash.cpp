#include "s2crop/common/hash.hpp"

#ifndef S2CROP_WITHOUT_GDAL
#include <cpl_vsi.h>
#endif
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include "s2crop/common/errors.hpp"

namespace s2crop::hash {

std::string hex64(std::uint64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::uint64_t file_content(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot read");
  std::vector<char> buf(1 << 20);
  std::uint64_t h = kFnvOffset;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    h = fnv1a(buf.data(), static_cast<size_t>(in.gcount()), h);
  }
  if (in.bad()) throw InputError(path, "read error");
  return h;
}

std::string file_identity(const std::string& path) {
#ifndef S2CROP_WITHOUT_GDAL  // without GDAL no stage reads /vsi paths
  if (path.rfind("/vsi", 0) == 0) {
    VSIStatBufL st;
    if (VSIStatL(path.c_str(), &st) != 0) return "missing";
    return std::to_string(st.st_size) + " " + std::to_string(static_cast<long long>(st.st_mtime)) + "000000000";
  }
#endif
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return std::to_string(static_cast<long long>(st.st_size)) + " " +
         std::to_string(static_cast<long long>(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec);
}

}  // namespace s2crop::hash
