// Converting and editing checkpoints: what `ptpack convert` and `ptpack diff` compute.
//
// convert reads any artifact, takes the object to write (all of it, the sub-object at --select,
// or for safetensors the one state-dict-like mapping when there is exactly one), edits names
// (--strip-prefix, --rename) and content (--drop, --keep, --dtype, --compact), and writes a
// torch.save zip or safetensors file (sharded on request) through OutputFile, so a failure or a
// kill leaves nothing behind. Tensor bytes stream from the source's mapping to the output; peak
// memory does not depend on the checkpoint's size.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/dtype.h"

namespace ptpack {

struct ConvertOptions {
  enum class Target { kFromExtension, kTorchSave, kSafetensors };
  Target target = Target::kFromExtension;
  std::optional<std::string> select;    // path of the sub-object to write ("model_state")
  // Names are paths relative to the selected object, as `ptpack tensors` prints them.
  std::vector<std::string> strip_prefixes;  // "auto": module. and _orig_mod. when every key has it
  std::vector<std::pair<std::string, std::string>> renames;  // ECMAScript regex, replacement ($1)
  std::vector<std::string> drops;       // regex searched in the source name of every value
  std::vector<std::string> keeps;       // when given, only values whose source name matches
  std::optional<DType> dtype;           // cast floating tensors to this type
  bool compact = false;                 // write only the bytes of a storage that tensors view
  uint64_t max_shard_size = 0;          // safetensors: split into shards of at most this size
  std::function<void(uint64_t done, uint64_t total)> progress;  // data bytes written
};

struct ConvertReport {
  std::string source;
  std::string source_format;
  std::string format;                  // "torch_save_zip" or "safetensors"
  std::vector<std::string> files;      // written, in order (shards, then the index)
  std::string selected;                // the path written ("" = the whole object)
  std::string selection;               // why that object, in words
  uint64_t tensors = 0;                // tensors written
  uint64_t storages = 0;               // storages (or safetensors tensors) written
  uint64_t data_bytes = 0;             // tensor bytes written
  uint64_t source_bytes = 0;           // bytes of the source's storages those came from
  uint64_t cast = 0;                   // tensors cast to another dtype
  uint64_t renamed = 0;
  uint64_t dropped = 0;                // values left out by --drop/--keep
  uint64_t values = 0;                 // non-tensor values written
  std::vector<std::string> notes;
};

// Throws Error on bad input or options (exit 2); the destination is untouched then.
ConvertReport convert(const std::string& source, const std::string& destination,
                      const ConvertOptions& options);
std::string convert_report_text(const ConvertReport& report);
std::string convert_report_json(const ConvertReport& report);

// --- diff -------------------------------------------------------------------------------------
struct DiffOptions {
  std::optional<std::string> select_a, select_b;  // compare these sub-objects
  std::vector<std::string> strip_prefixes;         // as convert's --strip-prefix, on both sides
  double atol = 0;  // values whose max abs difference is at most this count as equal
};

struct TensorDiff {
  std::string name;
  std::string change;  // "only_a", "only_b", "dtype", "shape", "values", "value"
  std::string a, b;    // dtype/shape/value text on each side
  double max_abs_diff = 0;
  uint64_t differing = 0;  // elements that differ
};

struct DiffReport {
  std::string a, b;
  uint64_t compared = 0;  // names present on both sides
  uint64_t equal = 0;
  std::vector<TensorDiff> differences;
  bool same() const { return differences.empty(); }
};

DiffReport diff(const std::string& a, const std::string& b, const DiffOptions& options);
std::string diff_report_text(const DiffReport& report);
std::string diff_report_json(const DiffReport& report);

}  // namespace ptpack
