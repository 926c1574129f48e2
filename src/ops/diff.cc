// ptpack diff: compares two checkpoints by name, across formats, in bounded memory.
#include <cmath>
#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include "ops/edit_tree.h"
#include "ops/text_util.h"
#include "ptpack/artifact.h"
#include "ptpack/convert.h"
#include "ptpack/error.h"
#include "ptpack/tensor_data.h"

namespace ptpack {

namespace {

struct Side {
  Artifact artifact;
  Tree tree;
  Node object;
  std::map<std::string, const Node*> leaves;
};

void load(Side& side, const std::string& path, const std::optional<std::string>& select,
          const std::vector<std::string>& strip_prefixes) {
  side.artifact = open_artifact(path);
  side.tree = build_tree(side.artifact);
  side.object = select ? ops::select_node(side.tree.root, *select) : side.tree.root;
  if (!strip_prefixes.empty()) {
    ops::NameEdits edits;
    edits.strip_prefixes = strip_prefixes;
    ops::edit_names(side.object, edits);
  }
  ops::for_each_leaf(side.object, "", [&](const std::string& name, const Node& n) { side.leaves.emplace(name, &n); });
}

// One element as a double (complex: each half is an element; quantized: the stored integer).
double element(DType d, const uint8_t* p) {
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof v);
    return double(v);
  };
  switch (d) {
    case DType::kFloat64: return get(double{});
    case DType::kFloat32: case DType::kComplex64: return get(float{});
    case DType::kComplex128: return get(double{});
    case DType::kInt64: return get(int64_t{});
    case DType::kInt32: case DType::kQInt32: return get(int32_t{});
    case DType::kInt16: return get(int16_t{});
    case DType::kInt8: case DType::kQInt8: return get(int8_t{});
    case DType::kUInt16: case DType::kBits16: return get(uint16_t{});
    case DType::kUInt32: return get(uint32_t{});
    case DType::kUInt64: return get(uint64_t{});
    case DType::kBool: return *p ? 1 : 0;
    default:
      if (is_castable_float(d)) {
        float f;
        cast_elements(d, DType::kFloat32, std::span(p, dtype_size(d)), std::span(reinterpret_cast<uint8_t*>(&f), 4));
        return f;
      }
      return *p;  // uint8, quint8, bits8, sub-byte packed bytes
  }
}

// Scalar parts per element: complex numbers compare real and imaginary parts separately.
uint32_t parts(DType d) { return dtype_info(d).is_complex ? 2 : 1; }
uint32_t part_size(DType d) { return dtype_size(d) / parts(d); }

void compare_values(const Side& a, const Tensor& ta, const Side& b, const Tensor& tb, TensorDiff& out) {
  TensorReader ra(a.artifact, ta), rb(b.artifact, tb);
  const uint64_t ea = dtype_size(ta.dtype), eb = dtype_size(tb.dtype);
  const DType pa = ta.dtype == DType::kComplex32 ? DType::kFloat16 : ta.dtype;
  const DType pb = tb.dtype == DType::kComplex32 ? DType::kFloat16 : tb.dtype;
  const bool same_dtype = ta.dtype == tb.dtype;
  constexpr uint64_t kElements = 1 << 17;
  while (ra.remaining() > 0 && rb.remaining() > 0) {
    std::span<const uint8_t> ca = ra.next(kElements * ea);
    std::vector<uint8_t> copy(ca.begin(), ca.end());  // the next call may reuse the buffer
    std::span<const uint8_t> cb = rb.next(copy.size() / ea * eb);
    if (same_dtype && copy.size() == cb.size() && std::memcmp(copy.data(), cb.data(), cb.size()) == 0) continue;
    const uint64_t n = std::min(copy.size() / ea, cb.size() / eb) * parts(ta.dtype);
    for (uint64_t i = 0; i < n; ++i) {
      const double x = element(pa, copy.data() + i * part_size(ta.dtype));
      const double y = element(pb, cb.data() + i * part_size(tb.dtype));
      if (x == y || (std::isnan(x) && std::isnan(y))) continue;
      const double d = std::isnan(x) || std::isnan(y) ? INFINITY : std::fabs(x - y);
      if (!(d <= 0)) {
        out.max_abs_diff = std::max(out.max_abs_diff, d);
        ++out.differing;
      }
    }
  }
}

std::string shape_text(const std::vector<int64_t>& shape) { return ops::int_list_text(shape); }

