// Unit tests of the bridge that need no Python: round trips through ptpack's own reader, the
// registry's errors, the checkpoint manager's retention and its handling of broken files.
// Interop with stock Python torch is tested by tests/bridge/run_bridge_tests.py.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "example_models.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/libtorch/checkpoint.h"
#include "ptpack/libtorch/models.h"
#include "ptpack/libtorch/optimizer_state.h"
#include "ptpack/libtorch/state_dict.h"
#include "ptpack/libtorch/tensors.h"

namespace fs = std::filesystem;
using namespace ptpack;
namespace pt = ptpack::libtorch;

namespace {

// Every test's files live under one directory per process, removed when the tests end.
const fs::path& test_root() {
  static const fs::path root = fs::temp_directory_path() / ("ptpack_torch_test_" + std::to_string(::getpid()));
  return root;
}

struct RemoveTestRoot : ::testing::Environment {
  void TearDown() override { fs::remove_all(test_root()); }
};
const auto* const remove_test_root = ::testing::AddGlobalTestEnvironment(new RemoveTestRoot);

std::string temp_dir(const std::string& name) {
  const fs::path p = test_root() / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

bool same_state(::torch::nn::Module& a, ::torch::nn::Module& b) {
  auto x = pt::module_state(a), y = pt::module_state(b);
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].first != y[i].first || !x[i].second.equal(y[i].second)) return false;
  }
  return true;
}

}  // namespace

TEST(TorchTensors, SavedTensorsReadBackWithStridesOffsetsAndSharing) {
  const std::string dir = temp_dir("tensors");
  at::Tensor base = at::arange(24, at::kFloat).reshape({4, 6});
  std::vector<at::Tensor> tensors;
  Node root = Node::dict(true);
  root.entries.emplace_back(Node::string("base"), pt::tensor_node(tensors, base));
  root.entries.emplace_back(Node::string("t"), pt::tensor_node(tensors, base.t()));
  root.entries.emplace_back(Node::string("slice"), pt::tensor_node(tensors, base.narrow(1, 2, 3)));
  root.entries.emplace_back(Node::string("half"), pt::tensor_node(tensors, at::ones({3}, at::kHalf)));
  root.entries.emplace_back(Node::string("scalar"), pt::tensor_node(tensors, at::scalar_tensor(2.5, at::kDouble)));
  pt::write_torch_file(dir + "/t.pt", root, tensors);

  const Artifact a = open_artifact(dir + "/t.pt");
  ASSERT_EQ(a.tensors.size(), 5u);
  EXPECT_EQ(a.storages.size(), 3u);  // base, its transpose and its slice share one storage
  pt::TorchTensors read(a);
  for (size_t i = 0; i < tensors.size(); ++i) {
    at::Tensor t = read.tensor(i);
    EXPECT_TRUE(read.zero_copy(i));
    EXPECT_EQ(t.scalar_type(), tensors[i].scalar_type());
    EXPECT_EQ(t.sizes(), tensors[i].sizes());
    EXPECT_EQ(t.strides(), tensors[i].strides());
    EXPECT_EQ(t.storage_offset(), tensors[i].storage_offset());
    EXPECT_TRUE(t.equal(tensors[i])) << a.tensors[i].path;
  }
  at::Tensor b = read.tensor(0), tr = read.tensor(1);
  EXPECT_TRUE(b.storage().is_alias_of(tr.storage()));
  // Writable: the mapping is private, the file unchanged.
  b.fill_(7);
  EXPECT_EQ(tr[0][0].item<float>(), 7);
  const Artifact again = open_artifact(dir + "/t.pt");
  pt::TorchTensors fresh(again);
  EXPECT_EQ(fresh.tensor(0)[0][0].item<float>(), 0);
}

TEST(StateDict, SaveThenLoadIntoAnotherInstanceGivesEqualWeights) {
  const std::string dir = temp_dir("state");
  ::torch::manual_seed(1);
  examples::SmallCnn a, b;
  a->bn1->running_mean.fill_(0.5);
  ASSERT_FALSE(same_state(*a, *b));
  pt::save_state_dict(*a, dir + "/a.pt");
  const pt::LoadReport r = pt::load_state_dict(*b, dir + "/a.pt");
  EXPECT_TRUE(same_state(*a, *b));
  EXPECT_EQ(r.loaded, pt::module_state(*a).size());
  EXPECT_EQ(r.zero_copy, r.loaded);
}

