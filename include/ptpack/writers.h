// Writers: torch.save zip files and safetensors files, streamed from an opened artifact.
//
// A writer is given a plan (what to write, where every byte comes from) and an OutputFile; it
// never holds tensor data in memory beyond a chunk. Deciding the plan (which tensors, renames,
// casts, compaction) is the job of the convert operation; writers only lay bytes out the way
// PyTorch and the safetensors reference implementation do.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/output_file.h"
#include "ptpack/tensor_data.h"
#include "ptpack/tree.h"

namespace ptpack {

// Called with the number of data bytes just written (for progress lines).
using ProgressFn = std::function<void(uint64_t bytes)>;

// --- torch.save ------------------------------------------------------------------------------

struct OutputTensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;  // in elements
  int64_t offset = 0;           // storage offset, in elements
  int storage = -1;             // index into TorchSavePlan::storages
  bool requires_grad = false;
  bool is_parameter = false;    // rebuilt as torch.nn.Parameter
};

struct TorchSavePlan {
  Node root;                          // kTensor nodes index `tensors`
  std::vector<OutputTensor> tensors;
  std::vector<DataSource> storages;   // storage i is the record data/<i>; its dtype is `to`
};

// Writes the plan as torch.save's zip format (FORMATS.md §2.7): `<archive>/data.pkl` in protocol
// 2 with only weights_only-loadable opcodes and globals, `byteorder`, one stored 64-byte-aligned
// `data/<i>` record per storage, `version`. Tensors referenced twice in the tree are one object
// (memo), as in the file torch.save would have written.
void write_torch_save(const Artifact& source, const TorchSavePlan& plan, OutputFile& out,
                      const std::string& archive_name, const ProgressFn& progress = nullptr);

// torch.save's root folder for a destination path: the file name without its directories and
// last extension ("out/model.v2.pt" -> "model.v2"); "archive" when that is empty or not ASCII.
std::string torch_save_archive_name(const std::string& destination);

// The data.pkl a plan gives (for tests).
std::vector<uint8_t> torch_save_pickle(const Artifact& source, const TorchSavePlan& plan);

// --- safetensors -----------------------------------------------------------------------------

struct SafetensorsTensor {
  std::string name;
  DType dtype = DType::kFloat32;  // must have a safetensors code (dtype_info(d).safetensors)
  std::vector<int64_t> shape;
  DataSource data;                // the tensor's bytes, contiguous
};

// Writes a safetensors file the way the reference implementation does: tensors ordered by
// alignment (larger element types first, then name), data contiguous with no holes, the JSON
// header compact with `__metadata__` first and space-padded to a multiple of 8 bytes.
// Throws Error(kInvalidArgument) for duplicate names or dtypes safetensors cannot name.
void write_safetensors(const Artifact& source, std::vector<SafetensorsTensor> tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata,
                       OutputFile& out, const ProgressFn& progress = nullptr);

}  // namespace ptpack
