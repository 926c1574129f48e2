// Format detection from content (never from the file name) and the open_artifact() entry point.
//
//   "PK\3\4" at 0               a zip: TorchScript if <root>/constants.pkl exists, torch.package
//                               if <root>/.data/extern_modules exists, torch.save if <root>/data.pkl
//   a pickle of the magic long  legacy torch.save (FORMATS.md §3): LONG1 in protocols 2-5,
//                               a "L...L\n" line in protocols 0 and 1
//   "ustar" at 257              the pre-0.2 tar format (not supported; said so clearly)
//   "PYTORCH1"                  the 2018 preview format (PyTorch itself refuses it)
//   u64 LE N, then '{'          safetensors
//   '{' (after whitespace)      a sharded safetensors index (*.safetensors.index.json)
//   anything else               tried as a bare pickle
#include <cstring>

#include "formats/readers.h"
#include "formats/zip_common.h"
#include "io/checked_math.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"

namespace ptpack {
namespace {

enum class Container { kZip, kLegacy, kTar, kPreview, kSafetensors, kJson, kPickle, kEmpty };

Container sniff(const ByteSource& src) {
  const uint64_t size = src.size();
  if (size == 0) return Container::kEmpty;
  uint8_t head[512] = {};
  const uint64_t n = std::min<uint64_t>(size, sizeof head);
  src.read_at(0, std::span<uint8_t>(head, n));
  if (n >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return Container::kZip;
  if (n >= 8 && std::memcmp(head, "PYTORCH1", 8) == 0) return Container::kPreview;
  if (n >= 262 && std::memcmp(head + 257, "ustar", 5) == 0) return Container::kTar;
  // Legacy: the magic long 0x1950a86a20f9469cfc6c is LONG1 0x0a + its 10 bytes from protocol 2
  // on (after PROTO, and a FRAME header from protocol 4).
  static const uint8_t kMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  static const char kMagicText[] = "L119547037146038801333356L\n";  // protocols 0 and 1
  if (n >= sizeof kMagicText - 1 && std::memcmp(head, kMagicText, sizeof kMagicText - 1) == 0) {
    return Container::kLegacy;
  }
  if (n >= sizeof kMagic && head[0] == 0x80) {
    for (uint64_t i = 2; i + sizeof kMagic <= std::min<uint64_t>(n, 16 + sizeof kMagic); ++i) {
      if (std::memcmp(head + i, kMagic, sizeof kMagic) == 0) return Container::kLegacy;
    }
  }
  if (n >= 9 && head[8] == '{' && load_u64_le(head) >= 2) return Container::kSafetensors;
  uint64_t i = 0;
  while (i < n && (head[i] == ' ' || head[i] == '\n' || head[i] == '\r' || head[i] == '\t')) ++i;
  if (i < n && head[i] == '{') return Container::kJson;
  return Container::kPickle;
}

bool has_entry(const zip::ZipArchive& archive, const std::string& name) { return archive.find(name) != nullptr; }

Format zip_format(const zip::ZipArchive& archive, const std::string& root) {
  if (has_entry(archive, root + "constants.pkl")) return Format::kTorchScript;
  if (has_entry(archive, root + ".data/extern_modules")) return Format::kTorchPackage;
  if (has_entry(archive, root + "data.pkl")) return Format::kTorchSaveZip;
  Error e(ErrorCode::kUnsupported, "format.zip-kind",
          "a ZIP archive without data.pkl, constants.pkl or .data/extern_modules under '" + root +
              "': not a PyTorch archive ptpack knows (torch.export .pt2 is not supported yet)");
  throw e;
}

void fill(Artifact& artifact) {
  const ByteSource& src = *artifact.sources[0];
  switch (sniff(src)) {
    case Container::kEmpty:
      throw_corrupt("format.empty", "the file is empty");
    case Container::kPreview:
      throw_unsupported("format.preview", "PYTORCH1 archives come from the 2018 preview release; "
                        "PyTorch itself no longer reads them");
    case Container::kTar:
      throw_unsupported("format.tar", "the tar format of PyTorch 0.1.x is not supported; load and "
                        "re-save it with an old PyTorch");
    case Container::kZip: {
      artifact.archive = std::make_shared<zip::ZipArchive>(zip::ZipArchive::open(artifact.sources[0]));
      for (const auto& e : artifact.archive->entries()) {
        artifact.entries.push_back({e.name, Entry::Kind::kOther, e.data_offset, e.compressed_size, e.size,
                                    e.method != zip::kMethodStored, 0});
      }
      const std::string root = formats::archive_root(*artifact.archive);
      artifact.root = root;
      for (const auto& e : artifact.archive->entries()) {
        if (e.name.rfind(root, 0) != 0) {
          artifact.notes.push_back("entry '" + e.name + "' is outside the root folder '" + root +
                                   "' (PyTorch 2.x refuses such archives)");
          break;
        }
      }
      artifact.format = zip_format(*artifact.archive, root);
      switch (artifact.format) {
        case Format::kTorchScript: formats::read_torchscript(artifact, root); break;
        case Format::kTorchPackage: formats::read_torch_package(artifact, root); break;
        default: formats::read_torch_save_zip(artifact, root); break;
      }
      return;
    }
    case Container::kLegacy:
      artifact.format = Format::kTorchSaveLegacy;
      formats::read_torch_save_legacy(artifact);
      return;
    case Container::kSafetensors:
      artifact.format = Format::kSafetensors;
      formats::read_safetensors(artifact);
      return;
    case Container::kJson:
      artifact.format = Format::kSafetensorsIndex;
      formats::read_safetensors_index(artifact);
      return;
    case Container::kPickle:
      artifact.format = Format::kPickle;
      formats::read_bare_pickle(artifact);
      return;
  }
}

}  // namespace

namespace formats {

std::span<const uint8_t> pickle_bytes_at(const ByteSource& source, uint64_t offset, std::vector<uint8_t>& copy) {
  const uint64_t n = std::min<uint64_t>(source.size() - offset, limits::kMaxPickleBytes);
  if (auto v = source.view(offset, n)) return *v;  // mapped: only the pages the pickle spans are touched
  copy = source.read_vector(offset, n);
  return copy;
}

// A bare pickle (pickle.dump output, or a .pkl pulled out of an archive): its values can be
// shown, but persistent ids cannot be resolved, so tensors are not listed.
void read_bare_pickle(Artifact& artifact) {
  const ByteSource& src = *artifact.sources[0];
  std::vector<uint8_t> copy;
  const std::span<const uint8_t> bytes = pickle_bytes_at(src, 0, copy);
  pickle::Pickle pk;
  try {
    pk = pickle::read_pickle(bytes);
  } catch (Error& e) {
    // Starting with PROTO 0..5 it is a pickle, and its own error says most; otherwise it is
    // more likely not a pickle at all.
    if (bytes.size() >= 2 && bytes[0] == 0x80 && bytes[1] <= 5) {
      e.add_entry("pickle");
      throw;
    }
    Error err(ErrorCode::kUnsupported, "format.unknown",
              "not a format ptpack knows (not zip, legacy torch.save, safetensors, index JSON; "
              "as a pickle: " + e.detail() + ")");
    throw err;
  }
  artifact.entries.push_back({"pickle", Entry::Kind::kPickle, 0, pk.end_offset(), pk.end_offset(), false, 0});
  if (pk.end_offset() < src.size()) {
    artifact.notes.push_back(std::to_string(src.size() - pk.end_offset()) + " bytes follow the pickle's STOP");
  }
  artifact.metadata.emplace_back("pickle protocol", std::to_string(pk.protocol()));
  artifact.format_version = std::to_string(pk.protocol());
  artifact.pickles.push_back({"pickle", "", std::move(pk)});
}

}  // namespace formats

Artifact read_artifact(SourcePtr source) {
  Artifact artifact;
  artifact.path = source->name();
  try {
    artifact.sources.push_back(std::move(source));
    fill(artifact);
  } catch (Error& e) {
    e.add_file(artifact.path);
    throw;
  }
  return artifact;
}

Artifact open_artifact(const std::string& path) {
  try {
    return read_artifact(open_file_source(path));
  } catch (Error& e) {
    e.add_file(path);
    throw;
  }
}

}  // namespace ptpack
