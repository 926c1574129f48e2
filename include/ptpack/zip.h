// ZIP reader for PyTorch archives (torch.save, torch.package, TorchScript all use one container).
//
// Layout (APPNOTE 6.3.x; what PyTorch's miniz writer produces is in FORMATS.md §2.2):
//
//   [local header 30 B | name | extra (ZIP64 0x0001, PyTorch's 'FB' padding) | data | descriptor?]*
//   [central directory entry 46 B | name | extra | comment]*
//   [ZIP64 end of central directory 56 B][ZIP64 locator 20 B]   (PyTorch always writes these)
//   [end of central directory 22 B | comment]
//
// The reader trusts the central directory (as PyTorch's does) and checks it against the file:
// every record lies inside the file and before the central directory, local headers exist and
// repeat the central name, records do not overlap, counts and name lengths are sane, names are
// relative with no '..' segment, no two entries share a name. Stored records can be viewed
// without copying when the source is mapped; deflated records are inflated (zlib) under caps.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ptpack/byte_source.h"

namespace ptpack::zip {

inline constexpr uint16_t kMethodStored = 0;
inline constexpr uint16_t kMethodDeflate = 8;

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // kMethodStored or kMethodDeflate (others are listed but not readable)
  uint16_t flags = 0;   // bit 3: sizes and CRC follow the data in a descriptor
  uint32_t crc32 = 0;   // from the central directory
  uint64_t compressed_size = 0;
  uint64_t size = 0;           // uncompressed
  uint64_t header_offset = 0;  // local file header
  uint64_t data_offset = 0;    // first byte of the (possibly compressed) data
  uint16_t local_extra_length = 0;
  bool zip64 = false;          // the central entry carries a ZIP64 extra field
  bool local_zip64 = false;    // the local header carries one (then the descriptor has 8-byte sizes)
  int32_t padding = -1;        // length of PyTorch's 'FB' padding field in the local header, -1 if none

  uint64_t data_end() const { return data_offset + compressed_size; }
};

class ZipArchive {
 public:
  // Parses and validates the archive's structure. Throws Error(kCorrupt/kLimitExceeded/
  // kUnsupported) naming the rule, the entry and the offset.
  static ZipArchive open(SourcePtr source);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(std::string_view name) const;
  const SourcePtr& source() const { return source_; }
  bool has_zip64_end_record() const { return zip64_end_; }
  uint64_t central_directory_offset() const { return cd_offset_; }

  // The entry's uncompressed bytes. Refuses (kLimitExceeded) entries larger than max_size.
  std::vector<uint8_t> read(const ZipEntry& entry, uint64_t max_size) const;

  // Zero-copy view of a stored entry in a mapped source; nullopt otherwise.
  std::optional<std::span<const uint8_t>> view(const ZipEntry& entry) const;

  // Streams the entry's uncompressed bytes to `sink` in chunks (bounded memory, any size).
  template <typename Sink>
  void stream(const ZipEntry& entry, Sink&& sink) const {
    stream_impl(entry, [](void* ctx, std::span<const uint8_t> chunk) {
      (*static_cast<Sink*>(ctx))(chunk);
    }, &sink);
  }

  // CRC-32 of the uncompressed bytes, computed by streaming.
  uint32_t compute_crc32(const ZipEntry& entry) const;

 private:
  using ChunkFn = void (*)(void*, std::span<const uint8_t>);
  void stream_impl(const ZipEntry& entry, ChunkFn fn, void* ctx) const;

  SourcePtr source_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
  uint64_t cd_offset_ = 0;
  bool zip64_end_ = false;
};

// True when `name` is a safe relative archive path: non-empty, not absolute, no '..' or empty
// segment, no backslash or NUL. Exposed for writers and tests.
bool is_safe_entry_name(std::string_view name);

}  // namespace ptpack::zip
