#include "ptpack/convert.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "artifact/object_walk.h"
#include "ops/edit_tree.h"
#include "ops/text_util.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/writers.h"

namespace ptpack {

namespace {

using ops::human_bytes;

[[noreturn]] void invalid(const std::string& rule, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, rule, detail);
}

ConvertOptions::Target target_of(const std::string& destination, ConvertOptions::Target asked) {
  if (asked != ConvertOptions::Target::kFromExtension) return asked;
  if (destination.ends_with(".safetensors")) return ConvertOptions::Target::kSafetensors;
  for (const char* ext : {".pt", ".pth", ".bin", ".ckpt", ".tar"}) {
    if (destination.ends_with(ext)) return ConvertOptions::Target::kTorchSave;
  }
  invalid("usage.format", "cannot tell the output format from '" + destination +
          "'; name it *.pt or *.safetensors, or pass --to pt|safetensors");
}

// Refuses tensors the writers cannot express, naming them and the way out.
void check_writable(const Tensor& t, const std::string& name) {
  std::string what;
  if (t.layout != "strided") what = t.layout + " tensor (a component of it)";
  else if (!t.quantization.empty()) what = "quantized tensor";
  else if (t.storage < 0) what = t.device + " tensor without data";
  if (!what.empty()) {
    throw Error(ErrorCode::kUnsupported, "convert.tensor-kind",
                "'" + printable(name, 200) + "' is a " + what + "; convert writes dense tensors only "
                "(leave it out with --drop)");
  }
}

DType output_dtype(DType d, const ConvertOptions& o) {
  return o.dtype && is_castable_float(d) ? *o.dtype : d;
}


// First and one-past-last element a non-empty tensor touches in its storage.
std::pair<uint64_t, uint64_t> extent(const Tensor& t) {
  uint64_t last = uint64_t(t.offset);
  for (size_t i = 0; i < t.shape.size(); ++i) last += uint64_t(t.shape[i] - 1) * uint64_t(t.stride[i]);
  return {uint64_t(t.offset), last + 1};
}

// --- torch.save plan ---------------------------------------------------------------------------

struct PtPlanResult {
  TorchSavePlan plan;
  uint64_t cast = 0;
  uint64_t source_bytes = 0;
  std::vector<std::string> notes;
};

PtPlanResult plan_torch_save(const Artifact& a, Node root, const ConvertOptions& o) {
  PtPlanResult r;
  // Tensors in order of first appearance; tree nodes are renumbered to plan indices.
  std::map<int64_t, int64_t> plan_index;
  std::vector<size_t> sources;  // artifact index per plan tensor
  std::function<void(Node&, const std::string&)> number = [&](Node& n, const std::string& path) {
    if (n.kind == Node::Kind::kTensor) {
      auto [it, fresh] = plan_index.emplace(n.integer, int64_t(sources.size()));
      if (fresh) {
        check_writable(a.tensors.at(size_t(n.integer)), path);
        sources.push_back(size_t(n.integer));
      }
      n.integer = it->second;
    } else if (n.kind == Node::Kind::kDict) {
      for (auto& [k, v] : n.entries) number(v, join_path(path, node_key_text(k)));
    } else if (n.kind == Node::Kind::kList || n.kind == Node::Kind::kTuple) {
      for (size_t i = 0; i < n.items.size(); ++i) number(n.items[i], join_path(path, std::to_string(i)));
    }
  };
  number(root, "");
  r.plan.root = std::move(root);

  // Group by source storage, in order of first use.
  std::vector<int> storage_order;
  std::map<int, std::vector<size_t>> by_storage;  // storage -> plan tensor indices
  r.plan.tensors.resize(sources.size());
  for (size_t i = 0; i < sources.size(); ++i) {
    const Tensor& t = a.tensors[sources[i]];
    OutputTensor& out = r.plan.tensors[i];
    out.shape = t.shape;
    out.stride = t.stride;
    out.offset = t.offset;
    out.requires_grad = t.requires_grad;
    out.is_parameter = t.is_parameter;
    out.dtype = output_dtype(t.dtype, o);
    if (out.dtype != t.dtype) ++r.cast;
    if (!by_storage.count(t.storage)) storage_order.push_back(t.storage);
    by_storage[t.storage].push_back(i);
  }

  auto materialize = [&](size_t plan_tensor) {
    const size_t src = sources[plan_tensor];
    const Tensor& t = a.tensors[src];
    OutputTensor& out = r.plan.tensors[plan_tensor];
    DataSource d;
    d.kind = DataSource::Kind::kTensor;
    d.index = int(src);
    d.from = t.dtype;
    d.to = out.dtype;
    out.storage = int(r.plan.storages.size());
    out.offset = 0;
    out.stride = contiguous_strides(t.shape);
    r.plan.storages.push_back(d);
    r.source_bytes += t.nbytes();
  };

  for (int s : storage_order) {
    const Storage& storage = a.storages.at(size_t(s));
    const std::vector<size_t>& members = by_storage[s];
    std::set<DType> dtypes;
    for (size_t i : members) dtypes.insert(a.tensors[sources[i]].dtype);
    if (dtypes.size() > 1) {
      // Views of one untyped storage with different dtypes: each becomes its own storage.
      r.notes.push_back("storage '" + storage.key + "' is viewed with several dtypes; its tensors are written as separate storages");
      for (size_t i : members) materialize(i);
      continue;
    }
    const DType from = *dtypes.begin();
    const uint64_t esize = dtype_size(from);
    uint64_t lo = 0, hi = storage.nbytes / esize;
    if (o.compact) {
      // Keep only the elements the tensors touch; if the views leave holes even then, write
      // each distinct view on its own (aliases stay one storage).
      std::map<std::tuple<int64_t, std::vector<int64_t>, std::vector<int64_t>>, uint64_t> views;
      uint64_t min_lo = UINT64_MAX, max_hi = 0;
      for (size_t i : members) {
        const Tensor& t = a.tensors[sources[i]];
        if (t.numel() == 0) continue;
        auto [first, end] = extent(t);
        min_lo = std::min(min_lo, first);
        max_hi = std::max(max_hi, end);
        views[{t.offset, t.shape, t.stride}] = t.numel();
      }
      uint64_t distinct = 0;
      for (const auto& [k, n] : views) distinct += n;
      if (views.empty()) {
        lo = hi = 0;
      } else if (max_hi - min_lo <= distinct) {
        lo = min_lo;
        hi = max_hi;
      } else {
        std::map<std::tuple<int64_t, std::vector<int64_t>, std::vector<int64_t>>, int> written;
        for (size_t i : members) {
          const Tensor& t = a.tensors[sources[i]];
          auto key = std::make_tuple(t.offset, t.shape, t.stride);
          if (auto it = written.find(key); it != written.end()) {
            OutputTensor& out = r.plan.tensors[i];
            out.storage = it->second;
            out.offset = 0;
            out.stride = contiguous_strides(t.shape);
            continue;
          }
          materialize(i);
          written[key] = r.plan.tensors[i].storage;
        }
        continue;
      }
    }
    DataSource d;
    d.kind = DataSource::Kind::kStorageRange;
    d.index = s;
    d.byte_offset = lo * esize;
    d.byte_length = (hi - lo) * esize;
    d.from = from;
    d.to = output_dtype(from, o);
    const int out_index = int(r.plan.storages.size());
    r.plan.storages.push_back(d);
    r.source_bytes += d.byte_length;
    for (size_t i : members) {
      OutputTensor& out = r.plan.tensors[i];
      out.storage = out_index;
      const Tensor& t = a.tensors[sources[i]];
      out.offset = t.numel() == 0 ? 0 : int64_t(uint64_t(t.offset) - lo);
    }
  }
  return r;
}

// --- safetensors plan ------------------------------------------------------------------------

// Python's str() of an integer pickled as little-endian two's complement (LONG1): JSON numbers
// cannot hold more than 64 bits, so the value is kept exactly as a decimal string.
std::string big_integer_text(const std::string& le) {
  std::vector<uint8_t> magnitude(le.begin(), le.end());
  const bool negative = !magnitude.empty() && (magnitude.back() & 0x80);
  if (negative) {  // two's complement negation
    bool carry = true;
    for (uint8_t& b : magnitude) {
      b = uint8_t(~b + (carry ? 1 : 0));
      carry = carry && b == 0;
    }
  }
  std::string digits;
  while (std::any_of(magnitude.begin(), magnitude.end(), [](uint8_t b) { return b != 0; })) {
    uint32_t rest = 0;
    for (size_t i = magnitude.size(); i-- > 0;) {  // divide by 10, most significant byte first
      const uint32_t cur = (rest << 8) | magnitude[i];
      magnitude[i] = uint8_t(cur / 10);
      rest = cur % 10;
    }
    digits.push_back(char('0' + rest));
  }
  if (digits.empty()) digits = "0";
  if (negative) digits.push_back('-');
  return std::string(digits.rbegin(), digits.rend());
}

nlohmann::json value_json(const Node& n) {
  switch (n.kind) {
    case Node::Kind::kNone: return nullptr;
    case Node::Kind::kBool: return n.boolean;
    case Node::Kind::kInt: return n.integer;
    case Node::Kind::kFloat:
      if (std::isfinite(n.real)) return n.real;
      return pickle::python_float_repr(n.real);
    case Node::Kind::kString: return n.text;
    case Node::Kind::kDict: return nlohmann::json::object();
    case Node::Kind::kList: case Node::Kind::kTuple: return nlohmann::json::array();
    default: return big_integer_text(n.text);
  }
}

struct SafetensorsPlan {
  std::vector<SafetensorsTensor> tensors;
  nlohmann::json values = nlohmann::json::object();
  uint64_t cast = 0;
  uint64_t source_bytes = 0;
  std::vector<std::string> notes;
};

SafetensorsPlan plan_safetensors(const Artifact& a, const Node& root, const ConvertOptions& o) {
  SafetensorsPlan p;
  std::map<std::tuple<int, int64_t, std::vector<int64_t>, std::vector<int64_t>, DType>, std::string> seen;
  uint64_t copies = 0;
  std::string example;
  if (root.kind == Node::Kind::kTensor) invalid("convert.root-tensor", "the object is a single tensor; safetensors needs names (use --to pt)");
  ops::for_each_leaf(root, "", [&](const std::string& name, const Node& leaf) {
    if (leaf.kind != Node::Kind::kTensor) {
      p.values[name] = value_json(leaf);
      return;
    }
    const size_t index = size_t(leaf.integer);
    const Tensor& t = a.tensors.at(index);
    check_writable(t, name);
    SafetensorsTensor out;
    out.name = name;
    out.dtype = output_dtype(t.dtype, o);
    if (dtype_info(out.dtype).safetensors.empty()) {
      throw Error(ErrorCode::kUnsupported, "convert.safetensors-dtype",
                  "'" + printable(name, 200) + "' is " + std::string(dtype_name(t.dtype)) +
                  ", which safetensors cannot name (write .pt, or leave it out with --drop)");
    }
    if (out.dtype != t.dtype) ++p.cast;
    out.shape = t.shape;
    out.data.kind = DataSource::Kind::kTensor;
    out.data.index = int(index);
    out.data.from = t.dtype;
    out.data.to = out.dtype;
    auto [it, fresh] = seen.emplace(std::make_tuple(t.storage, t.offset, t.shape, t.stride, t.dtype), name);
    if (!fresh) {
      ++copies;
      if (example.empty()) example = "'" + name + "' = '" + it->second + "'";
    }
    p.source_bytes += t.nbytes();
    p.tensors.push_back(std::move(out));
  });
  if (copies) {
    p.notes.push_back(std::to_string(copies) + " tensors are the same data under another name (" + example +
                      "); safetensors cannot share, so each name gets its own copy");
  }
  return p;
}

std::string shard_name(const std::string& destination, size_t index, size_t count) {
  std::string stem = destination.substr(0, destination.size() - std::string(".safetensors").size());
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%05zu-of-%05zu.safetensors", index + 1, count);
  return stem + buf;
}

}  // namespace

