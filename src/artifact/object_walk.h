// Walking a pickle's value tree the way PyTorch would rebuild it, without running anything:
// tensors are recognised by their rebuild functions (torch/_utils.py), containers give paths,
// and a pickled nn.Module's _parameters/_buffers/_modules are transparent so paths read like
// state_dict() keys.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/pickle.h"

namespace ptpack {

// What a persistent id resolved to: a storage of the artifact and its element type.
struct StorageRef {
  int index = -1;
  DType dtype = DType::kUInt8;
  bool untyped = false;  // UntypedStorage: the tensor's dtype comes from elsewhere (v3)
};

// Resolves a persistent id (the value BINPERSID popped) to a storage, creating the Storage in
// the artifact the first time a key is seen. Throws Error(kCorrupt) for malformed ids.
using StorageResolver = std::function<StorageRef(const pickle::Value* persistent_id)>;

// Appends every tensor reachable from `root` to artifact.tensors. `label` prefixes the paths
// ("model/model.pkl" gives "model/model.pkl:conv1.weight"); empty for the main pickle.
// Validates each tensor against its storage (rank, sizes, strides, extent).
void collect_tensors(const pickle::Pickle& pickle, const std::string& label,
                     const StorageResolver& resolve, Artifact& artifact);

// A non-tensor value worth showing (epoch, hyper-parameters...), with its path.
struct LeafValue {
  std::string path;
  const pickle::Value* value;
};

// Scalars and short scalar sequences reachable from `root`, in pickle order, at most `max`.
// Module internals (names starting with '_', `training`) and tensors are left out.
std::vector<LeafValue> collect_values(const pickle::Pickle& pickle, size_t max);

// "a.b" joined the way tensor paths are; key formatting follows Python's str(key).
std::string join_path(const std::string& base, const std::string& key);
std::string key_text(const pickle::Value* key);

}  // namespace ptpack
