// Containers: zip kinds, strict vs lenient readers, hidden and nested entries, legacy streams,
// package sources, and files that are no format at all.
#include "scan/scan_internal.h"
#include "scan/scan_test_util.h"

namespace ptpack::scan {
namespace {

using testing::Bytes;
using testing::build_zip;
using test::find_rule;
using test::scan_bytes;

const Bytes kEvil = PTPACK_BYTES("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00id\x85R.");
const Bytes kBenign = PTPACK_BYTES("\x80\x02}q\x00.");

TEST(ContainerScan, TorchSaveZipPicklesScannedStoragesSkipped) {
  // data/0 starts like a pickle but is a storage: torch never unpickles it.
  ScanReport r = scan_bytes(build_zip({{"m/data.pkl", kBenign}, {"m/data/0", kEvil}, {"m/version", testing::bytes_of("3\n")}}));
  EXPECT_EQ(r.format, "torch_save_zip");
  EXPECT_EQ(r.pickles, std::vector<std::string>{"m/data.pkl"});
  EXPECT_EQ(r.verdict, Verdict::kSafe);
  // ...but any other record that is a pickle is scanned, deflated or not.
  ScanReport extra = scan_bytes(build_zip({{"m/data.pkl", kBenign}, {"m/extra/x", kEvil, true}, {"m/version", testing::bytes_of("3\n")}}));
  EXPECT_EQ(extra.verdict, Verdict::kUnsafe);
  ASSERT_TRUE(find_rule(extra, "scan.call-not-allowed"));
  EXPECT_EQ(find_rule(extra, "scan.call-not-allowed")->entry, "m/extra/x");
}

TEST(ContainerScan, StrictRefusalFallsBackToLocalHeaders) {
  Bytes z = build_zip({{"m/data.pkl", kBenign}, {"m/data.pkl", kEvil}, {"m/version", testing::bytes_of("3\n")}});
  ScanReport r = scan_bytes(z);
  ASSERT_TRUE(find_rule(r, "scan.zip-strict-refused"));
  EXPECT_NE(find_rule(r, "scan.zip-strict-refused")->message.find("zip.duplicate-name"), std::string::npos);
  EXPECT_TRUE(find_rule(r, "scan.call-not-allowed"));
  EXPECT_EQ(r.pickles.size(), 2u);
}

TEST(ContainerScan, HiddenEntryBetweenRecords) {
  // A local header the central directory does not list, spliced in before the central directory.
  Bytes good = build_zip({{"m/data.pkl", kBenign}, {"m/version", testing::bytes_of("3\n")}});
  Bytes hidden = build_zip({{"m/evil.pkl", kEvil}});
  // The hidden archive's local record ends where its central directory starts (first "PK\1\2").
  size_t hidden_end = 0;
  for (size_t i = 0; i + 4 <= hidden.size(); ++i) {
    if (hidden[i] == 'P' && hidden[i + 1] == 'K' && hidden[i + 2] == 1 && hidden[i + 3] == 2) { hidden_end = i; break; }
  }
  size_t cd = 0;
  for (size_t i = 0; i + 4 <= good.size(); ++i) {
    if (good[i] == 'P' && good[i + 1] == 'K' && good[i + 2] == 1 && good[i + 3] == 2) { cd = i; break; }
  }
  ASSERT_GT(hidden_end, 0u);
  ASSERT_GT(cd, 0u);
  Bytes z(good.begin(), good.begin() + std::ptrdiff_t(cd));
  z.insert(z.end(), hidden.begin(), hidden.begin() + std::ptrdiff_t(hidden_end));
  z.insert(z.end(), good.begin() + std::ptrdiff_t(cd), good.end());
  // Patch the end record's central-directory offset (bytes 16..19 of the 22-byte EOCD).
  const uint32_t new_cd = uint32_t(cd + hidden_end);
  const size_t eocd = z.size() - 22;
  ASSERT_EQ(z[eocd], 'P');
  for (int i = 0; i < 4; ++i) z[eocd + 16 + size_t(i)] = uint8_t(new_cd >> (8 * i));
  ScanReport r = scan_bytes(z);
  ASSERT_TRUE(find_rule(r, "scan.zip-hidden-entry")) << report_text(r, false);
  EXPECT_TRUE(find_rule(r, "scan.call-not-allowed"));
}

TEST(ContainerScan, ZipInZipAndDepthCap) {
  Bytes inner = build_zip({{"i/data.pkl", kEvil}, {"i/version", testing::bytes_of("3\n")}});
  ScanReport r = scan_bytes(build_zip({{"m/data.pkl", kBenign}, {"m/x/inner.pt", inner}, {"m/version", testing::bytes_of("3\n")}}));
  const Finding* f = find_rule(r, "scan.call-not-allowed");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->entry, "m/x/inner.pt!i/data.pkl");
  Bytes nested = inner;
  for (int i = 0; i < kMaxScanDepth + 2; ++i) nested = build_zip({{"n" + std::to_string(i) + "/a.pt", nested}});
  EXPECT_TRUE(find_rule(scan_bytes(nested), "scan.too-deep"));
}

TEST(ContainerScan, PackageSourcesAndExterns) {
  Bytes z = build_zip({{"p/mymod/__init__.py", testing::bytes_of("import os, sys as s\nfrom torch.nn import Linear\n")},
                       {"p/m/model.pkl", PTPACK_BYTES("\x80\x03" "cmymod\nNet\n)\x81.")},
                       {"p/.data/extern_modules", testing::bytes_of("torch\nos\n")},
                       {"p/.data/version", testing::bytes_of("6\n")}});
  ScanReport w = scan_bytes(z);
  EXPECT_EQ(w.format, "torch_package");
  EXPECT_EQ(w.verdict, Verdict::kUnsafe);
  EXPECT_TRUE(find_rule(w, "scan.package-code"));
  ASSERT_EQ(w.sources.size(), 1u);
  EXPECT_EQ(w.sources[0].imports, (std::vector<std::string>{"os", "sys", "torch.nn"}));
  EXPECT_EQ(w.extern_modules, (std::vector<std::string>{"torch", "os"}));
  ScanReport t = scan_bytes(z, Policy::torch());
  EXPECT_EQ(t.verdict, Verdict::kSafe) << report_text(t, true);  // mymod.Net comes from the package itself
}

TEST(ContainerScan, LegacyStreamsScanEveryPickle) {
  const Bytes magic = PTPACK_BYTES("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
  const Bytes proto = PTPACK_BYTES("\x80\x02M\xe9\x03.");
  const Bytes keys = PTPACK_BYTES("\x80\x02].");
  Bytes f = test::cat({magic, proto, kEvil, kBenign, keys});
  ScanReport r = scan_bytes(f);
  EXPECT_EQ(r.format, "torch_save_legacy");
  EXPECT_EQ(r.pickles.size(), 5u);
  const Finding* g = find_rule(r, "scan.global-not-allowed");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->entry, "sys_info");
  EXPECT_EQ(g->offset, magic.size() + proto.size() + 2);  // file offsets
}

TEST(ContainerScan, NotAFormatIsAnError) {
  EXPECT_EQ(scan_bytes(testing::bytes_of("\xff\xfe hello")).verdict, Verdict::kError);
  EXPECT_EQ(scan_bytes({}).verdict, Verdict::kError);
  ScanReport json = scan_bytes(testing::bytes_of("{\"a\": 1}"));
  EXPECT_EQ(json.verdict, Verdict::kError);
  ScanReport missing = scan_file("/nonexistent/file.pt", Policy::weights());
  EXPECT_EQ(missing.verdict, Verdict::kError);
  EXPECT_NE(missing.error.find("/nonexistent/file.pt"), std::string::npos);
}

TEST(ContainerScan, PythonImports) {
  EXPECT_EQ(python_imports("import a.b as c, d\n  from .x import y\nfrom e import (f,\n g)\n# import no\nx = 'import z'\n"),
            (std::vector<std::string>{"a.b", "d", ".x", "e"}));
}

}  // namespace
}  // namespace ptpack::scan
