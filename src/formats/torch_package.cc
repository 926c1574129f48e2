// torch.package archives (FORMATS.md §4): every *.pkl written by save_pickle, storages in
// <root>/.data/<id>.storage, interned sources as .py files, .data/extern_modules,
// .data/python_version, and TorchScript modules under .data/ts_code/<id>/.
#include <algorithm>
#include <sstream>

#include "formats/readers.h"
#include "formats/zip_common.h"
#include "ptpack/error.h"

namespace ptpack::formats {
namespace {

// Mocked modules are written as _MOCK_IMPL source, which imports MockedObject from `_mock`.
bool is_mock_source(const Artifact& artifact, const zip::ZipEntry& e) {
  if (e.size > 4096) return false;
  std::vector<uint8_t> bytes = artifact.archive->read(e, 4096);
  std::string text(bytes.begin(), bytes.end());
  return text.find("MockedObject") != std::string::npos && text.find("__getattr__") != std::string::npos;
}

}  // namespace

void read_torch_package(Artifact& artifact, const std::string& root) {
  read_version_and_byteorder(artifact, root);

  // Storage ids: eager pickles use ints (".data/<id>.storage"); TorchScript code inside the
  // package uses strings "<id>.storage" relative to .data/. One resolver so both share storages.
  ZipStorageResolver resolve(artifact, [&](const pickle::Value* key) {
    if (key->is_string()) return root + ".data/" + key->text;
    return root + ".data/" + storage_key_text(key) + ".storage";
  });

  std::vector<std::string> pickles, sources, mocked;
  for (const auto& e : artifact.archive->entries()) {
    if (e.name.rfind(root, 0) != 0) continue;
    const std::string rel = e.name.substr(root.size());
    if (rel.ends_with(".pkl")) {
      pickles.push_back(e.name);
    } else if (rel.ends_with(".py") && rel.rfind(".data/", 0) != 0) {
      sources.push_back(rel);
      if (is_mock_source(artifact, e)) mocked.push_back(rel);
    }
  }
  for (const std::string& name : pickles) {
    const std::string label = name.substr(root.size());
    const pickle::Pickle& pk = read_pickle_entry(artifact, name, label);
    try {
      collect_tensors(pk, label, resolve, artifact);
    } catch (Error& e) {
      e.add_entry(name);
      throw;
    }
  }

  const std::string externs = read_text_record(artifact, root + ".data/extern_modules");
  std::string extern_list;
  std::istringstream lines(externs);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    extern_list += (extern_list.empty() ? "" : ", ") + line;
  }
  artifact.metadata.emplace_back("extern modules", extern_list.empty() ? "(none)" : extern_list);
  const std::string py = read_text_record(artifact, root + ".data/python_version");
  if (!py.empty()) artifact.metadata.emplace_back("python version", py);
  artifact.metadata.emplace_back("pickles", std::to_string(pickles.size()));
  artifact.metadata.emplace_back("source files", std::to_string(sources.size()));
  if (!mocked.empty()) {
    std::string list;
    for (const auto& m : mocked) list += (list.empty() ? "" : ", ") + m;
    artifact.metadata.emplace_back("mocked modules", list);
  }
  classify_entries(artifact);
  // Everything else a user saved with save_text/save_binary is a resource.
  for (auto& e : artifact.entries) {
    if (e.kind == Entry::Kind::kOther && e.name.find("/.data/") == std::string::npos) {
      e.kind = Entry::Kind::kResource;
    }
  }
}

}  // namespace ptpack::formats
