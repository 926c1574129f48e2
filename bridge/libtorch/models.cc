// Models by name (ptpack/libtorch/models.h).
#include "ptpack/libtorch/models.h"

#include <algorithm>

#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/libtorch/state_dict.h"
#include "ptpack/libtorch/tensors.h"
#include "tree_access.h"

namespace ptpack::libtorch {

namespace {
constexpr int64_t kModelFormat = 1;
}

ModelRegistry& ModelRegistry::global() {
  static ModelRegistry registry;
  return registry;
}

void ModelRegistry::add(const std::string& name, ModelFactory factory) {
  if (contains(name)) throw Error(ErrorCode::kInvalidArgument, "torch.registry-duplicate", "model name '" + name + "' is already registered");
  factories_.emplace_back(name, std::move(factory));
}

bool ModelRegistry::contains(const std::string& name) const {
  return std::any_of(factories_.begin(), factories_.end(), [&](const auto& f) { return f.first == name; });
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& f : factories_) out.push_back(f.first);
  std::sort(out.begin(), out.end());
  return out;
}

Model ModelRegistry::create(const std::string& name, const nlohmann::json& hparams) const {
  auto it = std::find_if(factories_.begin(), factories_.end(), [&](const auto& f) { return f.first == name; });
  if (it == factories_.end()) {
    std::string known;
    for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kNotFound, "torch.registry-unknown",
                "no model is registered as '" + printable(name) + "' (registered: " + (known.empty() ? "none" : known) + ")");
  }
  Model model;
  model.name = name;
  model.hparams = hparams;
  try {
    model.module = it->second(hparams);
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, "torch.hparams",
                "model '" + name + "' cannot be built from hyper-parameters " + printable(hparams.dump(), 200) + ": " + e.what());
  }
  if (!model.module) throw Error(ErrorCode::kInvalidArgument, "torch.hparams", "the factory of '" + name + "' returned no module");
  return model;
}

void save_model(const Model& model, const std::string& path) {
  if (!model.module) throw Error(ErrorCode::kInvalidArgument, "torch.not-a-model", "save_model: the model has no module");
  std::vector<at::Tensor> tensors;
  Node root = Node::dict(false);
  Node header = Node::dict(false);
  tree::put(header, "format", tree::integer(kModelFormat));
  tree::put(header, "name", Node::string(model.name));
  tree::put(header, "hparams", Node::string(model.hparams.dump()));
  tree::put(root, "ptpack_model", std::move(header));
  tree::put(root, "metadata", Node::string(model.metadata.dump()));
  Node state = Node::dict(true);
  for (const auto& [key, t] : module_state(*model.module)) tree::put(state, key, tensor_node(tensors, t));
  tree::put(root, "state_dict", std::move(state));
  write_torch_file(path, root, tensors);
}

namespace {

nlohmann::json parse_json(const std::string& text, const std::string& what, const std::string& path) {
  try {
    // Nesting is refused past limits::kMaxJsonDepth while parsing (the parser itself does not
    // recurse, but dump() and the values' copies do).
    return nlohmann::json::parse(text, [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
      if (depth > limits::kMaxJsonDepth) {
        throw Error(ErrorCode::kLimitExceeded, "kMaxJsonDepth", "JSON nests deeper than " + std::to_string(limits::kMaxJsonDepth) + " levels");
      }
      return true;
    });
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    Error err(ErrorCode::kCorrupt, "torch.model-json", what + " is not valid JSON: " + e.what());
    err.add_file(path);
    throw err;
  }
}

}  // namespace

namespace {

// The header of an opened model file (read_model_header and load_model share one open).
Model header_of(const Artifact& artifact, const std::string& path) {
  const Tree t = build_tree(artifact);
  const Node* header = tree::find(t.root, "ptpack_model");
  if (!header || header->kind != Node::Kind::kDict) {
    Error e(ErrorCode::kInvalidArgument, "torch.not-a-model", "the file was not written by save_model (no 'ptpack_model')");
    e.add_file(path);
    throw e;
  }
  try {
    const int64_t format = tree::whole(tree::get(*header, "format", "torch.not-a-model", "ptpack_model"), "ptpack_model.format");
    if (format != kModelFormat) {
      throw Error(ErrorCode::kUnsupported, "torch.model-format", "model file format " + std::to_string(format) + " (this ptpack reads 1)");
    }
    Model model;
    model.name = tree::text(tree::get(*header, "name", "torch.not-a-model", "ptpack_model"), "ptpack_model.name");
    const std::string& hparams = tree::text(tree::get(*header, "hparams", "torch.not-a-model", "ptpack_model"), "ptpack_model.hparams");
    if (hparams.size() > (1u << 20)) throw Error(ErrorCode::kLimitExceeded, "torch.model-json", "hyper-parameters over 1 MiB");
    model.hparams = parse_json(hparams, "ptpack_model.hparams", path);
    if (const Node* m = tree::find(t.root, "metadata")) model.metadata = parse_json(tree::text(*m, "metadata"), "metadata", path);
    return model;
  } catch (Error& e) {
    e.add_file(path);
    throw;
  }
}

}  // namespace

Model read_model_header(const std::string& path) { return header_of(open_artifact(path), path); }

Model load_model(const std::string& path, const ModelRegistry& registry) {
  const Artifact artifact = open_artifact(path);
  Model header = header_of(artifact, path);
  Model model;
  try {
    model = registry.create(header.name, header.hparams);
  } catch (Error& e) {
    e.add_file(path);
    throw;
  }
  model.metadata = std::move(header.metadata);
  LoadOptions options;
  options.select = "state_dict";
  PreparedLoad load = prepare_load(*model.module, artifact, find_state_dict(artifact, options.select, "state_dict"), options);
  apply_load(artifact, load);
  return model;
}

}  // namespace ptpack::libtorch
