// bridge_load_bench: loading a Python checkpoint into a LibTorch module's parameters, by ptpack's
// bridge and by LibTorch's own routes (bench/bridge_load.sh runs it; BENCHMARKS.md has the figures).
//
//   bridge_load_bench MODE FILE [--keys STATE_DICT_FILE] [--prefault] [--check]
//     ptpack       ptpack::libtorch::load_state_dict(module, FILE)
//     pickle_load  FILE's bytes read into a std::vector<char>, torch::pickle_load, each entry of the
//                  dict copied into the module's tensor of that key
//     jit_load     torch::jit::load(FILE) (a TorchScript export of the same model), its
//                  named_parameters and named_buffers copied into the module
//     ptpack_map   load_state_dict with LoadOptions::share_mapping: the module's tensors are
//                  pointed (set_) at the file's copy-on-write mapping instead of being copied
//                  into, as Python's torch.load(mmap=True) + load_state_dict(assign=True) do in
//                  torch >= 2.1
//     none         builds the module and loads nothing: the process floor (LibTorch's start-up,
//                  reading the keys, exit) of the three routes
//
// Every mode first builds the same module: the keys and shapes of FILE's state dict (or of
// --keys), read by ptpack (metadata only), become nested torch::nn::Modules, one per dotted
// component, holding parameters (buffers for BatchNorm statistics and integer tensors) made with
// at::empty. No initialisation runs, so building costs the same for every route and is timed
// apart from the load. Its memory is first touched by the load, as in a program that builds the
// module only to load it; --prefault zeroes it while building (a model whose initialisation ran),
// so the load's time is the route's own work. Prints one JSON line:
//   {"mode", "seconds_keys", "seconds_build", "seconds_load", "seconds_total", "tensors", ...}
// seconds_total runs from main() to the end of the load (keys + build + load; not process start-up,
// library loading or exit). --check adds "checksum": sum over the module's tensors in key order of
// (index + 1) * tensor.sum(float64), after the timing, so runs compare equal across routes (and with
// bench/python_load.py --check) and a route that loads nothing cannot win.
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/libtorch/state_dict.h"
#include "ptpack/libtorch/tensors.h"
#include "ptpack/state_dict.h"

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct KeyShape {
  std::string key;
  at::ScalarType type;
  std::vector<int64_t> shape;
};

std::vector<KeyShape> read_keys(const std::string& path) {
  const ptpack::Artifact artifact = ptpack::open_artifact(path);
  const ptpack::StateDictKeys found = ptpack::find_state_dict(artifact, std::nullopt);
  std::vector<KeyShape> keys;
  for (const auto& [key, index] : found.keys) {
    const ptpack::Tensor& t = artifact.tensors[index];
    auto type = ptpack::libtorch::scalar_type_of(t.dtype);
    if (!type) throw std::runtime_error("key " + key + " has a dtype LibTorch cannot hold");
    keys.push_back({key, *type, t.shape});
  }
  return keys;
}

bool is_buffer(const std::string& name, at::ScalarType type) {
  return name == "running_mean" || name == "running_var" || name == "num_batches_tracked" ||
         !at::isFloatingType(type);
}

// One torch::nn::Module per dotted prefix; leaves registered with uninitialised storage.
std::shared_ptr<torch::nn::Module> build_module(const std::vector<KeyShape>& keys) {
  auto root = std::make_shared<torch::nn::Module>();
  std::unordered_map<std::string, std::shared_ptr<torch::nn::Module>> by_path{{"", root}};
  for (const KeyShape& k : keys) {
    std::shared_ptr<torch::nn::Module> parent = root;
    std::string path;
    size_t begin = 0;
    for (size_t dot = k.key.find('.'); dot != std::string::npos; dot = k.key.find('.', begin)) {
      const std::string part = k.key.substr(begin, dot - begin);
      path += (path.empty() ? "" : ".") + part;
      auto [it, added] = by_path.try_emplace(path);
      if (added) it->second = parent->register_module(part, std::make_shared<torch::nn::Module>());
      parent = it->second;
      begin = dot + 1;
    }
    const std::string name = k.key.substr(begin);
    at::Tensor t = at::empty(k.shape, at::TensorOptions().dtype(k.type));
    if (is_buffer(name, k.type)) {
      parent->register_buffer(name, t);
    } else {
      parent->register_parameter(name, t);
    }
  }
  return root;
}

std::unordered_map<std::string, at::Tensor> module_tensors(torch::nn::Module& module) {
  std::unordered_map<std::string, at::Tensor> out;
  for (auto& [key, t] : ptpack::libtorch::module_state(module)) out.emplace(key, t);
  return out;
}

void copy_into(std::unordered_map<std::string, at::Tensor>& dst, const std::string& key,
               const at::Tensor& value) {
  auto it = dst.find(key);
  if (it == dst.end()) throw std::runtime_error("'" + key + "' is not a key of the module");
  if (!it->second.sizes().equals(value.sizes())) throw std::runtime_error("'" + key + "': shapes differ");
  it->second.copy_(value);
}

