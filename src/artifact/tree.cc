#include "ptpack/tree.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "artifact/object_walk.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack {

using pickle::Kind;
using pickle::Value;

Node Node::tensor(size_t index) {
  Node n;
  n.kind = Kind::kTensor;
  n.integer = int64_t(index);
  return n;
}

Node Node::string(std::string text) {
  Node n;
  n.kind = Kind::kString;
  n.text = std::move(text);
  return n;
}

Node Node::dict(bool ordered) {
  Node n;
  n.kind = Kind::kDict;
  n.ordered = ordered;
  return n;
}

std::string node_key_text(const Node& key) {
  switch (key.kind) {
    case Node::Kind::kString: return key.text;
    case Node::Kind::kInt: return std::to_string(key.integer);
    case Node::Kind::kBool: return key.boolean ? "True" : "False";
    case Node::Kind::kNone: return "None";
    case Node::Kind::kFloat: return pickle::python_float_repr(key.real);
    default: return "?";
  }
}

namespace {

bool is_global(const Value* v, std::string_view module, std::initializer_list<std::string_view> names) {
  if (!v || v->kind != Kind::kGlobal || v->text != module) return false;
  return std::find(names.begin(), names.end(), v->name) != names.end();
}

bool is_rebuild(const Value* callable) {
  if (!callable || callable->kind != Kind::kGlobal) return false;
  if (callable->text == "torch._utils") return callable->name.rfind("_rebuild_", 0) == 0;
  return callable->text == "torch._tensor" &&
         (callable->name == "_rebuild_from_type_v2" || callable->name == "_rebuild_from_type");
}

std::string describe(const Value* v) {
  if (v->kind == Kind::kObject && v->callable && v->callable->kind == Kind::kGlobal) {
    return v->callable->text + "." + v->callable->name;
  }
  switch (v->kind) {
    case Kind::kBytes: return "bytes";
    case Kind::kByteArray: return "bytearray";
    case Kind::kGlobal: return "a reference to " + v->text + "." + v->name;
    case Kind::kPersistentId: return "a bare storage";
    default: return pickle::repr(v, 60);
  }
}

class Builder {
 public:
  // Only for formats whose tensors all come from `pk` (torch.save, bare pickles).
  Builder(const Artifact& artifact, const pickle::Pickle& pk, Tree& tree)
      : tree_(tree), on_path_(pk.value_count(), false) {
    for (size_t i = 0; i < artifact.tensors.size(); ++i) {
      const Tensor& t = artifact.tensors[i];
      tensor_of_.emplace(t.rebuild_value, i);               // the first one made by each call
      by_path_.emplace_back(t.path, i);
      paths_.push_back(t.path);
    }
    std::sort(by_path_.begin(), by_path_.end());
  }

  std::optional<Node> convert(const Value* v, const std::string& path, int depth) {
    if (++steps_ > limits::kMaxTreeNodes) {
      throw_limit("kMaxTreeNodes", "the object expands to more than " + std::to_string(limits::kMaxTreeNodes) +
                  " values (memo amplification?)", v->offset);
    }
    if (depth > limits::kMaxNestingDepth) {
      throw_limit("kMaxNestingDepth", "objects nest deeper than " + std::to_string(limits::kMaxNestingDepth) +
                  " levels", v->offset);
    }
    if (v->id < on_path_.size() && on_path_[v->id]) {
      return drop(path, "an object that contains itself");
    }
    if (v->id < on_path_.size()) on_path_[v->id] = true;
    std::optional<Node> out = visit(v, path, depth);
    if (v->id < on_path_.size()) on_path_[v->id] = false;
    return out;
  }

 private:
  std::optional<Node> drop(const std::string& path, const std::string& what) {
    note("'" + path + "': " + what + " dropped (not plain data that weights_only loading rebuilds)");
    return std::nullopt;
  }
  void note(std::string text) {
    if (tree_.notes.size() < 200) tree_.notes.push_back(std::move(text));
    else if (tree_.notes.size() == 200) tree_.notes.push_back("... more notes left out");
  }

  std::optional<Node> visit(const Value* v, const std::string& path, int depth) {
    Node n;
    switch (v->kind) {
      case Kind::kNone: return n;
      case Kind::kBool: n.kind = Node::Kind::kBool; n.boolean = v->boolean; return n;
      case Kind::kInt: n.kind = Node::Kind::kInt; n.integer = v->integer; return n;
      case Kind::kBigInt:
        if (v->text.size() > 255) return drop(path, "an integer of " + std::to_string(v->text.size()) + " bytes");
        n.kind = Node::Kind::kBigInt; n.text = v->text; return n;
      case Kind::kFloat: n.kind = Node::Kind::kFloat; n.real = v->real; return n;
      case Kind::kString: return Node::string(v->text);
      case Kind::kTuple: case Kind::kList:
        n.kind = v->kind == Kind::kTuple ? Node::Kind::kTuple : Node::Kind::kList;
        sequence(v->items, path, depth, n);
        return n;
      case Kind::kSet: case Kind::kFrozenSet:
        note("'" + path + "': a set written as a list (weights_only loading in torch 1.13 has no set)");
        n.kind = Node::Kind::kList;
        sequence(v->items, path, depth, n);
        return n;
      case Kind::kDict:
        n = Node::dict(false);
        mapping(v->entries, path, depth, n);
        return n;
      case Kind::kObject: return object(v, path, depth);
      default: return drop(path, describe(v));
    }
  }

