#include "artifact/object_walk.h"


#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack {

using pickle::Kind;
using pickle::Value;

std::string key_text(const Value* key) {
  switch (key->kind) {
    case Kind::kString: return key->text;
    case Kind::kInt: return std::to_string(key->integer);
    case Kind::kBool: return key->boolean ? "True" : "False";
    case Kind::kNone: return "None";
    case Kind::kFloat: return pickle::python_float_repr(key->real);
    default: return pickle::repr(key, 80);
  }
}

std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

namespace {

bool is_scalar(const Value* v) {
  switch (v->kind) {
    case Kind::kNone: case Kind::kBool: case Kind::kInt: case Kind::kBigInt: case Kind::kFloat:
    case Kind::kString: case Kind::kBytes: case Kind::kByteArray: case Kind::kGlobal:
      return true;
    default:
      return false;
  }
}

bool is_container_global(const Value* callable) {
  return callable && callable->kind == Kind::kGlobal && callable->text == "collections" &&
         (callable->name == "OrderedDict" || callable->name == "defaultdict" ||
          callable->name == "Counter");
}

const std::vector<Value*>* tuple_items(const Value* v) {
  return v && v->is_sequence() ? &v->items : nullptr;
}

// Module internals that are transparent in state_dict() paths.
bool is_transparent_attribute(const std::string& name) {
  return name == "_parameters" || name == "_buffers" || name == "_modules";
}

class Walker {
 public:
  enum class Mode { kTensors, kValues };

  Walker(Mode mode, const pickle::Pickle& pk, const StorageResolver* resolve, Artifact* artifact,
         std::string label, size_t max_values)
      : mode_(mode), resolve_(resolve), artifact_(artifact), label_(std::move(label)),
        max_values_(max_values), on_path_(pk.value_count(), false) {}

  // Walks `v` at the current path. Paths live in one buffer (path_) that each level extends and
  // restores, so a step allocates nothing; ancestors are flags indexed by value id.
  void walk(const Value* v, int depth, bool leaves) {
    if (!v) return;
    if (++steps_ > limits::kMaxWalkSteps) {
      throw_limit("kMaxWalkSteps", "object graph expands beyond " +
                  std::to_string(limits::kMaxWalkSteps) + " visits (memo amplification?)", v->offset);
    }
    if (depth > limits::kMaxNestingDepth) {
      throw_limit("kMaxNestingDepth", "objects nest deeper than " +
                  std::to_string(limits::kMaxNestingDepth) + " levels at '" + path_.substr(0, 120) + "...'", v->offset);
    }
    if (v->id >= on_path_.size()) return;  // not from this pickle; cannot happen
    if (on_path_[v->id]) {
      note("cycle at '" + path_ + "' (an object contains itself); not followed");
      return;
    }
    on_path_[v->id] = true;
    visit(v, depth, leaves);
    on_path_[v->id] = false;
  }

  // Walks `v` one level down, under `key` (appended to the path with a '.').
  void walk_child(const Value* v, std::string_view key, int depth, bool leaves) {
    const size_t length = path_.size();
    if (length + 1 + key.size() > limits::kMaxPathBytes) {
      throw_limit("kMaxPathBytes", "a path grows beyond " + std::to_string(limits::kMaxPathBytes) +
                  " bytes (huge keys?)", v ? v->offset : 0);
    }
    if (length) path_ += '.';
    path_ += key;
    walk(v, depth + 1, leaves);
    path_.resize(length);
  }
  void walk_index(const Value* v, size_t index, int depth, bool leaves) {
    char buf[24];
    const int n = std::snprintf(buf, sizeof buf, "%zu", index);
    walk_child(v, std::string_view(buf, size_t(n)), depth, leaves);
  }
  void walk_key(const Value* key, const Value* v, int depth, bool leaves) {
    if (key->kind == Kind::kString) walk_child(v, key->text, depth, leaves);
    else walk_child(v, key_text(key), depth, leaves);
  }

  std::vector<LeafValue> take_values() { return std::move(values_); }

 private:
  void note(std::string text) {
    if (mode_ == Mode::kTensors && artifact_ && artifact_->notes.size() < 100) {
      artifact_->notes.push_back(std::move(text));
    }
  }

