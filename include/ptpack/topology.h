// Topologies: a model's archive without its weights, ready to receive any checkpoint's.
//
// A topology is made once from a torch.package archive (the pickle holding an nn.Module) or a
// TorchScript archive. It is that archive, record for record and in the same order, minus the
// storage records whose bytes are entirely the module's state-dict tensors (parameters and
// persistent buffers), plus a manifest, <root>/.ptpack/topology.json, that maps every state-dict
// key to where its bytes go: record, byte offset, dtype, shape and stride (tied weights name the
// same place). Code, pickles, resources, extern lists and storages that are not state-dict
// tensors (plain tensor attributes, non-persistent buffers, constants) stay in it as they are.
// `assemble` (ptpack/assemble.h) fills the omitted bytes from a checkpoint. docs/formats/topology.md
// has the format.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/dtype.h"
#include "ptpack/zip.h"

namespace ptpack {

struct TopologyKey {
  std::string key;               // state-dict key, "layer1.0.conv1.weight"
  bool buffer = false;           // a persistent buffer (else a parameter)
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;   // elements; any dense layout (contiguous, channels_last...)
  std::string record;            // storage record relative to the root, ".data/0.storage", "data/3"
  uint64_t byte_offset = 0;      // first byte of the key's region in the record
  uint64_t nbytes = 0;           // bytes of the region (= numel * element size: dense)
};

struct TopologyRecord {
  std::string name;    // relative to the root
  uint64_t size = 0;   // bytes once assembled
  bool omitted = false;  // all bytes are state-dict tensors: not stored in the topology
};

struct Topology {
  std::string source;          // the archive it was made from (as given)
  std::string source_format;   // "torch_package" or "torchscript"
  std::string pickle;          // the module's pickle, relative to the root ("model/model.pkl", "data.pkl")
  std::string root;            // the archive's root folder with its slash, "model/"
  std::vector<TopologyRecord> records;  // every record of the assembled archive, in order
  std::vector<TopologyKey> keys;        // in state_dict() order
  std::vector<std::string> notes;

  uint64_t omitted_bytes() const;
};

inline constexpr std::string_view kTopologyManifest = ".ptpack/topology.json";

struct TopologyOptions {
  std::optional<std::string> pickle;  // torch.package: which pickle holds the module
};

// Plans the topology of an opened torch.package or TorchScript artifact. Throws Error
// (kInvalidArgument/kUnsupported) when there is no module, several without options.pickle, or
// a state-dict tensor whose layout cannot be filled (overlapping regions, non-dense views).
Topology make_topology(const Artifact& artifact, const TopologyOptions& options);

// Writes the topology archive atomically (OutputFile) to `destination`.
void write_topology(const Artifact& artifact, const Topology& topology, const std::string& destination);

// The manifest of an archive, or nullopt when it is not a topology. Throws Error(kCorrupt)
// naming the rule when the manifest is malformed.
std::optional<Topology> read_topology(const zip::ZipArchive& archive);

// The same for a file: nullopt when it is not a zip archive or holds no manifest.
std::optional<Topology> read_topology_file(const std::string& path);

// `ptpack info` and `ptpack topology` output.
std::string topology_text(const Topology& topology, uint64_t file_size);
std::string topology_json(const Topology& topology, uint64_t file_size);

}  // namespace ptpack
