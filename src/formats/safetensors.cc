// safetensors (huggingface/safetensors, FORMATS.md §6.2):
//
//   u64 LE N | N bytes of JSON header (may be right-padded with spaces) | byte buffer
//   header: {"<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//            "__metadata__": {"<k>": "<v>"}}     offsets relative to the buffer, end exclusive
//
// Validation follows the reference implementation (safetensors/src/tensor.rs): header at most
// 100,000,000 bytes, valid UTF-8 JSON object, no duplicate keys, known dtypes, byte sizes that
// match the shapes, and tensors that tile the buffer exactly from 0 to the end of the file with
// no hole and no overlap. Each tensor is its own storage.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

#include "formats/readers.h"
#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack::formats {
namespace {

using json = nlohmann::ordered_json;  // keeps header order (the user's tensor order)

[[noreturn]] void fail(const std::string& rule, const std::string& detail, const std::string& entry = "",
                       std::optional<uint64_t> offset = std::nullopt) {
  Error e(ErrorCode::kCorrupt, rule, detail);
  if (!entry.empty()) e.add_entry(entry);
  if (offset) e.add_offset(*offset);
  throw e;
}

// Deepest nesting of [ and { outside strings. Checked before parsing because nlohmann's parser
// and its values recurse, so a 100k-deep header would overflow the stack.
int json_depth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limits::kMaxJsonDepth) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// Parses JSON text, refusing duplicate keys at any depth (nlohmann would keep the last one).
json parse_strict_json(std::string_view text, const std::string& rule_prefix) {
  if (json_depth(text) > limits::kMaxJsonDepth) {
    throw_limit("kMaxJsonDepth", "JSON nests deeper than " + std::to_string(limits::kMaxJsonDepth) + " levels");
  }
  std::vector<std::set<std::string>> keys_by_depth;
  std::string duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) keys_by_depth.emplace_back();
    else if (event == json::parse_event_t::object_end && !keys_by_depth.empty()) keys_by_depth.pop_back();
    else if (event == json::parse_event_t::key && !keys_by_depth.empty()) {
      const std::string k = parsed.get<std::string>();
      if (!keys_by_depth.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), callback);
  } catch (const json::parse_error& e) {
    fail(rule_prefix + ".json", std::string("not valid JSON: ") + e.what(), "", 8 + e.byte);
  } catch (const json::exception& e) {  // e.g. out_of_range for a number like 1e400
    fail(rule_prefix + ".json", std::string("not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail(rule_prefix + ".duplicate-key", "key '" + duplicate + "' appears twice", duplicate);
  return j;
}

uint64_t json_uint(const json& v, const std::string& name, const char* what) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0)) {
    fail("safetensors.bad-field", std::string(what) + " must be a non-negative integer", name);
  }
  return v.get<uint64_t>();
}

}  // namespace

