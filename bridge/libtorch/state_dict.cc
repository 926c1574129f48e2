// load_state_dict / save_state_dict (ptpack/libtorch/state_dict.h).
#include "ptpack/libtorch/state_dict.h"

#include <torch/torch.h>

#include <chrono>
#include <optional>
#include <set>
#include <unordered_map>

#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/state_dict.h"
#include "ptpack/libtorch/tensors.h"

namespace ptpack::libtorch {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

bool loadable_dtypes(DType file, DType module) {
  return file == module || (is_castable_float(file) && is_castable_float(module));
}

// Strict mode: every key on both sides, equal shapes, loadable dtypes; else one message listing
// every difference, with key ranges collapsed.
MatchReport strict_pairs(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst, const std::string& file) {
  std::unordered_map<std::string, const KeyInfo*> by_key;
  std::vector<std::string> src_universe, dst_universe, missing, unexpected, differ;
  for (const KeyInfo& k : src) {
    by_key.emplace(k.key, &k);
    src_universe.push_back(k.key);
  }
  MatchReport report;
  report.strategy = "exact";
  report.reason = "strict: every key of the module, and only those";
  std::set<std::string> seen;
  for (const KeyInfo& d : dst) {
    dst_universe.push_back(d.key);
    auto it = by_key.find(d.key);
    if (it == by_key.end()) {
      missing.push_back(d.key);
      continue;
    }
    seen.insert(d.key);
    const KeyInfo& s = *it->second;
    if (s.shape != d.shape || !loadable_dtypes(s.dtype, d.dtype)) {
      differ.push_back(d.key + " (file " + std::string(dtype_name(s.dtype)) + shape_text(s.shape) + ", module " +
                       std::string(dtype_name(d.dtype)) + shape_text(d.shape) + ")");
      continue;
    }
    MatchPair p;
    p.src = p.dst = d.key;
    p.src_shape = s.shape;
    p.dst_shape = d.shape;
    p.cast = s.dtype != d.dtype;
    report.pairs.push_back(std::move(p));
  }
  for (const KeyInfo& s : src) {
    if (!seen.count(s.key)) unexpected.push_back(s.key);
  }
  if (!missing.empty() || !unexpected.empty() || !differ.empty()) {
    std::string detail = "the file's state dict does not fit the module:";
    auto list = [](const std::vector<std::string>& keys) {
      std::string s;
      for (const std::string& k : keys) s += (s.empty() ? " " : ", ") + k;
      return s;
    };
    if (!missing.empty()) detail += " missing in the file:" + list(collapse_keys(missing, dst_universe)) + ";";
    if (!unexpected.empty()) detail += " not in the module:" + list(collapse_keys(unexpected, src_universe)) + ";";
    if (!differ.empty()) detail += " shape or dtype differs:" + list(differ) + ";";
    detail += " (load with strict=false to associate keys and load what fits)";
    Error e(ErrorCode::kInvalidArgument, "torch.strict", detail);
    e.add_file(file);
    throw e;
  }
  return report;
}

// Copies the overlapping leading corner of `from` into `to` (same rank).
void copy_corner(at::Tensor to, at::Tensor from) {
  for (int64_t d = 0; d < to.dim(); ++d) {
    const int64_t n = std::min(to.size(d), from.size(d));
    to = to.narrow(d, 0, n);
    from = from.narrow(d, 0, n);
  }
  to.copy_(from);
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> module_state(::torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module.named_modules()) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false)) {
      if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
    }
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false)) {
      if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
    }
  }
  return out;
}

std::vector<KeyInfo> module_keys(::torch::nn::Module& module) {
  std::vector<KeyInfo> keys;
  for (const auto& [key, t] : module_state(module)) {
    auto dtype = dtype_of(t.scalar_type());
    if (!dtype) throw Error(ErrorCode::kUnsupported, "torch.dtype", "module tensor '" + key + "' has an unsupported dtype");
    keys.push_back({key, *dtype, t.sizes().vec()});
  }
  return keys;
}

