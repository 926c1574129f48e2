// LibTorch optimizers' state in Python's optimizer.state_dict() layout, so a training checkpoint
// moves between Python and C++ in both directions.
//
//   {"state": {0: {"momentum_buffer": T}, ...},          # keyed by parameter index
//    "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1, ...]}]}
//
// Parameter indices count the parameters of every group in order, as Python does. Supported:
// SGD (momentum_buffer), Adam and AdamW (step as a float32 scalar tensor, as torch 1.13 stores it;
// exp_avg, exp_avg_sq, max_exp_avg_sq with amsgrad). Group options Python has and LibTorch lacks
// (maximize, foreach, capturable, differentiable, fused) are written with the values that match
// LibTorch's behaviour and refused on reading when they ask for something else (maximize=True).
#pragma once

#include <torch/optim/optimizer.h>
#include <torch/optim/schedulers/lr_scheduler.h>

#include <functional>
#include <vector>

#include "ptpack/tree.h"

namespace ptpack::libtorch {

// The optimizer's state dict as a plain-data tree; its tensor leaves are appended to `tensors`.
// Throws Error(kUnsupported, "torch.optimizer") for optimizer types other than the three above.
Node optimizer_state_tree(::torch::optim::Optimizer& optimizer, std::vector<at::Tensor>& tensors);

// Restores options and per-parameter state from such a tree (written by Python or by
// optimizer_state_tree). `tensor` resolves a tree's tensor leaf (its Node::integer). Checks
// everything (group count, parameter count per group, state shapes) before changing anything;
// throws Error(kInvalidArgument, "torch.optimizer-state") naming what does not fit.
void load_optimizer_state(::torch::optim::Optimizer& optimizer, const Node& state,
                          const std::function<at::Tensor(int64_t)>& tensor);

// An LR scheduler's position (LibTorch keeps only its step count), written as Python's
// {"last_epoch": n, "_step_count": n + 1}; restored from either key.
Node scheduler_state_tree(::torch::optim::LRScheduler& scheduler);
void load_scheduler_state(::torch::optim::LRScheduler& scheduler, const Node& state);
// The two halves of load_scheduler_state: reading (throws Error(kInvalidArgument) for a missing
// or out-of-range count) and setting (cannot fail).
unsigned scheduler_step_count(const Node& state);
void set_scheduler_step_count(::torch::optim::LRScheduler& scheduler, unsigned steps);

}  // namespace ptpack::libtorch
