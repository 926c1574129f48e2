// The built-in allowlists and custom policy files.
//
// `weights` is exactly the set of globals torch 2.x's restricted unpickler resolves
// (pytorch/pytorch torch/_weights_only_unpickler.py, `_get_allowed_globals`, as of 2.10; FORMATS.md
// §2.5): containers, tensor/storage classes, dtypes, qschemes and the tensor rebuild functions.
// Allowing a name says "unpickling may import and call this"; everything else is unsafe.
#include <fstream>
#include <nlohmann/json.hpp>

#include "ptpack/error.h"
#include "ptpack/scan.h"
#include "scan/scan_internal.h"

namespace ptpack::scan {
namespace {

// torch/_weights_only_unpickler.py _get_allowed_globals(): the fixed entries.
const char* const kWeightsExact[] = {
    "collections.OrderedDict", "collections.Counter", "torch.nn.parameter.Parameter",
    "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device",
    "_codecs.encode", "builtins.bytearray", "builtins.set", "builtins.complex",
    // _tensor_rebuild_functions() (torch/_weights_only_unpickler.py) and _rebuild_from_type_v2
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor", "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3", "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_meta_tensor_no_storage", "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass", "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_device_tensor_from_cpu_tensor", "torch._tensor._rebuild_from_type_v2",
    // torch 1.13 writes CSR tensors with this one (its weights_only list has it too).
    "torch._utils._rebuild_sparse_csr_tensor",
    // torch._storage_classes: the untyped/typed storages under both of their module names.
    "torch.UntypedStorage", "torch.TypedStorage", "torch.storage.UntypedStorage",
    "torch.storage.TypedStorage", "torch.storage._UntypedStorage", "torch._UntypedStorage",
    // qschemes
    "torch.per_tensor_affine", "torch.per_tensor_symmetric", "torch.per_channel_affine",
    "torch.per_channel_symmetric", "torch.per_channel_affine_float_qparams",
};

// Legacy typed storages (torch.<X>Storage) and tensor classes (torch.<X>Tensor, torch._tensor_classes).
const char* const kTypedNames[] = {"Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char",
                                   "Byte", "Bool", "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8",
                                   "QInt32", "QUInt4x2", "QUInt2x4"};

// Dtypes: _dtype_to_storage_type_map(), _new_dtypes(), uint1..7 and int1..7.
const char* const kDtypes[] = {
    "float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool",
    "complex64", "complex128", "qint8", "quint8", "qint32", "quint4x2", "quint2x4",
    "float8_e5m2", "float8_e4m3fn", "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu",
    "float4_e2m1fn_x2", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "complex32", "uint16",
    "uint32", "uint64", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7", "int1", "int2",
    "int3", "int4", "int5", "int6", "int7"};

// `torch` policy additions, wherever they appear: the nn.Module classes a pickled module (a
// torch.package model, a whole-module torch.save) is rebuilt from, and the hook torch.package
// uses for TorchScript modules (('reduce_package', id, unpackage_script_module, ('0',))) and FX
// graph modules (torch/fx/graph_module.py; it compiles the package's code, which `torch`
// accepts as package code anyway).
const char* const kTorchExact[] = {
    "torch.jit._script.unpackage_script_module",
    "torch.fx.graph_module.reduce_package_graph_module",
};
// TorchScript pickles only: the C++ unpickler's helpers (torch/csrc/jit/serialization/unpickler.cpp
// readGlobal, torch/jit/_pickle.py). `__torch__.*` classes are handled separately.
const char* const kTorchScriptExact[] = {
    "torch.jit._pickle.build_intlist",     "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.build_doublelist",  "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_complexlist", "torch.jit._pickle.build_tensor_from_id",
    "torch.jit._pickle.restore_type_tag",
};

bool is_identifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

bool is_dotted_module(std::string_view s) {
  if (s.empty()) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    if (!is_identifier(s.substr(start, dot == std::string_view::npos ? s.npos : dot - start))) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A class name as torch.nn.modules spells them: an identifier starting with an upper-case letter
// (so module-level functions and dunder attributes never match).
bool is_class_name(std::string_view s) { return is_identifier(s) && s[0] >= 'A' && s[0] <= 'Z'; }

// A qualified name inside a package's own module: identifiers, no dunder segment (no reaching
// `__globals__`, `__class__`... through protocol 4's dotted lookups).
bool is_plain_qualname(std::string_view s) {
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    const std::string_view seg = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!is_identifier(seg) || seg.starts_with("__")) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}


}  // namespace

std::string normalize_module(const std::string& module) {
  // Lib/_compat_pickle.py IMPORT_MAPPING, the entries that matter for judging.
  static const std::pair<const char*, const char*> kMap[] = {
      {"__builtin__", "builtins"}, {"copy_reg", "copyreg"}, {"cPickle", "pickle"},
      {"exceptions", "builtins"},  {"UserDict", "collections"}, {"commands", "subprocess"}};
  for (const auto& [from, to] : kMap) {
    if (module == from) return to;
  }
  return module;
}

Policy Policy::weights() {
  Policy p;
  p.name_ = "weights";
  for (const char* g : kWeightsExact) p.exact_.insert(g);
  for (const char* t : kTypedNames) {
    p.exact_.insert(std::string("torch.") + t + "Storage");
    p.exact_.insert(std::string("torch.") + t + "Tensor");
    p.exact_.insert(std::string("torch.cuda.") + t + "Tensor");
  }
  for (const char* d : kDtypes) p.exact_.insert(std::string("torch.") + d);
  return p;
}

Policy Policy::torch() {
  Policy p = weights();
  p.name_ = "torch";
  p.torch_extras_ = true;
  for (const char* g : kTorchExact) p.exact_.insert(g);
  return p;
}

Policy Policy::from_file(const std::string& path) {
  auto fail = [&](const std::string& why) {
    Error e(ErrorCode::kInvalidArgument, "scan.policy-file", "policy file: " + why);
    e.add_file(path);
    throw e;
  };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot be opened");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > (1u << 20)) fail("larger than 1 MiB");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false, true);
  if (j.is_discarded() || !j.is_object()) fail("not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "extends" && it.key() != "allow") fail("unknown key '" + printable(it.key(), 40) + "'");
  }
  Policy p = weights();
  if (j.contains("extends")) {
    if (!j["extends"].is_string()) fail("\"extends\" must be \"weights\" or \"torch\"");
    const std::string base = j["extends"].get<std::string>();
    if (base == "torch") p = torch();
    else if (base != "weights") fail("\"extends\" must be \"weights\" or \"torch\"");
  }
  p.name_ = "custom";
  if (j.contains("allow")) {
    if (!j["allow"].is_array()) fail("\"allow\" must be a list of \"module.name\" or \"module.*\"");
    for (const auto& v : j["allow"]) {
      if (!v.is_string()) fail("\"allow\" entries must be strings");
      const std::string g = v.get<std::string>();
      const size_t dot = g.rfind('.');
      if (dot == std::string::npos || dot == 0) fail("'" + printable(g, 80) + "' is not module.name or module.*");
      const std::string module = g.substr(0, dot), name = g.substr(dot + 1);
      if (!is_dotted_module(module)) fail("'" + printable(g, 80) + "': bad module name");
      if (name == "*") p.modules_.insert(normalize_module(module));
      else if (is_identifier(name)) p.exact_.insert(normalize_module(module) + "." + name);
      else fail("'" + printable(g, 80) + "': the name must be an identifier or *");
    }
  }
  return p;
}

bool Policy::allows(const std::string& raw_module, const std::string& name, Context context,
                    const std::set<std::string>& package_modules) const {
  const std::string module = normalize_module(raw_module);
  if (exact_.count(module + "." + name)) return true;
  if (modules_.count(module) && is_identifier(name)) return true;
  if (!torch_extras_) return false;
  if (module.starts_with("torch.nn.modules.") && is_dotted_module(module) && is_class_name(name)) return true;
  if (context == Context::kTorchScript) {
    for (const char* g : kTorchScriptExact) {
      if (module + "." + name == g) return true;
    }
    // Classes compiled from the archive's own code/ (the C++ unpickler never imports Python).
    if ((module == "__torch__" || module.starts_with("__torch__.")) && is_dotted_module(module) &&
        is_identifier(name)) {
      return true;
    }
  }
  if (context == Context::kTorchPackage) {
    // Classes from the package's own sources (PackagePickler writes demangled names; a mangled
    // "<torch_package_N>." prefix is tolerated and stripped).
    std::string m = module;
    if (m.starts_with("<torch_package_")) {
      const size_t close = m.find(">.");
      m = close == std::string::npos ? std::string() : m.substr(close + 2);
    }
    if (package_modules.count(m) && is_plain_qualname(name)) return true;
  }
  return false;
}

bool Policy::allows_code(Context context) const {
  return torch_extras_ && context != Context::kPlain;
}

}  // namespace ptpack::scan