TEST(StateDict, StrictRefusesOtherShapesAndKeysAndChangesNothing) {
  const std::string dir = temp_dir("strict");
  examples::SmallCnnOptions wide;
  wide.channels = 4;
  examples::SmallCnn a(wide), b;
  pt::save_state_dict(*a, dir + "/a.pt");
  const at::Tensor before = b->conv1->weight.clone();
  try {
    pt::load_state_dict(*b, dir + "/a.pt");
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), "torch.strict");
    EXPECT_NE(std::string(e.what()).find("conv1.weight (file float32[4, 1, 3, 3], module float32[8, 1, 3, 3])"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(before.equal(b->conv1->weight));
}

TEST(StateDict, PartialLoadsWhatFitsAndReportsTheRest) {
  const std::string dir = temp_dir("partial");
  examples::SmallCnnOptions other;
  other.classes = 4;  // the head differs
  examples::SmallCnn a(other), b;
  pt::save_state_dict(*a, dir + "/a.pt");
  pt::LoadOptions o;
  o.strict = false;
  const pt::LoadReport r = pt::load_state_dict(*b, dir + "/a.pt", o);
  EXPECT_EQ(r.match.count(MatchPair::Kind::kFull), pt::module_state(*b).size() - 2);
  EXPECT_EQ(r.match.count(MatchPair::Kind::kSkipped), 2u);  // fc.weight and fc.bias, as a unit
  EXPECT_TRUE(a->conv2->weight.equal(b->conv2->weight));
  EXPECT_FALSE(b->fc->bias.narrow(0, 0, 4).equal(a->fc->bias));

  o.match.mangle = true;
  const pt::LoadReport m = pt::load_state_dict(*b, dir + "/a.pt", o);
  EXPECT_EQ(m.match.count(MatchPair::Kind::kPartial), 2u);
  EXPECT_TRUE(b->fc->bias.narrow(0, 0, 4).equal(a->fc->bias));
}

TEST(Models, ThreeArchitecturesComeBackByName) {
  const std::string dir = temp_dir("models");
  const std::vector<std::pair<std::string, nlohmann::json>> specs = {
      {"SmallCnn", {{"channels", 4}, {"side", 8}}},
      {"Mlp", {{"inputs", 5}, {"hidden", {7}}, {"outputs", 2}}},
      {"TextRnn", {{"vocabulary", 20}}},
  };
  for (const auto& [name, hparams] : specs) {
    pt::Model saved = pt::ModelRegistry::global().create(name, hparams);
    saved.metadata = {{"note", name}};
    pt::save_model(saved, dir + "/" + name + ".ptm");
    const pt::Model loaded = pt::load_model(dir + "/" + name + ".ptm");
    EXPECT_EQ(loaded.name, name);
    EXPECT_EQ(loaded.hparams, hparams);
    EXPECT_EQ(loaded.metadata.at("note"), name);
    EXPECT_TRUE(same_state(*saved.module, *loaded.module)) << name;
  }
}

TEST(Models, UnknownNamesAndBadHyperParametersAreClearErrors) {
  const std::string dir = temp_dir("badmodels");
  try {
    pt::ModelRegistry::global().create("NoSuchNet", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), "torch.registry-unknown");
    EXPECT_NE(std::string(e.what()).find("registered: Mlp, SmallCnn, TextRnn"), std::string::npos) << e.what();
  }
  try {
    pt::ModelRegistry::global().create("SmallCnn", {{"channels", -3}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), "torch.hparams");
    EXPECT_NE(std::string(e.what()).find("'channels' must be a positive integer"), std::string::npos) << e.what();
  }
  // A model file naming a type this program does not know.
  pt::ModelRegistry other;
  other.add("Lonely", [](const nlohmann::json&) { return std::make_shared<::torch::nn::Module>(); });
  pt::save_model(pt::ModelRegistry::global().create("Mlp", nlohmann::json::object()), dir + "/mlp.ptm");
  try {
    pt::load_model(dir + "/mlp.ptm", other);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), "torch.registry-unknown");
    EXPECT_EQ(e.file(), dir + "/mlp.ptm");
  }
  // A plain state dict is not a model file.
  examples::SmallCnn cnn;
  pt::save_state_dict(*cnn, dir + "/plain.pt");
  try {
    pt::load_model(dir + "/plain.pt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), "torch.not-a-model");
  }
  EXPECT_THROW(other.add("Lonely", nullptr), Error);
}

