#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/zip.h"
#include "zip/zip_format.h"

namespace ptpack::zip {
namespace {

[[noreturn]] void fail(const std::string& rule, const std::string& detail, uint64_t offset,
                       const std::string& entry = "") {
  Error e(ErrorCode::kCorrupt, rule, detail);
  e.add_offset(offset);
  if (!entry.empty()) e.add_entry(entry);
  throw e;
}

struct EndRecord {
  uint64_t position = 0;  // where the classic EOCD starts
  uint64_t entry_count = 0;
  uint64_t cd_size = 0;
  uint64_t cd_offset = 0;
  uint64_t cd_limit = 0;  // the central directory must end at or before this offset
  bool zip64 = false;
};

// Finds the classic end record: the last signature whose comment length reaches exactly the end
// of the file (a signature inside a comment does not count).
EndRecord find_end_record(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size < kEndRecordSize) {
    fail("zip.no-end-record", "file is too small to be a ZIP archive", 0);
  }
  const uint64_t window = std::min<uint64_t>(size, kEndRecordSize + kMaxCommentLength);
  std::vector<uint8_t> tail(window);
  src.read_at(size - window, tail);
  for (uint64_t i = window - kEndRecordSize + 1; i-- > 0;) {
    const uint8_t* p = tail.data() + i;
    if (load_u32_le(p) != kEndRecordSignature) continue;
    const uint64_t comment = load_u16_le(p + 20);
    if (i + kEndRecordSize + comment != window) continue;
    EndRecord end;
    end.position = size - window + i;
    if (load_u16_le(p + 4) != 0 || load_u16_le(p + 6) != 0) {
      throw_unsupported("zip.multi-disk", "multi-disk (spanned) ZIP archives are not supported");
    }
    end.entry_count = load_u16_le(p + 10);
    end.cd_size = load_u32_le(p + 12);
    end.cd_offset = load_u32_le(p + 16);
    end.cd_limit = end.position;
    return end;
  }
  fail("zip.no-end-record", "no end-of-central-directory record (not a ZIP file, or truncated)",
       size);
}

// PyTorch writes a ZIP64 end record for every archive; others do when a count or offset
// overflows. When the locator is present, its values replace the classic ones.
void read_zip64_end(const ByteSource& src, EndRecord& end) {
  if (end.position < kZip64LocatorSize) return;
  uint8_t loc[kZip64LocatorSize];
  src.read_at(end.position - kZip64LocatorSize, loc);
  if (load_u32_le(loc) != kZip64LocatorSignature) {
    if (end.cd_offset == 0xFFFFFFFF || end.entry_count == 0xFFFF) {
      fail("zip.zip64-missing", "end record needs ZIP64 values but there is no ZIP64 locator",
           end.position);
    }
    return;
  }
  const uint64_t record_offset = load_u64_le(loc + 8);
  if (record_offset > end.position - kZip64LocatorSize ||
      end.position - kZip64LocatorSize - record_offset < kZip64EndRecordSize) {
    fail("zip.zip64-end-outside", "ZIP64 end record offset points outside the archive",
         end.position - kZip64LocatorSize);
  }
  uint8_t rec[kZip64EndRecordSize];
  src.read_at(record_offset, rec);
  if (load_u32_le(rec) != kZip64EndRecordSignature) {
    fail("zip.zip64-end-signature", "bad ZIP64 end-of-central-directory signature", record_offset);
  }
  if (load_u32_le(rec + 16) != 0 || load_u32_le(rec + 20) != 0) {
    throw_unsupported("zip.multi-disk", "multi-disk (spanned) ZIP archives are not supported");
  }
  end.entry_count = load_u64_le(rec + 32);
  end.cd_size = load_u64_le(rec + 40);
  end.cd_offset = load_u64_le(rec + 48);
  end.cd_limit = record_offset;
  end.zip64 = true;
}

// Applies a ZIP64 extended-information field: 8-byte values appear, in this order, only for
// the 32-bit fields that hold their 0xFFFFFFFF sentinel.
void apply_zip64_extra(const uint8_t* extra, uint64_t length, ZipEntry& e, bool has_sentinel_size,
                       bool has_sentinel_csize, bool has_sentinel_offset, uint64_t at) {
  uint64_t pos = 0;
  while (pos + 4 <= length) {
    const uint16_t id = load_u16_le(extra + pos);
    const uint16_t len = load_u16_le(extra + pos + 2);
    if (pos + 4 + len > length) fail("zip.extra-field", "extra field runs past its end", at, e.name);
    if (id == kZip64ExtraId) {
      e.zip64 = true;
      const uint8_t* q = extra + pos + 4;
      uint64_t left = len;
      auto take = [&](uint64_t& field) {
        if (left < 8) fail("zip.zip64-extra", "ZIP64 extra field is too short", at, e.name);
        field = load_u64_le(q);
        q += 8;
        left -= 8;
      };
      if (has_sentinel_size) take(e.size);
      if (has_sentinel_csize) take(e.compressed_size);
      if (has_sentinel_offset) take(e.header_offset);
    }
    pos += 4 + len;
  }
}

ZipEntry parse_central_entry(const std::vector<uint8_t>& cd, uint64_t& pos, uint64_t cd_offset) {
  const uint64_t at = cd_offset + pos;
  if (cd.size() - pos < kCentralHeaderSize) {
    fail("zip.central-truncated", "central directory ends inside an entry header", at);
  }
  const uint8_t* p = cd.data() + pos;
  if (load_u32_le(p) != kCentralHeaderSignature) {
    fail("zip.central-signature", "bad central directory entry signature", at);
  }
  ZipEntry e;
  e.flags = load_u16_le(p + 8);
  e.method = load_u16_le(p + 10);
  e.crc32 = load_u32_le(p + 16);
  e.compressed_size = load_u32_le(p + 20);
  e.size = load_u32_le(p + 24);
  const uint64_t name_len = load_u16_le(p + 28);
  const uint64_t extra_len = load_u16_le(p + 30);
  const uint64_t comment_len = load_u16_le(p + 32);
  const uint16_t disk = load_u16_le(p + 34);
  e.header_offset = load_u32_le(p + 42);
  if (name_len > limits::kMaxZipNameLength) {
    throw_limit("kMaxZipNameLength", "entry name is " + std::to_string(name_len) + " bytes", at);
  }
  if (cd.size() - pos - kCentralHeaderSize < name_len + extra_len + comment_len) {
    fail("zip.central-truncated", "central directory ends inside an entry's name or extra", at);
  }
  e.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderSize), name_len);
  apply_zip64_extra(p + kCentralHeaderSize + name_len, extra_len, e, e.size == 0xFFFFFFFF,
                    e.compressed_size == 0xFFFFFFFF, e.header_offset == 0xFFFFFFFF, at);
  if (disk != 0 && disk != 0xFFFF) {
    throw_unsupported("zip.multi-disk", "entry '" + e.name + "' lives on another disk");
  }
  pos += kCentralHeaderSize + name_len + extra_len + comment_len;
  return e;
}

