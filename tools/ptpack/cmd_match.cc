// `ptpack match`: load weights across architectures, with a report.
#include "commands.h"
#include "ptpack/match.h"

namespace ptpack::cli {

void add_match_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "match", "Associate SRC's weights with DST's keys across architectures (prefixes, suffixes, renames), "
               "judge each module as a unit, report what loads; -o writes a checkpoint in DST's key space");
  struct Args {
    std::string src, dst, output, association = "auto", src_select, dst_select;
    std::vector<std::string> renames;
    bool mangle = false, json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("SRC", args->src, "Checkpoint providing the weights (any readable artifact)")->required();
  cmd->add_option("DST", args->dst, "Target keys and shapes: a state dict, training checkpoint, topology or package")->required();
  cmd->add_option("-o,--output", args->output, "Write DST's keys with SRC's weights where loaded (.pt or .safetensors)");
  cmd->add_option("--association", args->association, "auto, exact, prefix, suffix, isomorphism or embedding")->capture_default_str();
  cmd->add_option("--rename", args->renames, "REGEX=REPLACEMENT applied to SRC names first (repeatable)");
  auto* src_select = cmd->add_option("--src-select", args->src_select, "Path of the state dict in SRC (model_state)");
  auto* dst_select = cmd->add_option("--dst-select", args->dst_select, "Path of the state dict in DST (a package: the pickle)");
  cmd->add_flag("--mangle", args->mangle, "Adapt same-rank tensors of other shapes: copy the overlapping leading corner");
  cmd->add_flag("--json", args->json, "Machine-readable output (schema in docs/cli.md)");
  cmd->callback([=, &exit_code] {
    MatchFilesOptions o;
    const auto a = association_from_name(args->association);
    if (!a) throw Error(ErrorCode::kInvalidArgument, "usage.association", "--association '" + args->association + "': use auto, exact, prefix, suffix, isomorphism or embedding");
    o.match.association = *a;
    o.match.mangle = args->mangle;
    for (const std::string& r : args->renames) {
      const size_t eq = r.find('=');
      if (eq == std::string::npos) throw Error(ErrorCode::kInvalidArgument, "usage.rename", "--rename '" + r + "': use REGEX=REPLACEMENT");
      o.match.renames.emplace_back(r.substr(0, eq), r.substr(eq + 1));
    }
    if (src_select->count()) o.src_select = args->src_select;
    if (dst_select->count()) o.dst_select = args->dst_select;
    if (!args->output.empty()) o.output = args->output;
    const MatchFilesReport r = match_files(args->src, args->dst, o);
    print(args->json ? match_report_json(r) : match_report_text(r));
    exit_code = 0;
  });
}

}  // namespace ptpack::cli
