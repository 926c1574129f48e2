// In-process micro-benchmarks of the read path (Google Benchmark): opening an artifact (zip or
// stream, pickle, tensor recognition) and hashing all tensor bytes. The files come from
// PTPACK_BENCH_FILES (colon-separated), e.g. the checkpoints bench/make_models.py writes.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <sstream>
#include <string>

#include "ptpack/artifact.h"
#include "ptpack/tensor_data.h"

namespace {

void open_artifact_bench(benchmark::State& state, const std::string& path) {
  for (auto _ : state) {
    ptpack::Artifact a = ptpack::open_artifact(path);
    benchmark::DoNotOptimize(a.tensors.data());
  }
}

void digest_bench(benchmark::State& state, const std::string& path) {
  const ptpack::Artifact a = ptpack::open_artifact(path);
  for (auto _ : state) {
    for (const auto& t : a.tensors) benchmark::DoNotOptimize(ptpack::tensor_sha256(a, t));
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(a.storage_bytes()));
}

}  // namespace

int main(int argc, char** argv) {
  const char* files = std::getenv("PTPACK_BENCH_FILES");
  std::stringstream list(files ? files : "");
  for (std::string path; std::getline(list, path, ':');) {
    if (path.empty()) continue;
    benchmark::RegisterBenchmark(("open_artifact/" + path).c_str(), open_artifact_bench, path)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("sha256_all_tensors/" + path).c_str(), digest_bench, path)->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
