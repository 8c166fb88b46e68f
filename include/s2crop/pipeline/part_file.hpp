#pragma once
// The one intermediate format of every block stage: a finished (group, block) unit as one file
//   magic "S2CPART4" | kind (8 bytes: the stage) | window x0, y0, width, height (int32) | payload size (uint64)
//   | payload | CRC-32 of everything before it (uint64)
// written under a temporary name at its final size, mapped (the stage computes straight into the page cache), and
// renamed into place when whole: a SIGKILL never leaves a part that looks finished, and a part torn by a node crash,
// of another stage, of another block layout or of another size fails its check and is recomputed.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "s2crop/common/staged_file.hpp"
#include "s2crop/geo/grid.hpp"

namespace s2crop::pipeline {

using PartKind = std::array<char, 8>;

// Bytes before the payload; a multiple of 8, so int16/float payloads are aligned in the mapping.
inline constexpr size_t kPartHeaderBytes = 40;

class PartWriter {
 public:
  // Creates the temporary at its full size (space reserved: a full disk is an OutputError here, not a SIGBUS later).
  PartWriter(const std::string& path, const PartKind& kind, const geo::Window& window, size_t payload_bytes);
  ~PartWriter();  // uncommitted: unmapped and removed
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;

  std::uint8_t* payload() { return base_ + kPartHeaderBytes; }
  // Adds the checksum and moves the part into place.
  void commit();

 private:
  StagedFile staged_;
  int fd_ = -1;
  std::uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

// A part whose payload is complete in memory (a packed block, chunk_codec.hpp): written under a temporary name and
// renamed into place when whole, like PartWriter's.
void write_part(const std::string& path, const PartKind& kind, const geo::Window& window,
                const std::vector<std::uint8_t>& payload);

// Payload size of read_part for parts whose size is whatever their header says (packed blocks).
inline constexpr size_t kAnyPayloadSize = static_cast<size_t>(-1);

// The payload of a finished part after checking all of it; InputError naming the file when it is missing, damaged,
// of another kind, window or size (the message says to rerun, which recomputes it).
std::vector<std::uint8_t> read_part(const std::string& path, const PartKind& kind, const geo::Window& window,
                                    size_t payload_bytes);

}  // namespace s2crop::pipeline
