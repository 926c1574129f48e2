// ptpack_torch_check: the C++ side of the bridge's interop suite (tests/bridge). Each command does
// one thing the suite then checks against stock Python torch:
//
//   forward WEIGHTS INPUT OUTPUT [--select S] [--partial] [--hparams JSON]
//       load WEIGHTS into SmallCnn (strict unless --partial), run it in eval mode on INPUT's tensor
//       "input", write {"output": ...} to OUTPUT; print the load report.
//   train DIR --optimizer sgd|adam --steps N --data DATA [--hparams JSON] [--seed S]
//       resume from DIR's newest checkpoint when there is one (else a fresh model seeded with S),
//       take N optimizer steps on DATA's "x"/"y" batches, checkpoint into DIR, and write
//       DIR/weights.pt with save_state_dict.
//   save-models DIR          save_model() SmallCnn, Mlp and TextRnn into DIR/<name>.ptm
//   load-models FILE...      load_model() each file (no type named) and print name, hyper-
//                            parameters, parameter count and the sum of a forward pass
// Exit 0 on success, 2 on any error (message on stderr).
#include <torch/torch.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "example_models.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/state_dict.h"
#include "ptpack/libtorch/checkpoint.h"
#include "ptpack/libtorch/models.h"
#include "ptpack/libtorch/state_dict.h"
#include "ptpack/libtorch/tensors.h"

namespace {

using ptpack::examples::SmallCnn;
using ptpack::examples::SmallCnnOptions;

struct Args {
  std::vector<std::string> positional;
  std::string select, hparams = "{}", optimizer = "sgd", data;
  bool partial = false;
  long steps = 0;
  unsigned long long seed = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--select") a.select = value();
    else if (arg == "--hparams") a.hparams = value();
    else if (arg == "--optimizer") a.optimizer = value();
    else if (arg == "--data") a.data = value();
    else if (arg == "--steps") a.steps = std::stol(value());
    else if (arg == "--seed") a.seed = std::stoull(value());
    else if (arg == "--partial") a.partial = true;
    else if (arg.rfind("--", 0) == 0) throw std::invalid_argument("unknown option " + arg);
    else a.positional.push_back(arg);
  }
  return a;
}

// A tensor of a file by its state-dict-like key ("input", "x").
at::Tensor read_tensor(const std::string& path, const std::string& key) {
  const ptpack::Artifact a = ptpack::open_artifact(path);
  for (const auto& [name, index] : ptpack::find_state_dict(a, std::nullopt).keys) {
    if (name == key) {
      ptpack::libtorch::TorchTensors tensors(a);
      return tensors.tensor(index).clone();
    }
  }
  throw std::invalid_argument(path + " has no tensor '" + key + "'");
}

int forward(const Args& a) {
  if (a.positional.size() != 3) throw std::invalid_argument("forward WEIGHTS INPUT OUTPUT");
  SmallCnn model(SmallCnnOptions::from_json(nlohmann::json::parse(a.hparams)));
  ptpack::libtorch::LoadOptions options;
  if (!a.select.empty()) options.select = a.select;
  options.strict = !a.partial;
  const ptpack::libtorch::LoadReport report = ptpack::libtorch::load_state_dict(*model, a.positional[0], options);
  std::printf("%s", report.text().c_str());
  std::printf("loaded %zu zero_copy %zu cuda_tags", report.loaded, report.zero_copy);
  for (const std::string& t : report.cuda_tags) std::printf(" %s", t.c_str());
  std::printf("\n");
  model->eval();
  ::torch::NoGradGuard no_grad;
  const at::Tensor out = model->forward(read_tensor(a.positional[1], "input"));
  std::vector<at::Tensor> tensors;
  ptpack::Node root = ptpack::Node::dict(false);
  root.entries.emplace_back(ptpack::Node::string("output"), ptpack::libtorch::tensor_node(tensors, out));
  ptpack::libtorch::write_torch_file(a.positional[2], root, tensors);
  return 0;
}

