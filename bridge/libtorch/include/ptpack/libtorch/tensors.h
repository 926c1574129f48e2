// ptpack tensors as torch::Tensors, and torch::Tensors written as torch.save files.
//
// Reading: TorchTensors turns an artifact's tensors into at::Tensors with the file's dtype, shape,
// stride and storage offset; tensors that share a storage in the file share one in torch. A
// storage stored uncompressed, little-endian and aligned is not copied: its tensors view a private
// copy-on-write mapping of the file (writes stay in the process, the file never changes) that
// every tensor keeps alive, so the TorchTensors may go away first. Other storages (deflated
// records, big-endian files, memory sources) are read into memory once.
//
// Writing: a checkpoint is a plain-data tree (ptpack/tree.h) whose tensor leaves index a vector
// of at::Tensors. write_torch_file() writes it as torch.save's zip format straight from the
// tensors' memory (CPU tensors are not copied; others are copied to the CPU first), through
// OutputFile: the file appears whole or not at all. Stock torch.load reads it, also with
// weights_only=True.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/tree.h"

namespace ptpack::libtorch {

// The torch scalar type of a ptpack dtype, and back; nullopt when torch 1.13 has none (float8,
// uint16+, sub-byte quantized types).
std::optional<at::ScalarType> scalar_type_of(DType dtype);
std::optional<DType> dtype_of(at::ScalarType type);

class TorchTensors {
 public:
  // The artifact must outlive this object (the tensors it returns need not).
  explicit TorchTensors(const Artifact& artifact);
  ~TorchTensors();
  TorchTensors(const TorchTensors&) = delete;
  TorchTensors& operator=(const TorchTensors&) = delete;

  // Artifact::tensors[index] on the CPU. Throws Error(kUnsupported) for dtypes torch cannot
  // represent and for tensors without data (meta); Error(kCorrupt) when the view leaves its storage.
  at::Tensor tensor(size_t index);
  // True when tensor(index) views the file's mapping (no copy was made).
  bool zero_copy(size_t index) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A read-only view of a tensor's bytes for the duration of one use (copying into a module's
// parameter): no copy when the storage is mapped, else read into memory. `release()` lets the
// mapped pages go once copied, so loading a model keeps resident memory near the model's size.
class TensorSourceView {
 public:
  TensorSourceView(const Artifact& artifact, const Tensor& tensor);
  ~TensorSourceView();
  const at::Tensor& tensor() const { return tensor_; }  // never write to it
  bool zero_copy() const { return release_length_ > 0; }

 private:
  const Artifact& artifact_;
  int source_ = -1;
  uint64_t release_offset_ = 0, release_length_ = 0;
  at::Tensor tensor_;
};

// Writes `root` (kTensor leaves index `tensors`) as a torch.save zip file at `path`, atomically.
// Tensors that share a storage are written as one storage with their own offsets and strides (as
// torch.save does); the storage's location tag is "cpu". Throws Error(kUnsupported) for dtypes torch.save cannot name and for sparse/quantized tensors.
void write_torch_file(const std::string& path, const Node& root, const std::vector<at::Tensor>& tensors);

// Appends a tensor leaf to a tree under construction: returns Node::tensor(i) after pushing t.
Node tensor_node(std::vector<at::Tensor>& tensors, const at::Tensor& t);

}  // namespace ptpack::libtorch
