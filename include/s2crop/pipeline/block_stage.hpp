#pragma once
// The one engine of the block stages (composite, classify, ndvi predict, segment predict, mosaic). A stage plans its
// units (group = tile, block of it) and computes one block into a buffer; the engine owns everything a rerun's
// correctness depends on, in one order for every stage:
//
//   check_outputs()  the output's folder and every export folder writable: before discovery or compute
//   begin()          the output locked (a second run refused by name); a finished output with this fingerprint is
//                    nothing to do, one of another run refused unless --overwrite; <output>.parts/ kept for the same
//                    parts fingerprint (resume), refused for another
//   resume()         parts found are checked (CRC, kind, window, size) spread over the ranks; damaged ones recomputed
//   compute()        the remaining units balanced over the ranks, progress in the log. Without a ChunkCodec one
//                    part file each holds the unit's payload (part_file.hpp). With one (every HDF5 stage) the block
//                    is computed in memory, compressed once (chunk_codec.hpp), and its chunks written into the
//                    staged output by rank 0 as they come (chunked_output.hpp): the part holds only their index.
//                    Blocks kept from an interrupted run are copied from its staged file first.
//   (the stage exports from staged_output(), closed and complete when compute returns)
//   finish()         the staged output moved into place, parts removed, lock released
//
// A stage that throws anywhere leaves no file that looks finished: the staged output is removed with the engine
// and the lock file goes with the lock. Fingerprints are built with Fingerprint: inputs by identity (size and
// modification time) and, where cheap (metadata, models), by content.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "s2crop/common/staged_file.hpp"
#include "s2crop/geo/grid.hpp"
#include "s2crop/h5/h5.hpp"
#include "s2crop/parallel/mpi.hpp"
#include "s2crop/pipeline/block_limits.hpp"
#include "s2crop/pipeline/chunk_codec.hpp"
#include "s2crop/pipeline/chunked_output.hpp"
#include "s2crop/pipeline/part_file.hpp"

namespace s2crop::pipeline {

class OutputLock;


// What a result depends on, as "key value" lines hashed into 16 hex digits. The one way stages fingerprint.
class Fingerprint {
 public:
  Fingerprint& add(const std::string& key, const std::string& value);
  Fingerprint& add(const std::string& key, double value);  // exact (17 significant digits)
  // The file as it is on disk now: size and modification time (cheap for any size).
  Fingerprint& add_file_identity(const std::string& path);
  // The file's bytes (for small files: metadata, models); throws InputError naming it when unreadable.
  Fingerprint& add_file_content(const std::string& path);
  const std::string& text() const { return text_; }
  std::string hex() const;

 private:
  std::string text_;
};

// One unit of work: block `block` of group `group` (a tile; the mosaic's one group).
struct BlockUnit {
  size_t group = 0, block = 0;
  geo::Window window;
  size_t payload_bytes = 0;  // the part's payload (uncompressed: the block as the stage computes it)
  double cost = 1;           // relative compute cost, for balancing
  int chunk_width = 0, chunk_height = 0;  // the output chunks the block fills (ChunkCodec); 0: the window's
  // With a ChunkCodec, rank 0 also writes every rank's chunks: the cost of writing this block's, in `cost`'s units.
  // Rank 0 is given that much less to compute (it matters on a few ranks; on many, rank 0 computes little).
  double write_cost = 0;
  int chunk_w() const { return chunk_width ? chunk_width : window.width; }
  int chunk_h() const { return chunk_height ? chunk_height : window.height; }
};

struct BlockStageConfig {
  std::string stage;                  // "composite", "classify": log lines and messages
  PartKind part_kind{};               // marks this stage's parts
  std::string output;                 // the main output; its lock is "<output>.lock", its parts "<output>.parts/"
  std::vector<std::string> outputs;   // every finished file; empty: just `output`
  std::vector<std::string> export_dirs;  // folders exports write into (empty entries ignored)
  std::string depends_on = "inputs or options";  // what the fingerprints cover, for messages
  ChunkCodec codec;                   // active: parts hold the output's compressed chunks
  bool overwrite = false;
  // The fingerprint stored in a finished output ("" where it cannot be read). Rank 0.
  std::function<std::string(const std::string& path)> stored_fingerprint;
};

// The run_fingerprint attribute of an s2crop HDF5 output ("" where it cannot be read): the stored_fingerprint of the
// stages that write HDF5.
std::string hdf5_run_fingerprint(const std::string& path);

class BlockStage {
 public:
  static constexpr size_t kNone = std::numeric_limits<size_t>::max();

