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
}  // namespace

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

namespace {

void swap_units(uint8_t* p, size_t bytes, uint32_t unit) {
  for (size_t i = 0; i + unit <= bytes; i += unit) std::reverse(p + i, p + i + unit);
}

}  // namespace

TensorReader::TensorReader(const Artifact& artifact, const Tensor& t) : tensor_(t) {
  numel_ = t.numel();
  if (numel_ == 0) return;
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
  esize_ = info.size;
  if (info.per_byte > 1) {
    // Sub-byte quantized types: the logical bytes are the packed bytes (what int_repr() holds).
    if (!t.is_contiguous() || t.offset % info.per_byte) {
      throw Error(ErrorCode::kUnsupported, "tensor.sub-byte-view",
                  "'" + t.path + "' is a strided view of a sub-byte type; only contiguous ones can be read");
    }
    first_byte_ = uint64_t(t.offset) / info.per_byte;
    span_bytes_ = t.nbytes();
    contiguous_ = true;
    esize_ = 1;
  } else {
    // Element span the tensor touches (validated against the storage when the artifact was read).
    uint64_t last = uint64_t(t.offset);
    for (size_t i = 0; i < t.shape.size(); ++i) last += uint64_t(t.shape[i] - 1) * uint64_t(t.stride[i]);
    first_byte_ = uint64_t(t.offset) * esize_;
    span_bytes_ = (last + 1) * esize_ - first_byte_;
    contiguous_ = t.is_contiguous();
    swap_unit_ = s.byte_order == ByteOrder::kBig && info.swap_unit > 1 ? info.swap_unit : 0;
  }
  total_ = contiguous_ ? span_bytes_ : numel_ * esize_;
  bytes_ = std::make_unique<StorageBytes>(artifact, s, first_byte_, span_bytes_);
  if (!s.compressed) {
    source_ = artifact.sources.at(size_t(s.source)).get();
    source_offset_ = s.offset + first_byte_;
  }
  index_.assign(t.shape.size(), 0);
}

TensorReader::~TensorReader() {
  if (source_) source_->release(source_offset_, span_bytes_);
}

std::span<const uint8_t> TensorReader::next(size_t max_bytes) {
  const uint64_t want = std::min<uint64_t>(remaining(), std::max<size_t>(max_bytes / esize_, 1) * esize_);
  if (want == 0) return {};
  const uint8_t* base = bytes_->data();
  if (contiguous_) {
    const uint8_t* p = base + done_;
    if (source_ && done_ > released_) {  // drop what the caller has consumed: ~1 chunk resident
      source_->release(source_offset_ + released_, done_ - released_);
      released_ = done_;
    }
    done_ += want;
    if (!swap_unit_) return {p, size_t(want)};
    buffer_.assign(p, p + want);
    swap_units(buffer_.data(), buffer_.size(), swap_unit_);
    return buffer_;
  }
  // Strided: walk the index space with an odometer, copying runs along the last dimension.
  buffer_.resize(size_t(want));
  const Tensor& t = tensor_;
  const size_t rank = t.shape.size();
  const int64_t inner = rank ? t.shape[rank - 1] : 1;
  const int64_t inner_stride = rank ? t.stride[rank - 1] : 0;
  uint64_t filled = 0;
  while (filled < want) {
    uint64_t elem = uint64_t(t.offset);
    for (size_t d = 0; d < rank; ++d) elem += uint64_t(index_[d]) * uint64_t(t.stride[d]);
    const uint64_t run = std::min<uint64_t>(uint64_t(inner - (rank ? index_[rank - 1] : 0)), (want - filled) / esize_);
    const uint8_t* p = base + (elem * esize_ - first_byte_);
    if (inner_stride == 1) {
      std::memcpy(buffer_.data() + filled, p, run * esize_);
    } else {
      for (uint64_t k = 0; k < run; ++k) {
        std::memcpy(buffer_.data() + filled + k * esize_, p + k * uint64_t(inner_stride) * esize_, esize_);
      }
    }
    filled += run * esize_;
    // Advance the odometer by `run` elements along the last dimension, carrying outwards.
    if (rank == 0) break;
    index_[rank - 1] += int64_t(run);
    for (size_t d = rank; d-- > 0;) {
      if (index_[d] < t.shape[d] || d == 0) break;
      index_[d] = 0;
      ++index_[d - 1];
    }
  }
  done_ += want;
  if (swap_unit_) swap_units(buffer_.data(), buffer_.size(), swap_unit_);
  return buffer_;
}