ConvertReport convert(const std::string& source, const std::string& destination, const ConvertOptions& o) {
  const ConvertOptions::Target target = target_of(destination, o.target);
  if (o.max_shard_size && target != ConvertOptions::Target::kSafetensors) {
    invalid("usage.shard", "--max-shard-size applies to safetensors output only");
  }
  if (o.dtype && !is_cast_target(*o.dtype)) invalid("usage.dtype", "--dtype must be bf16, fp16, fp32 or fp64");
  ops::NameEdits edits;
  edits.strip_prefixes = o.strip_prefixes;
  for (const auto& [re, replacement] : o.renames) edits.renames.emplace_back(ops::compile_regex(re, "--rename"), replacement);
  for (const auto& re : o.drops) edits.drops.push_back(ops::compile_regex(re, "--drop"));
  for (const auto& re : o.keeps) edits.keeps.push_back(ops::compile_regex(re, "--keep"));

  ConvertReport report;
  report.source = source;
  const Artifact artifact = open_artifact(source);
  report.source_format = std::string(format_name(artifact.format));
  Tree tree = build_tree(artifact);
  report.notes = tree.notes;

  // What to write.
  Node object;
  const bool safetensors = target == ConvertOptions::Target::kSafetensors;
  if (o.select) {
    object = ops::select_node(tree.root, *o.select);
    report.selected = *o.select;
    report.selection = "selected with --select";
  } else {
    auto mappings = ops::state_dict_mappings(tree.root);
    std::stable_sort(mappings.begin(), mappings.end(), [](const auto& x, const auto& y) {
      return x.second->entries.size() > y.second->entries.size();
    });
    const size_t total = ops::count_tensors(tree.root);
    if (mappings.size() == 1 && !mappings[0].first.empty() && mappings[0].second->entries.size() == total) {
      const std::string& path = mappings[0].first;
      if (safetensors) {
        object = *mappings[0].second;
        report.selected = path;
        report.selection = "all " + std::to_string(total) + " tensors sit in the state dict '" + path +
                           "'; wrote it alone (--select '' writes everything)";
      } else {
        object = std::move(tree.root);
        report.selection = "the whole object; its tensors sit in the state dict '" + path +
                           "' (--select " + path + " writes that alone)";
      }
    } else {
      object = std::move(tree.root);
      if (mappings.size() > 1 && safetensors) {
        std::string list;
        for (size_t i = 0; i < mappings.size() && i < 4; ++i) {
          list += (i ? ", " : "") + std::string("'") + mappings[i].first + "' (" +
                  std::to_string(mappings[i].second->entries.size()) + ")";
        }
        if (mappings.size() > 4) list += ", ...";
        report.selection = "tensors sit in " + std::to_string(mappings.size()) + " mappings (" + list +
                           "); wrote all of them under full names (--select PATH writes one)";
      } else {
        report.selection = "the whole object";
      }
    }
  }
  if (o.select && o.select->empty()) report.selection = "the whole object (--select '')";

  ops::EditCounts counts = ops::edit_names(object, edits);
  report.renamed = counts.renamed;
  report.dropped = counts.dropped;
  report.notes.insert(report.notes.end(), counts.notes.begin(), counts.notes.end());

  uint64_t done = 0;
  uint64_t total = 0;
  ProgressFn progress;
  if (o.progress) {
    progress = [&](uint64_t bytes) {
      done += bytes;
      o.progress(done, total);
    };
  }

  if (!safetensors) {
    report.format = "torch_save_zip";
    PtPlanResult r = plan_torch_save(artifact, std::move(object), o);
    for (const DataSource& d : r.plan.storages) total += d.output_bytes(artifact);
    ops::for_each_leaf(r.plan.root, "", [&](const std::string&, const Node& n) { report.values += n.kind != Node::Kind::kTensor; });
    OutputFile out(destination);
    write_torch_save(artifact, r.plan, out, torch_save_archive_name(destination), progress);
    out.commit();
    report.files.push_back(destination);
    report.tensors = r.plan.tensors.size();
    report.storages = r.plan.storages.size();
    report.data_bytes = total;
    report.source_bytes = r.source_bytes;
    report.cast = r.cast;
    report.notes.insert(report.notes.end(), r.notes.begin(), r.notes.end());
    return report;
  }

  report.format = "safetensors";
  SafetensorsPlan p = plan_safetensors(artifact, object, o);
  std::vector<std::pair<std::string, std::string>> metadata;
  bool has_format = false;
  for (const auto& [k, v] : artifact.metadata) {
    if (k.rfind("__metadata__.", 0) == 0) {
      metadata.emplace_back(k.substr(13), v);
      has_format = has_format || k == "__metadata__.format";
    }
  }
  if (!has_format) metadata.emplace_back("format", "pt");  // transformers expects it
  if (!p.values.empty()) metadata.emplace_back("ptpack.values", p.values.dump());
  report.values = p.values.size();
  for (const SafetensorsTensor& t : p.tensors) total += t.data.output_bytes(artifact);
  report.tensors = report.storages = p.tensors.size();
  report.data_bytes = total;
  report.source_bytes = p.source_bytes;
  report.cast = p.cast;
  report.notes.insert(report.notes.end(), p.notes.begin(), p.notes.end());

  if (!o.max_shard_size || total <= o.max_shard_size) {
    OutputFile out(destination);
    write_safetensors(artifact, std::move(p.tensors), metadata, out, progress);
    out.commit();
    report.files.push_back(destination);
    return report;
  }

  // Shards as Hugging Face writes them: tensors in order, a new shard when the next tensor would
  // overflow this one (a tensor larger than the limit gets a shard of its own).
  if (!destination.ends_with(".safetensors")) invalid("usage.shard", "sharded output must be named *.safetensors");
  std::vector<std::vector<SafetensorsTensor>> shards(1);
  uint64_t shard_bytes = 0;
  for (SafetensorsTensor& t : p.tensors) {
    const uint64_t bytes = t.data.output_bytes(artifact);
    if (!shards.back().empty() && shard_bytes + bytes > o.max_shard_size) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(std::move(t));
    shard_bytes += bytes;
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  std::map<std::string, std::string> weight_map;
  std::vector<std::unique_ptr<OutputFile>> outputs;
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string name = shard_name(destination, i, shards.size());
    for (const SafetensorsTensor& t : shards[i]) weight_map[t.name] = std::filesystem::path(name).filename().string();
    outputs.push_back(std::make_unique<OutputFile>(name));
    write_safetensors(artifact, std::move(shards[i]), metadata, *outputs.back(), progress);
  }
  index["weight_map"] = weight_map;
  // The index is renamed into place last: a reader never finds it pointing at missing shards.
  auto index_out = std::make_unique<OutputFile>(destination + ".index.json");
  index_out->write(index.dump(2) + "\n");
  for (size_t i = 0; i < outputs.size(); ++i) {
    outputs[i]->commit();
    report.files.push_back(outputs[i]->destination());
  }
  index_out->commit();
  report.files.push_back(index_out->destination());
  return report;
}

