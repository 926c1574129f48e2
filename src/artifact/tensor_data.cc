#include "ptpack/tensor_data.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack {
namespace {

constexpr size_t kChunk = 1 << 20;

// The bytes of a storage: a view into the mapped file when possible, else an owned copy.
class StorageBytes {
 public:
  StorageBytes(const Artifact& a, const Storage& s, uint64_t first, uint64_t length) {
    if (s.compressed) {
      // Deflated storages (foreign writers) must be inflated whole: deflate has no random access.
      const zip::ZipEntry* e = a.archive ? a.archive->find(s.entry) : nullptr;
      if (!e) throw Error(ErrorCode::kNotFound, "storage.entry", "storage entry '" + s.entry + "' is missing");
      owned_ = a.archive->read(*e, limits::kMaxInflatedRecordBytes);
      base_ = owned_.data() + first;
      return;
    }
    const ByteSource& src = *a.sources.at(size_t(s.source));
    if (auto v = src.view(s.offset + first, length)) {
      base_ = v->data();
      return;
    }
    owned_.resize(length);
    src.read_at(s.offset + first, owned_);
    base_ = owned_.data();
  }
  const uint8_t* data() const { return base_; }

 private:
  std::vector<uint8_t> owned_;
  const uint8_t* base_ = nullptr;
};

void swap_units(uint8_t* p, size_t bytes, uint32_t unit) {
  for (size_t i = 0; i + unit <= bytes; i += unit) std::reverse(p + i, p + i + unit);
}

}  // namespace

void stream_tensor_bytes(const Artifact& artifact, const Tensor& t,
                         const std::function<void(std::span<const uint8_t>)>& sink) {
  const uint64_t numel = t.numel();
  if (numel == 0) return;
  if (t.storage < 0) {
    throw Error(ErrorCode::kUnsupported, "tensor.no-data", "'" + t.path + "' has no data (" + t.device + " tensor)");
  }
  const Storage& s = artifact.storages.at(size_t(t.storage));
  const DTypeInfo& info = dtype_info(t.dtype);
  if (t.nbytes() > s.nbytes && t.nbytes() > limits::kMaxBroadcastBytes) {
    throw Error(ErrorCode::kLimitExceeded, "kMaxBroadcastBytes",
                "'" + t.path + "' is a broadcast view of " + std::to_string(t.nbytes()) +
                    " logical bytes over a storage of " + std::to_string(s.nbytes) + "; not expanded");
  }
  if (info.per_byte > 1) {
    // Sub-byte quantized types: the logical bytes are the packed bytes (what int_repr() holds).
    if (!t.is_contiguous() || t.offset % info.per_byte) {
      throw Error(ErrorCode::kUnsupported, "tensor.sub-byte-view",
                  "'" + t.path + "' is a strided view of a sub-byte type; only contiguous ones can be read");
    }
    StorageBytes bytes(artifact, s, uint64_t(t.offset) / info.per_byte, t.nbytes());
    sink(std::span<const uint8_t>(bytes.data(), t.nbytes()));
    return;
  }
  const uint64_t esize = info.size;
  // Element span the tensor touches (validated against the storage when the artifact was read).
  uint64_t last = uint64_t(t.offset);
  for (size_t i = 0; i < t.shape.size(); ++i) last += uint64_t(t.shape[i] - 1) * uint64_t(t.stride[i]);
  const uint64_t first_byte = uint64_t(t.offset) * esize;
  const uint64_t span_bytes = (last + 1) * esize - first_byte;
  StorageBytes bytes(artifact, s, first_byte, span_bytes);
  const uint8_t* base = bytes.data();
  const bool swap = s.byte_order == ByteOrder::kBig && info.swap_unit > 1;

  const ByteSource& src = *artifact.sources.at(size_t(s.source));
  if (t.is_contiguous() && !swap) {
    const uint64_t total = numel * esize;
    for (uint64_t off = 0; off < total; off += kChunk) {
      const uint64_t n = std::min<uint64_t>(kChunk, total - off);
      sink(std::span<const uint8_t>(base + off, n));
      if (!s.compressed) src.release(s.offset + first_byte + off, n);  // resident memory: ~1 chunk
    }
    return;
  }

  // General case: walk the index space with an odometer, copying runs along the last dimension
  // (contiguous when its stride is 1) into a chunk buffer.
  std::vector<uint8_t> buf;
  buf.reserve(kChunk + esize * 64);
  const size_t rank = t.shape.size();
  std::vector<int64_t> index(rank, 0);
  const int64_t inner = rank ? t.shape[rank - 1] : 1;
  const int64_t inner_stride = rank ? t.stride[rank - 1] : 0;
  auto flush = [&] {
    if (swap) swap_units(buf.data(), buf.size(), info.swap_unit);
    sink(buf);
    buf.clear();
  };
  for (uint64_t row = 0, rows = numel / uint64_t(inner); row < rows; ++row) {
    uint64_t elem = uint64_t(t.offset);
    for (size_t d = 0; d + 1 < rank; ++d) elem += uint64_t(index[d]) * uint64_t(t.stride[d]);
    const uint8_t* p = base + (elem * esize - first_byte);
    if (inner_stride == 1) {
      uint64_t left = uint64_t(inner) * esize;
      while (left) {
        const uint64_t n = std::min<uint64_t>(left, kChunk - std::min<uint64_t>(buf.size(), kChunk));
        if (n == 0) { flush(); continue; }
        buf.insert(buf.end(), p, p + n);
        p += n;
        left -= n;
        if (buf.size() >= kChunk) flush();
      }
    } else {
      for (int64_t k = 0; k < inner; ++k) {
        const uint8_t* e = p + uint64_t(k) * uint64_t(inner_stride) * esize;
        buf.insert(buf.end(), e, e + esize);
        if (buf.size() >= kChunk) flush();
      }
    }
    for (size_t d = rank > 0 ? rank - 1 : 0; d-- > 0;) {  // advance the outer dimensions
      if (++index[d] < t.shape[d]) break;
      index[d] = 0;
    }
  }
  if (!buf.empty()) flush();
  if (!s.compressed) src.release(s.offset + first_byte, span_bytes);
}

std::string tensor_sha256(const Artifact& artifact, const Tensor& tensor) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::kIo, "openssl", "cannot initialise SHA-256");
  }
  stream_tensor_bytes(artifact, tensor, [&](std::span<const uint8_t> chunk) {
    EVP_DigestUpdate(ctx.get(), chunk.data(), chunk.size());
  });
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

}  // namespace ptpack
