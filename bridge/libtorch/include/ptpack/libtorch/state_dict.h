// Loading a checkpoint saved by Python into a torch::nn::Module, and saving one Python loads.
//
// load_state_dict() reads any file ptpack reads (torch.save zip or legacy, safetensors, sharded
// indexes, torch.package, TorchScript), finds the state dict in it (ptpack/state_dict.h: a
// training checkpoint's "model_state", or the path given in `select`), and copies the values into
// the module's parameters and buffers in place, each straight from the file's mapping (no second
// copy of the model in memory). Device tags in the file ("cuda:0") do not matter: values go to
// the device of the module's own tensors (what map_location does in Python). Floating values of
// another dtype are cast, as Python's load_state_dict does.
//
// Strict mode (the default) loads only when the keys and shapes are exactly the module's, and
// otherwise throws an Error whose message lists what differs. Partial mode associates keys with
// `ptpack match`'s strategies (ptpack/match.h) and loads what can be loaded, returning the same
// report: which keys were loaded, adapted (mangle), skipped (with both shapes), left unset.
#pragma once

#include <torch/nn/module.h>

#include <optional>
#include <string>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/match.h"
#include "ptpack/state_dict.h"

namespace ptpack::libtorch {

struct LoadOptions {
  std::optional<std::string> select;  // path of the state dict in the file ("model_state")
  bool strict = true;
  MatchOptions match;                 // partial mode: association, renames, mangle
  // Point the module's CPU tensors at the file's private copy-on-write mapping instead of copying
  // into them (Python's torch.load(mmap=True) + load_state_dict(assign=True)): no copy and no
  // memory of the module's own, pages are read from the page cache on first use, and writes (a
  // training step) copy the pages they touch. Only for tensors loaded whole, of the module's
  // dtype, from a storage stored uncompressed and little-endian; the others are copied. The file
  // must not be truncated or rewritten in place while the module uses it (renaming a new file over
  // it, as OutputFile does, is safe). Views taken of a parameter before the load keep the old memory.
  bool share_mapping = false;
};

struct LoadReport {
  std::string file;
  std::string keys_from;   // where the state dict was found, in words
  MatchReport match;       // strict mode: every pair full; the strategy is "exact"
  size_t loaded = 0;       // tensors written into the module (full + partial)
  size_t zero_copy = 0;    // of those, read straight from the file's mapping
  size_t shared = 0;       // of those, left in the file's mapping (share_mapping)
  std::vector<std::string> cuda_tags;  // device tags other than "cpu" that were mapped away

  std::string text() const;  // the report as `ptpack match` prints it (collapsed key ranges)
};

// The module's state dict as Python's state_dict() orders it: modules in pre-order, each one's
// parameters then its buffers; keys joined with '.'. The tensors are the module's own.
std::vector<std::pair<std::string, at::Tensor>> module_state(::torch::nn::Module& module);

// The same keys with dtypes and shapes.
std::vector<KeyInfo> module_keys(::torch::nn::Module& module);

// Throws Error: kNotFound for a missing file, kInvalidArgument (rule "torch.strict") when strict
// keys or shapes differ, kCorrupt/kUnsupported for bad or unloadable files. The module is left
// unchanged when anything is thrown before copying starts (every check runs first).
LoadReport load_state_dict(::torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});

// The two halves of load_state_dict for callers that restore several things at once (the
// checkpoint manager): prepare_load() runs every check and changes nothing; apply_load() copies.
struct PreparedLoad {
  LoadReport report;
  bool share_mapping = false;
  std::vector<std::pair<size_t, at::Tensor>> copies;  // artifact tensor -> module tensor
  std::vector<bool> partial;                           // per copy: copy the leading corner only
};
PreparedLoad prepare_load(::torch::nn::Module& module, const Artifact& artifact, const StateDictKeys& keys,
                          const LoadOptions& options);
void apply_load(const Artifact& artifact, PreparedLoad& load);

// Writes the module's state dict (an OrderedDict of its parameters and buffers, keys as Python
// names them) as a torch.save zip file, atomically. Python's torch.load reads it (also with
// weights_only=True) and model.load_state_dict() accepts it for the same architecture.
void save_state_dict(::torch::nn::Module& module, const std::string& path);

}  // namespace ptpack::libtorch