// Reads the local header, checks it repeats the central name, and fixes data_offset.
void resolve_local_header(const ByteSource& src, ZipEntry& e, uint64_t cd_offset) {
  if (e.header_offset > cd_offset || cd_offset - e.header_offset < kLocalHeaderSize) {
    fail("zip.entry-outside", "local header offset " + std::to_string(e.header_offset) +
         " is not before the central directory", e.header_offset, e.name);
  }
  uint8_t h[kLocalHeaderSize];
  src.read_at(e.header_offset, h);
  if (load_u32_le(h) != kLocalHeaderSignature) {
    fail("zip.local-signature", "no local file header where the central directory says",
         e.header_offset, e.name);
  }
  const uint64_t name_len = load_u16_le(h + 26);
  const uint64_t extra_len = load_u16_le(h + 28);
  e.local_extra_length = static_cast<uint16_t>(extra_len);
  e.data_offset = e.header_offset + kLocalHeaderSize + name_len + extra_len;
  if (e.data_offset > cd_offset || cd_offset - e.data_offset < e.compressed_size) {
    fail("zip.entry-outside", "record data (" + std::to_string(e.compressed_size) +
         " bytes) runs into the central directory or past the end of the file",
         e.header_offset, e.name);
  }
  if (name_len != e.name.size()) {
    fail("zip.local-name-mismatch", "local header name differs from the central directory's",
         e.header_offset, e.name);
  }
  std::vector<uint8_t> local(name_len + extra_len);
  src.read_at(e.header_offset + kLocalHeaderSize, local);
  if (std::memcmp(local.data(), e.name.data(), name_len) != 0) {
    fail("zip.local-name-mismatch", "local header name differs from the central directory's",
         e.header_offset, e.name);
  }
  // Local extra fields: note ZIP64 (descriptor width) and PyTorch's 'FB' alignment padding.
  const uint8_t* extra = local.data() + name_len;
  for (uint64_t pos = 0; pos + 4 <= extra_len;) {
    const uint16_t id = load_u16_le(extra + pos);
    const uint16_t len = load_u16_le(extra + pos + 2);
    if (pos + 4 + len > extra_len) break;  // tolerated: readers use the central directory
    if (id == kZip64ExtraId) e.local_zip64 = true;
    if (id == kPaddingExtraId) e.padding = len;
    pos += 4 + len;
  }
}

}  // namespace

