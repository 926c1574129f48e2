// Reading a tensor's elements from its storage, in bounded memory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>
#include <optional>
#include <span>
#include <string>

#include "ptpack/artifact.h"

namespace ptpack {

// Streams the tensor's logical elements in row-major order as little-endian bytes (what
// t.contiguous() holds on a little-endian machine), in chunks of at most ~1 MiB. Storages
// written big-endian are swapped per element (complex: per half). Stored records in a mapped
// file are read in place; deflated records are inflated (bounded by limits).
void stream_tensor_bytes(const Artifact& artifact, const Tensor& tensor,
                         const std::function<void(std::span<const uint8_t>)>& sink);

// The same, pulled: next() returns the following min(max_bytes, remaining()) bytes rounded down
// to whole elements (at least one element), empty at the end. The span stays valid until the
// next call. Throws like stream_tensor_bytes on construction.
class StorageBytes;
class TensorReader {
 public:
  TensorReader(const Artifact& artifact, const Tensor& tensor);
  ~TensorReader();
  TensorReader(const TensorReader&) = delete;
  TensorReader& operator=(const TensorReader&) = delete;
  std::span<const uint8_t> next(size_t max_bytes = size_t{1} << 20);
  uint64_t remaining() const { return total_ - done_; }

 private:
  const Tensor& tensor_;
  uint64_t numel_ = 0;
  uint64_t esize_ = 1;
  uint64_t first_byte_ = 0, span_bytes_ = 0;
  bool contiguous_ = true;
  uint32_t swap_unit_ = 0;  // byte-swap unit for big-endian storages, 0 = none
  uint64_t total_ = 0, done_ = 0, released_ = 0;
  std::unique_ptr<StorageBytes> bytes_;
  const ByteSource* source_ = nullptr;  // for releasing mapped pages (null when inflated)
  uint64_t source_offset_ = 0;
  std::vector<int64_t> index_;  // odometer for strided views
  std::vector<uint8_t> buffer_;
};

// Lower-case hex SHA-256 of stream_tensor_bytes (the `sha256` of `ptpack tensors --digest`).
std::string tensor_sha256(const Artifact& artifact, const Tensor& tensor);

// --- Output data for writers -------------------------------------------------------------------

// Where the bytes of one output storage (or one safetensors tensor) come from: a byte range of a
// storage of the artifact, or the logical elements of one of its tensors (a view made
// contiguous), optionally cast from one floating type to another.
struct DataSource {
  enum class Kind : uint8_t { kStorageRange, kTensor };
  Kind kind = Kind::kStorageRange;
  int index = -1;            // into Artifact::storages (kStorageRange) or Artifact::tensors
  uint64_t byte_offset = 0;  // kStorageRange: whole elements of `from`, inside the storage
  uint64_t byte_length = 0;
  DType from = DType::kUInt8;  // element type read
  DType to = DType::kUInt8;    // element type written; differs from `from` for a cast

  uint64_t input_bytes(const Artifact& artifact) const;
  uint64_t output_bytes(const Artifact& artifact) const;
};

// Streams the output bytes (little-endian, cast when from != to) to `sink` in chunks of at most
// ~1 MiB; mapped pages are released as they are consumed.
void stream_data(const Artifact& artifact, const DataSource& data,
                 const std::function<void(std::span<const uint8_t>)>& sink);

// When the output bytes are an unchanged range of one of the artifact's sources (no cast, no
// byte swap, not compressed), that range: writers can then let the kernel copy it.
struct SourceRange {
  int source = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};
std::optional<SourceRange> plain_range(const Artifact& artifact, const DataSource& data);

}  // namespace ptpack