  void leaf(const Value* v, bool leaves) {
    if (mode_ == Mode::kValues && leaves && values_.size() < max_values_) values_.push_back({path_, v});
  }

  void visit(const Value* v, int depth, bool leaves) {
    if (is_scalar(v)) return leaf(v, leaves);
    switch (v->kind) {
      case Kind::kDict:
        if (v->entries.empty()) return leaf(v, leaves);
        for (const auto& [k, val] : v->entries) walk_key(k, val, depth, leaves);
        return;
      case Kind::kTuple: case Kind::kList: case Kind::kSet: case Kind::kFrozenSet: {
        bool all_scalar = true;
        for (const Value* item : v->items) all_scalar = all_scalar && is_scalar(item);
        if (all_scalar) return leaf(v, leaves);
        for (size_t i = 0; i < v->items.size(); ++i) {
          walk_index(v->items[i], i, depth, leaves);
        }
        return;
      }
      case Kind::kObject: return visit_object(v, depth, leaves);
      default: return leaf(v, leaves);  // persistent ids, buffers, extensions
    }
  }

  void visit_object(const Value* v, int depth, bool leaves) {
    if (v->callable && v->callable->kind == Kind::kGlobal) {
      // Tensors made inside a rebuild call (a Parameter's inner tensor, sparse components)
      // remember the outermost call, which is what a writer replaces with a tensor.
      const Value* outer = rebuild_call_;
      if (!outer) rebuild_call_ = v;
      const bool handled = rebuild(v->callable, tuple_items(v->args), depth);
      rebuild_call_ = outer;
      if (handled) return;
    }
    if (is_container_global(v->callable)) {
      // OrderedDict: its contents are the SETITEMs; a BUILD state on it is state_dict()'s
      // `_metadata`, not content.
      if (v->entries.empty()) return leaf(v, leaves);
      for (const auto& [k, val] : v->entries) walk_key(k, val, depth, leaves);
      return;
    }
    const bool has_content = !v->states.empty() || !v->items.empty() || !v->entries.empty();
    if (!has_content) {
      // An opaque value (torch.device, torch.Size, a namedtuple...): shown whole, but tensors
      // hidden in its arguments are still listed.
      leaf(v, leaves);
      if (const auto* args = tuple_items(v->args)) {
        for (size_t i = 0; i < args->size(); ++i) {
          walk_index((*args)[i], i, depth, false);
        }
      }
      return;
    }
    for (size_t i = 0; i < v->items.size(); ++i) {
      walk_index(v->items[i], i, depth, leaves);
    }
    for (const auto& [k, val] : v->entries) walk_key(k, val, depth, leaves);
    for (const Value* state : v->states) {
      // __setstate__ state: a dict of attributes, or (dict, slotstate).
      if (state->kind == Kind::kTuple && state->items.size() == 2) {
        walk_attributes(state->items[0], depth, leaves);
        walk_attributes(state->items[1], depth, leaves);
      } else {
        walk_attributes(state, depth, leaves);
      }
    }
  }

  void walk_attributes(const Value* state, int depth, bool leaves) {
    if (state->kind != Kind::kDict) {
      if (state->kind != Kind::kNone) walk(state, depth + 1, leaves);
      return;
    }
    for (const auto& [k, val] : state->entries) {
      const std::string name = key_text(k);
      if (is_transparent_attribute(name)) {
        if (val->kind != Kind::kNone) walk(val, depth + 1, leaves);
      } else {
        const bool internal = name.empty() || name[0] == '_' || name == "training";
        walk_child(val, name, depth, leaves && !internal);
      }
    }
  }

  // --- tensors -----------------------------------------------------------------------------

