#include "commands.h"
#include "ptpack/artifact.h"
#include "ptpack/inspect.h"

namespace ptpack::cli {

void add_ls_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("ls", "The archive's entries as a tree, like torch.package's file_structure()");
  auto file = std::make_shared<std::string>();
  auto options = std::make_shared<LsOptions>();
  cmd->add_option("FILE", *file, "Artifact to list")->required();
  cmd->add_option("--include", options->include,
                  "Glob of entries to show ('*' within a segment, '**' across segments); repeatable");
  cmd->add_option("--exclude", options->exclude, "Glob of entries to hide; repeatable");
  cmd->add_flag("-l,--long", options->long_format, "Show each entry's kind and size");
  cmd->callback([=, &exit_code] {
    for_file(*file, [&] { print(ls_tree(open_artifact(*file), *options)); });
    exit_code = 0;
  });
}

}  // namespace ptpack::cli