PreparedLoad prepare_load(::torch::nn::Module& module, const Artifact& artifact, const StateDictKeys& found,
                          const LoadOptions& options) {
  PreparedLoad load;
  load.share_mapping = options.share_mapping;
  LoadReport& report = load.report;
  report.file = artifact.path;
  report.keys_from = found.from;
  std::vector<KeyInfo> src;
  std::unordered_map<std::string, size_t> src_tensor;
  for (const auto& [key, index] : found.keys) {
    const Tensor& t = artifact.tensors[index];
    src.push_back({key, t.dtype, t.shape});
    src_tensor.emplace(key, index);
  }
  std::unordered_map<std::string, at::Tensor> dst_tensor;
  for (const auto& [key, t] : module_state(module)) dst_tensor.emplace(key, t);
  const std::vector<KeyInfo> dst = module_keys(module);

  report.match = options.strict ? strict_pairs(src, dst, artifact.path) : match_keys(src, dst, options.match);

  // Every check before the first copy: a tensor torch cannot hold fails the whole load.
  std::set<std::string> tags;
  for (const MatchPair& p : report.match.pairs) {
    if (p.kind == MatchPair::Kind::kSkipped) continue;
    const size_t index = src_tensor.at(p.src);
    const Tensor& t = artifact.tensors[index];
    if (!scalar_type_of(t.dtype) || t.storage < 0 || t.layout != "strided" || !t.quantization.empty()) {
      Error e(ErrorCode::kUnsupported, "torch.dtype",
              "'" + p.src + "' (" + std::string(dtype_name(t.dtype)) + ", " + t.layout + ") cannot be loaded into LibTorch");
      e.add_file(artifact.path);
      throw e;
    }
    if (!t.device.empty() && t.device != "cpu") tags.insert(t.device);
    load.copies.emplace_back(index, dst_tensor.at(p.dst));
    load.partial.push_back(p.kind == MatchPair::Kind::kPartial);
  }
  report.cuda_tags.assign(tags.begin(), tags.end());
  return load;
}

void apply_load(const Artifact& artifact, PreparedLoad& load) {
  ::torch::NoGradGuard no_grad;
  std::optional<TorchTensors> mapped;
  if (load.share_mapping) mapped.emplace(artifact);
  for (size_t i = 0; i < load.copies.size(); ++i) {
    if (mapped && !load.partial[i]) {
      const size_t index = load.copies[i].first;
      at::Tensor& target = load.copies[i].second;
      if (target.device().is_cpu() && scalar_type_of(artifact.tensors[index].dtype) == target.scalar_type()) {
        at::Tensor source = mapped->tensor(index);
        if (mapped->zero_copy(index)) {
          target.set_(source);  // the module's own tensor object, now over the mapping
          ++load.report.loaded;
          ++load.report.zero_copy;
          ++load.report.shared;
          continue;
        }
      }
    }
    const TensorSourceView view(artifact, artifact.tensors[load.copies[i].first]);
    at::Tensor& target = load.copies[i].second;
    if (load.partial[i]) {
      copy_corner(target, view.tensor());
    } else {
      target.copy_(view.tensor());
    }
    ++load.report.loaded;
    if (view.zero_copy()) ++load.report.zero_copy;
  }
}

LoadReport load_state_dict(::torch::nn::Module& module, const std::string& path, const LoadOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  const Artifact artifact = open_artifact(path);
  PreparedLoad load = prepare_load(module, artifact, find_state_dict(artifact, options.select, "select"), options);
  apply_load(artifact, load);
  load.report.match.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::move(load.report);
}

std::string LoadReport::text() const {
  MatchFilesReport r;
  r.src = file;
  r.dst = "the module";
  r.src_keys_from = keys_from;
  r.dst_keys_from = "the module's parameters and buffers";
  r.match = match;
  for (const MatchPair& p : match.pairs) {
    r.src_universe.push_back(p.src);
    r.dst_universe.push_back(p.dst);
  }
  for (const std::string& k : match.self_unset) r.dst_universe.push_back(k);
  for (const std::string& k : match.other_unused) r.src_universe.push_back(k);
  return match_report_text(r);
}

void save_state_dict(::torch::nn::Module& module, const std::string& path) {
  std::vector<at::Tensor> tensors;
  Node root = Node::dict(/*ordered=*/true);
  for (const auto& [key, t] : module_state(module)) {
    root.entries.emplace_back(Node::string(key), tensor_node(tensors, t));
  }
  write_torch_file(path, root, tensors);
}

}  // namespace ptpack::libtorch
