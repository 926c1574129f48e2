// ZIP writer with PyTorch's layout (PyTorchStreamWriter over miniz; FORMATS.md §2.2).
//
// Every record is stored (method 0) and its data starts at a multiple of `alignment` (64), padded
// by the 'FB' extra field in the local header, so torch.load(mmap=True) and ptpack's zero-copy
// readers can map it. Local headers carry zero CRC and sizes (flag bit 3); the real values follow
// the data in a descriptor (16 bytes, or 24 when the entry needs ZIP64) and sit in the central
// directory. ZIP64 extras appear when a size or offset reaches 0xFFFFFFFF, and every archive ends
// with a ZIP64 end record and locator before the classic end record, as miniz writes them.
// Records are streamed: memory use does not depend on their size.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ptpack/byte_source.h"
#include "ptpack/output_file.h"

namespace ptpack::zip {

class ZipWriter {
 public:
  explicit ZipWriter(OutputFile& out, uint64_t alignment = 64);

  // A whole record from memory.
  void add(std::string_view name, std::span<const uint8_t> data);
  void add(std::string_view name, std::string_view text) {
    add(name, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }

  // A streamed record: begin with its exact size, write() chunks adding up to it, then end().
  // With `congruent_to`, the data starts at an offset equal to it modulo kBlock (and still a
  // multiple of the alignment when it is one): bytes then copied from that offset of another
  // file sit at the same place within filesystem blocks, which is what lets the kernel share
  // extents (reflink) instead of copying.
  static constexpr uint64_t kBlock = 4096;
  void begin(std::string_view name, uint64_t size, std::optional<uint64_t> congruent_to = std::nullopt);
  void write(std::span<const uint8_t> chunk);
  // Appends [offset, offset + length) of `source` to the open record (CRC computed on the way;
  // mapped pages are released as they are copied).
  void write_from(const ByteSource& source, uint64_t offset, uint64_t length);
  // The same when the CRC-32 of exactly those bytes is known (a whole stored record of another
  // archive, from its central directory): the bytes are not read, the kernel copies them
  // (OutputFile::copy_from), and the record's CRC is combined from `crc`.
  void write_known(const ByteSource& source, uint64_t offset, uint64_t length, uint32_t crc);
  // The same when the CRC is not known: the bytes are read once for it, then copied by the
  // kernel (so a reflink filesystem still shares the blocks).
  void write_copied(const ByteSource& source, uint64_t offset, uint64_t length);
  void end();

  // Writes the central directory and end records. The archive is complete after this.
  void finish();

 private:
  struct Record {
    std::string name;
    uint64_t header_offset = 0;
    uint64_t size = 0;
    uint32_t crc = 0;
  };

  OutputFile& out_;
  uint64_t alignment_;
  std::vector<Record> records_;
  bool open_ = false;
  uint64_t written_ = 0;  // bytes of the open record so far
  uint32_t crc_ = 0;
  bool finished_ = false;
};

// CRC-32 (ISO-HDLC, as zip uses) continued from `crc` over `data`.
uint32_t crc32(uint32_t crc, std::span<const uint8_t> data);

}  // namespace ptpack::zip
