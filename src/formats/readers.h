// The format readers, one per file format, each filling an Artifact. open_artifact()
// (detect.cc) picks one from the file's content. Internal to the formats layer.
#pragma once

#include <memory>
#include <span>
#include <vector>
#include <string>

#include "ptpack/artifact.h"
#include "ptpack/zip.h"

namespace ptpack::formats {

// The bytes of a pickle that starts at `offset` (at most kMaxPickleBytes, up to the end of the
// source): a view of a mapped source, parsed in place; else a copy into `copy`.
std::span<const uint8_t> pickle_bytes_at(const ByteSource& source, uint64_t offset,
                                         std::vector<uint8_t>& copy);

// Zip-based formats: `artifact.archive` is open and `artifact.entries` listed.
void read_torch_save_zip(Artifact& artifact, const std::string& root);
void read_torchscript(Artifact& artifact, const std::string& root);
void read_torch_package(Artifact& artifact, const std::string& root);

// Stream formats: read from artifact.sources[0].
void read_torch_save_legacy(Artifact& artifact);
void read_bare_pickle(Artifact& artifact);
void read_safetensors(Artifact& artifact);
void read_safetensors_index(Artifact& artifact);

}  // namespace ptpack::formats
