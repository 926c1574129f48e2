#include "ptpack/inspect.h"
#include "testing.h"

namespace ptpack {
namespace {

// torch.package's _GlobGroup semantics: '*' within a segment, '**' across whole segments.
TEST(Glob, SingleStarStaysInItsSegment) {
  EXPECT_TRUE(glob_match("model/*.pkl", "model/model.pkl"));
  EXPECT_FALSE(glob_match("model/*.pkl", "model/sub/model.pkl"));
  EXPECT_TRUE(glob_match("*", "version"));
  EXPECT_FALSE(glob_match("*", "data/0"));
  EXPECT_TRUE(glob_match("data/1*", "data/10"));
  EXPECT_TRUE(glob_match("data/*", "data/"));  // '*' may be empty
}

TEST(Glob, DoubleStarSpansSegments) {
  EXPECT_TRUE(glob_match("**", "a/b/c"));
  EXPECT_TRUE(glob_match("**/*.py", "pkg/sub/mod.py"));
  EXPECT_TRUE(glob_match("**/*.py", "mod.py"));
  EXPECT_TRUE(glob_match(".data/**", ".data/ts_code/0/data.pkl"));
  EXPECT_FALSE(glob_match(".data/**", "model/model.pkl"));
  EXPECT_TRUE(glob_match("a/**/z", "a/z"));
  EXPECT_TRUE(glob_match("a/**/z", "a/b/c/z"));
}

TEST(Glob, ExactNames) {
  EXPECT_TRUE(glob_match("data.pkl", "data.pkl"));
  EXPECT_FALSE(glob_match("data.pkl", "data.pk"));
}

}  // namespace
}  // namespace ptpack