TEST(Optimizer, AdamStateRoundTripsInPythonLayout) {
  ::torch::manual_seed(3);
  examples::Mlp net(nlohmann::json{{"inputs", 3}, {"hidden", {4}}, {"outputs", 2}});
  ::torch::optim::Adam adam(net->parameters(), ::torch::optim::AdamOptions(0.01).amsgrad(true));
  for (int i = 0; i < 3; ++i) {
    adam.zero_grad();
    net->forward(::torch::randn({5, 3})).sum().backward();
    adam.step();
  }
  std::vector<at::Tensor> tensors;
  const Node tree = pt::optimizer_state_tree(adam, tensors);
  ::torch::optim::Adam fresh(net->parameters(), ::torch::optim::AdamOptions(0.5));
  pt::load_optimizer_state(fresh, tree, [&](int64_t i) { return tensors.at(size_t(i)); });
  EXPECT_DOUBLE_EQ(static_cast<::torch::optim::AdamOptions&>(fresh.param_groups()[0].options()).lr(), 0.01);
  EXPECT_TRUE(static_cast<::torch::optim::AdamOptions&>(fresh.param_groups()[0].options()).amsgrad());
  for (const auto& p : net->parameters()) {
    const std::string key = c10::guts::to_string(p.unsafeGetTensorImpl());
    auto& a = static_cast<::torch::optim::AdamParamState&>(*adam.state().at(key));
    auto& b = static_cast<::torch::optim::AdamParamState&>(*fresh.state().at(key));
    EXPECT_EQ(a.step(), b.step());
    EXPECT_TRUE(a.exp_avg().equal(b.exp_avg()));
    EXPECT_TRUE(a.max_exp_avg_sq().equal(b.max_exp_avg_sq()));
  }
  // A group count that does not fit is refused before anything changes.
  ::torch::optim::SGD sgd(net->parameters(), ::torch::optim::SGDOptions(0.1));
  EXPECT_THROW(pt::load_optimizer_state(sgd, tree, [&](int64_t i) { return tensors.at(size_t(i)); }), Error);
}

TEST(Checkpoints, RetentionKeepsLastAndBest) {
  const std::string dir = temp_dir("retention");
  examples::SmallCnn model;
  ::torch::optim::SGD sgd(model->parameters(), ::torch::optim::SGDOptions(0.1).momentum(0.9));
  pt::CheckpointOptions o;
  o.keep_last = 2;
  o.keep_best = 1;
  o.best_metric = "loss";
  pt::CheckpointManager m(dir, *model, &sgd, nullptr, o);
  const double losses[] = {5, 1, 4, 3, 6};
  for (int i = 0; i < 5; ++i) m.save({i + 1, (i + 1) * 10, {{"loss", losses[i]}}});
  std::vector<int64_t> steps;
  for (const auto& f : m.list()) steps.push_back(f.progress.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{20, 40, 50}));  // best (loss 1) and the last two
}

TEST(Checkpoints, ResumeSkipsBrokenNewestAndRestoresEverything) {
  const std::string dir = temp_dir("resume");
  ::torch::manual_seed(5);
  examples::SmallCnn model;
  ::torch::optim::SGD sgd(model->parameters(), ::torch::optim::SGDOptions(0.1).momentum(0.9));
  ::torch::optim::StepLR schedule(sgd, 2, 0.5);
  pt::CheckpointManager m(dir, *model, &sgd, &schedule);
  for (int i = 0; i < 3; ++i) {
    sgd.zero_grad();
    model->forward(::torch::randn({2, 1, 16, 16})).sum().backward();
    sgd.step();
    schedule.step();
  }
  m.save({3, 3, {{"loss", 0.5}}});
  const at::Tensor expected_draw = ::torch::randn({4});  // the generator after the save
  // A newer checkpoint cut short (as by a copy that died), and a dead writer's temporary.
  const std::string saved = dir + "/checkpoint-000000000003.pt";
  fs::copy_file(saved, dir + "/checkpoint-000000000009.pt");
  fs::resize_file(dir + "/checkpoint-000000000009.pt", fs::file_size(saved) / 2);
  std::ofstream(dir + "/.checkpoint-000000000010.pt.ptpack-0badf00d") << "partial";

  ::torch::manual_seed(99);
  examples::SmallCnn fresh;
  ::torch::optim::SGD fresh_sgd(fresh->parameters(), ::torch::optim::SGDOptions(0.7));
  ::torch::optim::StepLR fresh_schedule(fresh_sgd, 2, 0.5);
  pt::CheckpointManager r(dir, *fresh, &fresh_sgd, &fresh_schedule);
  const auto progress = r.resume();
  ASSERT_TRUE(progress);
  EXPECT_EQ(progress->step, 3);
  EXPECT_DOUBLE_EQ(progress->metrics.at("loss"), 0.5);
  ASSERT_EQ(r.skipped().size(), 1u);
  EXPECT_NE(r.skipped()[0].find("checkpoint-000000000009.pt"), std::string::npos);
  EXPECT_TRUE(same_state(*model, *fresh));
  EXPECT_DOUBLE_EQ(static_cast<::torch::optim::SGDOptions&>(fresh_sgd.param_groups()[0].options()).lr(),
                   static_cast<::torch::optim::SGDOptions&>(sgd.param_groups()[0].options()).lr());
  EXPECT_TRUE(::torch::randn({4}).equal(expected_draw));
  // The same next step from both (eval: no dropout masks drawn).
  model->eval();
  fresh->eval();
  const at::Tensor input = ::torch::ones({2, 1, 16, 16});
  sgd.zero_grad();
  fresh_sgd.zero_grad();
  model->forward(input).sum().backward();
  fresh->forward(input).sum().backward();
  sgd.step();
  fresh_sgd.step();
  EXPECT_TRUE(same_state(*model, *fresh));
}

