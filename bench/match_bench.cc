// In-process benchmark of key association (ptpack/match.h) on synthetic key trees of N keys:
// a resnet-like tree (stages, blocks, conv/bn modules with 1 or 5 tensors) matched against the
// same tree under another prefix, and against an unrelated tree (blocks wrapped in another
// level, other stage names). Under auto the prefix strategy explains the first and every
// strategy runs on the second; the tree strategies (isomorphism, embedding) are also measured
// alone on both. Growth with N shows whether association stays near-linear. The "mapped"
// counter is the number of keys paired (0 where a strategy gave up, e.g. trees too large).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "ptpack/match.h"

namespace {

std::vector<ptpack::KeyInfo> tree(size_t n, const std::string& prefix, const char* block) {
  std::vector<ptpack::KeyInfo> keys;
  for (size_t i = 0; keys.size() < n; ++i) {
    const std::string base =
        prefix + "layer" + std::to_string(i / 64 + 1) + "." + std::to_string(i % 64) + "." + block;
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

// range(0): keys per side; range(1): the association.
void run(benchmark::State& state, const std::vector<ptpack::KeyInfo>& src,
         const std::vector<ptpack::KeyInfo>& dst) {
  ptpack::MatchOptions options;
  options.association = ptpack::Association(state.range(1));
  size_t mapped = 0;
  for (auto _ : state) {
    mapped = ptpack::match_keys(src, dst, options).count(ptpack::MatchPair::Kind::kFull);
    benchmark::DoNotOptimize(mapped);
  }
  state.SetLabel(std::string(ptpack::association_name(options.association)));
  state.counters["mapped"] = double(mapped);
  state.SetItemsProcessed(int64_t(state.iterations()) * state.range(0));
}

void prefixed(benchmark::State& state) {
  run(state, tree(size_t(state.range(0)), "", ""), tree(size_t(state.range(0)), "backbone.body.", ""));
}

void unrelated(benchmark::State& state) {
  run(state, tree(size_t(state.range(0)), "", ""), tree(size_t(state.range(0)), "features.", "dense."));
}

void sizes_and_strategies(benchmark::internal::Benchmark* b) {
  for (ptpack::Association a :
       {ptpack::Association::kAuto, ptpack::Association::kIsomorphism, ptpack::Association::kEmbedding}) {
    for (int64_t n : {1000, 10000, 100000}) b->Args({n, int64_t(a)});
  }
  b->ArgNames({"keys", "association"})->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(prefixed)->Apply(sizes_and_strategies);
BENCHMARK(unrelated)->Apply(sizes_and_strategies);
BENCHMARK_MAIN();
