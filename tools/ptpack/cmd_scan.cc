#include <iostream>

#include "commands.h"
#include "ptpack/error.h"
#include "ptpack/scan.h"

namespace ptpack::cli {

void add_scan_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand(
      "scan",
      "List every global each pickle would import and every call it would make, judged against an "
      "allowlist; report structural red flags. Never executes anything. Exit 0 all safe, 1 any "
      "unsafe, 2 any error");
  auto paths = std::make_shared<std::vector<std::string>>();
  auto policy_name = std::make_shared<std::string>("weights");
  auto policy_file = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  auto recursive = std::make_shared<bool>(false);
  auto verbose = std::make_shared<bool>(false);
  auto quiet = std::make_shared<bool>(false);
  auto jobs = std::make_shared<int>(0);
  cmd->add_option("PATH", *paths, "Files to scan (directories with --recursive)");
  cmd->add_option("--policy", *policy_name,
                  "weights (default: what torch.load(weights_only=True) allows), torch (adds what "
                  "torch.package and TorchScript use), custom (with --policy-file), or a policy FILE");
  cmd->add_option("--policy-file", *policy_file, "A JSON policy extending weights or torch (docs/cli.md)");
  cmd->add_flag("--json", *json, "Machine-readable output (schema in docs/cli.md)");
  cmd->add_flag("-r,--recursive", *recursive, "Scan the files under directories");
  cmd->add_flag("-v,--verbose", *verbose, "Also list every global and call, allowed or not");
  cmd->add_flag("-q,--quiet", *quiet, "No summary on stderr");
  cmd->add_option("-j,--jobs", *jobs, "Files scanned in parallel (default: one per core)")
      ->check(CLI::Range(1, 256));
  cmd->callback([=, &exit_code] {
    // --policy weights|torch|custom (custom needs --policy-file); any other value is a FILE.
    scan::Policy policy = scan::Policy::weights();
    const std::vector<std::string>& files = *paths;
    std::string file = *policy_file;
    if (*policy_name == "torch") {
      policy = scan::Policy::torch();
    } else if (*policy_name != "weights" && *policy_name != "custom") {
      file = *policy_name;
    } else if (*policy_name == "custom" && file.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "cli.usage", "--policy custom needs --policy-file FILE");
    }
    if (!file.empty()) {
      if (*policy_name != "custom" && *policy_name != file) {
        throw Error(ErrorCode::kInvalidArgument, "cli.usage", "--policy-file goes with --policy custom");
      }
      policy = scan::Policy::from_file(file);
    }
    if (files.empty()) throw Error(ErrorCode::kInvalidArgument, "cli.usage", "scan needs at least one PATH");
    scan::ScanOptions options;
    options.recursive = *recursive;
    options.jobs = *jobs;
    const std::vector<scan::ScanReport> reports = scan::scan_paths(files, policy, options);
    size_t counts[3] = {0, 0, 0};
    for (const auto& r : reports) ++counts[int(r.verdict)];
    if (*json) {
      print(scan::reports_json(reports, policy.name()));
    } else {
      std::string out;
      for (const auto& r : reports) out += scan::report_text(r, *verbose);
      print(out);
    }
    if (!*quiet) {
      std::cerr << "ptpack scan: " << reports.size() << " file" << (reports.size() == 1 ? "" : "s")
                << " (policy " << policy.name() << "): " << counts[0] << " safe, " << counts[1]
                << " unsafe, " << counts[2] << " error" << (counts[2] == 1 ? "" : "s") << "\n";
    }
    exit_code = counts[2] ? 2 : counts[1] ? 1 : 0;
  });
}

}  // namespace ptpack::cli
