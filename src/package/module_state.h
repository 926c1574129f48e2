// The state_dict() of a pickled nn.Module, computed from its pickle without running it.
//
// torch.package pickles a Module as its class plus its __dict__: `_parameters`, `_buffers`
// (minus the names in `_non_persistent_buffers_set`) and `_modules`, recursively, exactly what
// nn.Module.state_dict() walks. TorchScript pickles a module as a `__torch__.*` object whose
// attributes are flat; which attributes are parameters and buffers is declared in the class's
// serialized code (`__parameters__ = [...]`, `__buffers__ = [...]` in code/**.py).
// Plain tensor attributes (`self.prior = torch.tensor(...)`) are not state-dict entries.
#pragma once

#include <string>
#include <vector>

#include "ptpack/artifact.h"

namespace ptpack::package {

struct StateKey {
  std::string key;    // "layer1.0.conv1.weight"
  size_t tensor = 0;  // index into Artifact::tensors
  bool buffer = false;
};

// True when the pickle's root is a module (torch.package: a __dict__ with _parameters,
// _buffers and _modules; TorchScript: an object of a class declared with __parameters__).
bool holds_module(const Artifact& artifact, const PickleDoc& doc);

// The module's state-dict keys in state_dict() order. Throws Error(kUnsupported) naming the
// key when a parameter or buffer is not a tensor ptpack can place.
std::vector<StateKey> module_state(const Artifact& artifact, const PickleDoc& doc);

}  // namespace ptpack::package
