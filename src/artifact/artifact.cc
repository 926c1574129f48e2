#include "ptpack/artifact.h"

#include <algorithm>

namespace ptpack {

std::string_view format_name(Format format) {
  switch (format) {
    case Format::kTorchSaveZip: return "torch_save_zip";
    case Format::kTorchSaveLegacy: return "torch_save_legacy";
    case Format::kTorchPackage: return "torch_package";
    case Format::kTorchScript: return "torchscript";
    case Format::kSafetensors: return "safetensors";
    case Format::kSafetensorsIndex: return "safetensors_index";
    case Format::kPickle: return "pickle";
  }
  return "unknown";
}

std::string_view entry_kind_name(Entry::Kind kind) {
  switch (kind) {
    case Entry::Kind::kPickle: return "pickle";
    case Entry::Kind::kStorage: return "storage";
    case Entry::Kind::kSource: return "source";
    case Entry::Kind::kResource: return "resource";
    case Entry::Kind::kMetadata: return "metadata";
    case Entry::Kind::kOther: return "other";
  }
  return "other";
}

uint64_t Tensor::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= uint64_t(d);  // sizes were validated against the storage
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] != 1 && stride[i] != expected) return numel() == 0;
    expected *= shape[i];
  }
  return true;
}

uint64_t Artifact::storage_bytes() const {
  uint64_t total = 0;
  for (const auto& s : storages) total += s.nbytes;
  return total;
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> stride(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    stride[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return stride;
}

}  // namespace ptpack