  // Handles a call of a known rebuild function; false when `fn` is not one.
  bool rebuild(const Value* fn, const std::vector<Value*>* args, int depth) {
    const std::string& m = fn->text;
    const std::string& n = fn->name;
    if (m == "torch._tensor" && (n == "_rebuild_from_type_v2" || n == "_rebuild_from_type")) {
      // (func, type, args, state): the tensor is func(*args); the subclass type is dropped.
      // Each unwrapping is a level of nesting, so hostile self-wrapping hits the depth cap.
      if (depth > limits::kMaxNestingDepth) {
        throw_limit("kMaxNestingDepth", "_rebuild_from_type_v2 nests deeper than " +
                    std::to_string(limits::kMaxNestingDepth) + " levels", fn->offset);
      }
      if (args && args->size() >= 3 && (*args)[0]->kind == Kind::kGlobal &&
          rebuild((*args)[0], tuple_items((*args)[2]), depth + 1)) {
        return true;
      }
      return false;
    }
    if (m != "torch._utils" || n.rfind("_rebuild_", 0) != 0) return false;
    if (mode_ == Mode::kValues) return true;  // tensors are not values
    if (!args) throw_corrupt("tensor.args", n + " is not called with an argument tuple", fn->offset);
    const auto& a = *args;
    auto need = [&](size_t count) {
      if (a.size() < count) {
        throw_corrupt("tensor.args", n + " needs " + std::to_string(count) + " arguments, got " +
                      std::to_string(a.size()) + " (at '" + path_ + "')", fn->offset);
      }
    };
    if (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor") {
      need(4);
      Tensor& t = dense(a[0], a[1], a[2], a[3], std::nullopt);
      if (a.size() > 4 && a[4]->kind == Kind::kBool) t.requires_grad = a[4]->boolean;
    } else if (n == "_rebuild_tensor_v3") {
      need(7);
      Tensor& t = dense(a[0], a[1], a[2], a[3], dtype_of(a[6]));
      if (a[4]->kind == Kind::kBool) t.requires_grad = a[4]->boolean;
    } else if (n == "_rebuild_parameter" || n == "_rebuild_parameter_with_state") {
      need(2);
      const size_t before = artifact_->tensors.size();
      walk(a[0], depth + 1, false);
      for (size_t i = before; i < artifact_->tensors.size(); ++i) {
        artifact_->tensors[i].is_parameter = true;
        if (a[1]->kind == Kind::kBool) artifact_->tensors[i].requires_grad = a[1]->boolean;
      }
    } else if (n == "_rebuild_qtensor") {
      need(5);
      Tensor& t = dense(a[0], a[1], a[2], a[3], std::nullopt);
      t.quantization = quantizer_text(a[4]);
      // Per-channel schemes carry their scales and zero points as tensors of their own.
      if (const auto* q = tuple_items(a[4]); q && q->size() >= 4) {
        walk_child((*q)[1], "scales", depth, false);
        walk_child((*q)[2], "zero_points", depth, false);
      }
    } else if (n == "_rebuild_sparse_tensor" || n == "_rebuild_sparse_csr_tensor") {
      need(2);
      sparse(a[0], a[1], depth, n == "_rebuild_sparse_csr_tensor" ? "sparse_csr" : "");
    } else if (n == "_rebuild_meta_tensor_no_storage") {
      need(3);
      Tensor t;
      t.path = full_path();
      t.dtype = dtype_of(a[0]);
      t.shape = int_list(a[1], "size");
      t.stride = int_list(a[2], "stride");
      t.device = "meta";
      check_shape(t);
      push(std::move(t));
    } else if (n == "_rebuild_nested_tensor") {
      static const char* kParts[] = {"buffer", "nested_sizes", "nested_strides", "storage_offsets"};
      for (size_t i = 0; i < a.size() && i < 4; ++i) {
        const size_t before = artifact_->tensors.size();
        walk_child(a[i], kParts[i], depth, false);
        for (size_t j = before; j < artifact_->tensors.size(); ++j) artifact_->tensors[j].layout = "nested";
      }
    } else if (n == "_rebuild_device_tensor_from_cpu_tensor") {
      need(3);
      const size_t before = artifact_->tensors.size();
      walk(a[0], depth + 1, false);
      for (size_t j = before; j < artifact_->tensors.size(); ++j) {
        if (a[2]->kind == Kind::kString) artifact_->tensors[j].device = a[2]->text;
      }
    } else {
      note("unknown rebuild function torch._utils." + n + " at '" + full_path() +
           "'; tensors among its arguments are listed under that path");
      for (size_t i = 0; i < a.size(); ++i) walk_index(a[i], i, depth, false);
    }
    return true;
  }

