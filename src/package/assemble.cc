#include "ptpack/assemble.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "package/layout.h"
#include "ptpack/artifact.h"
#include "ptpack/dtype.h"
#include "ptpack/error.h"
#include "ptpack/output_file.h"
#include "ptpack/tensor_data.h"
#include "ptpack/zip_writer.h"

namespace ptpack {

namespace {

using package::Segment;

[[noreturn]] void fail(ErrorCode code, const std::string& rule, const std::string& detail, const std::string& file) {
  Error e(code, rule, detail);
  e.add_file(file);
  throw e;
}

// Where the checkpoint's state dict sits: the prefix of its tensor paths.
struct Prefix {
  std::string text;
  std::string reason;
};

Prefix find_prefix(const Artifact& ck, const Topology& topo, const std::unordered_map<std::string, size_t>& by_path,
                   const std::optional<std::string>& select) {
  if (select) {
    std::string p = *select;
    if (!p.empty() && !p.ends_with('.') && !p.ends_with(':')) p += '.';
    const bool any = std::any_of(ck.tensors.begin(), ck.tensors.end(), [&](const Tensor& t) { return t.path.starts_with(p); });
    if (!any) {
      std::set<std::string> tops;  // what there is instead: first path components
      for (const Tensor& t : ck.tensors) tops.insert(t.path.substr(0, t.path.find_first_of(".:")));
      std::string list;
      for (const std::string& top : tops) {
        if (list.size() > 300) {
          list += ", ...";
          break;
        }
        list += (list.empty() ? "'" : ", '") + top + "'";
      }
      fail(ErrorCode::kNotFound, "assemble.select", "no tensor under '" + *select + "' in the checkpoint (tensors sit under " +
           (list.empty() ? std::string("nothing: it has no tensors") : list) + ")", ck.path);
    }
    return {p, "selected with --select"};
  }
  if (topo.keys.empty()) return {"", "the topology has no keys"};
  // Candidates: every path that ends with the first key at a name boundary.
  const std::string& first = topo.keys[0].key;
  std::map<std::string, size_t> found;  // prefix -> keys present under it
  for (const Tensor& t : ck.tensors) {
    const std::string& p = t.path;
    if (p.size() < first.size() || !p.ends_with(first)) continue;
    const size_t cut = p.size() - first.size();
    if (cut > 0 && p[cut - 1] != '.' && p[cut - 1] != ':') continue;
    found.emplace(p.substr(0, cut), 0);
  }
  for (auto& [prefix, count] : found) {
    for (const TopologyKey& k : topo.keys) count += by_path.count(prefix + k.key);
  }
  std::vector<std::string> complete;
  std::string best;
  size_t best_count = 0;
  for (const auto& [prefix, count] : found) {
    if (count == topo.keys.size()) complete.push_back(prefix);
    if (count > best_count) best = prefix, best_count = count;
  }
  const auto shown = [](const std::string& p) { return p.empty() ? std::string("the top level") : "'" + p + "'"; };
  if (complete.size() == 1) {
    return {complete[0], complete[0].empty() ? "the checkpoint is the state dict"
                                              : "every key found under " + shown(complete[0])};
  }
  if (complete.size() > 1) {
    std::string list;
    for (const std::string& p : complete) list += (list.empty() ? "" : ", ") + shown(p);
    fail(ErrorCode::kInvalidArgument, "assemble.ambiguous",
         "every key of the topology exists under several prefixes (" + list + "); choose one with --select", ck.path);
  }
  return {best, found.empty() ? "no tensor named like '" + first + "'" : "closest match: " + shown(best)};
}

// The checkpoint tensor read in the order the topology lays the key out in memory: reading
// this view row-major yields the bytes of the key's dense region in the topology's storage.
Tensor in_topology_order(const Tensor& t, const TopologyKey& k) {
  const std::vector<size_t> order = package::memory_order(k.shape, k.stride);
  Tensor v = t;
  for (size_t i = 0; i < order.size(); ++i) {
    v.shape[i] = t.shape[order[i]];
    v.stride[i] = t.stride[order[i]];
  }
  return v;
}

class Assembler {
 public:
  Assembler(const TopologyArchive& topo, const Artifact& ck, const AssembleOptions& options, AssembleReport& report)
      : topo_(topo), ck_(ck), options_(options), report_(report) {}

