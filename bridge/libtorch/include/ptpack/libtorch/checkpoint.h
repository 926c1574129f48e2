// Crash-safe training checkpoints for LibTorch programs.
//
// A CheckpointManager saves, into one directory, everything a training run needs to continue as
// if it had never stopped: the model's state dict, the optimizer's state (Python's layout,
// ptpack/libtorch/optimizer_state.h), the LR scheduler's position, epoch and step, the CPU random
// generator's state (torch.get_rng_state()'s bytes) and the caller's metrics. Each file is a
// torch.save zip that Python reads with torch.load (with weights_only=True from torch 2.0: torch
// 1.13's weights_only unpickler has no opcode for floats such as the learning rate, and refuses
// Python's own optimizer checkpoints the same way):
//   {"ptpack_checkpoint": 1, "epoch": E, "step": S, "metrics": {...}, "model_state": ...,
//    "optimizer_state": ..., "scheduler_state": ..., "rng_state": uint8 tensor}
// so a checkpoint written by Python in that layout (the lecture notes' "model_state" /
// "optimizer_state" convention) resumes in C++ and the other way round.
//
// Each save is atomic: the file is written beside its final name, fsynced, renamed and the
// directory fsynced (OutputFile); a kill at any moment leaves either the previous set of
// checkpoints or the new one, never a torn file under a checkpoint's name. After each save the
// manager keeps the last `keep_last` checkpoints and the best `keep_best` by a metric, and
// deletes the others. resume() restores from the newest checkpoint that reads back whole; one
// that does not (truncated by a copy, edited, from an incompatible model) is skipped and named in
// skipped(), and the next older one is used.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/optim/schedulers/lr_scheduler.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ptpack::libtorch {

struct CheckpointOptions {
  int keep_last = 3;          // newest checkpoints kept (at least 1)
  int keep_best = 0;          // best checkpoints by `best_metric` kept besides those
  std::string best_metric;    // key of Progress::metrics; required when keep_best > 0
  bool higher_is_better = false;
  std::string prefix = "checkpoint";  // files are DIR/<prefix>-<step, 12 digits>.pt
};

// Where training stands; saved with the states and returned by resume().
struct Progress {
  int64_t epoch = 0;  // epochs finished
  int64_t step = 0;   // optimizer steps taken
  std::map<std::string, double> metrics;
};

struct CheckpointFile {
  std::string path;
  Progress progress;
};

class CheckpointManager {
 public:
  // The parts are the caller's and must outlive the manager; optimizer and scheduler may be null.
  // Creates `directory` when missing. Throws Error(kInvalidArgument) for bad options.
  CheckpointManager(std::string directory, ::torch::nn::Module& model, ::torch::optim::Optimizer* optimizer = nullptr,
                    ::torch::optim::LRScheduler* scheduler = nullptr, CheckpointOptions options = {});

  // Writes a checkpoint of the current states, then applies the retention policy. Returns its path.
  std::string save(const Progress& progress);

  // Restores model, optimizer, scheduler and random generator from the newest checkpoint that
  // reads back whole, and returns its progress; nullopt when there is none (start from scratch).
  // Every check runs before the states change, so a skipped file leaves nothing half restored.
  std::optional<Progress> resume();

  // The checkpoints in the directory, oldest first (reading only their headers). Unreadable files
  // matching the name pattern are left out and named in skipped().
  std::vector<CheckpointFile> list();
  const std::vector<std::string>& skipped() const { return skipped_; }  // "path: reason"

  const std::string& directory() const { return directory_; }

 private:
  std::string path_for(int64_t step) const;
  void apply_retention();

  std::string directory_;
  ::torch::nn::Module& model_;
  ::torch::optim::Optimizer* optimizer_;
  ::torch::optim::LRScheduler* scheduler_;
  CheckpointOptions options_;
  std::vector<std::string> skipped_;
  std::map<std::string, Progress> known_;  // headers already read, by path
};

// The CPU generator's state as torch.get_rng_state() returns it, and restoring it.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

}  // namespace ptpack::libtorch
