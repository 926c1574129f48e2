// `ptpack verify`: everything reading already validates (structure, pickles, tensor extents,
// storage sizes), plus what reading skips: the CRC-32 of every zip record against the central
// directory, local headers and data descriptors that disagree with the central directory, and
// storage records that no tensor references.
#include <set>

#include "io/checked_math.h"
#include "ptpack/inspect.h"
#include "zip/zip_format.h"

namespace ptpack {
namespace {

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// Sizes and CRC repeated after the data (flag bit 3), or in the local header, must agree with
// the central directory.
void check_local_copies(const zip::ZipArchive& z, const zip::ZipEntry& e, std::vector<std::string>& problems) {
  const ByteSource& src = *z.source();
  uint8_t h[zip::kLocalHeaderSize];
  src.read_at(e.header_offset, h);
  const uint16_t flags = load_u16_le(h + 6);
  if (!(flags & 0x8)) {
    const uint32_t crc = load_u32_le(h + 14);
    const uint32_t csize = load_u32_le(h + 18), size = load_u32_le(h + 22);
    if (crc != e.crc32 || (csize != 0xFFFFFFFF && csize != e.compressed_size) ||
        (size != 0xFFFFFFFF && size != e.size)) {
      problems.push_back(e.name + ": local header CRC/sizes differ from the central directory [zip.local-mismatch]");
    }
    return;
  }
  const uint64_t at = e.data_end();
  const uint64_t available = z.central_directory_offset() - at;
  uint8_t d[24] = {};
  const uint64_t n = std::min<uint64_t>(available, 24);
  src.read_at(at, std::span<uint8_t>(d, n));
  uint64_t p = 0;
  if (n >= 4 && load_u32_le(d) == zip::kDataDescriptorSignature) p = 4;
  const bool wide = e.local_zip64;  // 8-byte sizes when the local header has a ZIP64 field
  const uint64_t need = p + (wide ? 20 : 12);
  if (n < need) {
    problems.push_back(e.name + ": data descriptor missing after the data [zip.descriptor]");
    return;
  }
  const uint32_t crc = load_u32_le(d + p);
  const uint64_t csize = wide ? load_u64_le(d + p + 4) : load_u32_le(d + p + 4);
  const uint64_t size = wide ? load_u64_le(d + p + 12) : load_u32_le(d + p + 8);
  if (crc != e.crc32 || csize != e.compressed_size || size != e.size) {
    problems.push_back(e.name + ": data descriptor (crc " + hex32(crc) + ", " + std::to_string(size) +
                       " bytes) differs from the central directory (crc " + hex32(e.crc32) + ", " +
                       std::to_string(e.size) + " bytes) [zip.descriptor]");
  }
}

bool is_storage_record(const Artifact& a, const std::string& name) {
  if (name.rfind(a.root, 0) != 0) return false;
  const std::string rel = name.substr(a.root.size());
  switch (a.format) {
    case Format::kTorchSaveZip: return rel.rfind("data/", 0) == 0;
    case Format::kTorchScript: return rel.rfind("data/", 0) == 0 || rel.rfind("constants/", 0) == 0;
    case Format::kTorchPackage:
      return rel.rfind(".data/", 0) == 0 && rel.size() > 8 && rel.compare(rel.size() - 8, 8, ".storage") == 0;
    default: return false;
  }
}

}  // namespace

VerifyReport verify_artifact(const Artifact& a) {
  VerifyReport report;
  if (a.archive) {
    for (const auto& e : a.archive->entries()) {
      try {
        const uint32_t crc = a.archive->compute_crc32(e);
        ++report.records_checked;
        if (crc != e.crc32) {
          report.problems.push_back(e.name + ": CRC-32 is " + hex32(crc) + " but the central directory says " +
                                    hex32(e.crc32) + " [zip.crc]");
        }
        check_local_copies(*a.archive, e, report.problems);
      } catch (const Error& err) {
        report.problems.push_back(e.name + ": " + err.detail() + " [" + err.rule() + "]");
      }
    }
    std::set<std::string> referenced;
    for (const auto& s : a.storages) referenced.insert(s.entry);
    for (const auto& e : a.archive->entries()) {
      if (is_storage_record(a, e.name) && !referenced.count(e.name)) {
        report.problems.push_back(e.name + ": storage record that no pickle references [storage.unreferenced]");
      }
    }
  }
  std::vector<bool> used(a.storages.size(), false);
  for (const auto& t : a.tensors) {
    if (t.storage >= 0) used[size_t(t.storage)] = true;
  }
  for (size_t i = 0; i < a.storages.size(); ++i) {
    if (!used[i] && a.format != Format::kPickle) {
      // A storage pickled on its own (torch.save(storage)) has no tensor; say so, it is legal.
      report.problems.push_back(a.storages[i].entry + ": storage is referenced but no tensor views it "
                                "[storage.no-tensor]");
    }
  }
  return report;
}

}  // namespace ptpack