TEST(Checkpoints, NothingToResumeFromGivesNullopt) {
  const std::string dir = temp_dir("empty");
  examples::SmallCnn model;
  pt::CheckpointManager m(dir, *model);
  EXPECT_FALSE(m.resume());
}

// --- hostile and malformed inputs: clear rules, nothing half changed ------------------------------

namespace {

Node int_node(int64_t v) {
  Node n;
  n.kind = Node::Kind::kInt;
  n.integer = v;
  return n;
}

template <typename Fn>
std::string rule_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.rule();
  }
  return "(no error)";
}

}  // namespace

TEST(Optimizer, MalformedPythonStateIsRefusedByRule) {
  ::torch::manual_seed(4);
  examples::Mlp net(nlohmann::json{{"inputs", 3}, {"outputs", 2}});
  ::torch::optim::SGD sgd(net->parameters(), ::torch::optim::SGDOptions(0.1).momentum(0.9));
  std::vector<at::Tensor> tensors;
  const Node good = pt::optimizer_state_tree(sgd, tensors);
  auto load = [&](const Node& tree) {
    return rule_of([&] { pt::load_optimizer_state(sgd, tree, [&](int64_t i) { return tensors.at(size_t(i)); }); });
  };
  EXPECT_EQ(load(good), "(no error)");

  Node unknown_index = good;  // state for a parameter no group lists
  unknown_index.entries[0].second.entries.emplace_back(int_node(99), Node::dict(false));
  EXPECT_EQ(load(unknown_index), "torch.optimizer-state");

  Node wrong_shape = good;  // a momentum buffer of another shape
  tensors.push_back(at::zeros({7}));
  Node state = Node::dict(false);
  state.entries.emplace_back(Node::string("momentum_buffer"), Node::tensor(tensors.size() - 1));
  wrong_shape.entries[0].second.entries.emplace_back(int_node(0), state);
  EXPECT_EQ(load(wrong_shape), "torch.optimizer-state");

  Node maximize = good;  // an option LibTorch cannot honour
  for (NodeEntry& e : maximize.entries[1].second.items[0].entries) {
    if (e.first.text == "maximize") e.second.boolean = true;
  }
  EXPECT_EQ(load(maximize), "torch.optimizer-option");

  Node not_list = good;
  not_list.entries[1].second = Node::string("oops");
  EXPECT_EQ(load(not_list), "torch.optimizer-state");
  // None of these changed the optimizer: lr is still the original.
  EXPECT_DOUBLE_EQ(static_cast<::torch::optim::SGDOptions&>(sgd.param_groups()[0].options()).lr(), 0.1);
}

