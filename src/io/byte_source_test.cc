#include "ptpack/byte_source.h"

#include "testing.h"

namespace ptpack {
namespace {

using testing::bytes_of;

TEST(MemorySource, ReadsAndViewsInsideTheBuffer) {
  SourcePtr src = make_memory_source(bytes_of("hello world"), "mem");
  EXPECT_EQ(src->size(), 11u);
  uint8_t out[5];
  src->read_at(6, out);
  EXPECT_EQ(std::string(out, out + 5), "world");
  auto v = src->view(0, 5);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(std::string(v->begin(), v->end()), "hello");
}

TEST(MemorySource, RefusesRangesPastTheEnd) {
  SourcePtr src = make_memory_source(bytes_of("abc"), "mem");
  uint8_t out[4];
  Error e = testing::expect_error([&] { src->read_at(0, out); }, "read-past-end");
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(e.file(), "mem");
  testing::expect_error([&] { src->view(2, 2); }, "read-past-end");
  // An offset near 2^64 must not wrap around the bounds check.
  testing::expect_error([&] { src->view(~uint64_t{0}, 2); }, "read-past-end");
}

TEST(FileSource, MapsARegularFile) {
  testing::TempDir dir;
  const std::string path = dir.write("f.bin", bytes_of("0123456789"));
  SourcePtr src = open_file_source(path);
  EXPECT_EQ(src->size(), 10u);
  EXPECT_EQ(src->name(), path);
  auto v = src->view(3, 4);
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(std::string(v->begin(), v->end()), "3456");
  EXPECT_EQ(src->read_vector(8, 2), bytes_of("89"));
}

TEST(FileSource, EmptyFileHasNoBytes) {
  testing::TempDir dir;
  SourcePtr src = open_file_source(dir.write("empty", {}));
  EXPECT_EQ(src->size(), 0u);
  EXPECT_TRUE(src->read_vector(0, 0).empty());
}

TEST(FileSource, MissingFileIsNotFound) {
  try {
    open_file_source("/nonexistent/ptpack/file.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/ptpack/file.pt"), std::string::npos);
  }
}

TEST(FileSource, DirectoryIsRefused) {
  testing::TempDir dir;
  try {
    open_file_source(dir.path().string());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(Error, MessageNamesFileEntryOffsetAndRule) {
  Error e(ErrorCode::kCorrupt, "zip.record-overlap", "records overlap");
  e.add_offset(64).add_entry("sd/data/0").add_file("model.pt");
  e.add_file("outer.pt");  // the innermost context wins
  EXPECT_STREQ(e.what(), "model.pt: entry 'sd/data/0': offset 64: records overlap [zip.record-overlap]");
}

}  // namespace
}  // namespace ptpack
