// `ptpack topology` and `ptpack assemble`: the topology-first packaging workflow.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <iostream>
#include <map>
#include <mutex>
#include <thread>

#include "commands.h"
#include "progress.h"
#include "ptpack/artifact.h"
#include "ptpack/assemble.h"
#include "ptpack/topology.h"

namespace ptpack::cli {

void add_topology_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "topology", "Make a topology: a torch.package or TorchScript archive without its weights, with a "
                  "manifest of every state-dict key (assemble fills it from checkpoints)");
  struct Args {
    std::string source, output, pickle;
    bool json = false, quiet = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("PKG", args->source, "torch.package or TorchScript archive")->required();
  cmd->add_option("-o,--output", args->output, "Topology file to write")->required();
  cmd->add_option("--pickle", args->pickle, "torch.package: the pickle holding the module (model/model.pkl)");
  cmd->add_flag("--json", args->json, "Machine-readable output (schema in docs/cli.md)");
  cmd->add_flag("-q,--quiet", args->quiet, "Print nothing on success");
  cmd->callback([args, &exit_code] {
    for_file(args->source, [&] {
      const Artifact a = open_artifact(args->source);
      TopologyOptions o;
      if (!args->pickle.empty()) o.pickle = args->pickle;
      const Topology t = make_topology(a, o);
      write_topology(a, t, args->output);
      const uint64_t size = std::filesystem::file_size(args->output);
      if (args->json) {
        print(topology_json(t, size));
      } else if (!args->quiet) {
        size_t omitted = 0;
        for (const TopologyRecord& r : t.records) omitted += r.omitted;
        print("wrote " + args->output + " (" + std::to_string(size) + " bytes): " + std::to_string(t.keys.size()) +
              " state-dict keys of " + t.pickle + ", " + std::to_string(omitted) + " storage records (" +
              std::to_string(t.omitted_bytes()) + " bytes) left out\n");
        for (const std::string& n : t.notes) print("  note: " + n + "\n");
      }
    });
    exit_code = 0;
  });
}

void add_assemble_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "assemble", "Write one deployable archive per checkpoint: the topology filled with the checkpoint's "
                  "weights (loads with PackageImporter / torch.jit.load); each output appears whole or not at all");
  struct Args {
    std::string topology, directory, select;
    std::vector<std::string> checkpoints;
    bool select_given = false, allow_cast = false, strict_extra = false, json = false, quiet = false;
    unsigned jobs = 0;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("TOPO", args->topology, "Topology made by `ptpack topology`")->required();
  cmd->add_option("CKPT", args->checkpoints, "Checkpoints (.pt zip or legacy, safetensors, sharded index...)")->required();
  cmd->add_option("-o,--output", args->directory, "Directory for the archives (DIR/<checkpoint stem>.pt)")->required();
  auto* select = cmd->add_option("--select", args->select, "Path of the state dict in the checkpoints (model_state); "
                                                           "default: found automatically");
  cmd->add_flag("--allow-cast", args->allow_cast, "Cast floating tensors to the topology's dtype");
  cmd->add_flag("--strict-extra", args->strict_extra, "Fail when a checkpoint has tensors the topology lacks");
  cmd->add_option("-j,--jobs", args->jobs, "Checkpoints assembled in parallel (default: cores, at most the count)");
  cmd->add_flag("--json", args->json, "Machine-readable output (schema in docs/cli.md)");
  cmd->add_flag("-q,--quiet", args->quiet, "No progress line, no per-package report");
  cmd->callback([args, select, &exit_code] {
    const TopologyArchive topo = TopologyArchive::open(args->topology);
    std::filesystem::create_directories(args->directory);
    // Outputs must not collide: two checkpoints with one stem would overwrite each other.
    std::map<std::string, std::string> outputs;
    std::vector<std::string> names;
    for (const std::string& c : args->checkpoints) {
      const std::string out = (std::filesystem::path(args->directory) / assembled_file_name(c)).string();
      if (auto [it, fresh] = outputs.emplace(out, c); !fresh) {
        throw Error(ErrorCode::kInvalidArgument, "usage.collision", "'" + it->second + "' and '" + c +
                    "' would both be assembled into " + out + "; rename one");
      }
      names.push_back(out);
    }
    AssembleOptions o;
    if (select->count() > 0) o.select = args->select;
    o.allow_cast = args->allow_cast;
    o.strict_extra = args->strict_extra;

    const size_t n = args->checkpoints.size();
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const size_t jobs = std::min<size_t>(n, args->jobs ? args->jobs : cores);
    std::vector<AssembleResult> results(n);
    std::vector<uint64_t> progress_done(n, 0), progress_total(n, 0);
    ProgressLine progress("assemble", !args->quiet && !args->json);
    std::mutex progress_mutex;
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t i = next++; i < n; i = next++) {
        AssembleResult& r = results[i];
        r.report.checkpoint = args->checkpoints[i];
        r.report.output = names[i];
        AssembleOptions mine = o;
        mine.progress = [&, i](uint64_t done, uint64_t total) {
          std::lock_guard lock(progress_mutex);
          progress_done[i] = done;
          progress_total[i] = total;
          uint64_t d = 0, t = 0;
          for (size_t j = 0; j < n; ++j) d += progress_done[j], t += progress_total[j];
          progress.update(d, t, " (" + std::to_string(n) + " packages)");
        };
        try {
          r.report = assemble(topo, args->checkpoints[i], names[i], mine);
        } catch (Error& e) {
          e.add_file(args->checkpoints[i]);
          r.error = e.what();
        } catch (const std::exception& e) {
          r.error = std::string("internal error: ") + e.what();
        }
      }
    };
    std::vector<std::thread> threads;
    for (size_t j = 1; j < jobs; ++j) threads.emplace_back(worker);
    worker();
    for (std::thread& t : threads) t.join();

    size_t failed = 0;
    for (const AssembleResult& r : results) {
      if (!r.error.empty()) {
        ++failed;
        std::cerr << "ptpack: error: " << r.error << "\n";
      }
    }
    if (args->json) {
      print(assemble_results_json(args->topology, results));
    } else if (!args->quiet) {
      for (const AssembleResult& r : results) {
        if (r.error.empty()) print(assemble_report_text(r.report));
      }
    }
    exit_code = failed ? 2 : 0;
  });
}

}  // namespace ptpack::cli
