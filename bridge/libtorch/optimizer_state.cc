// Optimizer and scheduler state in Python's layout (ptpack/libtorch/optimizer_state.h).
#include "ptpack/libtorch/optimizer_state.h"

#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <string>

#include "ptpack/error.h"
#include "ptpack/libtorch/tensors.h"
#include "tree_access.h"

namespace ptpack::libtorch {

namespace {

using ::torch::optim::Optimizer;

// LibTorch keys per-parameter state by the parameter's TensorImpl address.
std::string state_key(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

[[noreturn]] void fail(const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, "torch.optimizer-state", detail);
}

enum class Kind { kSgd, kAdam, kAdamW };

Kind kind_of(Optimizer& o) {
  if (dynamic_cast<::torch::optim::SGD*>(&o)) return Kind::kSgd;
  if (dynamic_cast<::torch::optim::Adam*>(&o)) return Kind::kAdam;
  if (dynamic_cast<::torch::optim::AdamW*>(&o)) return Kind::kAdamW;
  throw Error(ErrorCode::kUnsupported, "torch.optimizer",
              "only SGD, Adam and AdamW state can be written in Python's layout");
}

Node betas_node(const std::tuple<double, double>& b) {
  Node t = tree::list(Node::Kind::kTuple);
  t.items.push_back(tree::real(std::get<0>(b)));
  t.items.push_back(tree::real(std::get<1>(b)));
  return t;
}

template <typename Options>
void put_adam_options(Node& g, const Options& o, bool adamw) {
  tree::put(g, "lr", tree::real(o.lr()));
  tree::put(g, "betas", betas_node(o.betas()));
  tree::put(g, "eps", tree::real(o.eps()));
  tree::put(g, "weight_decay", tree::real(o.weight_decay()));
  tree::put(g, "amsgrad", tree::boolean(o.amsgrad()));
  tree::put(g, "maximize", tree::boolean(false));
  tree::put(g, "foreach", tree::none());
  tree::put(g, "capturable", tree::boolean(false));
  if (!adamw) {
    tree::put(g, "differentiable", tree::boolean(false));
    tree::put(g, "fused", tree::boolean(false));
  }
}

template <typename State>
Node adam_state(const State& s, std::vector<at::Tensor>& tensors) {
  Node n = Node::dict(false);
  // torch 1.13 keeps `step` as a float32 scalar tensor.
  tree::put(n, "step", tensor_node(tensors, at::scalar_tensor(double(s.step()), at::kFloat)));
  tree::put(n, "exp_avg", tensor_node(tensors, s.exp_avg()));
  tree::put(n, "exp_avg_sq", tensor_node(tensors, s.exp_avg_sq()));
  if (s.max_exp_avg_sq().defined()) tree::put(n, "max_exp_avg_sq", tensor_node(tensors, s.max_exp_avg_sq()));
  return n;
}

const Node& require(const Node& dict, const std::string& key, const std::string& where) {
  const Node* n = tree::find(dict, key);
  if (!n) fail(where + " has no '" + key + "'");
  return *n;
}

void refuse_true(const Node& group, const std::string& key, const std::string& where) {
  if (const Node* n = tree::find(group, key); n && n->kind == Node::Kind::kBool && n->boolean) {
    throw Error(ErrorCode::kUnsupported, "torch.optimizer-option", where + " sets " + key + "=True, which LibTorch's optimizer cannot do");
  }
}

std::tuple<double, double> betas_of(const Node& g, const std::string& where) {
  const Node& b = require(g, "betas", where);
  if ((b.kind != Node::Kind::kTuple && b.kind != Node::Kind::kList) || b.items.size() != 2) fail(where + ".betas is not a pair");
  return {tree::number(b.items[0], where + ".betas[0]"), tree::number(b.items[1], where + ".betas[1]")};
}

template <typename Options>
void set_adam_options(Options& o, const Node& g, const std::string& where) {
  o.lr(tree::number(require(g, "lr", where), where + ".lr"));
  o.betas(betas_of(g, where));
  o.eps(tree::number(require(g, "eps", where), where + ".eps"));
  o.weight_decay(tree::number(require(g, "weight_decay", where), where + ".weight_decay"));
  if (const Node* a = tree::find(g, "amsgrad")) o.amsgrad(tree::number(*a, where + ".amsgrad") != 0);
}

// A state tensor for parameter p: same shape required, cloned (training mutates it in place) and
// placed on p's device and dtype.
at::Tensor state_tensor(const std::function<at::Tensor(int64_t)>& tensor, const Node& n, const at::Tensor& p,
                        const std::string& where) {
  if (n.kind != Node::Kind::kTensor) fail(where + " is not a tensor");
  at::Tensor t = tensor(n.integer);
  if (t.sizes() != p.sizes()) {
    fail(where + " has shape " + c10::str(t.sizes()) + " but its parameter has " + c10::str(p.sizes()));
  }
  return t.to(p.device(), p.scalar_type(), /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

Node optimizer_state_tree(Optimizer& optimizer, std::vector<at::Tensor>& tensors) {
  const Kind kind = kind_of(optimizer);
  Node root = Node::dict(false);
  Node state = Node::dict(false);
  Node groups = tree::list();
  int64_t index = 0;
  for (auto& group : optimizer.param_groups()) {
    Node g = Node::dict(false);
    if (kind == Kind::kSgd) {
      auto& o = static_cast<::torch::optim::SGDOptions&>(group.options());
      tree::put(g, "lr", tree::real(o.lr()));
      tree::put(g, "momentum", tree::real(o.momentum()));
      tree::put(g, "dampening", tree::real(o.dampening()));
      tree::put(g, "weight_decay", tree::real(o.weight_decay()));
      tree::put(g, "nesterov", tree::boolean(o.nesterov()));
      tree::put(g, "maximize", tree::boolean(false));
      tree::put(g, "foreach", tree::none());
      tree::put(g, "differentiable", tree::boolean(false));
    } else if (kind == Kind::kAdam) {
      put_adam_options(g, static_cast<::torch::optim::AdamOptions&>(group.options()), false);
    } else {
      put_adam_options(g, static_cast<::torch::optim::AdamWOptions&>(group.options()), true);
    }
    Node params = tree::list();
    for (const at::Tensor& p : group.params()) {
      auto it = optimizer.state().find(state_key(p));
      if (it != optimizer.state().end()) {
        if (kind == Kind::kSgd) {
          auto& s = static_cast<::torch::optim::SGDParamState&>(*it->second);
          Node n = Node::dict(false);
          tree::put(n, "momentum_buffer", s.momentum_buffer().defined() ? tensor_node(tensors, s.momentum_buffer()) : tree::none());
          tree::put(state, index, std::move(n));
        } else if (kind == Kind::kAdam) {
          tree::put(state, index, adam_state(static_cast<::torch::optim::AdamParamState&>(*it->second), tensors));
        } else {
          tree::put(state, index, adam_state(static_cast<::torch::optim::AdamWParamState&>(*it->second), tensors));
        }
      }
      params.items.push_back(tree::integer(index++));
    }
    tree::put(g, "params", std::move(params));
    groups.items.push_back(std::move(g));
  }
  tree::put(root, "state", std::move(state));
  tree::put(root, "param_groups", std::move(groups));
  return root;
}

void load_optimizer_state(Optimizer& optimizer, const Node& root, const std::function<at::Tensor(int64_t)>& tensor) {
  const Kind kind = kind_of(optimizer);
  const Node& groups = require(root, "param_groups", "the optimizer state");
  const Node& state = require(root, "state", "the optimizer state");
  if (groups.kind != Node::Kind::kList) fail("param_groups is not a list");
  if (state.kind != Node::Kind::kDict) fail("state is not a dict");
  auto& own = optimizer.param_groups();
  if (groups.items.size() != own.size()) {
    fail("the file has " + std::to_string(groups.items.size()) + " parameter groups, the optimizer " + std::to_string(own.size()));
  }
  // Parameter index (as the file numbers them) -> the optimizer's parameter.
  std::map<int64_t, at::Tensor> by_index;
  for (size_t gi = 0; gi < own.size(); ++gi) {
    const std::string where = "param_groups[" + std::to_string(gi) + "]";
    const Node& params = require(groups.items[gi], "params", where);
    if (params.kind != Node::Kind::kList) fail(where + ".params is not a list");
    if (params.items.size() != own[gi].params().size()) {
      fail(where + " has " + std::to_string(params.items.size()) + " parameters, the optimizer's group " +
           std::to_string(own[gi].params().size()));
    }
    for (size_t i = 0; i < params.items.size(); ++i) {
      const int64_t index = tree::whole(params.items[i], where + ".params");
      if (!by_index.emplace(index, own[gi].params()[i]).second) fail("parameter index " + std::to_string(index) + " appears twice");
    }
    refuse_true(groups.items[gi], "maximize", where);
    refuse_true(groups.items[gi], "differentiable", where);
  }
  // Build every new per-parameter state first; nothing changes until all of them are valid.
  std::vector<std::pair<std::string, std::unique_ptr<::torch::optim::OptimizerParamState>>> states;
  for (const NodeEntry& e : state.entries) {
    const int64_t index = tree::whole(e.first, "a state key");
    auto p = by_index.find(index);
    if (p == by_index.end()) fail("state for parameter " + std::to_string(index) + ", which no group lists");
    const std::string where = "state[" + std::to_string(index) + "]";
    if (kind == Kind::kSgd) {
      auto s = std::make_unique<::torch::optim::SGDParamState>();
      const Node* buffer = tree::find(e.second, "momentum_buffer");
      if (buffer && buffer->kind != Node::Kind::kNone) s->momentum_buffer(state_tensor(tensor, *buffer, p->second, where + ".momentum_buffer"));
      states.emplace_back(state_key(p->second), std::move(s));
    } else {
      auto fill = [&](auto s) {
        const Node& step = require(e.second, "step", where);
        s->step(step.kind == Node::Kind::kTensor ? int64_t(tensor(step.integer).item<double>())
                                                 : int64_t(tree::number(step, where + ".step")));
        s->exp_avg(state_tensor(tensor, require(e.second, "exp_avg", where), p->second, where + ".exp_avg"));
        s->exp_avg_sq(state_tensor(tensor, require(e.second, "exp_avg_sq", where), p->second, where + ".exp_avg_sq"));
        if (const Node* m = tree::find(e.second, "max_exp_avg_sq")) {
          s->max_exp_avg_sq(state_tensor(tensor, *m, p->second, where + ".max_exp_avg_sq"));
        }
        states.emplace_back(state_key(p->second), std::move(s));
      };
      if (kind == Kind::kAdam) fill(std::make_unique<::torch::optim::AdamParamState>());
      else fill(std::make_unique<::torch::optim::AdamWParamState>());
    }
  }
  // Options, checked the same way, into copies first.
  std::vector<std::unique_ptr<::torch::optim::OptimizerOptions>> options;
  for (size_t gi = 0; gi < own.size(); ++gi) {
    const Node& g = groups.items[gi];
    const std::string where = "param_groups[" + std::to_string(gi) + "]";
    std::unique_ptr<::torch::optim::OptimizerOptions> copy = own[gi].options().clone();
    if (kind == Kind::kSgd) {
      auto& o = static_cast<::torch::optim::SGDOptions&>(*copy);
      o.lr(tree::number(require(g, "lr", where), where + ".lr"));
      o.momentum(tree::number(require(g, "momentum", where), where + ".momentum"));
      o.dampening(tree::number(require(g, "dampening", where), where + ".dampening"));
      o.weight_decay(tree::number(require(g, "weight_decay", where), where + ".weight_decay"));
      o.nesterov(tree::number(require(g, "nesterov", where), where + ".nesterov") != 0);
    } else if (kind == Kind::kAdam) {
      set_adam_options(static_cast<::torch::optim::AdamOptions&>(*copy), g, where);
    } else {
      set_adam_options(static_cast<::torch::optim::AdamWOptions&>(*copy), g, where);
    }
    options.push_back(std::move(copy));
  }
  for (size_t gi = 0; gi < own.size(); ++gi) own[gi].set_options(std::move(options[gi]));
  optimizer.state().clear();
  for (auto& [key, s] : states) optimizer.state()[key] = std::move(s);
}

namespace {
// LRScheduler keeps its step count protected; a pointer to the member, taken in a derived class,
// reads and writes it on any scheduler without a cast.
struct StepCountAccess : ::torch::optim::LRScheduler {
  static constexpr unsigned ::torch::optim::LRScheduler::*member = &StepCountAccess::step_count_;
};
}  // namespace

Node scheduler_state_tree(::torch::optim::LRScheduler& scheduler) {
  const unsigned steps = scheduler.*StepCountAccess::member;
  Node n = Node::dict(false);
  tree::put(n, "last_epoch", tree::integer(steps));
  tree::put(n, "_step_count", tree::integer(int64_t(steps) + 1));
  return n;
}

unsigned scheduler_step_count(const Node& state) {
  int64_t steps;
  if (const Node* last = tree::find(state, "last_epoch")) {
    steps = tree::whole(*last, "scheduler last_epoch");
  } else {
    steps = tree::whole(require(state, "_step_count", "the scheduler state"), "scheduler _step_count") - 1;
  }
  if (steps < 0 || steps > int64_t(UINT32_MAX)) fail("scheduler step count " + std::to_string(steps) + " is out of range");
  return unsigned(steps);
}

void set_scheduler_step_count(::torch::optim::LRScheduler& scheduler, unsigned steps) {
  scheduler.*StepCountAccess::member = steps;
}

void load_scheduler_state(::torch::optim::LRScheduler& scheduler, const Node& state) {
  set_scheduler_step_count(scheduler, scheduler_step_count(state));
}

}  // namespace ptpack::libtorch
