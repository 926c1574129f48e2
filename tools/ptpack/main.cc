// ptpack: read, inspect and verify PyTorch artifacts without Python, never executing a pickle.
// Exit status: 0 ok, 1 a finding (verify found problems), 2 bad input or usage.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "ptpack/error.h"

namespace ptpack::cli {

void print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

}  // namespace ptpack::cli

int main(int argc, char** argv) {
  CLI::App app{"ptpack: PyTorch artifacts without Python. Reads torch.save (zip and legacy), "
               "torch.package, TorchScript and safetensors files, never executing a pickle.",
               "ptpack"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ptpack 0.1.0");
  app.footer("Exit status: 0 ok, 1 a finding (e.g. verify found problems), 2 bad input or usage.");
  int exit_code = 0;
  ptpack::cli::add_info_command(app, exit_code);
  ptpack::cli::add_ls_command(app, exit_code);
  ptpack::cli::add_tensors_command(app, exit_code);
  ptpack::cli::add_dis_command(app, exit_code);
  ptpack::cli::add_verify_command(app, exit_code);
  ptpack::cli::add_convert_command(app, exit_code);
  ptpack::cli::add_diff_command(app, exit_code);
  ptpack::cli::add_scan_command(app, exit_code);
  ptpack::cli::add_topology_command(app, exit_code);
  ptpack::cli::add_assemble_command(app, exit_code);
  ptpack::cli::add_match_command(app, exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const ptpack::Error& e) {
    std::fflush(stdout);
    std::cerr << "ptpack: error: " << e.what() << "\n";
    return 2;
  } catch (const std::bad_alloc&) {
    std::cerr << "ptpack: error: out of memory\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ptpack: internal error: " << e.what() << "\n";
    return 2;
  }
  return exit_code;
}
