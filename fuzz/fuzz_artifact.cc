// Fuzzes every reader through format detection (torch.save zip and legacy, torch.package,
// TorchScript, safetensors, bare pickles), then reads every tensor's bytes.
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/inspect.h"
#include "ptpack/tensor_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ptpack;
  try {
    Artifact a = read_artifact(make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz.pt"));
    (void)info_json(a);
    (void)verify_artifact(a);
    for (const auto& t : a.tensors) {
      try {
        (void)tensor_sha256(a, t);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
