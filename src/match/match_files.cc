// match_files (ptpack/match.h): keys from files, the optional output in DST's key space, reports.
#include <algorithm>
#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "ops/edit_tree.h"
#include "package/layout.h"
#include "package/module_state.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/match.h"
#include "ptpack/output_file.h"
#include "ptpack/state_dict.h"
#include "ptpack/tensor_data.h"
#include "ptpack/topology.h"
#include "ptpack/tree.h"
#include "ptpack/writers.h"

namespace ptpack {

namespace {

// One side of a match: its keys and, when the file has them, the tensors holding their values.
struct Side {
  std::optional<Artifact> artifact;  // none for a topology (keys and shapes only)
  std::vector<KeyInfo> keys;
  std::vector<int> tensor;           // per key: index into artifact->tensors, or -1
  std::string from;
};

Side load_side(const std::string& path, const std::optional<std::string>& select, const char* option) {
  Side side;
  if (auto topology = read_topology_file(path)) {
    for (const TopologyKey& k : topology->keys) {
      side.keys.push_back({k.key, k.dtype, k.shape});
      side.tensor.push_back(-1);
    }
    side.from = "the topology's manifest (" + topology->pickle + "; keys and shapes, no values)";
    return side;
  }
  side.artifact = open_artifact(path);
  const Artifact& a = *side.artifact;
  StateDictKeys found = find_state_dict(a, select, option);
  for (const auto& [key, index] : found.keys) {
    const Tensor& t = a.tensors[index];
    side.keys.push_back({key, t.dtype, t.shape});
    side.tensor.push_back(int(index));
  }
  side.from = std::move(found.from);
  return side;
}

// An artifact holding the tensors of both sides (and adapted tensors built in memory), so one
// writer call can stream from all of them.
class Combined {
 public:
  int add_artifact(const Artifact& a) {
    const size_t source_base = merged_.sources.size(), storage_base = merged_.storages.size();
    const int tensor_base = int(merged_.tensors.size());
    if (merged_.sources.empty()) merged_.archive = a.archive;  // inflates the first side's records
    merged_.sources.insert(merged_.sources.end(), a.sources.begin(), a.sources.end());
    for (Storage s : a.storages) {
      if (s.compressed && tensor_base > 0) {
        throw Error(ErrorCode::kUnsupported, "match.compressed",
                    "the destination's deflated storage records cannot be written by match (convert it first)");
      }
      s.source += int(source_base);
      merged_.storages.push_back(std::move(s));
    }
    for (Tensor t : a.tensors) {
      if (t.storage >= 0) t.storage += int(storage_base);
      merged_.tensors.push_back(std::move(t));
    }
    return tensor_base;
  }

  int add_bytes(std::vector<uint8_t> bytes, const std::string& key, DType dtype, const std::vector<int64_t>& shape) {
    Storage s;
    s.key = "adapted:" + key;
    s.dtype = dtype;
    s.nbytes = bytes.size();
    s.source = int(merged_.sources.size());
    merged_.sources.push_back(make_memory_source(std::move(bytes), key));
    merged_.storages.push_back(std::move(s));
    Tensor t;
    t.path = key;
    t.dtype = dtype;
    t.shape = shape;
    t.stride = contiguous_strides(shape);
    t.storage = int(merged_.storages.size()) - 1;
    merged_.tensors.push_back(std::move(t));
    return int(merged_.tensors.size()) - 1;
  }

  const Artifact& artifact() const { return merged_; }