int train(const Args& a) {
  if (a.positional.size() != 1 || a.data.empty()) throw std::invalid_argument("train DIR --data DATA --steps N");
  ::torch::set_num_threads(1);
  ::torch::manual_seed(a.seed);
  SmallCnn model(SmallCnnOptions::from_json(nlohmann::json::parse(a.hparams)));
  std::unique_ptr<::torch::optim::Optimizer> optimizer;
  if (a.optimizer == "sgd") {
    optimizer = std::make_unique<::torch::optim::SGD>(model->parameters(), ::torch::optim::SGDOptions(0.05).momentum(0.9));
  } else if (a.optimizer == "adam") {
    optimizer = std::make_unique<::torch::optim::Adam>(model->parameters(), ::torch::optim::AdamOptions(1e-3));
  } else {
    throw std::invalid_argument("--optimizer sgd|adam");
  }
  ptpack::libtorch::CheckpointManager checkpoints(a.positional[0], *model, optimizer.get());
  ptpack::libtorch::Progress progress;
  if (auto resumed = checkpoints.resume()) progress = *resumed;
  for (const std::string& s : checkpoints.skipped()) std::fprintf(stderr, "skipped %s\n", s.c_str());
  const at::Tensor x = read_tensor(a.data, "x"), y = read_tensor(a.data, "y");
  const int64_t batch = 32, batches = x.size(0) / batch;
  model->train();
  for (long i = 0; i < a.steps; ++i) {
    const int64_t b = progress.step % batches;
    const at::Tensor loss = ::torch::nn::functional::cross_entropy(model->forward(x.slice(0, b * batch, (b + 1) * batch)),
                                                   y.slice(0, b * batch, (b + 1) * batch));
    optimizer->zero_grad();
    loss.backward();
    optimizer->step();
    ++progress.step;
    progress.metrics["loss"] = loss.item<double>();
  }
  std::printf("%s step %lld\n", checkpoints.save(progress).c_str(), (long long)progress.step);
  ptpack::libtorch::save_state_dict(*model, a.positional[0] + "/weights.pt");
  return 0;
}

int save_models(const Args& a) {
  if (a.positional.size() != 1) throw std::invalid_argument("save-models DIR");
  ::torch::manual_seed(7);
  const std::vector<std::pair<std::string, nlohmann::json>> models = {
      {"SmallCnn", {{"channels", 4}, {"classes", 3}, {"side", 8}, {"dropout", 0.0}}},
      {"Mlp", {{"inputs", 6}, {"hidden", {16, 8}}, {"outputs", 2}}},
      {"TextRnn", {{"vocabulary", 30}, {"embedding", 6}, {"hidden", 10}, {"classes", 4}}},
  };
  for (const auto& [name, hparams] : models) {
    ptpack::libtorch::Model m = ptpack::libtorch::ModelRegistry::global().create(name, hparams);
    m.metadata = {{"written_by", "ptpack_torch_check"}, {"epoch", 3}};
    ptpack::libtorch::save_model(m, a.positional[0] + "/" + name + ".ptm");
  }
  return 0;
}

at::Tensor example_input(const std::string& name, const nlohmann::json& h) {
  auto g = at::make_generator<at::CPUGeneratorImpl>(11);
  if (name == "SmallCnn") return at::randn({2, 1, h.at("side").get<int64_t>(), h.at("side").get<int64_t>()}, g);
  if (name == "Mlp") return at::randn({2, h.at("inputs").get<int64_t>()}, g);
  return at::randint(h.at("vocabulary").get<int64_t>(), {2, 5}, g, at::kLong);
}

int load_models(const Args& a) {
  for (const std::string& path : a.positional) {
    ptpack::libtorch::Model m = ptpack::libtorch::load_model(path);
    m.module->eval();
    ::torch::NoGradGuard no_grad;
    size_t count = 0;
    for (const auto& p : m.module->parameters()) count += size_t(p.numel());
    const double sum = ptpack::examples::forward_any(*m.module, example_input(m.name, m.hparams)).sum().item<double>();
    std::printf("%s name=%s hparams=%s metadata=%s parameters=%zu forward_sum=%.9g\n", path.c_str(), m.name.c_str(),
                m.hparams.dump().c_str(), m.metadata.dump().c_str(), count, sum);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: ptpack_torch_check forward|train|save-models|load-models ...\n");
    return 2;
  }
  try {
    const Args a = parse(argc, argv);
    const std::string command = argv[1];
    if (command == "forward") return forward(a);
    if (command == "train") return train(a);
    if (command == "save-models") return save_models(a);
    if (command == "load-models") return load_models(a);
    throw std::invalid_argument("unknown command " + command);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ptpack_torch_check: %s\n", e.what());
    return 2;
  }
}
