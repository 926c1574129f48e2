#include "formats/zip_common.h"

#include <unordered_set>

#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack::formats {

using pickle::Kind;
using pickle::Value;

std::string archive_root(const zip::ZipArchive& archive) {
  if (archive.entries().empty()) {
    throw_corrupt("torch.empty-archive", "the archive has no entries");
  }
  const std::string& first = archive.entries().front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) {
    Error e(ErrorCode::kCorrupt, "torch.no-root-folder",
            "the first entry is not inside a folder; PyTorch archives keep every record under one "
            "root folder");
    e.add_entry(first);
    throw e;
  }
  return first.substr(0, slash + 1);
}

std::string read_text_record(const Artifact& artifact, const std::string& name) {
  const zip::ZipEntry* e = artifact.archive->find(name);
  if (!e) return {};
  if (e->size > 4096) {
    Error err(ErrorCode::kCorrupt, "torch.record-too-large", "a small text record is " +
              std::to_string(e->size) + " bytes");
    err.add_entry(name);
    throw err;
  }
  std::vector<uint8_t> bytes = artifact.archive->read(*e, 4096);
  std::string text(bytes.begin(), bytes.end());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  return text;
}

void read_version_and_byteorder(Artifact& artifact, const std::string& root) {
  // As PyTorchStreamReader: .data/version first, then version.
  std::string version = read_text_record(artifact, root + ".data/version");
  if (version.empty()) version = read_text_record(artifact, root + "version");
  if (version.empty()) {
    Error e(ErrorCode::kCorrupt, "torch.missing-version",
            "no 'version' or '.data/version' record; PyTorch refuses such archives");
    e.add_entry(root + "version");
    throw e;
  }
  for (char c : version) {
    if (c < '0' || c > '9') {
      Error e(ErrorCode::kCorrupt, "torch.bad-version", "version record '" + version.substr(0, 20) +
              "' is not a number");
      e.add_entry(root + "version");
      throw e;
    }
  }
  artifact.format_version = version;
  if (version.size() > 2 || std::stoi(version) > 10) {
    artifact.notes.push_back("file format version " + version +
                             " is newer than PyTorch 2.x reads (10); read anyway");
  }
  const std::string order = read_text_record(artifact, root + "byteorder");
  if (order == "big") {
    artifact.byte_order = ByteOrder::kBig;
  } else if (!order.empty() && order != "little") {
    Error e(ErrorCode::kCorrupt, "torch.bad-byteorder", "byteorder record is '" + order.substr(0, 20) +
            "', expected 'little' or 'big'");
    e.add_entry(root + "byteorder");
    throw e;
  }
  artifact.metadata.emplace_back("byteorder", order.empty() ? "little (no byteorder record)" : order);
}

const pickle::Pickle& read_pickle_entry(Artifact& artifact, const std::string& name,
                                        const std::string& label) {
  const zip::ZipEntry* e = artifact.archive->find(name);
  if (!e) {
    Error err(ErrorCode::kCorrupt, "torch.missing-record", "required record is missing");
    err.add_entry(name);
    throw err;
  }
  try {
    std::vector<uint8_t> bytes = artifact.archive->read(*e, limits::kMaxPickleBytes);
    artifact.pickles.push_back({name, label, pickle::read_pickle(bytes)});
    return artifact.pickles.back().pickle;
  } catch (Error& err) {
    err.add_entry(name);
    throw;
  }
}