std::string convert_report_text(const ConvertReport& r) {
  std::string out;
  for (const std::string& f : r.files) out += "wrote " + f + "\n";
  out += "  " + r.format + ": " + std::to_string(r.tensors) + " tensors, " + human_bytes(r.data_bytes) +
         " of tensor data";
  if (r.source_bytes != r.data_bytes) out += " (from " + human_bytes(r.source_bytes) + " in the source)";
  out += "\n  object: " + r.selection + "\n";
  if (r.cast) out += "  cast " + std::to_string(r.cast) + " tensors\n";
  if (r.renamed) out += "  renamed " + std::to_string(r.renamed) + " keys\n";
  if (r.dropped) out += "  left out " + std::to_string(r.dropped) + " values (--drop/--keep)\n";
  if (r.values) out += "  " + std::to_string(r.values) + " non-tensor values " +
                       (r.format == "safetensors" ? "in __metadata__[\"ptpack.values\"]\n" : "kept\n");
  for (const std::string& n : r.notes) out += "  note: " + printable(n) + "\n";
  return out;
}

std::string convert_report_json(const ConvertReport& r) {
  nlohmann::ordered_json j;
  j["source"] = r.source;
  j["source_format"] = r.source_format;
  j["format"] = r.format;
  j["files"] = r.files;
  j["selected"] = r.selected;
  j["selection"] = r.selection;
  j["tensors"] = r.tensors;
  j["storages"] = r.storages;
  j["data_bytes"] = r.data_bytes;
  j["source_bytes"] = r.source_bytes;
  j["cast"] = r.cast;
  j["renamed"] = r.renamed;
  j["dropped"] = r.dropped;
  j["values"] = r.values;
  j["notes"] = r.notes;
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace ptpack
