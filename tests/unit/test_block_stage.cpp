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
  std::uint8_t range[4];
  read_part_range(path, 10, 4, range);
  EXPECT_EQ(range[0], 10);
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

TEST(BlockStage, AFailedStageLeavesNoStagedOutputAndNoLock) {
  const std::string dir = fresh("fail"), out = dir + "/map.h5";
  std::string staged;
  try {
    BlockStage stage(config_for(out), unit_test_mpi());
    ASSERT_TRUE(stage.begin("fp", "fp", {"T1"}));
    staged = stage.staged_output();
    std::ofstream(staged) << "half";
    throw std::runtime_error("assembly failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(staged));
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".lock"));
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
