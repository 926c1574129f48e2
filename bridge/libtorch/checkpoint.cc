// CheckpointManager (ptpack/libtorch/checkpoint.h).
#include "ptpack/libtorch/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <regex>

#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/state_dict.h"
#include "ptpack/libtorch/optimizer_state.h"
#include "ptpack/libtorch/state_dict.h"
#include "ptpack/libtorch/tensors.h"
#include "tree_access.h"

namespace ptpack::libtorch {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kCheckpointFormat = 1;

[[noreturn]] void bad(const std::string& rule, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, rule, detail);
}

// Epoch, step and metrics of a checkpoint's tree. Python-written checkpoints may name the epoch
// as the lecture notes do ("nb_epochs_finished").
Progress progress_of(const Node& root) {
  if (root.kind != Node::Kind::kDict) bad("torch.not-a-checkpoint", "the file holds no dict");
  if (const Node* f = tree::find(root, "ptpack_checkpoint"); f && tree::whole(*f, "ptpack_checkpoint") != kCheckpointFormat) {
    throw Error(ErrorCode::kUnsupported, "torch.checkpoint-format", "checkpoint format " + std::to_string(f->integer) + " (this ptpack reads 1)");
  }
  if (!tree::find(root, "model_state")) bad("torch.not-a-checkpoint", "the file has no 'model_state'");
  Progress p;
  if (const Node* e = tree::find(root, "epoch")) p.epoch = tree::whole(*e, "epoch");
  else if (const Node* n = tree::find(root, "nb_epochs_finished")) p.epoch = tree::whole(*n, "nb_epochs_finished");
  if (const Node* s = tree::find(root, "step")) p.step = tree::whole(*s, "step");
  if (const Node* m = tree::find(root, "metrics")) {
    if (m->kind != Node::Kind::kDict) bad("torch.value", "metrics is not a dict");
    for (const NodeEntry& e : m->entries) p.metrics[tree::text(e.first, "a metric name")] = tree::number(e.second, "metric");
  }
  return p;
}

void fsync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

at::Tensor cpu_rng_state() {
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  const at::Tensor current = cpu_rng_state();
  if (state.scalar_type() != at::kByte || state.numel() != current.numel()) {
    bad("torch.rng-state", "rng_state must be " + std::to_string(current.numel()) + " uint8 values (torch.get_rng_state()), not " +
                               std::to_string(state.numel()) + " " + c10::toString(state.scalar_type()));
  }
  auto generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  try {
    generator.set_state(state.contiguous());
  } catch (const c10::Error& e) {
    bad("torch.rng-state", std::string("torch refused the generator state: ") + e.what_without_backtrace());
  }
}

CheckpointManager::CheckpointManager(std::string directory, ::torch::nn::Module& model, ::torch::optim::Optimizer* optimizer,
                                     ::torch::optim::LRScheduler* scheduler, CheckpointOptions options)
    : directory_(std::move(directory)), model_(model), optimizer_(optimizer), scheduler_(scheduler), options_(std::move(options)) {
  if (options_.keep_last < 1) bad("torch.checkpoint-options", "keep_last must be at least 1");
  if (options_.keep_best < 0) bad("torch.checkpoint-options", "keep_best must not be negative");
  if (options_.keep_best > 0 && options_.best_metric.empty()) bad("torch.checkpoint-options", "keep_best needs best_metric");
  if (options_.prefix.empty() || options_.prefix.find('/') != std::string::npos) {
    bad("torch.checkpoint-options", "the prefix must be a non-empty file name part");
  }
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec) {
    Error e(ErrorCode::kIo, "torch.checkpoint-dir", "cannot create the checkpoint directory: " + ec.message());
    e.add_file(directory_);
    throw e;
  }
}

std::string CheckpointManager::path_for(int64_t step) const {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%012lld", static_cast<long long>(step));
  return (fs::path(directory_) / (options_.prefix + "-" + digits + ".pt")).string();
}

std::string CheckpointManager::save(const Progress& progress) {
  if (progress.step < 0 || progress.epoch < 0) bad("torch.checkpoint-progress", "epoch and step must not be negative");
  std::vector<at::Tensor> tensors;
  Node root = Node::dict(false);
  tree::put(root, "ptpack_checkpoint", tree::integer(kCheckpointFormat));
  tree::put(root, "epoch", tree::integer(progress.epoch));
  tree::put(root, "step", tree::integer(progress.step));
  Node metrics = Node::dict(false);
  for (const auto& [name, value] : progress.metrics) tree::put(metrics, name, tree::real(value));
  tree::put(root, "metrics", std::move(metrics));
  Node model = Node::dict(true);
  for (const auto& [key, t] : module_state(model_)) tree::put(model, key, tensor_node(tensors, t));
  tree::put(root, "model_state", std::move(model));
  if (optimizer_) tree::put(root, "optimizer_state", optimizer_state_tree(*optimizer_, tensors));
  if (scheduler_) tree::put(root, "scheduler_state", scheduler_state_tree(*scheduler_));
  tree::put(root, "rng_state", tensor_node(tensors, cpu_rng_state()));
  const std::string path = path_for(progress.step);
  write_torch_file(path, root, tensors);
  known_[path] = progress;
  apply_retention();
  return path;
}