void read_safetensors(Artifact& artifact) {
  const int source_index = int(artifact.sources.size()) - 1;  // the shard being read
  const ByteSource& src = *artifact.sources.back();
  if (src.size() < 8) fail("safetensors.too-small", "file is shorter than the 8-byte header length", "", 0);
  uint8_t len_bytes[8];
  src.read_at(0, len_bytes);
  const uint64_t n = load_u64_le(len_bytes);
  if (n > limits::kMaxSafetensorsHeaderBytes) {
    throw_limit("kMaxSafetensorsHeaderBytes", "header claims " + std::to_string(n) + " bytes", 0);
  }
  if (n > src.size() - 8) {
    fail("safetensors.header-past-end", "header of " + std::to_string(n) +
         " bytes runs past the end of the file", "", 0);
  }
  std::vector<uint8_t> header_bytes = src.read_vector(8, n);
  std::string_view text(reinterpret_cast<const char*>(header_bytes.data()), header_bytes.size());
  if (text.empty() || text.front() != '{') fail("safetensors.header-start", "header must start with '{'", "", 8);
  const json header = parse_strict_json(text, "safetensors");
  if (!header.is_object()) fail("safetensors.header-object", "header is not a JSON object", "", 8);
  const uint64_t buffer_start = 8 + n;
  const uint64_t buffer_size = src.size() - buffer_start;

  struct Item { std::string name; DType dtype; std::vector<int64_t> shape; uint64_t begin, end; };
  std::vector<Item> items;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail("safetensors.metadata", "__metadata__ must be an object of strings", name);
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail("safetensors.metadata", "__metadata__ value for '" + k + "' is not a string", name);
        artifact.metadata.emplace_back("__metadata__." + k, v.get<std::string>());
      }
      continue;
    }
    if (!info.is_object()) fail("safetensors.bad-tensor", "tensor info is not an object", name);
    if (!info.contains("dtype") || !info["dtype"].is_string()) fail("safetensors.bad-field", "missing dtype", name);
    if (!info.contains("shape") || !info["shape"].is_array()) fail("safetensors.bad-field", "missing shape", name);
    if (!info.contains("data_offsets") || !info["data_offsets"].is_array() || info["data_offsets"].size() != 2) {
      fail("safetensors.bad-field", "data_offsets must be [begin, end]", name);
    }
    Item item;
    item.name = name;
    const std::string code = info["dtype"].get<std::string>();
    auto dtype = dtype_from_safetensors(code);
    if (!dtype) throw_unsupported("safetensors.dtype", "tensor '" + name + "' has dtype " + code + " which ptpack does not support");
    item.dtype = *dtype;
    if (info["shape"].size() > size_t(limits::kMaxTensorRank)) {
      throw_limit("kMaxTensorRank", "tensor '" + name + "' has " + std::to_string(info["shape"].size()) + " dimensions");
    }
    uint64_t numel = 1;
    for (const auto& d : info["shape"]) {
      const uint64_t dim = json_uint(d, name, "shape entries");
      if (dim > uint64_t(INT64_MAX)) fail("safetensors.bad-field", "dimension too large", name);
      item.shape.push_back(int64_t(dim));
      numel = checked_mul(numel, dim, "tensor size");
    }
    if (numel > (uint64_t{1} << 58)) fail("tensor.numel-overflow", "more than 2^58 elements", name);
    item.begin = json_uint(info["data_offsets"][0], name, "data_offsets");
    item.end = json_uint(info["data_offsets"][1], name, "data_offsets");
    if (item.end < item.begin) fail("safetensors.offsets", "data_offsets end is before begin", name);
    const uint64_t expected = checked_mul(numel, dtype_size(item.dtype), "tensor size");
    if (item.end - item.begin != expected) {
      fail("safetensors.size-mismatch", "data_offsets span " + std::to_string(item.end - item.begin) +
           " bytes but shape x dtype needs " + std::to_string(expected), name);
    }
    items.push_back(std::move(item));
  }

  // Tensors must tile the buffer: sorted by offset, each begins where the previous ended.
  std::vector<const Item*> by_offset;
  for (const auto& it : items) by_offset.push_back(&it);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const Item* a, const Item* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t cursor = 0;
  for (const Item* it : by_offset) {
    if (it->begin != cursor) {
      fail(it->begin > cursor ? "safetensors.hole" : "safetensors.overlap",
           it->begin > cursor ? "bytes " + std::to_string(cursor) + ".." + std::to_string(it->begin) +
                                    " of the buffer belong to no tensor"
                              : "tensor overlaps the previous one",
           it->name, buffer_start + it->begin);
    }
    cursor = it->end;
  }
  if (cursor != buffer_size) {
    fail("safetensors.buffer-size", "tensors cover " + std::to_string(cursor) + " bytes but the buffer after the "
         "header is " + std::to_string(buffer_size) + " bytes", "", buffer_start);
  }

  artifact.entries.push_back({src.name() == artifact.path ? "header" : src.name() + ":header",
                              Entry::Kind::kMetadata, 8, n, n, false, source_index});
  for (const auto& it : items) {  // header order
    Storage s;
    s.key = it.name;
    s.entry = it.name;
    s.dtype = it.dtype;
    s.nbytes = it.end - it.begin;
    s.location = "cpu";
    s.source = source_index;
    s.offset = buffer_start + it.begin;
    artifact.storages.push_back(s);
    artifact.entries.push_back({it.name, Entry::Kind::kStorage, s.offset, s.nbytes, s.nbytes, false, source_index});
    Tensor t;
    t.path = it.name;
    t.dtype = it.dtype;
    t.shape = it.shape;
    t.stride.assign(it.shape.size(), 1);
    for (size_t i = it.shape.size(); i-- > 1;) {
      t.stride[i - 1] = checked_mul_signed(t.stride[i], std::max<int64_t>(it.shape[i], 1), "stride");
    }
    t.storage = int(artifact.storages.size() - 1);
    t.device = "cpu";
    if (artifact.tensors.size() >= limits::kMaxTensors) throw_limit("kMaxTensors", "too many tensors");
    artifact.tensors.push_back(std::move(t));
  }
  if (artifact.format_version.empty()) artifact.format_version = "-";
}

