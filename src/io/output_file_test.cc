#include "ptpack/output_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "ptpack/error.h"
#include "testing.h"

namespace ptpack {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

size_t entries_in(const fs::path& dir) {
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

TEST(OutputFile, AppearsOnlyOnCommit) {
  TempDir dir;
  const std::string dst = (dir.path() / "out.bin").string();
  {
    OutputFile out(dst);
    out.write(std::string_view("hello "));
    out.write_zeros(3);
    EXPECT_EQ(out.position(), 9u);
    EXPECT_FALSE(fs::exists(dst));
    out.commit();
  }
  EXPECT_EQ(slurp(dst), std::string("hello \0\0\0", 9));
  EXPECT_EQ(entries_in(dir.path()), 1u);  // no temporary left beside it
}

TEST(OutputFile, WithoutCommitLeavesExistingDestinationAlone) {
  TempDir dir;
  const std::string dst = dir.write("keep.bin", testing::bytes_of("old"));
  {
    OutputFile out(dst);
    out.write(std::string_view("new content that is never committed"));
  }
  EXPECT_EQ(slurp(dst), "old");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

TEST(OutputFile, ReplacesExistingDestination) {
  TempDir dir;
  const std::string dst = dir.write("f.bin", testing::bytes_of("old"));
  OutputFile out(dst);
  out.write(std::string_view("new"));
  out.commit();
  EXPECT_EQ(slurp(dst), "new");
}

TEST(OutputFile, CopiesRangesOfFilesAndMemory) {
  TempDir dir;
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = char(i * 7 + (i >> 12));
  const std::string src = dir.write("src.bin", testing::Bytes(big.begin(), big.end()));
  auto file = open_file_source(src);
  auto memory = make_memory_source(std::vector<uint8_t>(big.begin(), big.end()));
  const std::string dst = (dir.path() / "dst.bin").string();
  OutputFile out(dst);
  out.write(std::string_view("<"));
  out.copy_from(*file, 5, big.size() - 10);
  out.copy_from(*memory, 1, 2);
  out.write(std::string_view(">"));
  EXPECT_EQ(out.position(), 1 + big.size() - 10 + 2 + 1);
  out.commit();
  EXPECT_EQ(slurp(dst), "<" + big.substr(5, big.size() - 10) + big.substr(1, 2) + ">");
  testing::expect_error([&] { out.copy_from(*memory, big.size() - 1, 2); }, "read-past-end");
}

TEST(OutputFile, RefusesDirectoriesAndMissingParents) {
  TempDir dir;
  testing::expect_error([&] { OutputFile out(dir.path().string()); }, "io.destination");
  try {
    OutputFile out((dir.path() / "no-such-dir" / "x.pt").string());
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound) << e.what();
  }
}

// Sets PTPACK_OUTPUT_NAMED=1 for one scope: the path filesystems without O_TMPFILE take.
struct NamedTemporaries {
  NamedTemporaries() { ::setenv("PTPACK_OUTPUT_NAMED", "1", 1); }
  ~NamedTemporaries() { ::unsetenv("PTPACK_OUTPUT_NAMED"); }
};

TEST(OutputFile, NamedTemporaryPathIsAtomicToo) {
  NamedTemporaries named;
  TempDir dir;
  const std::string dst = dir.write("f.bin", testing::bytes_of("old"));
  {
    OutputFile out(dst);
    out.write(std::string_view("discarded"));
    EXPECT_EQ(entries_in(dir.path()), 2u);  // the hidden temporary beside the destination
  }
  EXPECT_EQ(slurp(dst), "old");
  EXPECT_EQ(entries_in(dir.path()), 1u);
  OutputFile out(dst);
  out.write(std::string_view("new"));
  out.commit();
  EXPECT_EQ(slurp(dst), "new");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

TEST(OutputFile, RemovesTemporariesOfDeadWritersOnly) {
  TempDir dir;
  // A killed writer's leftover (nobody holds its lock), a live writer's (locked here), and
  // files that only look similar.
  const std::string dead = dir.write(".m.pt.ptpack-0badf00d", testing::bytes_of("partial"));
  const std::string live = dir.write(".m.pt.ptpack-1234abcd", testing::bytes_of("in progress"));
  const std::string other = dir.write(".n.pt.ptpack-0badf00d", testing::bytes_of("other file's"));
  const std::string odd = dir.write(".m.pt.ptpack-keep", testing::bytes_of("not ours"));
  const int held = ::open(live.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  OutputFile out((dir.path() / "m.pt").string());
  out.write(std::string_view("m"));
  out.commit();
  ::close(held);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(live));
  EXPECT_TRUE(fs::exists(other));
  EXPECT_TRUE(fs::exists(odd));
}

TEST(OutputFile, LiveTemporaryIsNotTakenForADeadOne) {
  NamedTemporaries named;
  TempDir dir;
  const std::string dst = (dir.path() / "x.pt").string();
  OutputFile first(dst);
  first.write(std::string_view("first"));
  OutputFile second(dst);  // cleans stale temporaries: the first writer's is held
  second.write(std::string_view("second"));
  first.commit();
  EXPECT_EQ(slurp(dst), "first");
  second.commit();
  EXPECT_EQ(slurp(dst), "second");
  EXPECT_EQ(entries_in(dir.path()), 1u);
}

}  // namespace
}  // namespace ptpack
