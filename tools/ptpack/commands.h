// The CLI's subcommands, one file each. Each add_*_command registers its options on `app` and a
// callback that does the work through the public API and sets `exit_code` (0 ok, 1 a finding).
// Errors are thrown as ptpack::Error and mapped to exit 2 in main.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "ptpack/error.h"

namespace ptpack::cli {

void add_info_command(CLI::App& app, int& exit_code);
void add_ls_command(CLI::App& app, int& exit_code);
void add_tensors_command(CLI::App& app, int& exit_code);
void add_dis_command(CLI::App& app, int& exit_code);
void add_verify_command(CLI::App& app, int& exit_code);
void add_convert_command(CLI::App& app, int& exit_code);
void add_diff_command(CLI::App& app, int& exit_code);
void add_scan_command(CLI::App& app, int& exit_code);
void add_topology_command(CLI::App& app, int& exit_code);
void add_assemble_command(CLI::App& app, int& exit_code);
void add_match_command(CLI::App& app, int& exit_code);

// Writes text to stdout in full.
void print(const std::string& text);

// Runs `work`, naming `file` in any ptpack::Error it throws that does not name a file yet (errors
// raised while reading tensor data, after the artifact was opened, carry only the entry).
template <typename Fn>
void for_file(const std::string& file, Fn&& work) {
  try {
    work();
  } catch (Error& e) {
    e.add_file(file);
    throw;
  }
}

}  // namespace ptpack::cli
