// The block-stage engine on one rank: parts in the one format, resume that trusts only whole parts of this stage and
// block layout, a finished output that is a no-op only for the same fingerprint, and nothing left that looks
// finished when a stage fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>

#include "mpi_environment.hpp"
#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/block_stage.hpp"
#include "s2crop/pipeline/chunked_output.hpp"
#include "s2crop/pipeline/part_file.hpp"

namespace fs = std::filesystem;
using namespace s2crop;
using namespace s2crop::pipeline;

namespace {

constexpr PartKind kKind = {'T', 'E', 'S', 'T', 'K', 'I', 'N', 'D'};

std::string fresh(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_block_stage_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

BlockStageConfig config_for(const std::string& output) {
  BlockStageConfig c;
  c.stage = "test";
  c.part_kind = kKind;
  c.output = output;
  c.stored_fingerprint = [](const std::string& path) {
    std::ifstream in(path);
    std::string fp;
    in >> fp;
    return fp;
  };
  return c;
}

std::vector<BlockUnit> units_of(const std::vector<geo::Window>& blocks) {
  std::vector<BlockUnit> units;
  for (size_t b = 0; b < blocks.size(); ++b)
    units.push_back({0, b, blocks[b], static_cast<size_t>(blocks[b].pixels()), 1.0});
  return units;
}

// One run of a toy stage: payload byte = block index; the output is the fingerprint, written through the staged
// output. Returns the units computed, or -1 when the output was already complete.
int run_toy(const std::string& output, const std::string& fp, const std::vector<geo::Window>& blocks,
            bool overwrite = false) {
  BlockStageConfig c = config_for(output);
  c.overwrite = overwrite;
  BlockStage stage(c, unit_test_mpi());
  stage.check_outputs();
  if (!stage.begin(fp, fp, {"T1"})) return -1;
  auto todo = stage.resume(units_of(blocks));
  auto mine = stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
    std::fill_n(payload, stage.units()[u].payload_bytes, static_cast<std::uint8_t>(stage.units()[u].block));
  });
  for (size_t u = 0; u < blocks.size(); ++u) {
    auto payload = stage.read_part(stage.unit_of(0, u));
    EXPECT_EQ(payload.size(), static_cast<size_t>(blocks[u].pixels()));
    EXPECT_EQ(payload.front(), static_cast<std::uint8_t>(u));
  }
  std::ofstream(stage.staged_output()) << fp << "\n";
  stage.finish(output);
  return static_cast<int>(mine.size());
}

