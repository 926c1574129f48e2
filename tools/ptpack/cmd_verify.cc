#include <iostream>

#include "commands.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/inspect.h"

namespace ptpack::cli {

void add_verify_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("verify", "Full structural validation, CRC of every record, storage sizes; "
                                           "exit 1 when problems are found");
  auto file = std::make_shared<std::string>();
  cmd->add_option("FILE", *file, "Artifact to check")->required();
  cmd->callback([=, &exit_code] {
    Artifact a;
    try {
      a = open_artifact(*file);
    } catch (const Error& e) {
      // A file that breaks its format's rules is what verify looks for: a finding, not a usage error.
      if (e.code() != ErrorCode::kCorrupt && e.code() != ErrorCode::kLimitExceeded) throw;
      print(*file + ": FAILED\n  " + e.what() + "\n");
      exit_code = 1;
      return;
    }
    VerifyReport r;
    for_file(*file, [&] { r = verify_artifact(a); });
    if (r.ok()) {
      print(*file + ": OK (" + std::string(format_name(a.format)) + ", " + std::to_string(r.records_checked) +
            " CRCs checked, " + std::to_string(a.storages.size()) + " storages, " +
            std::to_string(a.tensors.size()) + " tensors)\n");
      exit_code = 0;
      return;
    }
    std::string out = *file + ": FAILED (" + std::to_string(r.problems.size()) + " problems)\n";
    for (size_t i = 0; i < r.problems.size() && i < 50; ++i) out += "  " + r.problems[i] + "\n";
    if (r.problems.size() > 50) out += "  ...\n";
    print(out);
    exit_code = 1;
  });
}

}  // namespace ptpack::cli
