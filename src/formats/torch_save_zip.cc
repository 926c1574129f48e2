// torch.save's zip format (FORMATS.md §2): <root>/data.pkl, <root>/data/<key> storages,
// <root>/version, and from 2.1 <root>/byteorder.
#include "formats/readers.h"
#include "formats/zip_common.h"
#include "ptpack/error.h"

namespace ptpack::formats {

void read_torch_save_zip(Artifact& artifact, const std::string& root) {
  read_version_and_byteorder(artifact, root);
  for (const char* name : {".format_version", ".storage_alignment"}) {
    std::string v = read_text_record(artifact, root + name);
    if (!v.empty()) artifact.metadata.emplace_back(name, v);
  }
  const pickle::Pickle& pk = read_pickle_entry(artifact, root + "data.pkl", "");
  artifact.metadata.emplace_back("pickle protocol", std::to_string(pk.protocol()));
  ZipStorageResolver resolve(artifact, [&](const pickle::Value* key) {
    // Keys are opaque strings: "0", "1"... since ~1.10, pointer-like numbers in 1.6-1.9.
    return root + "data/" + storage_key_text(key);
  });
  try {
    collect_tensors(pk, "", resolve, artifact);
  } catch (Error& e) {
    e.add_entry(root + "data.pkl");
    throw;
  }
  classify_entries(artifact);
}

}  // namespace ptpack::formats