// Sharded checkpoint: {"metadata": {...}, "weight_map": {"<tensor>": "<shard file>"}} beside the
// shards. Read as one artifact whose sources are the shards; every tensor of the weight map must
// be in the shard it names.
void read_safetensors_index(Artifact& artifact) {
  const ByteSource& src = *artifact.sources[0];
  if (src.size() > limits::kMaxIndexFileBytes) throw_limit("kMaxIndexFileBytes", "index file is too large");
  std::vector<uint8_t> bytes = src.read_vector(0, src.size());
  const json index = parse_strict_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                                       "index");
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    fail("index.weight-map", "not a safetensors index: no \"weight_map\" object");
  }
  if (index.contains("metadata") && index["metadata"].is_object()) {
    for (const auto& [k, v] : index["metadata"].items()) artifact.metadata.emplace_back("metadata." + k, v.dump());
  }
  const std::string dir = [&] {
    const size_t slash = artifact.path.rfind('/');
    return slash == std::string::npos ? std::string() : artifact.path.substr(0, slash + 1);
  }();
  std::vector<std::string> shard_order;
  std::map<std::string, std::vector<std::string>> wanted;  // shard -> tensor names
  for (const auto& [name, file] : index["weight_map"].items()) {
    if (!file.is_string()) fail("index.weight-map", "weight_map value is not a file name", name);
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
      fail("index.shard-name", "shard name '" + f + "' must be a plain file name beside the index", name);
    }
    if (!wanted.count(f)) shard_order.push_back(f);
    wanted[f].push_back(name);
  }
  if (shard_order.size() > limits::kMaxShards) throw_limit("kMaxShards", std::to_string(shard_order.size()) + " shards");

  std::map<std::string, size_t> seen;  // tensor name -> index in artifact.tensors
  for (const std::string& shard : shard_order) {
    const std::string shard_path = dir + shard;
    Artifact part;
    part.path = shard_path;
    try {
      part.sources.push_back(open_file_source(shard_path));
    } catch (const Error& e) {
      // A shard that cannot be opened makes the index itself unusable: corrupt, whatever the cause.
      Error err(ErrorCode::kCorrupt, "index.missing-shard",
                "the weight map names shard '" + shard + "' which cannot be opened: " + e.detail());
      err.add_entry(shard);
      throw err;
    }
    try {
      read_safetensors(part);
    } catch (Error& e) {
      e.add_file(shard_path);
      throw;
    }
    artifact.sources.push_back(part.sources[0]);
    const int source_index = int(artifact.sources.size() - 1);
    const int storage_base = int(artifact.storages.size());
    for (auto s : part.storages) {
      s.source = source_index;
      artifact.storages.push_back(std::move(s));
    }
    std::set<std::string> expected(wanted[shard].begin(), wanted[shard].end());
    for (auto t : part.tensors) {
      if (!expected.count(t.path)) {
        artifact.notes.push_back("tensor '" + t.path + "' in " + shard + " is not in the weight map (ignored by loaders)");
      }
      if (seen.count(t.path)) fail("index.duplicate-tensor", "tensor appears in two shards", t.path);
      t.storage += storage_base;
      seen[t.path] = artifact.tensors.size();
      artifact.tensors.push_back(std::move(t));
      expected.erase(artifact.tensors.back().path);
    }
    if (!expected.empty()) {
      Error e(ErrorCode::kCorrupt, "index.missing-tensor",
              "the weight map places '" + *expected.begin() + "' in " + shard + " but the shard does not hold it");
      e.add_entry(shard);
      throw e;
    }
    for (auto e : part.entries) {
      e.source = source_index;
      e.name = shard + ":" + e.name;
      artifact.entries.push_back(std::move(e));
    }
    for (auto& m : part.metadata) artifact.metadata.emplace_back(shard + ":" + m.first, m.second);
  }
  artifact.metadata.emplace_back("shards", std::to_string(shard_order.size()));
  artifact.format_version = "-";
}

}  // namespace ptpack::formats
