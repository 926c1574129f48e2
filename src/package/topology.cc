#include "ptpack/topology.h"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "package/layout.h"
#include "package/module_state.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/output_file.h"
#include "ptpack/zip_writer.h"

namespace ptpack {

namespace {

using json = nlohmann::ordered_json;  // fields in the documented order

[[noreturn]] void refuse(ErrorCode code, const std::string& rule, const std::string& detail,
                         const std::string& file) {
  Error e(code, rule, detail);
  e.add_file(file);
  throw e;
}

const PickleDoc& choose_pickle(const Artifact& artifact, const TopologyOptions& options) {
  std::vector<const PickleDoc*> modules;
  for (const PickleDoc& doc : artifact.pickles) {
    if (package::holds_module(artifact, doc)) modules.push_back(&doc);
  }
  const auto relative = [&](const PickleDoc& doc) { return doc.entry.substr(artifact.root.size()); };
  if (options.pickle) {
    for (const PickleDoc& doc : artifact.pickles) {
      if (relative(doc) != *options.pickle) continue;
      if (!package::holds_module(artifact, doc)) {
        refuse(ErrorCode::kInvalidArgument, "topology.pickle", "'" + *options.pickle + "' does not hold an nn.Module", artifact.path);
      }
      return doc;
    }
    refuse(ErrorCode::kNotFound, "topology.pickle", "no pickle '" + *options.pickle + "' in the archive", artifact.path);
  }
  if (modules.size() == 1) return *modules[0];
  std::string list;
  for (const PickleDoc* doc : modules) list += (list.empty() ? "" : ", ") + relative(*doc);
  refuse(ErrorCode::kInvalidArgument, "topology.pickle",
         modules.empty() ? std::string("no pickle in the archive holds an nn.Module")
                         : "several pickles hold an nn.Module (" + list + "); choose one with --pickle",
         artifact.path);
}

}  // namespace

uint64_t Topology::omitted_bytes() const {
  uint64_t total = 0;
  for (const TopologyRecord& r : records) total += r.omitted ? r.size : 0;
  return total;
}

Topology make_topology(const Artifact& artifact, const TopologyOptions& options) {
  if (artifact.format != Format::kTorchPackage && artifact.format != Format::kTorchScript) {
    refuse(ErrorCode::kInvalidArgument, "topology.source",
           "a topology is made from a torch.package or TorchScript archive, not " +
           std::string(format_name(artifact.format)), artifact.path);
  }
  if (artifact.archive->find(artifact.root + std::string(kTopologyManifest))) {
    refuse(ErrorCode::kInvalidArgument, "topology.source", "is already a topology", artifact.path);
  }
  Topology topo;
  topo.source = artifact.path;
  topo.source_format = std::string(format_name(artifact.format));
  topo.root = artifact.root;
  const PickleDoc& doc = choose_pickle(artifact, options);
  topo.pickle = doc.entry.substr(artifact.root.size());

  // Where each state-dict key's bytes live.
  std::map<std::string, std::vector<package::Region>> regions;  // by record
  for (const package::StateKey& sk : package::module_state(artifact, doc)) {
    const Tensor& t = artifact.tensors[sk.tensor];
    if (t.storage < 0 || t.layout != "strided" || !t.quantization.empty()) {
      refuse(ErrorCode::kUnsupported, "topology.tensor", "'" + sk.key + "' is not a dense tensor with storage", artifact.path);
    }
    const Storage& s = artifact.storages[size_t(t.storage)];
    if (s.compressed || s.byte_order != ByteOrder::kLittle) {
      refuse(ErrorCode::kUnsupported, "topology.storage", "the storage of '" + sk.key +
             "' is compressed or big-endian; assemble writes stored little-endian records", artifact.path);
    }
    if (!package::is_dense(t.shape, t.stride)) {
      refuse(ErrorCode::kUnsupported, "topology.layout", "'" + sk.key +
             "' is a view with gaps or repeats (stride " + package::dims_text(t.stride) +
             "); only dense layouts can be filled from a checkpoint", artifact.path);
    }
    TopologyKey k;
    k.key = sk.key;
    k.buffer = sk.buffer;
    k.dtype = t.dtype;
    k.shape = t.shape;
    k.stride = t.stride;
    k.record = s.entry.substr(artifact.root.size());
    k.byte_offset = dtype_bytes(t.dtype, uint64_t(t.offset));
    k.nbytes = t.nbytes();
    if (k.byte_offset > s.nbytes || k.nbytes > s.nbytes - k.byte_offset) {
      refuse(ErrorCode::kCorrupt, "topology.extent", "'" + sk.key + "' runs past the end of its storage", artifact.path);
    }
    regions[k.record].push_back({k.byte_offset, k.nbytes, topo.keys.size()});
    topo.keys.push_back(std::move(k));
  }

  // Every record; those entirely covered by state-dict regions are left out.
  for (const zip::ZipEntry& e : artifact.archive->entries()) {
    TopologyRecord r{e.name.substr(artifact.root.size()), e.size, false};
    if (auto it = regions.find(r.name); it != regions.end()) {
      const package::Coverage c = package::cover(it->second, topo.keys, r.size);
      if (!c.overlap.empty()) {
        refuse(ErrorCode::kUnsupported, "topology.overlap", c.overlap, artifact.path);
      }
      r.omitted = c.complete;
      if (!c.complete) {
        topo.notes.push_back("record '" + r.name + "' is kept: part of it is not state-dict tensors");
      }
    }
    topo.records.push_back(std::move(r));
  }
  return topo;
}

void write_topology(const Artifact& artifact, const Topology& topology, const std::string& destination) {
  OutputFile out(destination);
  zip::ZipWriter writer(out);
  for (const TopologyRecord& r : topology.records) {
    if (r.omitted) continue;
    const zip::ZipEntry* e = artifact.archive->find(topology.root + r.name);
    writer.begin(e->name, e->size);
    artifact.archive->stream(*e, [&](std::span<const uint8_t> chunk) { writer.write(chunk); });
    writer.end();
  }
  writer.add(topology.root + std::string(kTopologyManifest), topology_json(topology, 0));
  writer.finish();
  out.commit();
}

// --- manifest -----------------------------------------------------------------------------------

namespace {

json manifest(const Topology& t) {
  json records = json::array();
  for (const TopologyRecord& r : t.records) {
    records.push_back({{"name", r.name}, {"size", r.size}, {"omitted", r.omitted}});
  }
  json keys = json::array();
  for (const TopologyKey& k : t.keys) {
    keys.push_back({{"key", k.key}, {"kind", k.buffer ? "buffer" : "parameter"},
                    {"dtype", dtype_name(k.dtype)}, {"shape", k.shape}, {"stride", k.stride},
                    {"record", k.record}, {"byte_offset", k.byte_offset}, {"nbytes", k.nbytes}});
  }
  return {{"format", "ptpack.topology"}, {"version", 1},
          {"source", t.source}, {"source_format", t.source_format}, {"pickle", t.pickle},
          {"root", t.root}, {"records", records}, {"keys", keys}, {"notes", t.notes}};
}

[[noreturn]] void bad_manifest(const std::string& detail) {
  Error e(ErrorCode::kCorrupt, "topology.manifest", detail);
  e.add_entry(std::string(kTopologyManifest));
  throw e;
}

template <typename T>
T field(const json& j, const char* name) {
  const auto it = j.find(name);
  if (it == j.end()) bad_manifest(std::string("missing field '") + name + "'");
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    bad_manifest(std::string("field '") + name + "' has the wrong type");
  }
}

}  // namespace

