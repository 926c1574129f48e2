// Models by name: rebuilding a module from a file without knowing its type.
//
// A C++ module type registers under a name with a factory that takes its hyper-parameters as
// JSON (ModelRegistry::add, or the PTPACK_REGISTER_MODEL macro at namespace scope). save_model()
// writes the name, the hyper-parameters, free-form metadata and the weights; load_model() reads
// them back, asks the registry for a module of that name built with those hyper-parameters, and
// loads the weights strictly. Nothing is pickled or executed: the file is a torch.save zip that
// Python reads as plain data (weights_only=True):
//   {"ptpack_model": {"format": 1, "name": "SmallCnn", "hparams": "<JSON text>"},
//    "metadata": "<JSON text>", "state_dict": OrderedDict(...)}
// Hyper-parameters are kept as JSON text so they round-trip exactly (ints stay ints). `ptpack
// info` shows the name and hyper-parameters of such files.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ptpack::libtorch {

using ModulePtr = std::shared_ptr<::torch::nn::Module>;
// Builds a module from its hyper-parameters; throws (anything) for bad ones.
using ModelFactory = std::function<ModulePtr(const nlohmann::json& hparams)>;

struct Model {
  std::string name;
  nlohmann::json hparams = nlohmann::json::object();
  ModulePtr module;
  nlohmann::json metadata = nlohmann::json::object();  // free-form (training run, metrics...)
};

class ModelRegistry {
 public:
  // The process-wide registry the macro and load_model() use.
  static ModelRegistry& global();

  // Throws Error(kInvalidArgument, "torch.registry-duplicate") when the name is taken.
  void add(const std::string& name, ModelFactory factory);
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted

  // A new module of that name. Throws Error(kNotFound, "torch.registry-unknown") naming the
  // registered names, or Error(kInvalidArgument, "torch.hparams") carrying the factory's message.
  Model create(const std::string& name, const nlohmann::json& hparams) const;

 private:
  std::vector<std::pair<std::string, ModelFactory>> factories_;
};

// Writes model.name, model.hparams, model.metadata and the module's state dict, atomically.
void save_model(const Model& model, const std::string& path);

// The name, hyper-parameters and metadata of a file save_model wrote, without building anything.
// Throws Error(kInvalidArgument, "torch.not-a-model") for other files.
Model read_model_header(const std::string& path);

// Builds the registered module and loads its weights strictly (ptpack/libtorch/state_dict.h).
Model load_model(const std::string& path, const ModelRegistry& registry = ModelRegistry::global());

}  // namespace ptpack::libtorch

// Registers FACTORY (a ModelFactory) under NAME (an identifier, used as the name) when the program
// starts. Use at namespace scope in a .cc file linked into the program.
#define PTPACK_REGISTER_MODEL(NAME, FACTORY)                                          \
  static const bool ptpack_registered_##NAME = [] {                                   \
    ::ptpack::libtorch::ModelRegistry::global().add(#NAME, FACTORY);                     \
    return true;                                                                      \
  }()
