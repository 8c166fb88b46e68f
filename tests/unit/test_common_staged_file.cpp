#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/staged_file.hpp"
#include "s2crop/common/text.hpp"

namespace fs = std::filesystem;
using s2crop::StagedFile;

namespace {
fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("s2crop_staged_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }
std::string read(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
}  // namespace

TEST(StagedFile, CommitMovesTheTemporaryIntoPlace) {
  auto d = fresh_dir("commit");
  const std::string final_path = (d / "out.txt").string();
  write(final_path, "old");
  {
    StagedFile f(final_path);
    EXPECT_NE(f.path(), final_path);
    write(f.path(), "new");
    EXPECT_EQ(read(final_path), "old");  // readers see the old file until the commit
    f.commit();
    EXPECT_TRUE(f.committed());
  }
  EXPECT_EQ(read(final_path), "new");
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
  fs::remove_all(d);
}

TEST(StagedFile, UnwindingRemovesTheTemporaryAndKeepsTheOldFile) {
  auto d = fresh_dir("unwind");
  const std::string final_path = (d / "model.h5").string();
  write(final_path, "good");
  std::string temp;
  try {
    StagedFile f(final_path, ".partial.h5");
    temp = f.path();
    EXPECT_EQ(temp, final_path + ".partial.h5");
    write(temp, "half");
    throw std::runtime_error("disk full");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_EQ(read(final_path), "good");
  fs::remove_all(d);
}

TEST(StagedFile, AFailedRenameNamesTheFileAndLeavesNoTemporary) {
  auto d = fresh_dir("rename");
  fs::create_directories(d / "taken" / "child");  // a non-empty directory cannot be replaced by a file
  StagedFile f((d / "taken").string());
  write(f.path(), "x");
  try {
    f.commit();
    FAIL() << "commit over a non-empty directory succeeded";
  } catch (const s2crop::OutputError& e) {
    EXPECT_NE(std::string(e.what()).find("taken"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(f.path()));
  EXPECT_THROW(f.commit(), s2crop::OutputError);
  fs::remove_all(d);
}

TEST(StagedFile, ReleaseLeavesTheTemporaryToItsOwner) {
  auto d = fresh_dir("release");
  std::string temp;
  {
    StagedFile f((d / "shared.h5").string(), ".partial.h5");
    temp = f.path();
    write(temp, "collective");
    f.release();
  }
  EXPECT_TRUE(fs::exists(temp));
  fs::remove_all(d);
}

TEST(StagedFile, WriteTextAtomicallyLeavesOnlyTheFinishedFile) {
  auto d = fresh_dir("text");
  const std::string path = (d / "manifest").string();
  s2crop::write_text_atomically(path, "abc\n");
  EXPECT_EQ(read(path), "abc\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(d), fs::directory_iterator()), 1);
  EXPECT_THROW(s2crop::write_text_atomically((d / "missing" / "x").string(), "y"), s2crop::OutputError);
  fs::remove_all(d);
}