std::optional<Topology> read_topology(const zip::ZipArchive& archive) {
  if (archive.entries().empty()) return std::nullopt;
  const std::string& first = archive.entries()[0].name;
  const std::string root = first.substr(0, first.find('/') + 1);
  const zip::ZipEntry* e = archive.find(root + std::string(kTopologyManifest));
  if (!e) return std::nullopt;
  const std::vector<uint8_t> bytes = archive.read(*e, limits::kMaxPickleBytes);
  json j;
  try {
    j = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& ex) {
    bad_manifest(std::string("not JSON: ") + ex.what());
  }
  if (!j.is_object() || field<json>(j, "format") != "ptpack.topology") bad_manifest("not a ptpack topology manifest");
  if (field<int>(j, "version") != 1) bad_manifest("unknown version " + j["version"].dump());
  Topology t;
  t.source = field<std::string>(j, "source");
  t.source_format = field<std::string>(j, "source_format");
  t.pickle = field<std::string>(j, "pickle");
  t.root = field<std::string>(j, "root");
  if (t.root != root) bad_manifest("root '" + t.root + "' is not the archive's '" + root + "'");
  t.notes = field<std::vector<std::string>>(j, "notes");
  std::map<std::string, size_t> record_index;
  for (const json& r : field<json>(j, "records")) {
    TopologyRecord rec{field<std::string>(r, "name"), field<uint64_t>(r, "size"), field<bool>(r, "omitted")};
    if (!zip::is_safe_entry_name(root + rec.name) || record_index.count(rec.name)) {
      bad_manifest("bad or repeated record name '" + rec.name + "'");
    }
    const zip::ZipEntry* stored = archive.find(root + rec.name);
    if (rec.omitted == (stored != nullptr) || (stored && stored->size != rec.size)) {
      bad_manifest("record '" + rec.name + "' does not match the archive");
    }
    record_index[rec.name] = t.records.size();
    t.records.push_back(std::move(rec));
  }
  std::map<std::string, std::vector<package::Region>> regions;
  for (const json& k : field<json>(j, "keys")) {
    TopologyKey key;
    key.key = field<std::string>(k, "key");
    key.buffer = field<std::string>(k, "kind") == "buffer";
    const auto dtype = dtype_from_name(field<std::string>(k, "dtype"));
    if (!dtype) bad_manifest("unknown dtype for '" + key.key + "'");
    key.dtype = *dtype;
    key.shape = field<std::vector<int64_t>>(k, "shape");
    key.stride = field<std::vector<int64_t>>(k, "stride");
    key.record = field<std::string>(k, "record");
    key.byte_offset = field<uint64_t>(k, "byte_offset");
    key.nbytes = field<uint64_t>(k, "nbytes");
    const auto it = record_index.find(key.record);
    if (it == record_index.end()) bad_manifest("key '" + key.key + "' names no record");
    const uint64_t size = t.records[it->second].size;
    if (key.shape.size() != key.stride.size() || key.shape.size() > 64 || !package::is_dense(key.shape, key.stride) ||
        package::dense_bytes(key.dtype, key.shape) != key.nbytes || key.byte_offset > size ||
        key.nbytes > size - key.byte_offset) {
      bad_manifest("key '" + key.key + "' has an impossible layout");
    }
    regions[key.record].push_back({key.byte_offset, key.nbytes, t.keys.size()});
    t.keys.push_back(std::move(key));
  }
  for (const TopologyRecord& r : t.records) {
    if (!r.omitted) continue;
    const auto it = regions.find(r.name);
    if (it == regions.end() || !package::cover(it->second, t.keys, r.size).complete) {
      bad_manifest("omitted record '" + r.name + "' is not covered by keys");
    }
  }
  return t;
}