  std::string full_path() const {
    return label_.empty() ? path_ : label_ + ":" + path_;
  }

  void push(Tensor t) {
    if (artifact_->tensors.size() >= limits::kMaxTensors) {
      throw_limit("kMaxTensors", "more than " + std::to_string(limits::kMaxTensors) + " tensors");
    }
    if (rebuild_call_) t.rebuild_value = rebuild_call_->id;
    artifact_->tensors.push_back(std::move(t));
  }

  int64_t int_of(const Value* v, const char* what) {
    if (v->kind == Kind::kInt) return v->integer;
    if (v->kind == Kind::kBool) return v->boolean;
    throw_corrupt("tensor.not-int", std::string(what) + " of '" + full_path() +
                  "' is not an integer: " + pickle::repr(v, 60), v->offset);
  }

  std::vector<int64_t> int_list(const Value* v, const char* what) {
    // torch.Size(...) arrives as REDUCE(torch.Size, ((...),)).
    if (v->is_call_of("torch", "Size") && v->args && v->args->is_sequence() && v->args->items.size() == 1) {
      v = v->args->items[0];
    }
    if (!v->is_sequence()) {
      throw_corrupt("tensor.not-tuple", std::string(what) + " of '" + full_path() +
                    "' is not a tuple: " + pickle::repr(v, 60), v->offset);
    }
    if (v->items.size() > size_t(limits::kMaxTensorRank)) {
      throw_limit("kMaxTensorRank", std::string(what) + " of '" + full_path() + "' has " +
                  std::to_string(v->items.size()) + " dimensions", v->offset);
    }
    std::vector<int64_t> out;
    for (const Value* item : v->items) out.push_back(int_of(item, what));
    return out;
  }

  DType dtype_of(const Value* v) {
    if (v->kind == Kind::kGlobal && v->text == "torch") {
      if (auto d = dtype_from_name(v->name)) return *d;
    }
    throw_unsupported("tensor.dtype", "unknown dtype " + pickle::repr(v, 60) + " for '" +
                      full_path() + "'");
  }

  std::string quantizer_text(const Value* q) {
    const auto* items = tuple_items(q);
    if (!items || items->empty()) return pickle::repr(q, 120);
    const Value* scheme = (*items)[0];
    std::string name = scheme->kind == Kind::kGlobal ? scheme->name : pickle::repr(scheme, 40);
    if (name == "per_tensor_affine" && items->size() >= 3) {
      return name + "(scale=" + pickle::repr((*items)[1], 40) + ", zero_point=" +
             pickle::repr((*items)[2], 40) + ")";
    }
    if (items->size() >= 4) return name + "(axis=" + pickle::repr((*items)[3], 20) + ")";
    return name;
  }

