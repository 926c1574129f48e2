#include "ptpack/zip_writer.h"

#include <libdeflate.h>
#include <zlib.h>

#include "ptpack/error.h"
#include "ptpack/zip.h"
#include "zip/zip_format.h"

namespace ptpack::zip {

namespace {

constexpr uint64_t k32 = 0xFFFFFFFF;
constexpr uint16_t kFlagDescriptor = 0x0008;
constexpr uint16_t kFlagUtf8 = 0x0800;

class Bytes {
 public:
  Bytes& u16(uint16_t v) { return put(v, 2); }
  Bytes& u32(uint32_t v) { return put(v, 4); }
  Bytes& u64(uint64_t v) { return put(v, 8); }
  Bytes& text(std::string_view s) {
    data.insert(data.end(), s.begin(), s.end());
    return *this;
  }
  std::vector<uint8_t> data;

 private:
  Bytes& put(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) data.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
};

[[noreturn]] void misuse(const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, "zip.writer", detail);
}

}  // namespace

// libdeflate's CRC-32 uses carry-less multiplication (PCLMUL) where the CPU has it: several times
// zlib's speed, which matters because every byte of a multi-GB checkpoint passes through it.
uint32_t crc32(uint32_t crc, std::span<const uint8_t> data) {
  return libdeflate_crc32(crc, data.data(), data.size());
}

ZipWriter::ZipWriter(OutputFile& out, uint64_t alignment) : out_(out), alignment_(alignment) {
  if (alignment_ == 0 || alignment_ > 0xFFFF) misuse("alignment must be 1..65535");
}

void ZipWriter::add(std::string_view name, std::span<const uint8_t> data) {
  begin(name, data.size());
  write(data);
  end();
}

