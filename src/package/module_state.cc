#include "package/module_state.h"

#include <map>
#include <set>
#include <string_view>
#include <unordered_map>

#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack::package {

namespace {

using pickle::Kind;
using pickle::Value;

// A pickled object's attribute dict: its (last) BUILD state, or the dict half of (dict, slots).
const Value* attributes(const Value* v) {
  if (!v || v->kind != Kind::kObject || v->states.empty()) return nullptr;
  const Value* state = v->states.back();
  if (state->kind == Kind::kTuple && state->items.size() == 2) state = state->items[0];
  return state->kind == Kind::kDict ? state : nullptr;
}

// Entries of a dict or an OrderedDict object (its SETITEMs).
const std::vector<std::pair<Value*, Value*>>* mapping_entries(const Value* v) {
  if (!v) return nullptr;
  if (v->kind == Kind::kDict || v->kind == Kind::kObject) return &v->entries;
  return nullptr;
}

std::string key_text(const Value* k) {
  if (k->kind == Kind::kString) return k->text;
  if (k->kind == Kind::kInt) return std::to_string(k->integer);
  return "?";
}

// Strings in a set (EMPTY_SET/ADDITEMS, or builtins.set([...]) in protocol 2).
std::set<std::string> string_set(const Value* v) {
  std::set<std::string> out;
  if (!v) return out;
  const std::vector<Value*>* items = &v->items;
  if (v->kind == Kind::kObject && v->args && v->args->is_sequence() && !v->args->items.empty() &&
      v->args->items[0]->is_sequence()) {
    items = &v->args->items[0]->items;
  }
  for (const Value* item : *items) {
    if (item->kind == Kind::kString) out.insert(item->text);
  }
  return out;
}

bool is_package_module(const Value* v) {
  const Value* d = attributes(v);
  return d && d->find("_parameters") && d->find("_buffers") && d->find("_modules");
}

// TorchScript classes declared in code/**.py: "__torch__.a.b.Cls" -> its parameter and buffer names.
struct ScriptClass {
  std::vector<std::string> parameters, buffers;
};
using ScriptClasses = std::unordered_map<std::string, ScriptClass>;

std::vector<std::string> quoted_names(std::string_view list) {
  std::vector<std::string> names;
  size_t i = 0;
  while ((i = list.find('"', i)) != std::string_view::npos) {
    const size_t end = list.find('"', i + 1);
    if (end == std::string_view::npos) break;
    names.emplace_back(list.substr(i + 1, end - i - 1));
    i = end + 1;
  }
  return names;
}

ScriptClasses script_classes(const Artifact& artifact) {
  ScriptClasses classes;
  const std::string code = artifact.root + "code/";
  for (const zip::ZipEntry& e : artifact.archive->entries()) {
    if (!e.name.starts_with(code) || !e.name.ends_with(".py")) continue;
    std::string module = e.name.substr(code.size(), e.name.size() - code.size() - 3);
    for (char& c : module) {
      if (c == '/') c = '.';
    }
    const std::vector<uint8_t> bytes = artifact.archive->read(e, limits::kMaxPickleBytes);
    const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    ScriptClass* current = nullptr;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t end = text.find('\n', pos);
      if (end == std::string_view::npos) end = text.size();
      const std::string_view line = text.substr(pos, end - pos);
      pos = end + 1;
      if (line.starts_with("class ")) {
        const size_t paren = line.find('(');
        const std::string name(line.substr(6, (paren == std::string_view::npos ? line.size() : paren) - 6));
        current = line.find("(Module)") != std::string_view::npos ? &classes[module + "." + name] : nullptr;
      } else if (current && line.starts_with("  __parameters__ = [")) {
        current->parameters = quoted_names(line);
      } else if (current && line.starts_with("  __buffers__ = [")) {
        current->buffers = quoted_names(line);
      }
    }
  }
  return classes;
}

const ScriptClass* script_class_of(const ScriptClasses& classes, const Value* v) {
  if (!v || v->kind != Kind::kObject || !v->callable || v->callable->kind != Kind::kGlobal) return nullptr;
  const auto it = classes.find(v->callable->text + "." + v->callable->name);
  return it == classes.end() ? nullptr : &it->second;
}

