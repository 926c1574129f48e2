// Fuzzes the safetensors reader (inputs are given the safetensors shape: a length then '{').
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/tensor_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ptpack;
  std::vector<uint8_t> bytes(data, data + size);
  if (bytes.size() >= 9) bytes[8] = '{';
  try {
    Artifact a = read_artifact(make_memory_source(std::move(bytes), "fuzz.safetensors"));
    for (const auto& t : a.tensors) (void)tensor_sha256(a, t);
  } catch (const Error&) {
  }
  return 0;
}