  // Checks every key and maps it to a checkpoint tensor; throws listing all problems.
  void match(const std::unordered_map<std::string, size_t>& by_path, const std::string& prefix) {
    const Topology& t = topo_.topology();
    std::vector<std::string> problems;
    bool dtype_problem = false;
    for (const TopologyKey& k : t.keys) {
      const auto it = by_path.find(prefix + k.key);
      if (it == by_path.end()) {
        problems.push_back("'" + k.key + "' missing (" + std::string(dtype_name(k.dtype)) + " " + package::dims_text(k.shape) + " in the topology)");
        tensors_.push_back(nullptr);
        continue;
      }
      const Tensor& c = ck_.tensors[it->second];
      tensors_.push_back(&c);
      if (c.storage < 0 || c.layout != "strided" || !c.quantization.empty()) {
        problems.push_back("'" + k.key + "' is not a dense tensor with storage in the checkpoint");
      } else if (c.shape != k.shape) {
        problems.push_back("'" + k.key + "' has shape " + package::dims_text(c.shape) + " in the checkpoint, " +
                           package::dims_text(k.shape) + " in the topology");
      } else if (c.dtype != k.dtype) {
        if (options_.allow_cast && is_castable_float(c.dtype) && is_cast_target(k.dtype)) {
          report_.cast.push_back(k.key);
        } else {
          dtype_problem = !options_.allow_cast;
          problems.push_back("'" + k.key + "' is " + std::string(dtype_name(c.dtype)) + " in the checkpoint, " +
                             std::string(dtype_name(k.dtype)) + " in the topology" +
                             (options_.allow_cast ? " (not a floating cast)" : ""));
        }
      }
    }
    if (!problems.empty()) {
      std::string list;
      for (size_t i = 0; i < problems.size() && i < 50; ++i) list += (i ? "; " : " ") + problems[i];
      if (problems.size() > 50) list += "; and " + std::to_string(problems.size() - 50) + " more";
      if (dtype_problem) list += " (--allow-cast permits floating casts)";
      fail(ErrorCode::kInvalidArgument, "assemble.mismatch",
           std::to_string(problems.size()) + " of " + std::to_string(t.keys.size()) +
           " topology keys do not fit the checkpoint" + (prefix.empty() ? "" : " under '" + prefix + "'") + ":" + list,
           ck_.path);
    }
    report_.keys = t.keys.size();
    check_ties();
  }

  // Keys tied in the topology (one tensor under two names) are written once, from the first
  // key: the checkpoint must hold the same values under both, or the model could not hold
  // "exactly the checkpoint's weights". Torch's own checkpoints share the storage (cheap to
  // see); otherwise the bytes are compared.
  void check_ties() {
    const Topology& t = topo_.topology();
    std::map<std::string, std::vector<package::Region>> regions;
    for (size_t i = 0; i < t.keys.size(); ++i) regions[t.keys[i].record].push_back({t.keys[i].byte_offset, t.keys[i].nbytes, i});
    for (const TopologyRecord& r : t.records) {
      const auto it = regions.find(r.name);
      if (it == regions.end()) continue;
      for (const auto& [first, other] : package::cover(it->second, t.keys, r.size).ties) {
        const Tensor& a = *tensors_[first];
        const Tensor& b = *tensors_[other];
        const bool same_view = a.storage == b.storage && a.offset == b.offset && a.stride == b.stride && a.dtype == b.dtype;
        if (same_view || tensor_sha256(ck_, a) == tensor_sha256(ck_, b)) continue;
        fail(ErrorCode::kInvalidArgument, "assemble.tied", "'" + t.keys[first].key + "' and '" + t.keys[other].key +
             "' are one tensor in the topology (tied weights) but differ in the checkpoint", ck_.path);
      }
    }
  }

  void write(const std::string& output) {
    const Topology& t = topo_.topology();
    uint64_t total = 0;
    for (const TopologyRecord& r : t.records) total += r.size;
    OutputFile out(output);
    zip::ZipWriter writer(out);
    std::map<std::string, std::vector<package::Region>> regions;
    for (size_t i = 0; i < t.keys.size(); ++i) {
      regions[t.keys[i].record].push_back({t.keys[i].byte_offset, t.keys[i].nbytes, i});
    }
    uint64_t done = 0;
    for (const TopologyRecord& r : t.records) {
      const auto it = regions.find(r.name);
      const std::vector<Segment> segments = it == regions.end()
          ? std::vector<Segment>{{0, r.size, Segment::kKept}}
          : package::cover(it->second, t.keys, r.size).segments;
      const std::string name = t.root + r.name;
      // A record that is one whole checkpoint range is placed congruent to it (reflinks).
      std::optional<uint64_t> congruent;
      if (segments.size() == 1 && segments[0].key != Segment::kKept) {
        if (auto range = plain(segments[0].key)) congruent = range->offset;
      }
      writer.begin(name, r.size, congruent);
      for (const Segment& s : segments) {
        if (s.key == Segment::kKept) {
          copy_kept(writer, name, s);
        } else {
          fill(writer, s, segments.size() == 1);
        }
      }
      writer.end();
      if (it != regions.end()) report_.data_bytes += r.size;
      done += r.size;
      if (options_.progress) options_.progress(done, total);
    }
    writer.finish();
    out.commit();
  }

