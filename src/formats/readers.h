// The format readers, one per file format, each filling an Artifact. open_artifact()
// (detect.cc) picks one from the file's content. Internal to the formats layer.
#pragma once

#include <memory>
#include <string>

#include "ptpack/artifact.h"
#include "ptpack/zip.h"

namespace ptpack::formats {

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