bool is_safe_entry_name(std::string_view name) {
  if (name.empty() || name.front() == '/') return false;
  if (name.find('\\') != std::string_view::npos) return false;
  if (name.find('\0') != std::string_view::npos) return false;
  if (name.size() >= 2 && name[1] == ':') return false;  // C:...
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string_view::npos) end = name.size();
    std::string_view seg = name.substr(start, end - start);
    const bool last = end == name.size();
    if (seg == "..") return false;
    if (seg.empty() && !last) return false;  // "a//b"; a trailing '/' marks a directory
    start = end + 1;
  }
  return true;
}

ZipArchive ZipArchive::open(SourcePtr source) {
  const ByteSource& src = *source;
  EndRecord end = find_end_record(src);
  read_zip64_end(src, end);

  if (end.cd_offset > end.cd_limit || end.cd_limit - end.cd_offset < end.cd_size) {
    fail("zip.central-outside", "central directory (offset " + std::to_string(end.cd_offset) +
         ", " + std::to_string(end.cd_size) + " bytes) does not fit before the end record",
         end.position);
  }
  if (end.entry_count > limits::kMaxZipEntries) {
    throw_limit("kMaxZipEntries", std::to_string(end.entry_count) + " entries", end.position);
  }
  if (end.entry_count * kCentralHeaderSize > end.cd_size) {
    fail("zip.entry-count", "end record claims " + std::to_string(end.entry_count) +
         " entries but the central directory is only " + std::to_string(end.cd_size) + " bytes",
         end.position);
  }

  ZipArchive archive;
  archive.source_ = std::move(source);
  archive.cd_offset_ = end.cd_offset;
  archive.zip64_end_ = end.zip64;
  std::vector<uint8_t> cd = src.read_vector(end.cd_offset, end.cd_size);
  uint64_t pos = 0;
  archive.entries_.reserve(end.entry_count);
  for (uint64_t i = 0; i < end.entry_count; ++i) {
    ZipEntry e = parse_central_entry(cd, pos, end.cd_offset);
    if (!is_safe_entry_name(e.name)) {
      fail("zip.unsafe-name", "entry name is absolute, empty or contains '..'/'\\'",
           end.cd_offset, e.name);
    }
    if (e.flags & 0x1) {
      throw_unsupported("zip.encrypted", "entry '" + e.name + "' is encrypted");
    }
    resolve_local_header(src, e, end.cd_offset);
    if (e.method == kMethodStored && e.compressed_size != e.size) {
      fail("zip.stored-size", "stored record declares " + std::to_string(e.size) + " bytes but holds " +
           std::to_string(e.compressed_size), e.header_offset, e.name);
    }
    if (e.method == kMethodDeflate && e.size / limits::kMaxCompressionRatio > e.compressed_size) {
      fail("zip.bomb", "claims " + std::to_string(e.size) + " bytes from " +
           std::to_string(e.compressed_size) + " compressed: beyond deflate's maximum ratio",
           e.header_offset, e.name);
    }
    if (!archive.by_name_.emplace(e.name, archive.entries_.size()).second) {
      fail("zip.duplicate-name", "two entries share this name", e.header_offset, e.name);
    }
    archive.entries_.push_back(std::move(e));
  }
  if (pos != cd.size()) {
    fail("zip.central-size", "central directory holds " + std::to_string(cd.size() - pos) +
         " bytes after its last entry", end.cd_offset + pos);
  }

  // Records must not overlap: sort by position and compare neighbours.
  std::vector<const ZipEntry*> order;
  order.reserve(archive.entries_.size());
  for (const auto& e : archive.entries_) order.push_back(&e);
  std::sort(order.begin(), order.end(),
            [](const ZipEntry* a, const ZipEntry* b) { return a->header_offset < b->header_offset; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->header_offset < order[i - 1]->data_end()) {
      fail("zip.record-overlap", "record overlaps the previous record '" + order[i - 1]->name + "'",
           order[i]->header_offset, order[i]->name);
    }
  }
  return archive;
}

