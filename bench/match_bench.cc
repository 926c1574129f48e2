// In-process benchmark of key association (ptpack/match.h) on synthetic key trees of N keys:
// a resnet-like tree (stages, blocks, conv/bn modules with 1 or 5 tensors) matched against the
// same tree under another prefix (the prefix strategy wins), and against an unrelated tree
// (every strategy runs to the end). Growth with N shows whether association stays near-linear.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ptpack/match.h"

namespace {

std::vector<ptpack::KeyInfo> tree(size_t n, const std::string& prefix, const char* block) {
  std::vector<ptpack::KeyInfo> keys;
  for (size_t i = 0; keys.size() < n; ++i) {
    const std::string base = prefix + "layer" + std::to_string(i / 64 + 1) + "." + std::to_string(i % 64) + "." + block;
    const int64_t c = int64_t(16 + (i % 7) * 16);
    keys.push_back({base + "conv1.weight", ptpack::DType::kFloat32, {c, c, 3, 3}});
    for (const char* t : {"weight", "bias", "running_mean", "running_var"}) {
      keys.push_back({base + "bn1." + t, ptpack::DType::kFloat32, {c}});
    }
    keys.push_back({base + "bn1.num_batches_tracked", ptpack::DType::kInt64, {}});
  }
  keys.resize(n);
  return keys;
}

void prefixed(benchmark::State& state) {
  const auto src = tree(size_t(state.range(0)), "", "");
  const auto dst = tree(size_t(state.range(0)), "backbone.body.", "");
  for (auto _ : state) benchmark::DoNotOptimize(ptpack::match_keys(src, dst, {}).pairs.size());
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
}

void unrelated(benchmark::State& state) {
  const auto src = tree(size_t(state.range(0)), "", "");
  const auto dst = tree(size_t(state.range(0)), "features.", "dense.");
  for (auto _ : state) benchmark::DoNotOptimize(ptpack::match_keys(src, dst, {}).pairs.size());
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
}

}  // namespace

BENCHMARK(prefixed)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK(unrelated)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
