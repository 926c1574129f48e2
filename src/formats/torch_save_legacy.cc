// Legacy torch.save stream (FORMATS.md §3), a concatenation of pickles and raw blobs:
//
//   pickle(MAGIC 0x1950a86a20f9469cfc6c) pickle(1001) pickle(sys_info) pickle(object)
//   pickle(sorted storage keys) then, per key in that order: int64 LE element count + data (LE)
//
// Storage ids are 6-tuples ('storage', type, key, location, numel, view_metadata). The raw
// records can only be found by walking them in order, which needs each storage's element size,
// so every persistent id in the object pickle is resolved before tensors are collected.
#include <cstring>
#include <map>
#include <unordered_set>

#include "artifact/object_walk.h"
#include "formats/readers.h"
#include "formats/zip_common.h"
#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack::formats {

using pickle::Kind;
using pickle::Value;

namespace {

// Little-endian bytes of the magic number 0x1950a86a20f9469cfc6c.
constexpr uint8_t kMagicBytes[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
constexpr int64_t kLegacyProtocol = 1001;

struct Region {
  uint64_t offset;
  pickle::Pickle pickle;
};

Region read_region(const ByteSource& src, uint64_t offset, const char* what) {
  if (offset >= src.size()) {
    throw_corrupt("legacy.truncated", std::string("file ends before the ") + what, offset);
  }
  std::vector<uint8_t> copy;
  const std::span<const uint8_t> bytes = pickle_bytes_at(src, offset, copy);
  try {
    return {offset, pickle::read_pickle(bytes)};
  } catch (Error& e) {
    if (e.offset()) {
      Error shifted(e.code(), e.rule(), e.detail());
      shifted.add_entry(what);
      shifted.add_offset(offset + *e.offset());
      throw shifted;
    }
    e.add_entry(what);
    throw;
  }
}

// Every persistent id reachable from root, each node visited once.
void for_each_persistent_id(const Value* root, const std::function<void(const Value*)>& fn) {
  std::vector<const Value*> todo{root};
  std::unordered_set<const Value*> seen;
  while (!todo.empty()) {
    const Value* v = todo.back();
    todo.pop_back();
    if (!v || !seen.insert(v).second) continue;
    if (v->kind == Kind::kPersistentId) fn(v);
    for (const Value* c : v->items) todo.push_back(c);
    for (const auto& [k, val] : v->entries) { todo.push_back(k); todo.push_back(val); }
    for (const Value* s : v->states) todo.push_back(s);
    todo.push_back(v->callable);
    todo.push_back(v->args);
    todo.push_back(v->kwargs);
  }
}

}  // namespace

void read_torch_save_legacy(Artifact& artifact) {
  const ByteSource& src = *artifact.sources[0];
  Region magic = read_region(src, 0, "magic number");
  const Value* m = magic.pickle.root();
  if (m->kind != Kind::kBigInt || m->text.size() != sizeof kMagicBytes ||
      std::memcmp(m->text.data(), kMagicBytes, sizeof kMagicBytes) != 0) {
    throw_corrupt("legacy.magic", "invalid magic number; not a legacy torch.save file", 0);
  }
  Region proto = read_region(src, magic.pickle.end_offset(), "protocol version");
  if (proto.pickle.root()->kind != Kind::kInt || proto.pickle.root()->integer != kLegacyProtocol) {
    throw_unsupported("legacy.protocol", "legacy protocol version " +
                      pickle::repr(proto.pickle.root(), 40) + " (expected 1001)");
  }
  uint64_t pos = proto.offset + proto.pickle.end_offset();
  Region sys_info = read_region(src, pos, "sys_info");
  pos += sys_info.pickle.end_offset();
  const Value* little = sys_info.pickle.root()->find("little_endian");
  if (little && little->kind == Kind::kBool && !little->boolean) {
    artifact.notes.push_back("saved on a big-endian machine; legacy data is little-endian regardless");
  }
  artifact.format_version = "1001";
  artifact.entries.push_back({"magic", Entry::Kind::kMetadata, 0, magic.pickle.end_offset(),
                              magic.pickle.end_offset(), false, 0});
  artifact.entries.push_back({"sys_info", Entry::Kind::kMetadata, sys_info.offset,
                              sys_info.pickle.end_offset(), sys_info.pickle.end_offset(), false, 0});

  const uint64_t object_offset = pos;
  Region object = read_region(src, pos, "object pickle");
  pos += object.pickle.end_offset();
  artifact.entries.push_back({"data.pkl", Entry::Kind::kPickle, object_offset, object.pickle.end_offset(),
                              object.pickle.end_offset(), false, 0});
  Region keys = read_region(src, pos, "storage keys");
  artifact.entries.push_back({"storage keys", Entry::Kind::kMetadata, pos, keys.pickle.end_offset(),
                              keys.pickle.end_offset(), false, 0});
  pos += keys.pickle.end_offset();
  const Value* key_list = keys.pickle.root();
  if (key_list->kind != Kind::kList) throw_corrupt("legacy.keys", "storage key list is not a list", keys.offset);

  // Register every storage the object pickle names, in a first pass.
  struct Pending { StorageId id; int index; };
  std::map<std::string, Pending> by_key;
  std::vector<std::pair<std::string, const Value*>> views;
  for_each_persistent_id(object.pickle.root(), [&](const Value* pid_node) {
    const Value* pid = pid_node->args;
    if (!pid->is_sequence() || pid->items.empty() || !pid->items[0]->is_string() ||
        pid->items[0]->text != "storage") {
      return;  // ('module', ...) ids only carry source for a warning
    }
    StorageId id = parse_storage_id(pid);
    const std::string key = storage_key_text(id.key);
    if (!by_key.count(key)) {
      Storage s;
      s.key = key;
      s.entry = "storages/" + key;
      s.dtype = id.dtype;
      s.nbytes = checked_mul(id.numel, id.untyped ? 1 : dtype_size(id.dtype), "storage size");
      s.location = id.location;
      artifact.storages.push_back(std::move(s));
      by_key.emplace(key, Pending{id, int(artifact.storages.size() - 1)});
    }
  });

  // Walk the raw records in key-list order: int64 element count, then the bytes.
  for (const Value* k : key_list->items) {
    if (!k->is_string() && k->kind != Kind::kInt) throw_corrupt("legacy.keys", "storage key is not a string", keys.offset);
    const std::string key = storage_key_text(k);
    auto it = by_key.find(key);
    if (it == by_key.end()) {
      throw_corrupt("legacy.unknown-key", "storage key '" + key + "' is not referenced by the pickle, so its "
                    "element size is unknown", pos);
    }
    Storage& s = artifact.storages[size_t(it->second.index)];
    uint8_t count_bytes[8];
    src.read_at(pos, count_bytes);
    const uint64_t count = load_u64_le(count_bytes);
    const uint64_t esize = it->second.id.untyped ? 1 : dtype_size(s.dtype);
    const uint64_t nbytes = checked_mul(count, esize, "storage size");
    if (nbytes != s.nbytes) {
      Error e(ErrorCode::kCorrupt, "legacy.size-mismatch",
              "storage has wrong byte size: the record holds " + std::to_string(count) +
                  " elements but the pickle says " + std::to_string(it->second.id.numel));
      e.add_entry(s.entry);
      e.add_offset(pos);
      throw e;
    }
    if (nbytes > src.size() - pos - 8) {  // read_at above guarantees pos + 8 <= size
      Error e(ErrorCode::kCorrupt, "legacy.truncated", "storage data runs past the end of the file");
      e.add_entry(s.entry);
      e.add_offset(pos);
      throw e;
    }
    s.offset = pos + 8;
    artifact.entries.push_back({s.entry, Entry::Kind::kStorage, pos, nbytes + 8, nbytes + 8, false, 0});
    pos += 8 + nbytes;
  }
  if (pos < src.size()) {
    artifact.notes.push_back(std::to_string(src.size() - pos) + " bytes after the last storage (ignored)");
  }

  // Old files (< 0.4) may save storage views: (view_key, offset, size) into a root storage.
  std::map<std::string, int> view_index;
  auto resolve = [&](const Value* pid) -> StorageRef {
    StorageId id = parse_storage_id(pid);
    const std::string key = storage_key_text(id.key);
    auto it = by_key.find(key);
    if (it == by_key.end() || artifact.storages[size_t(it->second.index)].offset == 0) {
      throw_corrupt("legacy.missing-storage", "storage '" + key + "' has no data record", pid->offset);
    }
    if (!id.view_metadata) return {it->second.index, id.dtype, id.untyped};
    const Value* vm = id.view_metadata;
    if (!vm->is_sequence() || vm->items.size() != 3 || vm->items[1]->kind != Kind::kInt ||
        vm->items[2]->kind != Kind::kInt || vm->items[1]->integer < 0 || vm->items[2]->integer < 0) {
      throw_corrupt("legacy.view", "storage view metadata is not (key, offset, size)", pid->offset);
    }
    const std::string view_key = storage_key_text(vm->items[0]);
    if (auto v = view_index.find(view_key); v != view_index.end()) return {v->second, id.dtype, id.untyped};
    const Storage& base = artifact.storages[size_t(it->second.index)];
    const uint64_t esize = id.untyped ? 1 : dtype_size(id.dtype);
    const uint64_t begin = checked_mul(uint64_t(vm->items[1]->integer), esize);
    const uint64_t length = checked_mul(uint64_t(vm->items[2]->integer), esize);
    if (begin > base.nbytes || length > base.nbytes - begin) {
      throw_corrupt("legacy.view", "storage view exceeds its root storage '" + key + "'", pid->offset);
    }
    Storage view = base;
    view.key = view_key;
    view.offset = base.offset + begin;
    view.nbytes = length;
    artifact.storages.push_back(std::move(view));
    view_index[view_key] = int(artifact.storages.size() - 1);
    return {view_index[view_key], id.dtype, id.untyped};
  };
  try {
    collect_tensors(object.pickle, "", resolve, artifact);
  } catch (Error& e) {
    e.add_entry("data.pkl");
    throw;
  }
  artifact.metadata.emplace_back("pickle protocol", std::to_string(object.pickle.protocol()));
  artifact.metadata.emplace_back("sys_info", pickle::repr(sys_info.pickle.root(), 200));
  artifact.pickles.push_back({"data.pkl", "", std::move(object.pickle)});
}

}  // namespace ptpack::formats