const ZipEntry* ZipArchive::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::optional<std::span<const uint8_t>> ZipArchive::view(const ZipEntry& entry) const {
  if (entry.method != kMethodStored) return std::nullopt;
  return source_->view(entry.data_offset, entry.size);
}

std::vector<uint8_t> ZipArchive::read(const ZipEntry& entry, uint64_t max_size) const {
  if (entry.size > max_size) {
    Error e(ErrorCode::kLimitExceeded, "zip.record-too-large",
            "record is " + std::to_string(entry.size) + " bytes, more than the " +
                std::to_string(max_size) + " allowed here");
    e.add_entry(entry.name);
    throw e;
  }
  std::vector<uint8_t> out;
  out.reserve(entry.size);
  stream(entry, [&](std::span<const uint8_t> chunk) { out.insert(out.end(), chunk.begin(), chunk.end()); });
  return out;
}

void ZipArchive::stream_impl(const ZipEntry& entry, ChunkFn fn, void* ctx) const {
  const ByteSource& src = *source_;
  constexpr uint64_t kChunk = 1 << 20;
  if (entry.method == kMethodStored) {
    if (entry.compressed_size != entry.size) {
      fail("zip.stored-size", "stored record has different compressed and uncompressed sizes",
           entry.header_offset, entry.name);
    }
    if (auto v = src.view(entry.data_offset, entry.size)) {
      for (uint64_t off = 0; off < v->size(); off += kChunk) {
        const uint64_t n = std::min<uint64_t>(kChunk, v->size() - off);
        fn(ctx, v->subspan(off, n));
        src.release(entry.data_offset + off, n);  // keeps resident memory at about one chunk
      }
      return;
    }
    std::vector<uint8_t> buf(std::min<uint64_t>(kChunk, entry.size));
    for (uint64_t off = 0; off < entry.size; off += kChunk) {
      std::span<uint8_t> part(buf.data(), std::min<uint64_t>(kChunk, entry.size - off));
      src.read_at(entry.data_offset + off, part);
      fn(ctx, part);
    }
    return;
  }
  if (entry.method != kMethodDeflate) {
    Error e(ErrorCode::kUnsupported, "zip.method",
            "compression method " + std::to_string(entry.method) + " is not supported (only stored and deflate)");
    e.add_entry(entry.name);
    throw e;
  }
  if (entry.size > limits::kMaxInflatedRecordBytes) {
    throw_limit("kMaxInflatedRecordBytes", "deflated record '" + entry.name + "' would inflate to " +
                std::to_string(entry.size) + " bytes");
  }
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw Error(ErrorCode::kIo, "zlib", "inflateInit failed");
  struct Guard { z_stream* z; ~Guard() { inflateEnd(z); } } guard{&zs};
  std::vector<uint8_t> in(std::min<uint64_t>(kChunk, std::max<uint64_t>(entry.compressed_size, 1)));
  std::vector<uint8_t> out(kChunk);
  uint64_t consumed = 0, produced = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (zs.avail_in == 0) {
      const uint64_t n = std::min<uint64_t>(in.size(), entry.compressed_size - consumed);
      if (n == 0) fail("zip.inflate", "deflate stream ends early", entry.data_offset, entry.name);
      src.read_at(entry.data_offset + consumed, std::span<uint8_t>(in.data(), n));
      consumed += n;
      zs.next_in = in.data();
      zs.avail_in = static_cast<uInt>(n);
    }
    zs.next_out = out.data();
    zs.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      fail("zip.inflate", std::string("invalid deflate data: ") + (zs.msg ? zs.msg : "zlib error"),
           entry.data_offset + consumed, entry.name);
    }
    const uint64_t got = out.size() - zs.avail_out;
    produced += got;
    if (produced > entry.size) {
      fail("zip.inflate-size", "inflates to more than the declared " + std::to_string(entry.size) +
           " bytes", entry.data_offset, entry.name);
    }
    if (got) fn(ctx, std::span<const uint8_t>(out.data(), got));
  }
  if (produced != entry.size) {
    fail("zip.inflate-size", "inflates to " + std::to_string(produced) + " bytes, declared " +
         std::to_string(entry.size), entry.data_offset, entry.name);
  }
}

uint32_t ZipArchive::compute_crc32(const ZipEntry& entry) const {
  uLong crc = crc32_z(0, nullptr, 0);
  stream(entry, [&](std::span<const uint8_t> chunk) { crc = crc32_z(crc, chunk.data(), chunk.size()); });
  return static_cast<uint32_t>(crc);
}

}  // namespace ptpack::zip
