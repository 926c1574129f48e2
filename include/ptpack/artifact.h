// Artifact: the one model every reader produces and every operation consumes.
//
// An artifact is what a file holds, whatever its format: its entries (zip records, or the
// regions of a stream format), the value tree of each pickle, the storages (byte ranges in the
// file, never loaded) and a flat list of tensors addressed by path. Reading an artifact touches
// only metadata; storage bytes stay in the file until an operation asks for them.
//
// Tensor paths: dict keys and sequence indices joined with '.'; a pickled nn.Module's
// _parameters/_buffers/_modules are transparent, so paths read like state_dict() keys
// ("layer1.0.conv1.weight", "optimizer_state.state.0.momentum_buffer"). In archives with several
// pickles (torch.package; TorchScript constants) a path is "<entry>:<object path>".
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/byte_source.h"
#include "ptpack/dtype.h"
#include "ptpack/pickle.h"
#include "ptpack/zip.h"

namespace ptpack {

enum class Format {
  kTorchSaveZip,       // torch.save, zip container (1.6+)
  kTorchSaveLegacy,    // torch.save, legacy stream (_use_new_zipfile_serialization=False)
  kTorchPackage,       // torch.package.PackageExporter
  kTorchScript,        // torch.jit.save
  kSafetensors,
  kSafetensorsIndex,   // a sharded safetensors checkpoint, read through its *.index.json
  kPickle,             // a bare pickle (no storages)
};
std::string_view format_name(Format format);  // "torch_save_zip", ... as in `ptpack tensors --json`

enum class ByteOrder { kLittle, kBig };

// A part of the file as ptpack sees it.
struct Entry {
  enum class Kind { kPickle, kStorage, kSource, kResource, kMetadata, kOther };
  std::string name;         // archive path ("sd/data/0") or region name for stream formats
  Kind kind = Kind::kOther;
  uint64_t offset = 0;      // first byte of the entry's (possibly compressed) data in its source
  uint64_t stored_size = 0; // bytes in the file
  uint64_t size = 0;        // bytes once uncompressed
  bool compressed = false;
  int source = 0;           // index into Artifact::sources
};
std::string_view entry_kind_name(Entry::Kind kind);

// A storage: the untyped bytes one or more tensors view. Never loaded by reading.
struct Storage {
  std::string key;          // as the file names it: "0", "94311234567", "3", a tensor name...
  std::string entry;        // the entry that holds the bytes
  DType dtype = DType::kUInt8;  // the storage's element type (uint8 for UntypedStorage)
  uint64_t nbytes = 0;
  std::string location;     // device tag as saved ("cpu", "cuda:0"); informational
  ByteOrder byte_order = ByteOrder::kLittle;
  int source = 0;           // index into Artifact::sources
  uint64_t offset = 0;      // absolute offset of the bytes (of the compressed data if compressed)
  bool compressed = false;  // deflated inside a zip record: must be inflated to read
};

struct Tensor {
  std::string path;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;  // in elements
  int64_t offset = 0;           // storage offset, in elements
  int storage = -1;             // index into Artifact::storages; -1 when there is no data (meta)
  bool requires_grad = false;
  bool is_parameter = false;
  std::string layout = "strided";  // or the sparse/nested layout this is a component of
  std::string quantization;        // quantized tensors: "per_tensor_affine(scale=.., zero_point=..)"
  std::string device;              // device tag of its storage ("cpu", "cuda:0", "meta")
  uint32_t rebuild_value = 0;      // Value::id of the outermost rebuild call in its pickle

  uint64_t numel() const;
  uint64_t nbytes() const { return dtype_bytes(dtype, numel()); }
  bool is_contiguous() const;
};

// Row-major strides of a contiguous tensor of this shape (size-0 dims count as 1, as torch does).
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);

struct PickleDoc {
  std::string entry;  // where the pickle lives ("sd/data.pkl", "main pickle")
  std::string label;  // the prefix used in tensor paths ("" or "model/model.pkl")
  pickle::Pickle pickle;
};

struct Artifact {
  std::string path;
  Format format = Format::kPickle;
  std::string format_version;  // zip "version" record, legacy protocol, safetensors "-"
  ByteOrder byte_order = ByteOrder::kLittle;
  std::vector<SourcePtr> sources;           // sources[0] is the file itself
  std::shared_ptr<zip::ZipArchive> archive; // zip-based formats only
  std::string root;                         // zip-based formats: the root folder, "sd/"
  std::vector<Entry> entries;
  std::deque<PickleDoc> pickles;            // deque: references stay valid as it grows
  std::vector<Storage> storages;
  std::vector<Tensor> tensors;
  std::vector<std::pair<std::string, std::string>> metadata;  // format facts, in order
  std::vector<std::string> notes;  // things a reader noticed but could not represent

  uint64_t storage_bytes() const;  // sum of storage sizes
};

// Opens any artifact; the format is detected from content, never from the extension.
// Throws Error naming the file, entry, offset and rule on bad input.
Artifact open_artifact(const std::string& path);

// The same from any byte source (memory buffers in tests and fuzzers). A sharded safetensors
// index opens its shards relative to `source->name()`.
Artifact read_artifact(SourcePtr source);

}  // namespace ptpack