std::vector<CheckpointFile> CheckpointManager::list() {
  const std::regex pattern(std::regex_replace(options_.prefix, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                           R"(-[0-9]{12}\.pt)");
  std::vector<CheckpointFile> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const std::string name = entry.path().filename().string();
    if (!std::regex_match(name, pattern)) continue;
    const std::string path = entry.path().string();
    auto it = known_.find(path);
    if (it == known_.end()) {
      try {
        const Artifact a = open_artifact(path);
        it = known_.emplace(path, progress_of(build_tree(a).root)).first;
      } catch (const Error& e) {
        skipped_.push_back(path + ": " + e.what());
        continue;
      }
    }
    files.push_back({path, it->second});
  }
  std::sort(files.begin(), files.end(), [](const CheckpointFile& a, const CheckpointFile& b) {
    return a.progress.step != b.progress.step ? a.progress.step < b.progress.step : a.path < b.path;
  });
  return files;
}

void CheckpointManager::apply_retention() {
  std::vector<CheckpointFile> files = list();
  std::vector<bool> keep(files.size(), false);
  for (size_t i = files.size() > size_t(options_.keep_last) ? files.size() - options_.keep_last : 0; i < files.size(); ++i) keep[i] = true;
  if (options_.keep_best > 0) {
    std::vector<size_t> ranked;
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].progress.metrics.count(options_.best_metric)) ranked.push_back(i);
    }
    std::stable_sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) {
      const double x = files[a].progress.metrics.at(options_.best_metric), y = files[b].progress.metrics.at(options_.best_metric);
      return options_.higher_is_better ? x > y : x < y;
    });
    for (size_t r = 0; r < ranked.size() && r < size_t(options_.keep_best); ++r) keep[ranked[r]] = true;
  }
  bool removed = false;
  for (size_t i = 0; i < files.size(); ++i) {
    if (keep[i]) continue;
    if (::unlink(files[i].path.c_str()) == 0) removed = true;
    known_.erase(files[i].path);
  }
  if (removed) fsync_directory(directory_);
}

std::optional<Progress> CheckpointManager::resume() {
  std::vector<CheckpointFile> files = list();
  for (auto it = files.rbegin(); it != files.rend(); ++it) {
    try {
      const Artifact a = open_artifact(it->path);
      const Tree t = build_tree(a);
      const Progress progress = progress_of(t.root);
      // Checks first: the model's keys and shapes, the optimizer's state, the scheduler, the RNG.
      LoadOptions strict;
      strict.select = "model_state";
      PreparedLoad model = prepare_load(model_, a, find_state_dict(a, strict.select, "model_state"), strict);
      TorchTensors tensors(a);
      auto tensor = [&](int64_t index) {
        if (index < 0 || size_t(index) >= a.tensors.size()) bad("torch.value", "tensor index out of range");
        return tensors.tensor(size_t(index));
      };
      const Node* optimizer = tree::find(t.root, "optimizer_state");
      if (optimizer_ && !optimizer) bad("torch.not-a-checkpoint", "the file has no 'optimizer_state'");
      const Node* scheduler = tree::find(t.root, "scheduler_state");
      const std::optional<unsigned> scheduler_steps =
          scheduler_ && scheduler ? std::optional(scheduler_step_count(*scheduler)) : std::nullopt;
      const Node* rng = tree::find(t.root, "rng_state");
      at::Tensor rng_state;
      if (rng) {
        if (rng->kind != Node::Kind::kTensor) bad("torch.rng-state", "rng_state is not a tensor");
        rng_state = tensor(rng->integer).clone();
        if (rng_state.scalar_type() != at::kByte || rng_state.numel() != cpu_rng_state().numel()) {
          bad("torch.rng-state", "rng_state is not torch.get_rng_state()'s " + std::to_string(cpu_rng_state().numel()) + " bytes");
        }
      }
      // The optimizer restores all-or-nothing on its own; the rest cannot fail once checked.
      if (optimizer_) load_optimizer_state(*optimizer_, *optimizer, tensor);
      if (scheduler_steps) set_scheduler_step_count(*scheduler_, *scheduler_steps);
      apply_load(a, model);
      if (rng_state.defined()) set_cpu_rng_state(rng_state);
      return progress;
    } catch (const std::exception& e) {  // ptpack::Error, or c10::Error from a tensor operation
      skipped_.push_back(it->path + ": " + e.what());
    }
  }
  return std::nullopt;
}

}  // namespace ptpack::libtorch