 private:
  Artifact merged_;
};

std::vector<uint8_t> read_as(const Artifact& a, int tensor, DType to) {
  std::vector<uint8_t> out;
  DataSource d{DataSource::Kind::kTensor, tensor, 0, 0, a.tensors[size_t(tensor)].dtype, to};
  stream_data(a, d, [&](std::span<const uint8_t> chunk) { out.insert(out.end(), chunk.begin(), chunk.end()); });
  return out;
}

// DST's values with SRC's overlapping leading corner copied in (torch_liberator's mangling);
// nothing outside the corner is invented.
std::vector<uint8_t> adapt(const Artifact& a, int src, int dst, DType dtype) {
  const std::vector<int64_t>& ss = a.tensors[size_t(src)].shape;
  const std::vector<int64_t>& ds = a.tensors[size_t(dst)].shape;
  const std::vector<uint8_t> from = read_as(a, src, dtype);
  std::vector<uint8_t> to = read_as(a, dst, dtype);
  const size_t rank = ds.size(), e = dtype_size(dtype);
  std::vector<int64_t> corner(rank);
  for (size_t d = 0; d < rank; ++d) {
    corner[d] = std::min(ss[d], ds[d]);
    if (corner[d] <= 0) return to;
  }
  if (rank == 0) return from;
  const std::vector<int64_t> sst = contiguous_strides(ss), dst_stride = contiguous_strides(ds);
  std::vector<int64_t> index(rank, 0);
  const size_t run = size_t(corner[rank - 1]) * e;
  while (true) {
    int64_t so = 0, doff = 0;
    for (size_t d = 0; d + 1 < rank; ++d) so += index[d] * sst[d], doff += index[d] * dst_stride[d];
    std::copy_n(from.begin() + so * int64_t(e), run, to.begin() + doff * int64_t(e));
    size_t d = rank - 1;
    while (d-- > 0) {
      if (++index[d] < corner[d]) break;
      index[d] = 0;
    }
    if (d == size_t(-1)) break;
  }
  return to;
}

void write_output(const Side& src, const Side& dst, MatchFilesReport& r, const std::string& output) {
  Combined combined;
  const int src_base = combined.add_artifact(*src.artifact);
  const int dst_base = dst.artifact ? combined.add_artifact(*dst.artifact) : 0;
  std::unordered_map<std::string, size_t> src_index, dst_index;
  for (size_t i = 0; i < src.keys.size(); ++i) src_index.emplace(src.keys[i].key, i);
  std::unordered_map<std::string, const MatchPair*> loaded;
  for (const MatchPair& p : r.match.pairs) {
    if (p.kind != MatchPair::Kind::kSkipped) loaded.emplace(p.dst, &p);
  }
  struct Item {
    std::string key;
    int tensor;
    DType dtype;
    std::vector<int64_t> shape;
  };
  std::vector<Item> items;
  size_t left_out = 0;
  for (size_t j = 0; j < dst.keys.size(); ++j) {
    const KeyInfo& k = dst.keys[j];
    const int own = dst.tensor[j] >= 0 ? dst_base + dst.tensor[j] : -1;
    if (const auto it = loaded.find(k.key); it != loaded.end()) {
      const int s = src_base + src.tensor[src_index.at(it->second->src)];
      if (it->second->kind == MatchPair::Kind::kFull) {
        items.push_back({k.key, s, k.dtype, k.shape});
      } else if (own < 0) {
        throw Error(ErrorCode::kInvalidArgument, "match.adapt", "'" + k.key +
                    "' would be adapted, but the destination has no values for the rest of it (never zero-filled); "
                    "give a destination with values or leave out --mangle");
      } else {
        const int t = combined.add_bytes(adapt(combined.artifact(), s, own, k.dtype), k.key, k.dtype, k.shape);
        items.push_back({k.key, t, k.dtype, k.shape});
      }
    } else if (own >= 0) {
      items.push_back({k.key, own, k.dtype, k.shape});
    } else {
      ++left_out;
    }
  }
  if (left_out) {
    r.notes.push_back(std::to_string(left_out) + " destination keys were neither loaded nor have values of their "
                      "own (a topology): left out of the output");
  }
  const Artifact& a = combined.artifact();
  OutputFile out(output);
  if (output.ends_with(".safetensors")) {
    std::vector<SafetensorsTensor> tensors;
    for (const Item& i : items) {
      tensors.push_back({i.key, i.dtype, i.shape, {DataSource::Kind::kTensor, i.tensor, 0, 0, a.tensors[size_t(i.tensor)].dtype, i.dtype}});
    }
    write_safetensors(a, std::move(tensors), {{"format", "pt"}}, out);
  } else {
    TorchSavePlan plan;
    plan.root = Node::dict(true);
    for (const Item& i : items) {
      plan.root.entries.emplace_back(Node::string(i.key), Node::tensor(plan.tensors.size()));
      OutputTensor t;
      t.dtype = i.dtype;
      t.shape = i.shape;
      t.stride = contiguous_strides(i.shape);
      t.storage = int(plan.storages.size());
      plan.tensors.push_back(t);
      plan.storages.push_back({DataSource::Kind::kTensor, i.tensor, 0, 0, a.tensors[size_t(i.tensor)].dtype, i.dtype});
    }
    write_torch_save(a, plan, out, torch_save_archive_name(output));
  }
  out.commit();
  r.output = output;
  r.written_tensors = items.size();
}

}  // namespace

MatchFilesReport match_files(const std::string& src_path, const std::string& dst_path, const MatchFilesOptions& o) {
  MatchFilesReport r;
  r.src = src_path;
  r.dst = dst_path;
  const Side src = load_side(src_path, o.src_select, "--src-select");
  const Side dst = load_side(dst_path, o.dst_select, "--dst-select");
  if (!src.artifact) {
    Error e(ErrorCode::kInvalidArgument, "match.source", "a topology has no weights to provide; give it as DST");
    e.add_file(src_path);
    throw e;
  }
  r.src_keys_from = src.from;
  r.dst_keys_from = dst.from;
  for (const KeyInfo& k : src.keys) r.src_universe.push_back(k.key);
  for (const KeyInfo& k : dst.keys) r.dst_universe.push_back(k.key);
  r.match = match_keys(src.keys, dst.keys, o.match);
  if (o.output) write_output(src, dst, r, *o.output);
  return r;
}

namespace {

std::vector<std::string> dst_keys_of(const MatchReport& m, MatchPair::Kind kind) {
  std::vector<std::string> out;
  for (const MatchPair& p : m.pairs) {
    if (p.kind == kind) out.push_back(p.dst);
  }
  return out;
}

}  // namespace

std::string match_report_text(const MatchFilesReport& r) {
  const MatchReport& m = r.match;
  std::string s = "source:      " + r.src + ": " + r.src_keys_from + ", " + std::to_string(r.src_universe.size()) + " keys\n";
  s += "destination: " + r.dst + ": " + r.dst_keys_from + ", " + std::to_string(r.dst_universe.size()) + " keys\n";
  s += "association: " + m.strategy + (m.reason.empty() ? "" : " (" + m.reason + ")") + "\n";
  const size_t full = m.count(MatchPair::Kind::kFull), partial = m.count(MatchPair::Kind::kPartial);
  s += "loaded " + std::to_string(full + partial) + " (full_add " + std::to_string(full) + ", partial_add " +
       std::to_string(partial) + "), skipped " + std::to_string(m.count(MatchPair::Kind::kSkipped)) + ", self_unset " +
       std::to_string(m.self_unset.size()) + ", other_unused " + std::to_string(m.other_unused.size()) +
       ", ambiguous " + std::to_string(m.ambiguous.size()) + "\n";
  const auto section = [&](const char* title, const std::vector<std::string>& keys, const std::vector<std::string>& universe) {
    if (keys.empty()) return;
    s += std::string(title) + ":\n";
    const std::vector<std::string> lines = collapse_keys(keys, universe);
    for (size_t i = 0; i < lines.size() && i < 40; ++i) s += "  " + lines[i] + "\n";
    if (lines.size() > 40) s += "  ... " + std::to_string(lines.size() - 40) + " more lines (--json has all)\n";
  };
  section("full_add", dst_keys_of(m, MatchPair::Kind::kFull), r.dst_universe);
  size_t shown = 0;
  for (const MatchPair& p : m.pairs) {
    if (p.kind == MatchPair::Kind::kFull || shown++ >= 40) continue;
    s += std::string(p.kind == MatchPair::Kind::kPartial ? "partial_add: " : "skipped:     ") + p.src + " " +
         package::dims_text(p.src_shape) + " -> " + p.dst + " " + package::dims_text(p.dst_shape) + "\n";
  }
  section("self_unset", m.self_unset, r.dst_universe);
  section("other_unused", m.other_unused, r.src_universe);
  for (size_t i = 0; i < m.ambiguous.size() && i < 20; ++i) {
    std::string c;
    for (size_t k = 0; k < m.ambiguous[i].second.size() && k < 4; ++k) c += (k ? ", " : "") + m.ambiguous[i].second[k];
    if (m.ambiguous[i].second.size() > 4) c += ", ...";
    s += "ambiguous:   " + m.ambiguous[i].first + " <- one of " + c + "\n";
  }
  for (const std::string& n : r.notes) s += "note: " + n + "\n";
  if (!r.output.empty()) s += "wrote " + r.output + " (" + std::to_string(r.written_tensors) + " tensors)\n";
  return s;
}

std::string match_report_json(const MatchFilesReport& r) {
  using json = nlohmann::ordered_json;  // fields in the documented order
  const MatchReport& m = r.match;
  json mapping = json::object(), skipped = json::array();
  std::vector<std::string> full, partial;
  for (const MatchPair& p : m.pairs) {
    if (p.kind == MatchPair::Kind::kSkipped) {
      skipped.push_back({{"src", p.src}, {"dst", p.dst}, {"src_shape", p.src_shape}, {"dst_shape", p.dst_shape}});
      continue;
    }
    mapping[p.src] = p.dst;
    (p.kind == MatchPair::Kind::kFull ? full : partial).push_back(p.dst);
  }
  json ambiguous = json::object();
  for (const auto& [k, c] : m.ambiguous) ambiguous[k] = c;
  json j = {{"src", r.src}, {"dst", r.dst}, {"src_keys_from", r.src_keys_from}, {"dst_keys_from", r.dst_keys_from},
            {"association", m.strategy}, {"reason", m.reason}, {"mapping", mapping}, {"full_add", full},
            {"partial_add", partial}, {"skipped", skipped}, {"self_unset", m.self_unset},
            {"other_unused", m.other_unused}, {"ambiguous", ambiguous}, {"seconds", m.seconds}, {"notes", r.notes}};
  if (!r.output.empty()) j["output"] = r.output;
  return j.dump(1) + "\n";
}

}  // namespace ptpack
