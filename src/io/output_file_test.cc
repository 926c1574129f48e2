#include "ptpack/output_file.h"

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

}  // namespace
}  // namespace ptpack
