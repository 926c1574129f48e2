#include "ptpack/zip.h"

#include "testing.h"

namespace ptpack::zip {
namespace {

using testing::Bytes;
using testing::build_zip;
using testing::bytes_of;
using testing::expect_error;

ZipArchive open_bytes(Bytes bytes) { return ZipArchive::open(make_memory_source(std::move(bytes), "test.zip")); }

TEST(ZipReader, ListsAndReadsStoredAndDeflatedRecords) {
  Bytes big(100000, 'x');
  ZipArchive z = open_bytes(build_zip({{"a/data.pkl", bytes_of("pickle")}, {"a/data/0", big, true}}));
  ASSERT_EQ(z.entries().size(), 2u);
  const ZipEntry* pkl = z.find("a/data.pkl");
  ASSERT_NE(pkl, nullptr);
  EXPECT_EQ(z.read(*pkl, 100), bytes_of("pickle"));
  ASSERT_TRUE(z.view(*pkl).has_value());
  const ZipEntry* data = z.find("a/data/0");
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(data->method, kMethodDeflate);
  EXPECT_LT(data->compressed_size, data->size);
  EXPECT_FALSE(z.view(*data).has_value());
  EXPECT_EQ(z.read(*data, 1 << 20), big);
  EXPECT_EQ(z.compute_crc32(*data), data->crc32);
  EXPECT_EQ(z.find("missing"), nullptr);
}

TEST(ZipReader, ReadRespectsTheCallersCap) {
  ZipArchive z = open_bytes(build_zip({{"a/x", Bytes(1000, 1)}}));
  Error e = expect_error([&] { z.read(z.entries()[0], 999); }, "zip.record-too-large");
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
}

TEST(ZipReader, RefusesUnsafeNames) {
  for (const char* name : {"../evil", "/abs/path", "a/../../b", "a\\b", "a//b", "C:/x"}) {
    expect_error([&] { open_bytes(build_zip({{name, bytes_of("x")}})); }, "zip.unsafe-name");
  }
  EXPECT_TRUE(is_safe_entry_name("archive/data/0"));
  EXPECT_TRUE(is_safe_entry_name("archive/dir/"));
  EXPECT_FALSE(is_safe_entry_name(""));
}

TEST(ZipReader, RefusesDuplicateNames) {
  expect_error([&] { open_bytes(build_zip({{"a/x", bytes_of("1")}, {"a/x", bytes_of("2")}})); },
               "zip.duplicate-name");
}

TEST(ZipReader, RefusesNonZipAndTruncatedFiles) {
  expect_error([&] { open_bytes(bytes_of("short")); }, "zip.no-end-record");
  expect_error([&] { open_bytes(Bytes(100, 0)); }, "zip.no-end-record");
  Bytes zip = build_zip({{"a/x", bytes_of("hello")}});
  zip.resize(zip.size() - 1);  // cut the end record
  expect_error([&] { open_bytes(zip); }, "zip.no-end-record");
}

TEST(ZipReader, RefusesOverlappingRecords) {
  Bytes zip = build_zip({{"a/x", bytes_of("0123456789")}, {"a/y", bytes_of("abcdefghij")}});
  // Grow the first record (central sizes) so its data runs over the second local header.
  const size_t first_central = 2 * (30 + 3 + 10);
  ASSERT_EQ(zip[first_central], 0x50);
  zip[first_central + 20] = 20;
  zip[first_central + 24] = 20;
  Error e = expect_error([&] { open_bytes(zip); }, "zip.record-overlap");
  EXPECT_EQ(e.entry(), "a/y");
}

TEST(ZipReader, RefusesALocalHeaderOffsetThatPointsAtData) {
  Bytes zip = build_zip({{"a/x", bytes_of("0123456789")}, {"a/y", bytes_of("abcdefghij")}});
  const size_t second_central = zip.size() - 22 - (46 + 3);
  zip[second_central + 42] = 35;  // inside the first record's data
  expect_error([&] { open_bytes(zip); }, "zip.local-signature");
}

TEST(ZipReader, RefusesEntryCountLargerThanTheDirectory) {
  Bytes zip = build_zip({{"a/x", bytes_of("1")}});
  const size_t eocd = zip.size() - 22;
  zip[eocd + 10] = 0xFF;  // total entries
  zip[eocd + 11] = 0x7F;
  expect_error([&] { open_bytes(zip); }, "zip.entry-count");
}

TEST(ZipReader, RefusesACentralDirectoryOutsideTheFile) {
  Bytes zip = build_zip({{"a/x", bytes_of("1")}});
  const size_t eocd = zip.size() - 22;
  zip[eocd + 19] = 0x40;  // cd offset high byte
  expect_error([&] { open_bytes(zip); }, "zip.central-outside");
}

TEST(ZipReader, RefusesALocalNameThatDiffersFromTheCentralOne) {
  Bytes zip = build_zip({{"a/x", bytes_of("1")}});
  zip[30 + 2] = 'y';  // local header's name "a/x" -> "a/y"
  expect_error([&] { open_bytes(zip); }, "zip.local-name-mismatch");
}

TEST(ZipReader, RefusesABombClaimingAnImpossibleRatio) {
  Bytes zip = build_zip({{"a/x", Bytes(10000, 0), true}});
  // Central uncompressed size -> 4 GiB - 1 from a few dozen compressed bytes.
  const size_t central = zip.size() - 22 - (46 + 3);
  for (int i = 0; i < 4; ++i) zip[central + 24 + i] = 0xFE;
  expect_error([&] { open_bytes(zip); }, "zip.bomb");
}

TEST(ZipReader, DetectsDeflateThatDoesNotMatchItsDeclaredSize) {
  Bytes zip = build_zip({{"a/x", Bytes(1000, 7), true}});
  const size_t central = zip.size() - 22 - (46 + 3);
  zip[central + 24] = 0xE7;  // 1000 -> 999 (0x3E7)
  ZipArchive z = open_bytes(zip);
  expect_error([&] { z.read(z.entries()[0], 1 << 20); }, "zip.inflate-size");
}

TEST(ZipReader, UnsupportedMethodIsNamed) {
  Bytes zip = build_zip({{"a/x", bytes_of("abc")}});
  const size_t central = zip.size() - 22 - (46 + 3);
  zip[central + 10] = 12;  // bzip2
  ZipArchive z = open_bytes(zip);
  Error e = expect_error([&] { z.read(z.entries()[0], 100); }, "zip.method");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace ptpack::zip