class Collector {
 public:
  Collector(const Artifact& artifact, const PickleDoc& doc) : artifact_(artifact) {
    // The tensors of this pickle, by the id of their outermost rebuild call.
    const std::string prefix = doc.label.empty() ? "" : doc.label + ":";
    for (size_t i = 0; i < artifact.tensors.size(); ++i) {
      const Tensor& t = artifact.tensors[i];
      if (prefix.empty() ? !has_label(t.path) : t.path.starts_with(prefix)) {
        by_value_.emplace(t.rebuild_value, i);
      }
    }
  }

  void package_module(const Value* module, const std::string& prefix, int depth) {
    check_depth(depth, prefix);
    const Value* d = attributes(module);
    const std::set<std::string> non_persistent = string_set(d->find("_non_persistent_buffers_set"));
    add_all(d->find("_parameters"), prefix, {}, false);
    add_all(d->find("_buffers"), prefix, non_persistent, true);
    if (const auto* modules = mapping_entries(d->find("_modules"))) {
      for (const auto& [k, child] : *modules) {
        if (child->kind == Kind::kNone) continue;
        if (!is_package_module(child)) {
          throw unsupported(prefix + key_text(k), "is not a pickled nn.Module");
        }
        package_module(child, prefix + key_text(k) + ".", depth + 1);
      }
    }
  }

  void script_module(const ScriptClasses& classes, const Value* module, const std::string& prefix, int depth) {
    check_depth(depth, prefix);
    const ScriptClass* cls = script_class_of(classes, module);
    const Value* d = attributes(module);
    if (!cls || !d) throw unsupported(prefix, "is not a TorchScript module object");
    for (const std::string& name : cls->parameters) add(d->find(name), prefix + name, false);
    for (const std::string& name : cls->buffers) add(d->find(name), prefix + name, true);
    for (const auto& [k, child] : d->entries) {
      if (script_class_of(classes, child)) script_module(classes, child, prefix + key_text(k) + ".", depth + 1);
    }
  }

  std::vector<StateKey> keys;

 private:
  bool has_label(const std::string& path) const {
    for (const PickleDoc& p : artifact_.pickles) {
      if (!p.label.empty() && path.starts_with(p.label + ":")) return true;
    }
    return false;
  }

  static Error unsupported(const std::string& key, const std::string& what) {
    return Error(ErrorCode::kUnsupported, "topology.module", "'" + key + "' " + what);
  }

  void check_depth(int depth, const std::string& prefix) const {
    if (depth > limits::kMaxNestingDepth) {
      throw Error(ErrorCode::kLimitExceeded, "topology.depth", "modules nest deeper than " +
                  std::to_string(limits::kMaxNestingDepth) + " levels at '" + prefix + "'");
    }
  }

  void add_all(const Value* mapping, const std::string& prefix, const std::set<std::string>& skip, bool buffer) {
    const auto* entries = mapping_entries(mapping);
    if (!entries) return;
    for (const auto& [k, v] : *entries) {
      if (skip.count(key_text(k))) continue;
      add(v, prefix + key_text(k), buffer);
    }
  }

  void add(const Value* v, const std::string& key, bool buffer) {
    if (!v || v->kind == Kind::kNone) return;  // a registered None parameter: not in state_dict()
    const auto it = by_value_.find(v->id);
    if (it == by_value_.end()) throw unsupported(key, "is not a tensor ptpack can read");
    keys.push_back({key, it->second, buffer});
  }

  const Artifact& artifact_;
  std::unordered_map<uint32_t, size_t> by_value_;
};

}  // namespace

bool holds_module(const Artifact& artifact, const PickleDoc& doc) {
  const Value* root = doc.pickle.root();
  if (artifact.format == Format::kTorchScript) {
    return doc.label.empty() && root && root->kind == Kind::kObject && root->callable &&
           root->callable->kind == Kind::kGlobal && root->callable->text.starts_with("__torch__");
  }
  return is_package_module(root);
}

std::vector<StateKey> module_state(const Artifact& artifact, const PickleDoc& doc) {
  Collector collector(artifact, doc);
  if (artifact.format == Format::kTorchScript) {
    collector.script_module(script_classes(artifact), doc.pickle.root(), "", 0);
  } else {
    collector.package_module(doc.pickle.root(), "", 0);
  }
  return std::move(collector.keys);
}

}  // namespace ptpack::package