  BlockStage(BlockStageConfig config, const parallel::MpiContext& mpi);
  ~BlockStage();
  BlockStage(const BlockStage&) = delete;
  BlockStage& operator=(const BlockStage&) = delete;

  // Collective.
  void check_outputs();
  // Collective. `groups` name the part folders. False: the output is complete for `output_fingerprint`; nothing to
  // do (logged, lock released).
  bool begin(const std::string& parts_fingerprint, const std::string& output_fingerprint,
             const std::vector<std::string>& groups);
  // Collective: the indices into `units` still to compute. Every rank passes the same units.
  std::vector<size_t> resume(std::vector<BlockUnit> units);
  std::int64_t units_done_before() const { return done_before_; }
  // The units of `todo` this rank computes, in the order compute() calls them (a stage that reads ahead knows which
  // block comes next).
  std::vector<size_t> assigned(const std::vector<size_t>& todo) const;
  // Collective: computes `todo` (from resume) balanced over the ranks in unit order per rank: `fn(unit, payload)`
  // fills the unit's payload. Returns the units this rank computed. A ChunkCodec stage passes `output`: the staged
  // output is created through it, filled with every unit's chunks, and closed before compute returns.
  std::vector<size_t> compute(const std::vector<size_t>& todo,
                              const std::function<void(size_t unit, std::uint8_t* payload)>& fn,
                              const ChunkedOutput& output = {});

  const std::vector<BlockUnit>& units() const { return units_; }
  // The unit of (group, block), kNone where the stage had no unit there.
  size_t unit_of(size_t group, size_t block) const;
  std::string part_path(size_t unit) const;
  // The payload of the unit's part, every check passed (InputError otherwise): a stage without a ChunkCodec. For a
  // ChunkCodec stage its chunk index, checked against the chunks it indexes.
  std::vector<std::uint8_t> read_part(size_t unit) const;
  // Plane `plane` of a ChunkCodec unit's block, decompressed: [pixel] over its window.
  void unpack(size_t unit, const PackedChunks& chunks, size_t plane, void* out) const;

  // The staged main output of a ChunkCodec stage, `<output>.partial.h5` (the same name on every rank): complete when
  // compute() returns (it is written under `<output>.parts/` until then), moved into place by finish(). A run that
  // fails or is killed leaves it for the next run to check and take blocks from. Collective the first time.
  const std::string& staged_output();
  // The attributes every stage's HDF5 output starts with: format, format_version, s2crop_version, created,
  // config, run_fingerprint (the output fingerprint). staged_output() must have been called.
  void write_file_attrs(h5::File& file, const std::string& format, std::int64_t format_version,
                        const std::string& config_text) const;

  // Collective: the staged output (if any) moved into place, the parts removed, the lock released; `wrote` is
  // logged with the run's duration.
  void finish(const std::string& wrote);

 private:
  BlockStageConfig config_;
  const parallel::MpiContext& mpi_;
  // Rank 0, ChunkCodec stages: the interrupted runs' staged files moved under the parts (resume) and the generation
  // number of this run's.
  std::uint64_t adopt_interrupted_output();
  // Rank 0, ChunkCodec stages: the staged output created, the kept units copied into it.
  void open_output(const ChunkedOutput& output, const std::vector<size_t>& todo);
  // Chunks of the unit's block: planes x chunks per plane.
  size_t chunk_count(size_t unit) const;

  std::unique_ptr<OutputLock> lock_;       // rank 0
  std::unique_ptr<ChunkWriter> writer_;    // rank 0, ChunkCodec stages, during compute
  std::uint64_t generation_ = 0;           // of the staged output, ChunkCodec stages
  bool output_done_ = false;               // compute() closed the staged output
  bool finished_ = false;
  std::string staged_path_, output_fingerprint_, created_;
  std::vector<std::string> groups_;
  std::vector<BlockUnit> units_;
  std::vector<std::vector<size_t>> unit_of_;
  std::int64_t done_before_ = 0;
  double started_ = 0;
};

}  // namespace s2crop::pipeline
