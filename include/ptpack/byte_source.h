// ByteSource: the one seam through which every parser reads bytes.
//
// A source is an immutable run of bytes with random access. Parsers take a source, never a path,
// so tests run them on memory buffers. Implementations: a memory buffer and a file (memory-mapped
// when the OS allows, else read with pread). Sources are shared (std::shared_ptr) because
// artifacts, tensors and views keep the bytes they point into alive.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ptpack {

class ByteSource {
 public:
  virtual ~ByteSource() = default;

  // Name used in error messages (the path for files).
  virtual const std::string& name() const = 0;
  virtual uint64_t size() const = 0;

  // Copies exactly out.size() bytes starting at offset. Throws Error(kCorrupt, "read-past-end")
  // when the range does not lie inside the source, Error(kIo) when the OS fails.
  virtual void read_at(uint64_t offset, std::span<uint8_t> out) const = 0;

  // A zero-copy view of [offset, offset + length), valid as long as this source lives; nullopt
  // when the source is not mapped. Throws like read_at for a range outside the source.
  virtual std::optional<std::span<const uint8_t>> view(uint64_t offset, uint64_t length) const;

  // Hint that views of [offset, offset + length) will not be used again for a while: a mapped
  // source drops those pages from the process (they stay in the page cache and fault back in if
  // touched), so streaming a large file through views keeps resident memory bounded.
  virtual void release(uint64_t offset, uint64_t length) const;

  // The open file descriptor behind a file source (for kernel-side copies), -1 for others.
  virtual int file_descriptor() const { return -1; }
  // Calls fn with [offset, offset + length) in pieces of at most `chunk` bytes: zero-copy views
  // when mapped (released once fn returns, so resident memory stays ~one chunk), else copies into
  // one reused buffer. The span is valid only during the call.
  template <typename Fn>
  void for_each_chunk(uint64_t offset, uint64_t length, uint64_t chunk, Fn&& fn) const;
  // Reads [offset, offset + length) into a new buffer (view when mapped, copy otherwise).
  std::vector<uint8_t> read_vector(uint64_t offset, uint64_t length) const;

 protected:
  // Throws Error(kCorrupt, "read-past-end") unless [offset, offset + length) is inside the source.
  void check_range(uint64_t offset, uint64_t length) const;
};

template <typename Fn>
void ByteSource::for_each_chunk(uint64_t offset, uint64_t length, uint64_t chunk, Fn&& fn) const {
  std::vector<uint8_t> buffer;
  while (length > 0) {
    const uint64_t n = length < chunk ? length : chunk;
    if (auto v = view(offset, n)) {
      fn(*v);
      release(offset, n);
    } else {
      buffer.resize(size_t(n));
      read_at(offset, buffer);
      fn(std::span<const uint8_t>(buffer));
    }
    offset += n;
    length -= n;
  }
}

using SourcePtr = std::shared_ptr<const ByteSource>;

// Opens a regular file read-only; maps it when possible. Throws Error(kNotFound / kIo).
SourcePtr open_file_source(const std::string& path);

// Wraps a buffer that the source takes ownership of.
SourcePtr make_memory_source(std::vector<uint8_t> bytes, std::string name = "<memory>");

}  // namespace ptpack
