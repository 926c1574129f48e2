// `ptpack dis FILE[:ENTRY]`: pickletools.dis-style disassembly of one pickle in an artifact.
#include "ptpack/error.h"
#include "ptpack/inspect.h"
#include "ptpack/limits.h"

namespace ptpack {
namespace {

bool disassemblable(const Artifact& a, const Entry& e) {
  if (e.kind == Entry::Kind::kPickle) return true;
  // The legacy stream's other regions are pickles too (magic, sys_info, storage keys).
  return a.format == Format::kTorchSaveLegacy && e.kind == Entry::Kind::kMetadata;
}

}  // namespace

std::string disassemble_entry(const Artifact& a, const std::string& wanted) {
  const Entry* found = nullptr;
  for (const auto& e : a.entries) {
    if (!disassemblable(a, e)) continue;
    const bool match = wanted.empty() ? (!a.pickles.empty() && e.name == a.pickles.front().entry)
                                      : (e.name == wanted || e.name == a.root + wanted);
    if (match) {
      found = &e;
      break;
    }
  }
  if (!found) {
    std::string names;
    for (const auto& e : a.entries) {
      if (!disassemblable(a, e)) continue;
      std::string rel = e.name.rfind(a.root, 0) == 0 ? e.name.substr(a.root.size()) : e.name;
      names += (names.empty() ? "" : ", ") + rel;
    }
    Error err(ErrorCode::kNotFound, "dis.no-such-pickle",
              "no pickle entry '" + wanted + "'; pickles here: " + (names.empty() ? "(none)" : names));
    err.add_file(a.path);
    throw err;
  }
  std::vector<uint8_t> bytes;
  if (a.archive) {
    const zip::ZipEntry* z = a.archive->find(found->name);
    bytes = a.archive->read(*z, limits::kMaxPickleBytes);
  } else {
    bytes = a.sources[size_t(found->source)]->read_vector(found->offset, found->stored_size);
  }
  return pickle::disassemble(bytes);
}

}  // namespace ptpack
