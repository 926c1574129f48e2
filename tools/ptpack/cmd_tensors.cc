#include "commands.h"
#include "ptpack/artifact.h"
#include "ptpack/inspect.h"

namespace ptpack::cli {

void add_tensors_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("tensors", "Every tensor: path, dtype, shape, stride, offset, storage, bytes");
  auto file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto digest = std::make_shared<bool>(false);
  cmd->add_option("FILE", *file, "Artifact to list")->required();
  cmd->add_flag("--json", *json, "Machine-readable output (schema in README and docs/cli.md)");
  cmd->add_flag("--digest", *digest, "Add the SHA-256 of each tensor's elements (row-major, little-endian); "
                                     "reads the tensor data");
  cmd->callback([=, &exit_code] {
    for_file(*file, [&] {
      const Artifact a = open_artifact(*file);
      print(*json ? tensors_json(a, *digest) : tensors_text(a, *digest));
    });
    exit_code = 0;
  });
}

}  // namespace ptpack::cli