std::optional<Topology> read_topology_file(const std::string& path) {
  const SourcePtr source = open_file_source(path);
  uint8_t magic[4] = {};
  if (source->size() < 4) return std::nullopt;
  source->read_at(0, std::span(magic));
  if (magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4) return std::nullopt;
  try {
    return read_topology(zip::ZipArchive::open(source));
  } catch (Error& e) {
    if (e.file().empty()) e.add_file(path);
    throw;
  }
}

std::string topology_json(const Topology& topology, uint64_t file_size) {
  json j = manifest(topology);
  if (file_size) j["size"] = file_size;
  return j.dump(1) + "\n";
}

std::string topology_text(const Topology& t, uint64_t file_size) {
  size_t omitted = 0;
  for (const TopologyRecord& r : t.records) omitted += r.omitted;
  std::string s = "format:    topology (ptpack.topology v1) of a " + t.source_format + " archive\n";
  s += "module:    " + t.pickle + "\n";
  s += "source:    " + t.source + "\n";
  if (file_size) s += "size:      " + std::to_string(file_size) + " bytes\n";
  s += "records:   " + std::to_string(t.records.size()) + " (" + std::to_string(omitted) +
       " storage records left out: " + std::to_string(t.omitted_bytes()) + " bytes of weights)\n";
  size_t buffers = 0;
  for (const TopologyKey& k : t.keys) buffers += k.buffer;
  s += "keys:      " + std::to_string(t.keys.size()) + " (" + std::to_string(t.keys.size() - buffers) +
       " parameters, " + std::to_string(buffers) + " buffers)\n";
  for (const std::string& n : t.notes) s += "note:      " + n + "\n";
  for (const TopologyKey& k : t.keys) {
    s += "  " + k.key + "  " + std::string(dtype_name(k.dtype)) + " " + package::dims_text(k.shape) +
         (k.buffer ? "  buffer" : "") + "  -> " + k.record + (k.byte_offset ? "@" + std::to_string(k.byte_offset) : "") + "\n";
  }
  return s;
}

}  // namespace ptpack
