#include "ptpack/zip_writer.h"

#include <zlib.h>

#include "ptpack/zip.h"
#include "testing.h"

namespace ptpack::zip {
namespace {

using testing::TempDir;

TEST(ZipWriter, Crc32MatchesZlib) {
  std::vector<uint8_t> data(100000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 31 + 7);
  EXPECT_EQ(crc32(0, data), ::crc32(0, data.data(), uInt(data.size())));
  EXPECT_EQ(crc32(crc32(0, std::span(data).first(1000)), std::span(data).subspan(1000)),
            crc32(0, data));
}

TEST(ZipWriter, PyTorchLayoutReadsBackAligned) {
  TempDir dir;
  const std::string path = (dir.path() / "a.pt").string();
  std::vector<uint8_t> big(300000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i ^ (i >> 9));
  auto source = make_memory_source(big);
  {
    OutputFile out(path);
    ZipWriter zip(out);
    zip.add("a/data.pkl", std::string_view("\x80\x02N."));
    zip.add("a/byteorder", std::string_view("little"));
    zip.begin("a/data/0", big.size());
    zip.write_from(*source, 0, 1000);
    zip.write(std::span(big).subspan(1000));
    zip.end();
    zip.add("a/data/1", std::string_view(""));  // empty: no descriptor
    zip.add("a/version", std::string_view("3\n"));
    zip.finish();
    out.commit();
  }
  const ZipArchive archive = ZipArchive::open(open_file_source(path));
  ASSERT_EQ(archive.entries().size(), 5u);
  EXPECT_TRUE(archive.has_zip64_end_record());  // miniz always writes it
  for (const ZipEntry& e : archive.entries()) {
    EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
    EXPECT_EQ(e.method, kMethodStored);
    EXPECT_GE(e.padding, 0) << e.name;
    EXPECT_EQ(e.flags, e.size ? 0x0808 : 0x0800) << e.name;
    EXPECT_EQ(archive.compute_crc32(e), e.crc32) << e.name;
  }
  EXPECT_EQ(archive.read(*archive.find("a/data/0"), 1 << 20), big);
  EXPECT_EQ(archive.find("a/version")->size, 2u);
}

TEST(ZipWriter, RefusesMisuse) {
  TempDir dir;
  OutputFile out((dir.path() / "x.zip").string());
  ZipWriter zip(out);
  testing::expect_error([&] { zip.add("../evil", std::string_view("x")); }, "zip.writer");
  zip.begin("a/b", 2);
  testing::expect_error([&] { zip.write(std::span<const uint8_t>(testing::bytes_of("abc"))); },
                        "zip.writer");
  testing::expect_error([&] { zip.end(); }, "zip.writer");
}

}  // namespace
}  // namespace ptpack::zip
