// Pieces shared by the zip-based readers (torch.save, TorchScript, torch.package), which all use
// PyTorch's PyTorchStreamWriter container: one root folder, stored 64-byte-aligned records.
#pragma once

#include <map>
#include <string>

#include "artifact/object_walk.h"
#include "ptpack/artifact.h"
#include "ptpack/pickle.h"

namespace ptpack::formats {

// The root folder ("sd/") PyTorchStreamReader uses: the first entry's name up to its first '/'.
// Throws Error(kCorrupt, "torch.no-root-folder") when the first entry is not in a folder.
std::string archive_root(const zip::ZipArchive& archive);

// Reads a small text record under the root ("version", ".data/version", "byteorder"); empty
// when absent. Trailing whitespace is removed.
std::string read_text_record(const Artifact& artifact, const std::string& name);

// Applies the `version` (or `.data/version`) and `byteorder` records to the artifact.
// Throws Error(kCorrupt) when neither version record exists, as PyTorch does.
void read_version_and_byteorder(Artifact& artifact, const std::string& root);

// Parses the pickle record `name` (a full entry name) and appends it to artifact.pickles.
const pickle::Pickle& read_pickle_entry(Artifact& artifact, const std::string& name,
                                        const std::string& label);

// Resolves PyTorch storage persistent ids, ('storage', <storage type>, <key>, <location>,
// <numel>[, <view metadata>]), to storages whose bytes are zip records. `record_for_key` maps a
// key to the entry holding its bytes. Each key becomes one Storage; the record size must equal
// numel x element size.
class ZipStorageResolver {
 public:
  using RecordName = std::function<std::string(const pickle::Value* key)>;
  ZipStorageResolver(Artifact& artifact, RecordName record_for_key)
      : artifact_(artifact), record_for_key_(std::move(record_for_key)) {}

  StorageRef operator()(const pickle::Value* persistent_id);

 private:
  Artifact& artifact_;
  RecordName record_for_key_;
  std::map<std::string, StorageRef> seen_;  // by record name
};

// Parsed fields of a storage persistent id. Throws Error(kCorrupt, "storage.persistent-id").
struct StorageId {
  DType dtype = DType::kUInt8;
  bool untyped = false;
  const pickle::Value* key = nullptr;
  std::string location;
  uint64_t numel = 0;
  const pickle::Value* view_metadata = nullptr;  // legacy 6-tuples only; null when None
};
StorageId parse_storage_id(const pickle::Value* persistent_id);

// A storage key as text: strings as they are, ints in decimal (torch.package uses ints).
std::string storage_key_text(const pickle::Value* key);

// Marks entry kinds for listing: pickles, storages, sources, the rest as given.
void classify_entries(Artifact& artifact);

}  // namespace ptpack::formats