// Refusals on rank 0 reach every rank as the same Error (parallel::root_first).
void expect_refused(const std::function<void()>& run, const std::string& pattern) {
  try {
    run();
    ADD_FAILURE() << "not refused (expected: " << pattern << ")";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(pattern), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(PartFile, RoundTripAndEveryKindOfDamageIsRefused) {
  const std::string dir = fresh("part"), path = dir + "/000001.part";
  const geo::Window w{32, 0, 16, 8};
  {
    PartWriter part(path, kKind, w, 128);
    std::iota(part.payload(), part.payload() + 128, 0);
    EXPECT_FALSE(fs::exists(path));  // only the temporary until committed
    part.commit();
  }
  auto payload = read_part(path, kKind, w, 128);
  ASSERT_EQ(payload.size(), 128u);
  EXPECT_EQ(payload[5], 5);
  EXPECT_THROW(read_part(path, {'O', 'T', 'H', 'E', 'R', 'K', 'I', 'N'}, w, 128), InputError);  // another stage
  EXPECT_THROW(read_part(path, kKind, geo::Window{0, 0, 16, 8}, 128), InputError);             // another block
  EXPECT_THROW(read_part(path, kKind, w, 64), InputError);                                     // another size
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kPartHeaderBytes + 3);
    f.put(static_cast<char>(99));
  }
  EXPECT_THROW(read_part(path, kKind, w, 128), InputError);  // a flipped payload byte: the checksum
  fs::resize_file(path, 20);
  EXPECT_THROW(read_part(path, kKind, w, 128), InputError);  // torn
  EXPECT_THROW(read_part(dir + "/missing.part", kKind, w, 128), InputError);
  // Not committed: nothing left at all.
  { PartWriter part(dir + "/000002.part", kKind, w, 128); }
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(BlockStage, ResumesOnlyWholePartsAndFinishedOutputsOfTheSameRun) {
  const std::string out = fresh("resume") + "/out.txt";
  const auto blocks = geo::cut_blocks(40, 40, 16);  // 9 blocks
  EXPECT_EQ(run_toy(out, "fp1", blocks), 9);
  EXPECT_FALSE(fs::exists(out + ".parts"));
  EXPECT_FALSE(fs::exists(out + ".lock"));
  EXPECT_FALSE(fs::exists(out + ".partial.h5"));
  EXPECT_EQ(run_toy(out, "fp1", blocks), -1);  // the same run: nothing to do
  expect_refused([&] { run_toy(out, "fp2", blocks); }, "exists from a different run");  // inputs changed
  EXPECT_EQ(run_toy(out, "fp2", blocks, true), 9);           // --overwrite

  // An interrupted run: two parts, one of them damaged, are left; the rerun keeps the whole one only.
  fs::remove(out);
  {
    BlockStage stage(config_for(out), unit_test_mpi());
    ASSERT_TRUE(stage.begin("fp3", "fp3", {"T1"}));
    auto todo = stage.resume(units_of(blocks));
    ASSERT_EQ(todo.size(), 9u);
    for (size_t u : {0, 1}) {
      PartWriter part(stage.part_path(u), kKind, blocks[u], static_cast<size_t>(blocks[u].pixels()));
      std::fill_n(part.payload(), blocks[u].pixels(), static_cast<std::uint8_t>(u));
      part.commit();
    }
    fs::resize_file(stage.part_path(1), 30);
  }  // the stage ends without finish: the lock goes, the parts stay
  EXPECT_TRUE(fs::exists(out + ".parts/T1/000000.part"));
  EXPECT_EQ(run_toy(out, "fp3", blocks), 8);
  // Parts of another run are never mixed in.
  fs::remove(out);
  {
    BlockStage stage(config_for(out), unit_test_mpi());
    ASSERT_TRUE(stage.begin("fp4", "fp4", {"T1"}));
    stage.resume(units_of(blocks));
  }
  fs::create_directories(out + ".parts/T1");
  std::ofstream(out + ".parts/T1/000000.part") << "x";
  expect_refused([&] { run_toy(out, "fp5", blocks); }, "holds blocks of an interrupted run");
}

TEST(BlockStage, AFailedStageLeavesNoOutputAndNoLock) {
  const std::string dir = fresh("fail"), out = dir + "/map.h5";
  try {
    BlockStage stage(config_for(out), unit_test_mpi());
    ASSERT_TRUE(stage.begin("fp", "fp", {"T1"}));
    std::ofstream(stage.staged_output()) << "half";
    throw std::runtime_error("export failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".lock"));
}

namespace {

// A stage with compressed chunks: two planes per block (uint8 = (x + y + block) % 251, int16 = 1000 * block - x),
// written into datasets "u8" and "i16" of group "g". `fail_after` >= 0: the compute throws after that many blocks
// (an interrupted run). Returns the units computed.
constexpr int kSide = 40, kBlock = 16;

int run_chunked(const std::string& path, int fail_after = -1) {
  BlockStageConfig c = config_for(path);
  c.codec = ChunkCodec({{1, 1, 0.0}, {1, 2, -1.0}}, 1);
  c.stored_fingerprint = hdf5_run_fingerprint;
  BlockStage stage(c, unit_test_mpi());
  if (!stage.begin("parts", "out", {"T1"})) return -1;
  std::vector<BlockUnit> units;
  const auto blocks = geo::cut_blocks(kSide, kSide, kBlock);
  for (size_t b = 0; b < blocks.size(); ++b)
    units.push_back({0, b, blocks[b], c.codec.payload_bytes(static_cast<size_t>(blocks[b].pixels())), 1.0, kBlock,
                     kBlock});
  const auto todo = stage.resume(units);
  ChunkedOutput output;
  output.create = [&](h5::File& file) {
    stage.write_file_attrs(file, "test", 1, "");
    h5::Node g = file.create_group("g");
    OutputTargets t;
    const size_t a = t.add(g.create_dataset<std::uint8_t>("u8", {kSide, kSide}, {kBlock, kBlock}, 1, 0));
    const size_t b = t.add(g.create_dataset<std::int16_t>("i16", {kSide, kSide}, {kBlock, kBlock}, 1, -1));
    t.planes.push_back({{a, {}}, {b, {}}});
    return t;
  };
  int stored = 0;
  output.stored = [&](size_t, const PackedChunks&) { ++stored; };
  int computed = 0;
  stage.compute(todo, [&](size_t u, std::uint8_t* payload) {
    if (fail_after >= 0 && computed == fail_after) throw std::runtime_error("interrupted");
    const geo::Window& w = stage.units()[u].window;
    const size_t n = static_cast<size_t>(w.pixels());
    auto* i16 = reinterpret_cast<std::int16_t*>(payload + n);
    for (int y = 0; y < w.height; ++y)
      for (int x = 0; x < w.width; ++x) {
        const size_t i = static_cast<size_t>(y * w.width + x);
        payload[i] = static_cast<std::uint8_t>((w.x0 + x + w.y0 + y + static_cast<int>(u)) % 251);
        i16[i] = static_cast<std::int16_t>(1000 * static_cast<int>(u) - (w.x0 + x));
      }
    ++computed;
  }, output);
  EXPECT_EQ(stored, static_cast<int>(units.size()));  // every block reached the file once, kept or computed
  stage.finish(path);
  return computed;
}

std::vector<std::int16_t> read_i16(const std::string& path) {
  std::vector<std::int16_t> v(kSide * kSide);
  h5::File::open_read(path, MPI_COMM_NULL).open_group("g").open_dataset("i16").read<std::int16_t>({0, 0},
                                                                                              {kSide, kSide}, v.data());
  return v;
}

}  // namespace

TEST(BlockStage, ChunksGoStraightIntoTheOutputAndAnInterruptedRunKeepsWhatItWrote) {
  const std::string dir = fresh("chunked"), ref = dir + "/ref.h5", out = dir + "/out.h5";
  EXPECT_EQ(run_chunked(ref), 9);
  EXPECT_FALSE(fs::exists(ref + ".parts"));
  EXPECT_FALSE(fs::exists(ref + ".partial.h5"));
  const std::vector<std::int16_t> expected = read_i16(ref);
  EXPECT_EQ(expected[static_cast<size_t>(kSide * 20 + 17)], 1000 * 4 - 17);  // block 4 is (16, 16)
  {
    std::vector<std::uint8_t> u8(kSide * kSide);
    h5::File::open_read(ref, MPI_COMM_NULL).open_group("g").open_dataset("u8").read<std::uint8_t>({0, 0}, {kSide, kSide},
                                                                                              u8.data());
    EXPECT_EQ(u8[static_cast<size_t>(kSide * 39 + 39)], (39 + 39 + 8) % 251);  // the last, partial block
  }
  // Interrupted after 4 blocks: their chunks are in the staged output, their parts index them.
  EXPECT_THROW(run_chunked(out, 4), std::runtime_error);
  EXPECT_TRUE(fs::exists(out + ".parts/generation.1.h5"));
  EXPECT_FALSE(fs::exists(out + ".partial.h5"));  // only a complete output goes by that name
  EXPECT_EQ(std::distance(fs::directory_iterator(out + ".parts/T1"), fs::directory_iterator()), 4);
  // The rerun checks and copies them, computes the other 5, and the output is the uninterrupted one.
  EXPECT_EQ(run_chunked(out), 5);
  EXPECT_EQ(read_i16(out), expected);
  EXPECT_FALSE(fs::exists(out + ".parts"));

  // A chunk damaged in the interrupted run's file (a crash that lost a write): that block is recomputed.
  fs::remove(out);
  EXPECT_THROW(run_chunked(out, 3), std::runtime_error);
  EXPECT_THROW(run_chunked(out, 2), std::runtime_error);  // kept 3 (generation 2), computed 2 more
  EXPECT_EQ(std::distance(fs::directory_iterator(out + ".parts/T1"), fs::directory_iterator()), 5);
  {
    const auto part = read_part(out + ".parts/T1/000001.part", kKind, geo::cut_blocks(kSide, kSide, kBlock)[1],
                                kAnyPayloadSize);
    const ChunkIndex index = ChunkIndex::decode(part, 2, "part");
    EXPECT_EQ(index.generation, 2u);
    std::fstream f(out + ".parts/generation.2.h5", std::ios::in | std::ios::out | std::ios::binary);
    const auto at = static_cast<std::streamoff>(index.entries[1].address + 2);
    char byte = 0;
    f.seekg(at);
    f.get(byte);
    f.seekp(at);
    f.put(static_cast<char>(~byte));
  }
  EXPECT_EQ(run_chunked(out), 5);  // 4 of the 5 kept
  EXPECT_EQ(read_i16(out), expected);
  EXPECT_EQ(run_chunked(out), -1);  // complete: nothing to do
}

TEST(BlockStage, OutputFoldersAreCheckedBeforeAnyWork) {
  const std::string dir = fresh("folders");
  std::ofstream(dir + "/file") << "x";
  BlockStageConfig c = config_for(dir + "/out.h5");
  c.export_dirs = {dir + "/file/cog"};  // a folder under a file cannot be made
  BlockStage stage(c, unit_test_mpi());
  EXPECT_THROW(stage.check_outputs(), Error);
}

TEST(Fingerprint, ChangesWithEveryEntryAndWithAFileRewrittenInPlace) {
  const std::string dir = fresh("fingerprint"), file = dir + "/model.h5";
  std::ofstream(file) << "weights 1";
  Fingerprint a;
  a.add("block", "512").add_file_identity(file).add_file_content(file);
  Fingerprint same;
  same.add("block", "512").add_file_identity(file).add_file_content(file);
  EXPECT_EQ(a.hex(), same.hex());
  EXPECT_EQ(a.hex().size(), 16u);
  Fingerprint other;
  other.add("block", "256").add_file_identity(file).add_file_content(file);
  EXPECT_NE(a.hex(), other.hex());
  std::ofstream(file) << "weights 2";  // same size, new content
  Fingerprint rewritten;
  rewritten.add("block", "512").add_file_identity(file).add_file_content(file);
  EXPECT_NE(a.hex(), rewritten.hex());
  EXPECT_THROW(Fingerprint().add_file_content(dir + "/missing"), InputError);
}
