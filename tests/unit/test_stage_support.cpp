// The resume protocol the block stages share (composite, classify, ndvi predict, segment predict, mosaic): when a
// finished output is reused, when parts of an interrupted run are reused, and when either is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "s2crop/common/errors.hpp"
#include "s2crop/pipeline/stage_support.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

namespace {
std::string fresh(const std::string& name) {
  std::string d = testing::TempDir() + "/s2crop_stage_" + name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST(StageResume, FinishedOutputIsReusedOnlyForTheSameFingerprint) {
  const std::string out = fresh("complete") + "/map.h5";
  EXPECT_FALSE(pipeline::output_is_complete(out, "", "abc", false, "inputs"));  // absent: run
  std::ofstream(out) << "x";
  EXPECT_TRUE(pipeline::output_is_complete(out, "abc", "abc", false, "inputs"));
  EXPECT_FALSE(pipeline::output_is_complete(out, "abc", "abc", true, "inputs"));  // --overwrite: run again
  try {
    pipeline::output_is_complete(out, "old", "abc", false, "inputs");
    FAIL() << "an output of another run was accepted";
  } catch (const OutputError& e) {
    EXPECT_EQ(e.path(), out);
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos);
  }
  EXPECT_FALSE(pipeline::output_is_complete(out, "old", "abc", true, "inputs"));
}

TEST(StageResume, PartsOfAnotherRunAreNeverMixedIn) {
  const std::string out = fresh("parts") + "/c.h5", dir = out + ".parts";
  pipeline::prepare_parts_dir(out, "run1", false, "inputs");
  std::ifstream manifest(dir + "/run_fingerprint");
  std::string text;
  manifest >> text;
  EXPECT_EQ(text, "run1");
  fs::create_directories(dir + "/33UVP");
  std::ofstream(dir + "/33UVP/000000.part") << "block";
  pipeline::prepare_parts_dir(out, "run1", false, "inputs");  // the same run: parts kept for resume
  EXPECT_TRUE(fs::exists(dir + "/33UVP/000000.part"));
  EXPECT_THROW(pipeline::prepare_parts_dir(out, "run2", false, "inputs"), OutputError);  // inputs changed
  EXPECT_TRUE(fs::exists(dir + "/33UVP/000000.part"));                                 // refused: nothing touched
  pipeline::prepare_parts_dir(out, "run2", true, "inputs");  // --overwrite: the old blocks are gone
  EXPECT_FALSE(fs::exists(dir + "/33UVP/000000.part"));
  // Blocks without a manifest (not from s2crop, or a torn start) are not trusted either.
  fs::remove(dir + "/run_fingerprint");
  fs::create_directories(dir + "/33UVP");
  std::ofstream(dir + "/33UVP/000001.part") << "block";
  EXPECT_THROW(pipeline::prepare_parts_dir(out, "run2", false, "inputs"), OutputError);
}
