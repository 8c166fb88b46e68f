#include "s2crop/pipeline/part_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "s2crop/common/errors.hpp"

namespace s2crop::pipeline {

namespace {

// 4: payloads of ChunkCodec stages are packed chunks; a part of an older s2crop fails the header check and is
// recomputed instead of being read as something it is not.
constexpr char kMagic[8] = {'S', '2', 'C', 'P', 'A', 'R', 'T', '4'};

void fill_header(std::uint8_t* head, const PartKind& kind, const geo::Window& w, size_t payload_bytes) {
  std::memcpy(head, kMagic, 8);
  std::memcpy(head + 8, kind.data(), 8);
  const std::int32_t win[4] = {w.x0, w.y0, w.width, w.height};
  std::memcpy(head + 16, win, sizeof win);
  const std::uint64_t n = payload_bytes;
  std::memcpy(head + 32, &n, sizeof n);
}

uLong checksum(const std::uint8_t* data, size_t n) { return crc32_z(crc32(0L, Z_NULL, 0), data, n); }

}  // namespace

PartWriter::PartWriter(const std::string& path, const PartKind& kind, const geo::Window& window,
                       size_t payload_bytes)
    : staged_(path), size_(kPartHeaderBytes + payload_bytes + 8) {
  const std::string& tmp = staged_.path();
  auto fail = [&](const std::string& what, int err) {
    throw OutputError(tmp, what + ": " + std::strerror(err));
  };
  fd_ = ::open(tmp.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create", errno);
  // Reserve the blocks now: with a sparse file a full disk would surface as SIGBUS while writing the mapping.
  if (int rc = ::posix_fallocate(fd_, 0, static_cast<off_t>(size_)); rc != 0) fail("cannot reserve space (disk full?)", rc);
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (p == MAP_FAILED) fail("cannot map the file", errno);
  base_ = static_cast<std::uint8_t*>(p);
  fill_header(base_, kind, window, payload_bytes);
}

PartWriter::~PartWriter() {
  if (base_) ::munmap(base_, size_);
  if (fd_ >= 0) ::close(fd_);
  // staged_ removes the uncommitted temporary
}

void PartWriter::commit() {
  const std::uint64_t sum = checksum(base_, size_ - 8);
  std::memcpy(base_ + size_ - 8, &sum, 8);
  ::munmap(base_, size_);
  base_ = nullptr;
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) throw OutputError(staged_.path(), std::string("write failed: ") + std::strerror(errno));
  staged_.commit();
}

void write_part(const std::string& path, const PartKind& kind, const geo::Window& window,
                const std::vector<std::uint8_t>& payload) {
  StagedFile staged(path);
  std::uint8_t head[kPartHeaderBytes];
  fill_header(head, kind, window, payload.size());
  const std::uint64_t sum = crc32_z(checksum(head, sizeof head), payload.data(), payload.size());
  FILE* f = std::fopen(staged.path().c_str(), "wb");
  if (!f) throw OutputError(staged.path(), std::string("cannot create: ") + std::strerror(errno));
  const bool ok = std::fwrite(head, 1, sizeof head, f) == sizeof head &&
                  std::fwrite(payload.data(), 1, payload.size(), f) == payload.size() &&
                  std::fwrite(&sum, 1, sizeof sum, f) == sizeof sum;
  const int err = errno;
  if (std::fclose(f) != 0 || !ok)
    throw OutputError(staged.path(), std::string("write failed (disk full?): ") + std::strerror(ok ? errno : err));
  staged.commit();
}

std::vector<std::uint8_t> read_part(const std::string& path, const PartKind& kind, const geo::Window& window,
                                    size_t payload_bytes) {
  std::uint8_t head[kPartHeaderBytes], expected[kPartHeaderBytes];
  std::uint64_t sum = 0;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw InputError(path, "intermediate block missing; rerun to recompute it");
  if (payload_bytes == kAnyPayloadSize) {  // the header says; a torn file fails the size check below
    std::uint64_t declared = 0;
    if (std::fread(head, 1, sizeof head, f) == sizeof head) std::memcpy(&declared, head + 32, 8);
    std::fseek(f, 0, SEEK_END);
    const long size = std::ftell(f);
    payload_bytes = size >= static_cast<long>(kPartHeaderBytes + 8) && declared == static_cast<std::uint64_t>(size) -
                    kPartHeaderBytes - 8 ? static_cast<size_t>(declared) : 0;
    std::rewind(f);
  }
  std::vector<std::uint8_t> payload(payload_bytes);
  const bool whole = std::fread(head, 1, sizeof head, f) == sizeof head &&
                     std::fread(payload.data(), 1, payload.size(), f) == payload.size() &&
                     std::fread(&sum, 1, sizeof sum, f) == sizeof sum && std::fgetc(f) == EOF;
  std::fclose(f);
  fill_header(expected, kind, window, payload_bytes);
  if (!whole || std::memcmp(head, expected, kPartHeaderBytes) != 0)
    throw InputError(path, "damaged intermediate block (wrong size, stage or block layout); delete it and rerun to "
                           "recompute it");
  // The same bytes in the same order as PartWriter::commit's one pass over the mapping.
  if (sum != crc32_z(checksum(head, sizeof head), payload.data(), payload.size()))
    throw InputError(path, "damaged intermediate block (checksum); delete it and rerun to recompute it");
  return payload;
}

}  // namespace s2crop::pipeline
