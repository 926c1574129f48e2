#include <filesystem>

#include "commands.h"
#include "ptpack/artifact.h"
#include "ptpack/inspect.h"
#include "ptpack/topology.h"

namespace ptpack::cli {

void add_info_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("info", "Format, version, counts, bytes, metadata and non-tensor values "
                                         "(epoch, hyper-parameters...)");
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto max_values = std::make_shared<size_t>(40);
  cmd->add_option("FILE", *file, "Artifact to describe")->required();
  cmd->add_flag("--json", *json, "Machine-readable output (schema in docs/cli.md)");
  cmd->add_option("--max-values", *max_values, "Non-tensor values shown in text output")->capture_default_str();
  cmd->callback([=, &exit_code] {
    for_file(*file, [&] {
      if (const auto topology = read_topology_file(*file)) {
        const uint64_t size = std::filesystem::file_size(*file);
        print(*json ? topology_json(*topology, size) : topology_text(*topology, size));
        return;
      }
      const Artifact a = open_artifact(*file);
      print(*json ? info_json(a) : info_text(a, {.max_values = *max_values}));
    });
    exit_code = 0;
  });
}

}  // namespace ptpack::cli
