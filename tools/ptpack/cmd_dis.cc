#include <sys/stat.h>

#include "commands.h"
#include "ptpack/artifact.h"
#include "ptpack/inspect.h"

namespace ptpack::cli {
namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

void add_dis_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("dis", "Disassemble a pickle, like pickletools.dis (FILE or FILE:ENTRY)");
  auto target = std::make_shared<std::string>();
  cmd->add_option("FILE[:ENTRY]", *target, "Artifact, optionally with the pickle entry to show "
                                           "(default: the main pickle), e.g. model.pt:data.pkl")->required();
  cmd->callback([=, &exit_code] {
    std::string file = *target, entry;
    if (!exists(file)) {
      const size_t colon = file.rfind(':');
      if (colon != std::string::npos) {
        entry = file.substr(colon + 1);
        file = file.substr(0, colon);
      }
    }
    for_file(file, [&] { print(disassemble_entry(open_artifact(file), entry)); });
    exit_code = 0;
  });
}

}  // namespace ptpack::cli