void ZipWriter::begin(std::string_view name, uint64_t size, std::optional<uint64_t> congruent_to) {
  if (open_ || finished_) misuse("begin() while a record is open or after finish()");
  if (!is_safe_entry_name(name) || name.size() > 0xFFFF) misuse("bad record name '" + std::string(name) + "'");
  const uint64_t cursor = out_.position();
  const bool big_size = size >= k32;
  const bool big_offset = cursor >= k32;

  // The local ZIP64 extra as miniz writes it: uncompressed size then a compressed size of 0 when
  // the size needs it, the header offset when the offset does (FORMATS.md §2.2).
  Bytes zip64;
  if (big_size || big_offset) {
    zip64.u16(kZip64ExtraId).u16(uint16_t((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
    if (big_size) zip64.u64(size).u64(0);
    if (big_offset) zip64.u64(cursor);
  }
  // getOffset(): data starts after header, name, ZIP64 extra and the FB field's own 4 bytes.
  const uint64_t start = cursor + kLocalHeaderSize + name.size() + zip64.data.size() + 4;
  uint64_t padding = (alignment_ - start % alignment_) % alignment_;
  if (congruent_to && *congruent_to % alignment_ == 0) {
    padding = (*congruent_to % kBlock + kBlock - start % kBlock) % kBlock;  // < 4096: fits the field
  }

  Bytes header;
  header.u32(kLocalHeaderSignature)
      .u16(0)                                             // version needed (miniz writes 0)
      .u16(size > 0 ? kFlagDescriptor | kFlagUtf8 : kFlagUtf8)
      .u16(0)                                             // stored
      .u32(0)                                             // DOS time and date
      .u32(0).u32(0).u32(0)                               // CRC and sizes: in the descriptor
      .u16(uint16_t(name.size()))
      .u16(uint16_t(zip64.data.size() + 4 + padding))
      .text(name);
  header.data.insert(header.data.end(), zip64.data.begin(), zip64.data.end());
  header.u16(kPaddingExtraId).u16(uint16_t(padding));
  header.data.insert(header.data.end(), size_t(padding), uint8_t('Z'));
  out_.write(header.data);

  records_.push_back({std::string(name), cursor, size, 0});
  open_ = true;
  written_ = 0;
  crc_ = 0;
}

void ZipWriter::write(std::span<const uint8_t> chunk) {
  if (!open_) misuse("write() without begin()");
  if (chunk.size() > records_.back().size - written_) {
    misuse("record '" + records_.back().name + "' gets more bytes than announced");
  }
  crc_ = crc32(crc_, chunk);
  out_.write(chunk);
  written_ += chunk.size();
}

void ZipWriter::write_from(const ByteSource& source, uint64_t offset, uint64_t length) {
  source.for_each_chunk(offset, length, uint64_t{4} << 20, [&](std::span<const uint8_t> piece) { write(piece); });
}

void ZipWriter::write_known(const ByteSource& source, uint64_t offset, uint64_t length, uint32_t crc) {
  if (!open_) misuse("write_known() without begin()");
  if (length > records_.back().size - written_) {
    misuse("record '" + records_.back().name + "' gets more bytes than announced");
  }
  out_.copy_from(source, offset, length);
  crc_ = uint32_t(crc32_combine(crc_, crc, z_off_t(length)));
  written_ += length;
}

void ZipWriter::write_copied(const ByteSource& source, uint64_t offset, uint64_t length) {
  if (!open_) misuse("write_copied() without begin()");
  uint32_t crc = 0;
  source.for_each_chunk(offset, length, uint64_t{4} << 20, [&](std::span<const uint8_t> piece) { crc = crc32(crc, piece); });
  write_known(source, offset, length, crc);
}

void ZipWriter::end() {
  if (!open_) misuse("end() without begin()");
  Record& r = records_.back();
  if (written_ != r.size) {
    misuse("record '" + r.name + "' got " + std::to_string(written_) + " of " +
           std::to_string(r.size) + " bytes");
  }
  r.crc = crc_;
  open_ = false;
  if (r.size == 0) return;  // no descriptor for empty records (flag bit 3 is clear)
  Bytes d;
  d.u32(kDataDescriptorSignature).u32(r.crc);
  if (r.size >= k32 || r.header_offset >= k32) d.u64(r.size).u64(r.size);
  else d.u32(uint32_t(r.size)).u32(uint32_t(r.size));
  out_.write(d.data);
}

void ZipWriter::finish() {
  if (open_ || finished_) misuse("finish() with a record open or twice");
  finished_ = true;
  const uint64_t cd_offset = out_.position();
  Bytes cd;
  for (const Record& r : records_) {
    const bool big_size = r.size >= k32;
    const bool big_offset = r.header_offset >= k32;
    Bytes extra;
    if (big_size || big_offset) {
      extra.u16(kZip64ExtraId).u16(uint16_t((big_size ? 16 : 0) + (big_offset ? 8 : 0)));
      if (big_size) extra.u64(r.size).u64(r.size);
      if (big_offset) extra.u64(r.header_offset);
    }
    cd.u32(kCentralHeaderSignature)
        .u16(0).u16(0)  // version made by, needed (as miniz writes them for PyTorch)
        .u16(r.size > 0 ? kFlagDescriptor | kFlagUtf8 : kFlagUtf8)
        .u16(0).u32(0)  // stored; time and date
        .u32(r.crc)
        .u32(big_size ? uint32_t(k32) : uint32_t(r.size))
        .u32(big_size ? uint32_t(k32) : uint32_t(r.size))
        .u16(uint16_t(r.name.size()))
        .u16(uint16_t(extra.data.size()))
        .u16(0).u16(0).u16(0).u32(0)  // comment length, disk, internal and external attributes
        .u32(big_offset ? uint32_t(k32) : uint32_t(r.header_offset))
        .text(r.name);
    cd.data.insert(cd.data.end(), extra.data.begin(), extra.data.end());
    if (cd.data.size() >= (1u << 20)) {
      out_.write(cd.data);
      cd.data.clear();
    }
  }
  out_.write(cd.data);
  const uint64_t cd_size = out_.position() - cd_offset;
  const uint64_t zip64_end = out_.position();
  const uint64_t count = records_.size();
  Bytes end;
  end.u32(kZip64EndRecordSignature).u64(kZip64EndRecordSize - 12)
      .u16(0x031E).u16(0x002D)  // made by, needed: as miniz
      .u32(0).u32(0)
      .u64(count).u64(count).u64(cd_size).u64(cd_offset);
  end.u32(kZip64LocatorSignature).u32(0).u64(zip64_end).u32(1);
  end.u32(kEndRecordSignature).u16(0).u16(0)
      .u16(count >= 0xFFFF ? 0xFFFF : uint16_t(count))
      .u16(count >= 0xFFFF ? 0xFFFF : uint16_t(count))
      .u32(cd_size >= k32 ? uint32_t(k32) : uint32_t(cd_size))
      .u32(cd_offset >= k32 ? uint32_t(k32) : uint32_t(cd_offset))
      .u16(0);
  out_.write(end.data);
}

}  // namespace ptpack::zip