 private:
  struct Range {
    const ByteSource* source;
    uint64_t offset;
  };

  // The checkpoint bytes of a key when they are one unchanged byte range of a file.
  std::optional<Range> plain(size_t key) const {
    const TopologyKey& k = topo_.topology().keys[key];
    const Tensor& c = *tensors_[key];
    if (c.dtype != k.dtype) return std::nullopt;
    const Tensor v = in_topology_order(c, k);
    const Storage& s = ck_.storages[size_t(c.storage)];
    if (!v.is_contiguous() || s.compressed || s.byte_order != ByteOrder::kLittle) return std::nullopt;
    return Range{ck_.sources[size_t(s.source)].get(), s.offset + dtype_bytes(c.dtype, uint64_t(c.offset))};
  }

  void copy_kept(zip::ZipWriter& writer, const std::string& name, const Segment& s) {
    const zip::ZipEntry* e = topo_.archive().find(name);
    if (!e || e->method != zip::kMethodStored) {
      fail(ErrorCode::kCorrupt, "topology.record", "record '" + name + "' is missing or compressed", topo_.path());
    }
    writer.write_from(*topo_.archive().source(), e->data_offset + s.offset, s.length);
  }

  void fill(zip::ZipWriter& writer, const Segment& s, bool whole_record) {
    const TopologyKey& k = topo_.topology().keys[s.key];
    const Tensor& c = *tensors_[s.key];
    if (auto range = plain(s.key)) {
      // A whole stored zip record of the checkpoint: its central directory has the CRC.
      const zip::ZipEntry* e = nullptr;
      if (whole_record && ck_.archive && ck_.sources[0].get() == range->source) {
        e = ck_.archive->find(ck_.storages[size_t(c.storage)].entry);
      }
      if (e && e->method == zip::kMethodStored && e->data_offset == range->offset && e->size == s.length) {
        writer.write_known(*range->source, range->offset, s.length, e->crc32);
        report_.crc_reused_bytes += s.length;
      } else {
        writer.write_copied(*range->source, range->offset, s.length);
      }
      report_.copied_bytes += s.length;
      return;
    }
    // Gathered: a view in another layout, a cast, a byte swap or a compressed record.
    const Tensor v = in_topology_order(c, k);
    TensorReader reader(ck_, v);
    std::vector<uint8_t> cast;
    for (auto chunk = reader.next(); !chunk.empty(); chunk = reader.next()) {
      if (c.dtype == k.dtype) {
        writer.write(chunk);
        continue;
      }
      const size_t n = chunk.size() / dtype_size(c.dtype);
      cast.resize(size_t(dtype_bytes(k.dtype, n)));
      cast_elements(c.dtype, k.dtype, chunk, cast);
      writer.write(cast);
    }
    report_.gathered_bytes += s.length;
  }