std::string leaf_text(const Side& s, const Node& n) {
  if (n.kind == Node::Kind::kTensor) {
    const Tensor& t = s.artifact.tensors.at(size_t(n.integer));
    return std::string(dtype_name(t.dtype)) + shape_text(t.shape);
  }
  switch (n.kind) {
    case Node::Kind::kNone: return "None";
    case Node::Kind::kBool: return n.boolean ? "True" : "False";
    case Node::Kind::kInt: return std::to_string(n.integer);
    case Node::Kind::kFloat: return pickle::python_float_repr(n.real);
    case Node::Kind::kString: return "'" + printable(n.text, 100) + "'";
    case Node::Kind::kDict: return "{}";
    case Node::Kind::kList: return "[]";
    case Node::Kind::kTuple: return "()";
    default: return "<int>";
  }
}

}  // namespace

DiffReport diff(const std::string& a_path, const std::string& b_path, const DiffOptions& o) {
  DiffReport r;
  r.a = a_path;
  r.b = b_path;
  Side a, b;
  try {
    load(a, a_path, o.select_a, o.strip_prefixes);
  } catch (Error& e) {
    e.add_file(a_path);
    throw;
  }
  try {
    load(b, b_path, o.select_b, o.strip_prefixes);
  } catch (Error& e) {
    e.add_file(b_path);
    throw;
  }
  auto report = [&](TensorDiff d) { r.differences.push_back(std::move(d)); };
  for (const auto& [name, na] : a.leaves) {
    auto it = b.leaves.find(name);
    if (it == b.leaves.end()) {
      report({name, "only_a", leaf_text(a, *na), "", 0, 0});
      continue;
    }
    const Node* nb = it->second;
    ++r.compared;
    const bool ta = na->kind == Node::Kind::kTensor, tb = nb->kind == Node::Kind::kTensor;
    if (!ta || !tb) {
      const std::string xa = leaf_text(a, *na), xb = leaf_text(b, *nb);
      if (xa == xb) ++r.equal;
      else report({name, "value", xa, xb, 0, 0});
      continue;
    }
    const Tensor& x = a.artifact.tensors.at(size_t(na->integer));
    const Tensor& y = b.artifact.tensors.at(size_t(nb->integer));
    if (x.shape != y.shape) {
      report({name, "shape", leaf_text(a, *na), leaf_text(b, *nb), 0, 0});
      continue;
    }
    TensorDiff d{name, x.dtype == y.dtype ? "values" : "dtype", leaf_text(a, *na), leaf_text(b, *nb), 0, 0};
    try {
      compare_values(a, x, b, y, d);
    } catch (Error& e) {
      e.add_entry(name);
      throw;
    }
    const bool values_equal = d.differing == 0 || d.max_abs_diff <= o.atol;
    if (x.dtype == y.dtype && values_equal) {
      ++r.equal;
    } else {
      report(std::move(d));
    }
  }
  for (const auto& [name, nb] : b.leaves) {
    if (!a.leaves.count(name)) report({name, "only_b", "", leaf_text(b, *nb), 0, 0});
  }
  return r;
}

std::string diff_report_text(const DiffReport& r) {
  std::string out;
  for (const TensorDiff& d : r.differences) {
    const std::string name = printable(d.name, 200);
    if (d.change == "only_a") out += "- " + name + "  " + d.a + "  (only in A)\n";
    else if (d.change == "only_b") out += "+ " + name + "  " + d.b + "  (only in B)\n";
    else if (d.change == "shape") out += "~ " + name + "  shape " + d.a + " -> " + d.b + "\n";
    else if (d.change == "value") out += "~ " + name + "  " + d.a + " -> " + d.b + "\n";
    else {
      out += "~ " + name + "  ";
      if (d.change == "dtype") out += d.a + " -> " + d.b + ", ";
      char buf[96];
      if (d.differing) std::snprintf(buf, sizeof buf, "%llu elements differ, max abs diff %.6g",
                                     (unsigned long long)d.differing, d.max_abs_diff);
      else std::snprintf(buf, sizeof buf, "values equal");
      out += std::string(buf) + "\n";
    }
  }
  out += std::to_string(r.compared) + " names in both, " + std::to_string(r.equal) + " equal; " +
         std::to_string(r.differences.size()) + " differences\n";
  return out;
}

std::string diff_report_json(const DiffReport& r) {
  nlohmann::ordered_json j;
  j["a"] = r.a;
  j["b"] = r.b;
  j["same"] = r.same();
  j["compared"] = r.compared;
  j["equal"] = r.equal;
  j["differences"] = nlohmann::ordered_json::array();
  for (const TensorDiff& d : r.differences) {
    nlohmann::ordered_json x;
    x["name"] = d.name;
    x["change"] = d.change;
    x["a"] = d.a;
    x["b"] = d.b;
    if (d.change == "values" || d.change == "dtype") {
      x["differing"] = d.differing;
      x["max_abs_diff"] = std::isfinite(d.max_abs_diff) ? nlohmann::ordered_json(d.max_abs_diff) : nlohmann::ordered_json("inf");
    }
    j["differences"].push_back(std::move(x));
  }
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace ptpack
