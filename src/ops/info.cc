// `ptpack info`: format, version, counts, bytes, metadata and the non-tensor values.
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "artifact/object_walk.h"
#include "ops/text_util.h"
#include "ptpack/error.h"
#include "ptpack/inspect.h"
#include "ptpack/tree.h"

namespace ptpack {
namespace {

struct Summary {
  uint64_t tensor_bytes = 0;
  uint64_t parameters = 0;
  std::map<std::string, uint64_t> dtypes;
};

Summary summarize(const Artifact& a) {
  Summary s;
  for (const auto& t : a.tensors) {
    s.tensor_bytes += t.nbytes();
    s.parameters += t.is_parameter ? 1 : 0;
    ++s.dtypes[std::string(dtype_name(t.dtype))];
  }
  return s;
}

std::string value_type(const pickle::Value* v) {
  using pickle::Kind;
  switch (v->kind) {
    case Kind::kNone: return "none";
    case Kind::kBool: return "bool";
    case Kind::kInt: case Kind::kBigInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kBytes: case Kind::kByteArray: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kSet: case Kind::kFrozenSet: return "set";
    case Kind::kGlobal: return "global";
    default: return "object";
  }
}

struct LabeledValue {
  std::string path;
  const pickle::Value* value;
};

std::vector<LabeledValue> all_values(const Artifact& a, size_t max) {
  std::vector<LabeledValue> out;
  for (const auto& doc : a.pickles) {
    if (out.size() >= max) break;
    for (auto& leaf : collect_values(doc.pickle, max - out.size())) {
      if (leaf.path.empty()) {
        // The pickle's root itself is a plain value: skip an empty container (TorchScript's
        // constants.pkl is often `()`), otherwise call it "(root)".
        const auto k = leaf.value->kind;
        const bool empty_container = (k == pickle::Kind::kTuple || k == pickle::Kind::kList ||
                                      k == pickle::Kind::kDict) && leaf.value->items.empty() &&
                                     leaf.value->entries.empty();
        if (empty_container) continue;
        leaf.path = "(root)";
      }
      out.push_back({doc.label.empty() ? leaf.path : doc.label + ":" + leaf.path, leaf.value});
    }
  }
  return out;
}

// Files the LibTorch bridge writes name what they hold in their root dict: a model file
// {"ptpack_model": {"name", "hparams"}} (save_model), a checkpoint {"ptpack_checkpoint", "epoch",
// "step"} (CheckpointManager). Absent for every other file.
struct BridgeSummary {
  std::optional<std::pair<std::string, std::string>> model;  // name, hyper-parameters (JSON text)
  std::optional<std::pair<int64_t, int64_t>> checkpoint;    // epoch, step
};

const Node* dict_value(const Node& dict, const std::string& key) {
  if (dict.kind != Node::Kind::kDict) return nullptr;
  for (const NodeEntry& e : dict.entries) {
    if (e.first.kind == Node::Kind::kString && e.first.text == key) return &e.second;
  }
  return nullptr;
}

BridgeSummary bridge_summary(const Artifact& a) {
  BridgeSummary s;
  if (a.format != Format::kTorchSaveZip) return s;
  try {
    const Tree t = build_tree(a);
    auto text = [](const Node* n) { return n && n->kind == Node::Kind::kString ? std::optional(n->text) : std::nullopt; };
    auto whole = [](const Node* n) { return n && n->kind == Node::Kind::kInt ? std::optional(n->integer) : std::nullopt; };
    if (const Node* m = dict_value(t.root, "ptpack_model")) {
      auto name = text(dict_value(*m, "name")), hparams = text(dict_value(*m, "hparams"));
      if (name && hparams) s.model.emplace(*name, *hparams);
    }
    if (whole(dict_value(t.root, "ptpack_checkpoint"))) {
      s.checkpoint.emplace(whole(dict_value(t.root, "epoch")).value_or(0), whole(dict_value(t.root, "step")).value_or(0));
    }
  } catch (const Error&) {
    // A tree that cannot be built is reported by the rest of `info`; no summary then.
  }
  return s;
}

std::string byte_order_text(ByteOrder o) { return o == ByteOrder::kBig ? "big-endian" : "little-endian"; }

}  // namespace

std::string info_text(const Artifact& a, const InfoOptions& options) {
  const Summary s = summarize(a);
  std::string out;
  auto line = [&](const std::string& k, const std::string& v) { out += ops::pad(k + ":", 11) + v + "\n"; };
  line("file", a.path);
  line("format", std::string(format_name(a.format)) +
                     (a.format_version.empty() || a.format_version == "-" ? "" : " (version " + a.format_version + ")") +
                     ", " + byte_order_text(a.byte_order));
  line("size", ops::human_bytes(a.sources.empty() ? 0 : a.sources[0]->size()));
  line("entries", std::to_string(a.entries.size()));
  line("pickles", std::to_string(a.pickles.size()));
  line("storages", std::to_string(a.storages.size()) + " (" + ops::human_bytes(a.storage_bytes()) + ")");
  std::string dtypes;
  for (const auto& [name, count] : s.dtypes) dtypes += (dtypes.empty() ? "" : ", ") + name + " x" + std::to_string(count);
  line("tensors", std::to_string(a.tensors.size()) + " (" + ops::human_bytes(s.tensor_bytes) + " of elements" +
                      (s.parameters ? ", " + std::to_string(s.parameters) + " parameters" : "") + ")");
  if (!dtypes.empty()) line("dtypes", dtypes);
  const BridgeSummary bridge = bridge_summary(a);
  if (bridge.model) line("model", printable(bridge.model->first) + " " + printable(bridge.model->second, 1000));
  if (bridge.checkpoint) {
    line("training", "checkpoint at epoch " + std::to_string(bridge.checkpoint->first) + ", step " + std::to_string(bridge.checkpoint->second));
  }
  if (!a.metadata.empty()) {
    out += "metadata:\n";
    for (const auto& [k, v] : a.metadata) out += "  " + printable(k) + ": " + printable(v) + "\n";
  }
  const auto values = all_values(a, options.max_values + 1);
  if (!values.empty()) {
    out += "values:\n";
    for (size_t i = 0; i < values.size() && i < options.max_values; ++i) {
      out += "  " + printable(values[i].path) + " = " + pickle::repr(values[i].value, 160) + "\n";
    }
    if (values.size() > options.max_values) out += "  ... (more in --json)\n";
  }
  if (!a.notes.empty()) {
    out += "notes:\n";
    for (const auto& n : a.notes) out += "  " + printable(n) + "\n";
  }
  return out;
}

std::string info_json(const Artifact& a) {
  using nlohmann::ordered_json;
  const Summary s = summarize(a);
  ordered_json j;
  j["file"] = a.path;
  j["format"] = format_name(a.format);
  j["format_version"] = a.format_version;
  j["byte_order"] = a.byte_order == ByteOrder::kBig ? "big" : "little";
  j["file_bytes"] = a.sources.empty() ? 0 : a.sources[0]->size();
  j["counts"] = {{"entries", a.entries.size()}, {"pickles", a.pickles.size()},
                 {"storages", a.storages.size()}, {"tensors", a.tensors.size()},
                 {"parameters", s.parameters}};
  j["storage_bytes"] = a.storage_bytes();
  j["tensor_bytes"] = s.tensor_bytes;
  j["dtypes"] = s.dtypes;
  const BridgeSummary bridge = bridge_summary(a);
  if (bridge.model) j["model"] = {{"name", bridge.model->first}, {"hparams", bridge.model->second}};
  if (bridge.checkpoint) j["checkpoint"] = {{"epoch", bridge.checkpoint->first}, {"step", bridge.checkpoint->second}};
  j["metadata"] = ordered_json::array();
  for (const auto& [k, v] : a.metadata) j["metadata"].push_back({{"key", k}, {"value", v}});
  j["values"] = ordered_json::array();
  for (const auto& v : all_values(a, 10000)) {
    j["values"].push_back({{"path", v.path}, {"type", value_type(v.value)}, {"repr", pickle::repr(v.value, 1000)}});
  }
  j["notes"] = a.notes;
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace ptpack