  void sequence(const std::vector<Value*>& items, const std::string& path, int depth, Node& out) {
    for (size_t i = 0; i < items.size(); ++i) {
      std::optional<Node> item = convert(items[i], join_path(path, std::to_string(i)), depth + 1);
      out.items.push_back(item ? std::move(*item) : Node{});  // keep the other indices valid
    }
  }

  void mapping(const std::vector<std::pair<Value*, Value*>>& entries, const std::string& path, int depth,
               Node& out) {
    for (const auto& [k, val] : entries) {
      const std::string child = join_path(path, key_text(k));
      if (k->kind != Kind::kString && k->kind != Kind::kInt && k->kind != Kind::kBool &&
          k->kind != Kind::kNone && k->kind != Kind::kFloat) {
        drop(child, "an entry whose key is " + describe(k));
        continue;
      }
      std::optional<Node> key = convert(k, child, depth + 1);
      std::optional<Node> value = convert(val, child, depth + 1);
      if (key && value) out.entries.emplace_back(std::move(*key), std::move(*value));
    }
  }

  std::optional<Node> object(const Value* v, const std::string& path, int depth) {
    if (is_rebuild(v->callable)) {
      auto it = tensor_of_.find(v->id);
      if (it == tensor_of_.end()) return drop(path, describe(v) + " (no tensor recognised)");
      return Node::tensor(it->second);
    }
    if (is_global(v->callable, "collections", {"OrderedDict", "defaultdict", "Counter"})) {
      Node n = Node::dict(v->callable->name == "OrderedDict");
      mapping(v->entries, path, depth, n);
      // state_dict() sets `_metadata` with BUILD; load_state_dict reads module versions from it.
      for (const Value* state : v->states) {
        if (state->kind != Kind::kDict) continue;
        for (const auto& [k, val] : state->entries) {
          if (k->kind == Kind::kString && k->text == "_metadata" && n.ordered) {
            if (auto m = convert(val, join_path(path, "_metadata"), depth + 1); m && m->kind == Node::Kind::kDict) {
              n.metadata = std::make_shared<Node>(std::move(*m));
            }
          }
        }
      }
      return n;
    }
    const std::vector<Value*>* args = v->args && v->args->is_sequence() ? &v->args->items : nullptr;
    if (is_global(v->callable, "torch", {"Size"}) && args && args->size() == 1 && (*args)[0]->is_sequence()) {
      Node n;
      n.kind = Node::Kind::kTuple;
      sequence((*args)[0]->items, path, depth, n);
      return n;
    }
    if ((is_global(v->callable, "builtins", {"set", "frozenset"}) ||
         is_global(v->callable, "__builtin__", {"set", "frozenset"})) && args) {
      Node n;
      n.kind = Node::Kind::kList;
      note("'" + path + "': a set written as a list (weights_only loading in torch 1.13 has no set)");
      if (args->size() == 1 && (*args)[0]->is_sequence()) sequence((*args)[0]->items, path, depth, n);
      return n;
    }
    // Any other object: its tensors, named as state_dict() would name them, or nothing.
    const std::string prefix = path.empty() ? "" : path + ".";
    // In the order the walker met them, which for a Module is state_dict()'s order.
    std::vector<size_t> found;
    for (auto it = std::lower_bound(by_path_.begin(), by_path_.end(), std::make_pair(prefix, size_t{0}));
         it != by_path_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      found.push_back(it->second);
    }
    std::sort(found.begin(), found.end());
    Node n = Node::dict(true);
    for (size_t index : found) {
      n.entries.emplace_back(Node::string(paths_[index].substr(prefix.size())), Node::tensor(index));
    }
    if (n.entries.empty()) return drop(path.empty() ? "(root)" : path, describe(v));
    note("'" + (path.empty() ? std::string("(root)") : path) + "': " + describe(v) + " written as an OrderedDict of its " +
         std::to_string(n.entries.size()) + " tensors");
    return n;
  }

  Tree& tree_;
  std::unordered_map<uint32_t, size_t> tensor_of_;
  std::vector<std::pair<std::string, size_t>> by_path_;  // sorted, for prefix lookups
  std::vector<std::string> paths_;                        // by tensor index
  std::vector<bool> on_path_;
  uint64_t steps_ = 0;
};

bool has_object_pickle(const Artifact& a) {
  return a.format == Format::kTorchSaveZip || a.format == Format::kTorchSaveLegacy || a.format == Format::kPickle;
}

}  // namespace

Tree build_tree(const Artifact& artifact) {
  Tree tree;
  if (has_object_pickle(artifact) && !artifact.pickles.empty() && artifact.pickles.back().pickle.root()) {
    // The object pickle is the last one read (legacy files read magic/protocol/sys_info first).
    const pickle::Pickle& pk = artifact.pickles.back().pickle;
    Builder builder(artifact, pk, tree);
    std::optional<Node> root = builder.convert(pk.root(), "", 0);
    if (root) tree.root = std::move(*root);
    return tree;
  }
  tree.root = Node::dict(true);
  for (size_t i = 0; i < artifact.tensors.size(); ++i) {
    tree.root.entries.emplace_back(Node::string(artifact.tensors[i].path), Node::tensor(i));
  }
  return tree;
}

}  // namespace ptpack