StorageId parse_storage_id(const Value* pid) {
  auto bad = [&](const std::string& why) -> void {
    throw_corrupt("storage.persistent-id", "persistent id " + pickle::repr(pid, 100) + ": " + why,
                  pid->offset);
  };
  if (!pid->is_sequence() || pid->items.size() < 5) bad("expected ('storage', type, key, location, numel)");
  const auto& it = pid->items;
  if (!it[0]->is_string() || it[0]->text != "storage") bad("first item is not 'storage'");
  StorageId id;
  const Value* type = it[1];
  if (type->kind != Kind::kGlobal) bad("storage type is not a class name");
  const std::string& cls = type->name;
  if (cls == "UntypedStorage" || cls == "_UntypedStorage") {
    id.untyped = true;
  } else if (auto d = dtype_from_storage_class(cls)) {
    id.dtype = *d;
  } else {
    throw_unsupported("storage.type", "unknown storage type " + type->text + "." + cls);
  }
  id.key = it[2];
  if (!it[2]->is_string() && it[2]->kind != Kind::kInt) bad("key is neither a string nor an int");
  if (it[3]->is_string()) id.location = it[3]->text;
  if (it[4]->kind != Kind::kInt || it[4]->integer < 0) bad("numel is not a non-negative int");
  id.numel = uint64_t(it[4]->integer);
  if (it.size() > 5 && it[5]->kind != Kind::kNone) id.view_metadata = it[5];
  return id;
}

std::string storage_key_text(const Value* key) {
  return key->is_string() ? key->text : std::to_string(key->integer);
}

StorageRef ZipStorageResolver::operator()(const Value* pid) {
  const StorageId id = parse_storage_id(pid);
  const std::string record = record_for_key_(id.key);
  if (auto it = seen_.find(record); it != seen_.end()) {
    if (!id.untyped && !it->second.untyped && it->second.dtype != id.dtype) {
      throw_corrupt("storage.dtype-conflict", "storage '" + record + "' is used as " +
                    std::string(dtype_name(it->second.dtype)) + " and as " +
                    std::string(dtype_name(id.dtype)), pid->offset);
    }
    return it->second;
  }
  const zip::ZipEntry* e = artifact_.archive->find(record);
  if (!e) {
    Error err(ErrorCode::kCorrupt, "storage.missing-record",
              "the pickle references storage " + pickle::repr(id.key, 40) + " but its record is missing");
    err.add_entry(record);
    throw err;
  }
  const uint64_t expected = checked_mul(id.numel, id.untyped ? 1 : dtype_size(id.dtype), "storage size");
  if (expected != e->size) {
    Error err(ErrorCode::kCorrupt, "storage.size-mismatch",
              "storage needs " + std::to_string(expected) + " bytes (numel " + std::to_string(id.numel) +
                  " x " + std::string(id.untyped ? "byte" : dtype_name(id.dtype)) + ") but the record has " +
                  std::to_string(e->size));
    err.add_entry(record);
    throw err;
  }
  Storage s;
  s.key = pickle::repr(id.key, 200);
  if (id.key->is_string()) s.key = id.key->text;
  s.entry = record;
  s.dtype = id.dtype;
  s.nbytes = e->size;
  s.location = id.location;
  s.byte_order = artifact_.byte_order;
  s.source = 0;
  s.offset = e->data_offset;
  s.compressed = e->method != zip::kMethodStored;
  artifact_.storages.push_back(std::move(s));
  StorageRef ref{int(artifact_.storages.size() - 1), id.dtype, id.untyped};
  seen_.emplace(record, ref);
  return ref;
}

void classify_entries(Artifact& artifact) {
  for (auto& e : artifact.entries) {
    const std::string& n = e.name;
    auto ends_with = [&](std::string_view s) { return n.ends_with(s); };
    if (ends_with(".pkl")) e.kind = Entry::Kind::kPickle;
    else if (ends_with(".py")) e.kind = Entry::Kind::kSource;
    else if (ends_with("/version") || ends_with("/byteorder") || ends_with("/.format_version") ||
             ends_with("/.storage_alignment") || ends_with("/serialization_id") ||
             ends_with("/extern_modules") || ends_with("/python_version"))
      e.kind = Entry::Kind::kMetadata;
  }
  std::unordered_set<std::string> storage_entries;
  for (const auto& s : artifact.storages) storage_entries.insert(s.entry);
  for (auto& e : artifact.entries) {
    if (storage_entries.count(e.name)) e.kind = Entry::Kind::kStorage;
  }
}

}  // namespace ptpack::formats
