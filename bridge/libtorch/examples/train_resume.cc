// train_resume: an example LibTorch training program that survives being killed.
//
//   train_resume --dir DIR --epochs N [--seed S]
//
// Trains SmallCnn on synthetic data (a fixed random teacher labels random 16x16 images), with SGD
// + momentum and a StepLR schedule, checkpointing every epoch into DIR with ptpack's
// CheckpointManager. When DIR holds a checkpoint it resumes from the newest complete one:
// weights, momentum buffers, the learning-rate schedule, the epoch and the random generator (it
// drives the shuffling and the dropout masks), so a run killed at any moment and restarted ends
// with the same weights, bit for bit, as one that never stopped. Prints "epoch E loss L" (L with 9
// significant digits) per finished epoch and writes the final weights to DIR/final.pt (stock
// torch.load reads it).
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "example_models.h"
#include "ptpack/error.h"
#include "ptpack/libtorch/checkpoint.h"
#include "ptpack/libtorch/state_dict.h"

namespace {

constexpr int64_t kSamples = 2048, kBatch = 64, kSide = 16, kClasses = 10;

struct Data {
  ::torch::Tensor images, labels;
};

// Deterministic from the seed alone (its own generator: the global one belongs to training).
Data make_data(uint64_t seed) {
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x5eedda7aULL);
  Data d;
  d.images = at::randn({kSamples, 1, kSide, kSide}, generator);
  // Labels from a random linear teacher over 4x4 average-pooled images: learnable by the CNN.
  const at::Tensor teacher = at::randn({16, kClasses}, generator);
  d.labels = at::adaptive_avg_pool2d(d.images, {4, 4}).flatten(1).matmul(teacher).argmax(1);
  return d;
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "train_resume: %s\nusage: train_resume --dir DIR --epochs N [--seed S]\n", why);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  long epochs = -1;
  unsigned long long seed = 0;
  for (int i = 1; i < argc; ++i) {
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) usage((std::string(name) + " needs a value").c_str());
      return argv[++i];
    };
    char* end = nullptr;
    if (!std::strcmp(argv[i], "--dir")) {
      dir = value("--dir");
    } else if (!std::strcmp(argv[i], "--epochs")) {
      epochs = std::strtol(value("--epochs"), &end, 10);
      if (*end || epochs < 0) usage("--epochs must be a non-negative integer");
    } else if (!std::strcmp(argv[i], "--seed")) {
      seed = std::strtoull(value("--seed"), &end, 10);
      if (*end) usage("--seed must be an integer");
    } else {
      usage((std::string("unknown argument '") + argv[i] + "'").c_str());
    }
  }
  if (dir.empty() || epochs < 0) usage("--dir and --epochs are required");

  try {
    // One thread: reductions then run in one fixed order, so every run computes the same bits.
    ::torch::set_num_threads(1);
    ::torch::manual_seed(seed);
    const Data data = make_data(seed);
    ptpack::examples::SmallCnnOptions options;
    options.side = kSide;
    options.classes = kClasses;
    ptpack::examples::SmallCnn model(options);
    ::torch::optim::SGD optimizer(model->parameters(), ::torch::optim::SGDOptions(0.05).momentum(0.9));
    ::torch::optim::StepLR schedule(optimizer, /*step_size=*/3, /*gamma=*/0.5);
    ptpack::libtorch::CheckpointOptions keep;
    keep.keep_last = 2;
    keep.keep_best = 1;
    keep.best_metric = "loss";
    ptpack::libtorch::CheckpointManager checkpoints(dir, *model, &optimizer, &schedule, keep);

    ptpack::libtorch::Progress progress;
    if (auto resumed = checkpoints.resume()) {
      progress = *resumed;
      std::fprintf(stderr, "train_resume: resumed after epoch %lld (step %lld)\n", (long long)progress.epoch, (long long)progress.step);
    }
    for (const std::string& s : checkpoints.skipped()) std::fprintf(stderr, "train_resume: skipped %s\n", s.c_str());

    for (int64_t epoch = progress.epoch; epoch < epochs; ++epoch) {
      model->train();
      const at::Tensor order = ::torch::randperm(kSamples, ::torch::kLong);
      double total = 0;
      int64_t batches = 0;
      for (int64_t first = 0; first < kSamples; first += kBatch) {
        const at::Tensor index = order.slice(0, first, first + kBatch);
        const at::Tensor loss = ::torch::nn::functional::cross_entropy(model->forward(data.images.index_select(0, index)),
                                                       data.labels.index_select(0, index));
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        total += loss.item<double>();
        ++batches;
        ++progress.step;
      }
      schedule.step();
      const double mean = total / double(batches);
      // The line first, then the checkpoint: a kill between them repeats the epoch (and its line,
      // with the same value) instead of losing the line.
      std::printf("epoch %lld loss %.9g\n", (long long)epoch + 1, mean);
      std::fflush(stdout);
      progress.epoch = epoch + 1;
      progress.metrics["loss"] = mean;
      checkpoints.save(progress);
    }
    ptpack::libtorch::save_state_dict(*model, dir + "/final.pt");
    return 0;
  } catch (const ptpack::Error& e) {
    std::fprintf(stderr, "train_resume: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train_resume: %s\n", e.what());
    return 2;
  }
}
