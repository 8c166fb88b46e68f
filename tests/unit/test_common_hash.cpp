// The one copy of the hashes and seeded RNG that reproducibility depends on, strict integer parsing, and the file
// identity that stops a rerun from reusing work whose inputs changed in place.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "s2crop/common/errors.hpp"
#include "s2crop/common/hash.hpp"
#include "s2crop/common/text.hpp"

namespace fs = std::filesystem;
using namespace s2crop;

TEST(CommonHash, KnownValues) {
  // FNV-1a 64 test vectors (Fowler, Noll, Vo).
  EXPECT_EQ(hash::fnv1a(std::string()), 0xcbf29ce484222325ULL);
  EXPECT_EQ(hash::fnv1a(std::string("a")), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(hash::fnv1a(std::string("foobar")), 0x85944171f73967e8ULL);
  EXPECT_EQ(hash::hex64(0xaf63dc4c8601ec8cULL), "af63dc4c8601ec8c");
  // SplitMix64 reference stream from seed 1234567 (Vigna's splitmix64.c).
  std::uint64_t state = 1234567;
  EXPECT_EQ(hash::splitmix64(state), 6457827717110365317ULL);
  EXPECT_EQ(hash::splitmix64(state), 3203168211198807973ULL);
  EXPECT_EQ(hash::mix64(1234567), 6457827717110365317ULL);  // the finaliser of the first step
}

TEST(CommonText, ParseIntIsStrict) {
  int v = 7;
  EXPECT_TRUE(parse_int("-1000", v));
  EXPECT_EQ(v, -1000);
  EXPECT_TRUE(parse_int(" 42 ", v));
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(parse_int("", v));
  EXPECT_FALSE(parse_int("abc", v));   // atoi: 0
  EXPECT_FALSE(parse_int("12abc", v));  // atoi: 12
  EXPECT_FALSE(parse_int("-", v));
  EXPECT_FALSE(parse_int("99999999999", v));
  EXPECT_FALSE(parse_int("1.5", v));
  EXPECT_EQ(v, 42);  // untouched by failures
}

TEST(CommonHash, FileIdentityChangesWhenTheFileIsRewrittenInPlace) {
  const std::string path = testing::TempDir() + "/s2crop_identity.bin";
  { std::ofstream(path) << "pixels v1"; }
  const std::string before = hash::file_identity(path);
  const std::uint64_t content = hash::file_content(path);
  EXPECT_EQ(hash::file_identity(path), before);  // stable while untouched
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  { std::ofstream(path) << "pixels v2"; }  // same size, same path
  EXPECT_NE(hash::file_identity(path), before);
  EXPECT_NE(hash::file_content(path), content);
  fs::remove(path);
  EXPECT_EQ(hash::file_identity(path), "missing");
  EXPECT_THROW(hash::file_content(path), InputError);
}