std::vector<char> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<char> bytes(size_t(in.tellg()));
  in.seekg(0);
  if (!in.read(bytes.data(), std::streamsize(bytes.size()))) throw std::runtime_error("cannot read " + path);
  return bytes;
}

double checksum(torch::nn::Module& module) {
  auto state = ptpack::libtorch::module_state(module);
  std::sort(state.begin(), state.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  double sum = 0;
  for (size_t i = 0; i < state.size(); ++i)
    sum += double(i + 1) * state[i].second.sum(at::kDouble).item<double>();
  return sum;
}

}  // namespace

int main(int argc, char** argv) try {
  const auto start = Clock::now();
  std::vector<std::string> args(argv + 1, argv + argc);
  bool check = false, prefault = false;
  std::string keys_file;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--check")
      check = true;
    else if (args[i] == "--prefault")
      prefault = true;
    else if (args[i] == "--keys" && i + 1 < args.size())
      keys_file = args[++i];
    else
      positional.push_back(args[i]);
  }
  if (positional.size() != 2) {
    std::fprintf(stderr,
                 "usage: bridge_load_bench ptpack|ptpack_map|pickle_load|jit_load|none FILE [--keys "
                 "STATE_DICT_FILE] [--prefault] [--check]\n");
    return 2;
  }
  const std::string mode = positional[0], file = positional[1];
  if (keys_file.empty()) keys_file = file;

  const std::vector<KeyShape> keys = read_keys(keys_file);
  const double seconds_keys = seconds_since(start);
  auto t0 = Clock::now();
  std::shared_ptr<torch::nn::Module> module = build_module(keys);
  if (prefault) {
    for (auto& [key, t] : ptpack::libtorch::module_state(*module)) t.detach().zero_();
  }
  const double seconds_build = seconds_since(t0);

  torch::NoGradGuard no_grad;
  std::string extra;  // route-specific phases, as JSON members
  size_t tensors = 0;
  t0 = Clock::now();
  if (mode == "ptpack") {
    const ptpack::libtorch::LoadReport report = ptpack::libtorch::load_state_dict(*module, file);
    tensors = report.loaded;
    extra = ", \"zero_copy\": " + std::to_string(report.zero_copy);
  } else if (mode == "pickle_load") {
    auto dst = module_tensors(*module);
    std::vector<char> bytes = read_file(file);
    const double read = seconds_since(t0);
    auto t1 = Clock::now();
    const c10::IValue value = torch::pickle_load(bytes);
    const double parse = seconds_since(t1);
    bytes = std::vector<char>();  // as a careful caller would: the parsed tensors own copies
    t1 = Clock::now();
    for (const auto& entry : value.toGenericDict()) {
      copy_into(dst, entry.key().toStringRef(), entry.value().toTensor());
      ++tensors;
    }
    extra = ", \"seconds_read\": " + std::to_string(read) +
            ", \"seconds_pickle_load\": " + std::to_string(parse) +
            ", \"seconds_copy\": " + std::to_string(seconds_since(t1));
  } else if (mode == "jit_load") {
    auto dst = module_tensors(*module);
    torch::jit::Module loaded = torch::jit::load(file);
    const double load = seconds_since(t0);
    const auto t1 = Clock::now();
    for (const auto& p : loaded.named_parameters(/*recurse=*/true)) {
      copy_into(dst, p.name, p.value);
      ++tensors;
    }
    for (const auto& b : loaded.named_buffers(/*recurse=*/true)) {
      copy_into(dst, b.name, b.value);
      ++tensors;
    }
    extra = ", \"seconds_jit_load\": " + std::to_string(load) +
            ", \"seconds_copy\": " + std::to_string(seconds_since(t1));
  } else if (mode == "ptpack_map") {
    ptpack::libtorch::LoadOptions options;
    options.share_mapping = true;
    const ptpack::libtorch::LoadReport report = ptpack::libtorch::load_state_dict(*module, file, options);
    tensors = report.loaded;
    extra = ", \"zero_copy\": " + std::to_string(report.zero_copy) + ", \"shared\": " + std::to_string(report.shared);
  } else if (mode == "none") {
    tensors = keys.size();
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  const double seconds_load = seconds_since(t0);
  const double seconds_total = seconds_since(start);
  if (tensors != keys.size()) {
    std::fprintf(stderr, "%s loaded %zu tensors of %zu\n", mode.c_str(), tensors, keys.size());
    return 1;
  }
  if (check) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", checksum(*module));
    extra += std::string(", \"checksum\": \"") + buf + "\"";
  }
  std::printf(
      "{\"mode\": \"%s\", \"seconds_keys\": %.4f, \"seconds_build\": %.4f, \"seconds_load\": %.4f, "
      "\"seconds_total\": %.4f, \"tensors\": %zu, \"prefault\": %s%s}\n",
      mode.c_str(), seconds_keys, seconds_build, seconds_load, seconds_total, tensors,
      prefault ? "true" : "false", extra.c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bridge_load_bench: %s\n", e.what());
  return 2;
}
