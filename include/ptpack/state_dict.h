// Finding the state dict in a file: the keys a model's load_state_dict() would see, and the
// tensors holding their values.
//
// A file may hold a bare state dict, a training checkpoint ({"model_state": ..., "optimizer":
// ...}), a DataParallel or compiled model's keys, a safetensors file, or a pickled module
// (torch.package, TorchScript). find_state_dict() picks the one mapping a caller means, the same
// way for `ptpack match`, `ptpack assemble`'s users and the LibTorch bridge.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/artifact.h"

namespace ptpack {

struct StateDictKeys {
  std::vector<std::pair<std::string, size_t>> keys;  // state-dict key -> index into Artifact::tensors
  std::string from;  // where the keys were found, in words ("the state dict at 'model_state'")
};

// With `select`: the mapping at that path of the file's tree ("model_state", "state_dict.model"),
// or, in a torch.package/TorchScript archive, the module pickled in that entry ("model/model.pkl").
// Without: a package's only module; else the file's largest mapping of string keys to tensors
// (the whole file when it is one), else every tensor of the file. `option` names the select
// option in messages ("--src-select"). Throws Error(kNotFound / kInvalidArgument) naming the
// keys available when `select` names nothing, or when several modules make the choice ambiguous.
StateDictKeys find_state_dict(const Artifact& artifact, const std::optional<std::string>& select,
                              const std::string& option = "--select");

}  // namespace ptpack