  const TopologyArchive& topo_;
  const Artifact& ck_;
  const AssembleOptions& options_;
  AssembleReport& report_;
  std::vector<const Tensor*> tensors_;  // per topology key
};

}  // namespace

TopologyArchive TopologyArchive::open(const std::string& path) {
  zip::ZipArchive archive = zip::ZipArchive::open(open_file_source(path));
  try {
    std::optional<Topology> topology = read_topology(archive);
    if (!topology) fail(ErrorCode::kInvalidArgument, "topology.not-topology", "is not a topology (make one with `ptpack topology`)", path);
    return TopologyArchive(path, std::move(archive), std::move(*topology));
  } catch (Error& e) {
    if (e.file().empty()) e.add_file(path);
    throw;
  }
}

AssembleReport assemble(const TopologyArchive& topology, const std::string& checkpoint,
                        const std::string& output, const AssembleOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  // Renaming the output over an input would destroy it (a checkpoint assembled into its own
  // directory under its own name).
  std::error_code ec;
  for (const std::string& input : {checkpoint, topology.path()}) {
    if (std::filesystem::equivalent(output, input, ec)) {
      fail(ErrorCode::kInvalidArgument, "assemble.overwrite-input", "the output " + output +
           " is the input " + input + "; choose another output directory", checkpoint);
    }
  }
  AssembleReport report;
  report.checkpoint = checkpoint;
  report.output = output;
  const Artifact ck = open_artifact(checkpoint);
  report.source_format = std::string(format_name(ck.format));
  std::unordered_map<std::string, size_t> by_path;
  for (size_t i = 0; i < ck.tensors.size(); ++i) by_path.emplace(ck.tensors[i].path, i);
  const Prefix prefix = find_prefix(ck, topology.topology(), by_path, options.select);
  report.prefix = prefix.text;
  report.prefix_reason = prefix.reason;

  Assembler assembler(topology, ck, options, report);
  assembler.match(by_path, prefix.text);
  std::unordered_map<std::string, bool> known;
  for (const TopologyKey& k : topology.topology().keys) known.emplace(k.key, true);
  for (const auto& [path, index] : by_path) {
    if (path.starts_with(prefix.text) && !known.count(path.substr(prefix.text.size()))) {
      report.extra_keys.push_back(path.substr(prefix.text.size()));
    }
  }
  std::sort(report.extra_keys.begin(), report.extra_keys.end());
  if (options.strict_extra && !report.extra_keys.empty()) {
    std::string list;
    for (size_t i = 0; i < report.extra_keys.size() && i < 20; ++i) list += (i ? ", " : "") + report.extra_keys[i];
    if (report.extra_keys.size() > 20) list += ", ...";
    fail(ErrorCode::kInvalidArgument, "assemble.extra", std::to_string(report.extra_keys.size()) +
         " checkpoint tensors are not in the topology (--strict-extra): " + list, checkpoint);
  }
  assembler.write(output);
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

std::string assembled_file_name(const std::string& checkpoint) {
  std::string name = std::filesystem::path(checkpoint).filename().string();
  if (name.ends_with(".index.json")) name.resize(name.size() - 11);
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos && dot > 0) name.resize(dot);
  return name + ".pt";
}

std::string assemble_report_text(const AssembleReport& r) {
  const auto mb = [](uint64_t b) {
    char s[32];
    std::snprintf(s, sizeof s, "%.1f MB", double(b) / 1e6);
    return std::string(s);
  };
  std::string s = "wrote " + r.output + "\n";
  s += "  from " + r.checkpoint + " (" + r.source_format + "): " + std::to_string(r.keys) + " keys, " +
       (r.prefix.empty() ? std::string("at the top level") : "under '" + r.prefix + "'") + " (" + r.prefix_reason + ")\n";
  s += "  " + mb(r.data_bytes) + " of weights: " + mb(r.copied_bytes) + " copied by the kernel (" +
       mb(r.crc_reused_bytes) + " with the checkpoint's CRC), " + mb(r.gathered_bytes) + " gathered\n";
  if (!r.cast.empty()) s += "  cast " + std::to_string(r.cast.size()) + " tensors to the topology's dtype\n";
  if (!r.extra_keys.empty()) {
    s += "  " + std::to_string(r.extra_keys.size()) + " checkpoint tensors not in the topology:";
    for (size_t i = 0; i < r.extra_keys.size() && i < 8; ++i) s += " " + r.extra_keys[i];
    s += r.extra_keys.size() > 8 ? " ...\n" : "\n";
  }
  return s;
}

std::string assemble_results_json(const std::string& topology, const std::vector<AssembleResult>& results) {
  using json = nlohmann::ordered_json;  // fields in the documented order
  json packages = json::array();
  size_t failed = 0;
  for (const AssembleResult& res : results) {
    const AssembleReport& r = res.report;
    json p = {{"checkpoint", r.checkpoint}, {"output", r.output}, {"status", res.error.empty() ? "ok" : "error"}};
    if (!res.error.empty()) {
      ++failed;
      p["error"] = res.error;
    } else {
      p.update({{"source_format", r.source_format}, {"prefix", r.prefix}, {"keys", r.keys},
                {"data_bytes", r.data_bytes}, {"cloned_or_copied_bytes", r.copied_bytes},
                {"crc_reused_bytes", r.crc_reused_bytes}, {"gathered_bytes", r.gathered_bytes},
                {"cast", r.cast}, {"extra_keys", r.extra_keys}, {"seconds", r.seconds}});
    }
    packages.push_back(std::move(p));
  }
  return json{{"topology", topology}, {"packages", packages}, {"failed", failed}}.dump(1) + "\n";
}

}  // namespace ptpack