  // Sizes and strides must be non-negative and numel x element size must fit 64 bits, so that
  // Tensor::numel() and nbytes() never wrap afterwards.
  void check_shape(const Tensor& t) {
    if (t.shape.size() != t.stride.size()) {
      throw_corrupt("tensor.rank-mismatch", "'" + t.path + "' has " + std::to_string(t.shape.size()) +
                    " sizes but " + std::to_string(t.stride.size()) + " strides");
    }
    for (size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] < 0 || t.stride[i] < 0) {
        throw_corrupt("tensor.negative-size", "'" + t.path + "' has a negative size or stride");
      }
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (__builtin_mul_overflow(numel, uint64_t(d), &numel) || numel > (uint64_t{1} << 58)) {
        throw_corrupt("tensor.numel-overflow", "'" + t.path + "' has more than 2^58 elements (its byte size would not fit 64 bits)");
      }
    }
  }

  Tensor& dense(const Value* storage, const Value* offset, const Value* size, const Value* stride,
                std::optional<DType> dtype) {
    if (storage->kind != Kind::kPersistentId) {
      throw_corrupt("tensor.storage", "storage of '" + full_path() +
                    "' is not a persistent id: " + pickle::repr(storage, 60), storage->offset);
    }
    const StorageRef ref = (*resolve_)(storage->args);
    Tensor t;
    t.path = full_path();
    t.dtype = dtype ? *dtype : ref.dtype;
    t.offset = int_of(offset, "storage offset");
    t.shape = int_list(size, "size");
    t.stride = int_list(stride, "stride");
    t.storage = ref.index;
    const Storage& s = artifact_->storages[size_t(ref.index)];
    t.device = s.location;
    check_shape(t);
    if (t.offset < 0) throw_corrupt("tensor.negative-offset", "'" + t.path + "' has a negative storage offset");
    // The highest element the tensor touches must lie inside its storage.
    if (t.numel() > 0) {
      uint64_t last = uint64_t(t.offset);
      for (size_t i = 0; i < t.shape.size(); ++i) {
        last = checked_add(last, checked_mul(uint64_t(t.shape[i] - 1), uint64_t(t.stride[i])));
      }
      const DTypeInfo& info = dtype_info(t.dtype);
      const uint64_t elements = s.nbytes / info.size * info.per_byte;
      if (last >= elements) {
        throw_corrupt("tensor.out-of-storage",
                      "'" + t.path + "' reaches element " + std::to_string(last) + " but its storage '" +
                      s.key + "' holds " + std::to_string(elements) + " " +
                      std::string(dtype_name(t.dtype)) + " elements (" + std::to_string(s.nbytes) + " bytes)",
                      storage->offset);
      }
    }
    push(std::move(t));
    return artifact_->tensors.back();
  }

  void sparse(const Value* layout, const Value* data, int depth,
              std::string layout_name) {
    if (layout_name.empty()) {
      // layout = torch.serialization._get_layout('torch.sparse_coo'), or a global torch.sparse_coo
      if (layout->is_call_of("torch.serialization", "_get_layout") && layout->args &&
          layout->args->is_sequence() && !layout->args->items.empty() &&
          layout->args->items[0]->is_string()) {
        layout_name = layout->args->items[0]->text;
      } else if (layout->kind == Kind::kGlobal) {
        layout_name = layout->name;
      } else {
        layout_name = "sparse";
      }
      if (layout_name.rfind("torch.", 0) == 0) layout_name = layout_name.substr(6);
    }
    static const std::vector<std::string> kCoo = {"indices", "values"};
    static const std::vector<std::string> kCsr = {"crow_indices", "col_indices", "values"};
    static const std::vector<std::string> kCsc = {"ccol_indices", "row_indices", "values"};
    const auto& names = layout_name == "sparse_coo" ? kCoo
                        : (layout_name == "sparse_csc" || layout_name == "sparse_bsc") ? kCsc : kCsr;
    const auto* items = tuple_items(data);
    if (!items) throw_corrupt("tensor.sparse", "sparse tensor data of '" + full_path() + "' is not a tuple");
    for (size_t i = 0; i < names.size() && i < items->size(); ++i) {
      const size_t before = artifact_->tensors.size();
      walk_child((*items)[i], names[i], depth, false);
      for (size_t j = before; j < artifact_->tensors.size(); ++j) artifact_->tensors[j].layout = layout_name;
    }
  }

  Mode mode_;
  const StorageResolver* resolve_;
  Artifact* artifact_;
  std::string label_;
  size_t max_values_;
  uint64_t steps_ = 0;
  const Value* rebuild_call_ = nullptr;  // the outermost rebuild call being walked
  std::vector<bool> on_path_;  // by value id: on the current path (cycle detection)
  std::string path_;           // the current path, extended and restored level by level
  std::vector<LeafValue> values_;
};

}  // namespace

void collect_tensors(const pickle::Pickle& pk, const std::string& label, const StorageResolver& resolve,
                     Artifact& artifact) {
  Walker(Walker::Mode::kTensors, pk, &resolve, &artifact, label, 0).walk(pk.root(), 0, false);
}

std::vector<LeafValue> collect_values(const pickle::Pickle& pk, size_t max) {
  Walker w(Walker::Mode::kValues, pk, nullptr, nullptr, "", max);
  w.walk(pk.root(), 0, true);
  return w.take_values();
}

}  // namespace ptpack