TEST(Models, MalformedHeadersAreRefusedByRule) {
  const std::string dir = temp_dir("badheaders");
  auto write = [&](const std::string& name, const std::string& hparams, int64_t format) {
    std::vector<at::Tensor> tensors;
    Node header = Node::dict(false);
    header.entries.emplace_back(Node::string("format"), int_node(format));
    header.entries.emplace_back(Node::string("name"), Node::string("Mlp"));
    header.entries.emplace_back(Node::string("hparams"), Node::string(hparams));
    Node root = Node::dict(false);
    root.entries.emplace_back(Node::string("ptpack_model"), header);
    root.entries.emplace_back(Node::string("state_dict"), Node::dict(true));
    pt::write_torch_file(dir + "/" + name, root, tensors);
    return dir + "/" + name;
  };
  EXPECT_EQ(rule_of([&] { pt::load_model(write("deep.ptm", std::string(5000, '[') + std::string(5000, ']'), 1)); }),
            "kMaxJsonDepth");
  EXPECT_EQ(rule_of([&] { pt::load_model(write("text.ptm", "{not json", 1)); }), "torch.model-json");
  EXPECT_EQ(rule_of([&] { pt::load_model(write("future.ptm", "{}", 2)); }), "torch.model-format");
  // Keys of the registered type are missing from the (empty) state dict: strict load refuses.
  EXPECT_EQ(rule_of([&] { pt::load_model(write("empty.ptm", "{}", 1)); }), "torch.strict");
}

TEST(Checkpoints, MalformedNewerCheckpointsAreSkippedForTheLastGoodOne) {
  const std::string dir = temp_dir("malformed");
  examples::SmallCnn model;
  ::torch::optim::SGD sgd(model->parameters(), ::torch::optim::SGDOptions(0.1).momentum(0.9));
  pt::CheckpointManager m(dir, *model, &sgd);
  m.save({1, 1, {}});
  // Newer files with the right name but wrong contents: a step that is text, a wrong-size RNG state.
  auto rewrite = [&](int64_t step, const std::function<void(Node&)>& edit) {
    const Artifact a = open_artifact(dir + "/checkpoint-000000000001.pt");
    pt::TorchTensors read(a);
    Tree t = build_tree(a);
    std::vector<at::Tensor> tensors;
    for (size_t i = 0; i < a.tensors.size(); ++i) tensors.push_back(read.tensor(i));
    edit(t.root);
    char name[64];
    std::snprintf(name, sizeof name, "/checkpoint-%012lld.pt", static_cast<long long>(step));
    pt::write_torch_file(dir + name, t.root, tensors);
  };
  rewrite(5, [](Node& root) {
    for (NodeEntry& e : root.entries) {
      if (e.first.text == "step") e.second = Node::string("five");
    }
  });
  rewrite(6, [](Node& root) {
    for (NodeEntry& e : root.entries) {
      if (e.first.text == "rng_state") e.second = Node::string("not a tensor");
    }
  });
  examples::SmallCnn fresh;
  ::torch::optim::SGD fresh_sgd(fresh->parameters(), ::torch::optim::SGDOptions(0.5));
  pt::CheckpointManager r(dir, *fresh, &fresh_sgd);
  const auto p = r.resume();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->step, 1);
  ASSERT_EQ(r.skipped().size(), 2u);
  EXPECT_NE(r.skipped()[0].find("torch.value"), std::string::npos) << r.skipped()[0];
  EXPECT_NE(r.skipped()[1].find("torch.rng-state"), std::string::npos) << r.skipped()[1];
  EXPECT_TRUE(same_state(*model, *fresh));
}

TEST(StateDict, ShareMappingLeavesWeightsInTheFileMappingAndTrainingStillWorks) {
  const std::string dir = temp_dir("share");
  ::torch::manual_seed(8);
  examples::SmallCnn a, b;
  pt::save_state_dict(*a, dir + "/a.pt");
  pt::LoadOptions o;
  o.share_mapping = true;
  const pt::LoadReport r = pt::load_state_dict(*b, dir + "/a.pt", o);
  EXPECT_EQ(r.shared, r.loaded);
  EXPECT_TRUE(same_state(*a, *b));
  // The parameter objects are the module's own (an optimizer built before still sees them).
  ::torch::optim::SGD sgd(b->parameters(), ::torch::optim::SGDOptions(0.1));
  b->eval();
  sgd.zero_grad();
  b->forward(::torch::ones({1, 1, 16, 16})).sum().backward();
  sgd.step();
  EXPECT_FALSE(a->conv1->weight.equal(b->conv1->weight));
  // Writes stayed in the process: the file still holds a's weights.
  examples::SmallCnn c;
  pt::load_state_dict(*c, dir + "/a.pt");
  EXPECT_TRUE(same_state(*a, *c));
}
