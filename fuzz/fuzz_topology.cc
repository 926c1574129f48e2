// Fuzzes topologies both ways: the manifest reader (the input as a topology archive) and the
// planner (the input as a torch.package/TorchScript archive: module state-dict discovery from
// the pickle and the TorchScript code, layout and coverage checks).
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/topology.h"
#include "ptpack/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ptpack;
  SourcePtr src = make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz.topo");
  try {
    if (auto t = read_topology(zip::ZipArchive::open(src))) {
      (void)topology_text(*t, size);
      (void)topology_json(*t, size);
    }
  } catch (const Error&) {
  }
  try {
    const Artifact a = read_artifact(src);
    const Topology t = make_topology(a, {});
    (void)topology_json(t, 0);
  } catch (const Error&) {
  }
  return 0;
}
