// TorchScript archives (torch.jit.save, FORMATS.md §5): <root>/data.pkl holds the module object
// graph with storages in <root>/data/<key>; <root>/constants.pkl holds tensor constants with
// storages in <root>/constants/<key>; <root>/code/ holds the TorchScript source.
#include "formats/readers.h"
#include "formats/zip_common.h"
#include "ptpack/error.h"

namespace ptpack::formats {

void read_torchscript(Artifact& artifact, const std::string& root) {
  read_version_and_byteorder(artifact, root);
  const pickle::Pickle& data = read_pickle_entry(artifact, root + "data.pkl", "");
  ZipStorageResolver data_storages(artifact, [&](const pickle::Value* k) { return root + "data/" + storage_key_text(k); });
  try {
    collect_tensors(data, "", data_storages, artifact);
  } catch (Error& e) {
    e.add_entry(root + "data.pkl");
    throw;
  }
  const pickle::Pickle& constants = read_pickle_entry(artifact, root + "constants.pkl", "constants.pkl");
  ZipStorageResolver constant_storages(artifact, [&](const pickle::Value* k) { return root + "constants/" + storage_key_text(k); });
  try {
    collect_tensors(constants, "constants.pkl", constant_storages, artifact);
  } catch (Error& e) {
    e.add_entry(root + "constants.pkl");
    throw;
  }
  size_t code_files = 0;
  for (const auto& e : artifact.entries) {
    if (e.name.rfind(root + "code/", 0) == 0 && e.name.ends_with(".py")) {
      ++code_files;
    }
  }
  artifact.metadata.emplace_back("code files", std::to_string(code_files));
  if (artifact.archive->find(root + "bytecode.pkl")) {
    artifact.metadata.emplace_back("mobile bytecode", "bytecode.pkl present (not interpreted)");
  }
  classify_entries(artifact);
}

}  // namespace ptpack::formats
