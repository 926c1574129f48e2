// Inspection operations: what `ptpack info`, `ls`, `tensors`, `dis` and `verify` compute.
// Each returns text ready to print; JSON outputs follow the schemas in docs/cli.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ptpack/artifact.h"

namespace ptpack {

// --- info ---------------------------------------------------------------------------------
struct InfoOptions {
  size_t max_values = 40;  // non-tensor values shown in text (JSON shows up to 10,000)
};
std::string info_text(const Artifact& artifact, const InfoOptions& options = {});
std::string info_json(const Artifact& artifact);

// --- ls -------------------------------------------------------------------------------------
// torch.package's file_structure() glob semantics: patterns are matched against entry paths
// relative to the archive's root folder, '/'-separated; '*' matches within one segment, a '**'
// segment matches any number of whole segments. Patterns without any include match everything.
bool glob_match(const std::string& pattern, const std::string& path);

struct LsOptions {
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  bool long_format = false;  // sizes and kinds beside names
};
// The same text as str(PackageImporter(path).file_structure(include, exclude)) for packages.
std::string ls_tree(const Artifact& artifact, const LsOptions& options);

// --- tensors --------------------------------------------------------------------------------
// The storage id used in listings: the storage's entry relative to the root folder
// ("data/0", ".data/3.storage"); for safetensors the tensor name (or "shard:name").
std::string storage_id(const Artifact& artifact, const Storage& storage);

std::string tensors_text(const Artifact& artifact, bool digest);
std::string tensors_json(const Artifact& artifact, bool digest);

// --- dis --------------------------------------------------------------------------------------
// Disassembles the pickle in `entry` (a pickle entry name, or its name relative to the root
// folder, e.g. "data.pkl"); empty entry means the main pickle. Throws Error(kNotFound) listing
// the available pickle entries.
std::string disassemble_entry(const Artifact& artifact, const std::string& entry);

// --- verify -----------------------------------------------------------------------------------
struct VerifyReport {
  uint64_t records_checked = 0;  // CRCs compared
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};
VerifyReport verify_artifact(const Artifact& artifact);

}  // namespace ptpack