void stream_tensor_bytes(const Artifact& artifact, const Tensor& t,
                         const std::function<void(std::span<const uint8_t>)>& sink) {
  TensorReader reader(artifact, t);
  for (auto chunk = reader.next(kChunk); !chunk.empty(); chunk = reader.next(kChunk)) sink(chunk);
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

uint64_t DataSource::input_bytes(const Artifact& artifact) const {
  if (kind == Kind::kStorageRange) return byte_length;
  return artifact.tensors.at(size_t(index)).nbytes();
}

uint64_t DataSource::output_bytes(const Artifact& artifact) const {
  const uint64_t in = input_bytes(artifact);
  if (from == to) return in;
  return in / dtype_size(from) * dtype_size(to);
}

namespace {

// Casts a stream of `from` elements chunk by chunk, carrying a partial element across chunks.
class CastingSink {
 public:
  CastingSink(DType from, DType to, const std::function<void(std::span<const uint8_t>)>& sink)
      : from_(from), to_(to), in_size_(dtype_size(from)), out_size_(dtype_size(to)), sink_(sink) {}

  void operator()(std::span<const uint8_t> chunk) {
    if (!carry_.empty()) {
      const size_t need = std::min(in_size_ - carry_.size(), chunk.size());
      carry_.insert(carry_.end(), chunk.begin(), chunk.begin() + long(need));
      chunk = chunk.subspan(need);
      if (carry_.size() == in_size_) {
        convert(carry_);
        carry_.clear();
      }
    }
    const size_t whole = chunk.size() / in_size_ * in_size_;
    if (whole) convert(chunk.first(whole));
    carry_.assign(chunk.begin() + long(whole), chunk.end());
  }

 private:
  void convert(std::span<const uint8_t> in) {
    out_.resize(in.size() / in_size_ * out_size_);
    cast_elements(from_, to_, in, out_);
    sink_(out_);
  }
  DType from_, to_;
  size_t in_size_, out_size_;
  const std::function<void(std::span<const uint8_t>)>& sink_;
  std::vector<uint8_t> carry_, out_;
};

void stream_storage_range(const Artifact& artifact, const DataSource& d,
                          const std::function<void(std::span<const uint8_t>)>& sink) {
  const Storage& s = artifact.storages.at(size_t(d.index));
  if (d.byte_offset > s.nbytes || d.byte_length > s.nbytes - d.byte_offset) {
    throw Error(ErrorCode::kInvalidArgument, "data.range", "byte range outside storage '" + s.key + "'");
  }
  if (d.byte_length == 0) return;
  const DTypeInfo& info = dtype_info(d.from);
  const bool swap = s.byte_order == ByteOrder::kBig && info.swap_unit > 1;
  if (s.compressed) {
    StorageBytes bytes(artifact, s, d.byte_offset, d.byte_length);
    std::vector<uint8_t> buf;
    for (uint64_t off = 0; off < d.byte_length; off += kChunk) {
      const uint64_t n = std::min<uint64_t>(kChunk, d.byte_length - off);
      buf.assign(bytes.data() + off, bytes.data() + off + n);
      if (swap) swap_units(buf.data(), buf.size(), info.swap_unit);
      sink(buf);
    }
    return;
  }
  const ByteSource& src = *artifact.sources.at(size_t(s.source));
  std::vector<uint8_t> buf;
  for (uint64_t off = 0; off < d.byte_length; off += kChunk) {
    const uint64_t n = std::min<uint64_t>(kChunk, d.byte_length - off);  // kChunk: whole elements
    const uint64_t at = s.offset + d.byte_offset + off;
    auto view = src.view(at, n);
    if (view && !swap) {
      sink(*view);
    } else {
      buf.resize(size_t(n));
      src.read_at(at, buf);
      if (swap) swap_units(buf.data(), buf.size(), info.swap_unit);
      sink(buf);
    }
    src.release(at, n);
  }
}

}  // namespace

void stream_data(const Artifact& artifact, const DataSource& data,
                 const std::function<void(std::span<const uint8_t>)>& sink) {
  std::function<void(std::span<const uint8_t>)> casting;
  std::optional<CastingSink> cast;
  if (data.from != data.to) {
    cast.emplace(data.from, data.to, sink);
    casting = [&](std::span<const uint8_t> chunk) { (*cast)(chunk); };
  }
  const auto& out = cast ? casting : sink;
  if (data.kind == DataSource::Kind::kStorageRange) {
    stream_storage_range(artifact, data, out);
  } else {
    stream_tensor_bytes(artifact, artifact.tensors.at(size_t(data.index)), out);
  }
}

std::optional<SourceRange> plain_range(const Artifact& artifact, const DataSource& data) {
  if (data.from != data.to) return std::nullopt;
  const Storage* s = nullptr;
  uint64_t offset = 0, length = 0;
  if (data.kind == DataSource::Kind::kStorageRange) {
    s = &artifact.storages.at(size_t(data.index));
    offset = data.byte_offset;
    length = data.byte_length;
  } else {
    const Tensor& t = artifact.tensors.at(size_t(data.index));
    if (t.storage < 0 || !t.is_contiguous() || dtype_info(t.dtype).per_byte > 1) return std::nullopt;
    s = &artifact.storages.at(size_t(t.storage));
    offset = uint64_t(t.offset) * dtype_size(t.dtype);
    length = t.nbytes();
  }
  if (s->compressed) return std::nullopt;
  if (s->byte_order == ByteOrder::kBig && dtype_info(data.from).swap_unit > 1) return std::nullopt;
  return SourceRange{s->source, s->offset + offset, length};
}

}  // namespace ptpack
