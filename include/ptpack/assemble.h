// Assembling deployable archives: a topology (ptpack/topology.h) plus a checkpoint's weights.
//
// assemble() writes the topology's archive record for record, filling every left-out storage
// record with the checkpoint's tensors laid out as the topology's storages lay them out (a
// transposed or channels_last weight is gathered element by element; a contiguous one is a
// byte range). The result loads in stock torch.package.PackageImporter (or torch.jit.load) and
// its module holds exactly the checkpoint's weights. Byte ranges are copied by the kernel
// (copy_file_range) at offsets congruent to the checkpoint's within 4 KiB blocks, so on XFS or
// btrfs with reflinks the blocks are shared, not copied; a record copied whole from a stored
// zip record takes its CRC-32 from the checkpoint's central directory and is never read.
//
// A TopologyArchive is immutable once opened: any number of threads may assemble from one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "ptpack/byte_source.h"
#include "ptpack/topology.h"
#include "ptpack/zip.h"

namespace ptpack {

class TopologyArchive {
 public:
  // Opens and validates a topology file. Throws Error(kInvalidArgument, "topology.not-topology")
  // when the file is not one, kCorrupt on a malformed manifest.
  static TopologyArchive open(const std::string& path);

  const std::string& path() const { return path_; }
  const Topology& topology() const { return topology_; }
  const zip::ZipArchive& archive() const { return archive_; }

 private:
  TopologyArchive(std::string path, zip::ZipArchive archive, Topology topology)
      : path_(std::move(path)), archive_(std::move(archive)), topology_(std::move(topology)) {}
  std::string path_;
  zip::ZipArchive archive_;
  Topology topology_;
};

struct AssembleOptions {
  // Where the state dict sits in the checkpoint ("model_state"); unset: found automatically
  // (the prefix under which every topology key exists: "", "model_state.", "module."...).
  std::optional<std::string> select;
  bool allow_cast = false;    // floating checkpoint tensors of another float dtype are cast (RNE)
  bool strict_extra = false;  // checkpoint tensors the topology does not use are an error
  std::function<void(uint64_t done, uint64_t total)> progress;  // data bytes written
};

struct AssembleReport {
  std::string checkpoint;
  std::string output;
  std::string source_format;   // of the checkpoint
  std::string prefix;          // where its state dict was found ("" = top level)
  std::string prefix_reason;   // how it was chosen, in words
  uint64_t keys = 0;           // topology keys filled
  uint64_t data_bytes = 0;     // bytes of the filled records
  uint64_t copied_bytes = 0;   // handed to copy_file_range (shared blocks on reflink filesystems)
  uint64_t gathered_bytes = 0; // rebuilt in user space (views, casts, non-zip sources)
  uint64_t crc_reused_bytes = 0;  // of the copied bytes, those whose CRC came from the checkpoint
  std::vector<std::string> cast;        // keys cast to the topology's dtype
  std::vector<std::string> extra_keys;  // checkpoint tensors under the prefix the topology lacks
  double seconds = 0;
};

// Assembles one archive at `output` (atomic: temp beside it, fsync, rename). Throws Error naming
// the checkpoint and every key that does not fit (missing, shape, dtype) before anything is
// written; on any error `output` is left as it was.
AssembleReport assemble(const TopologyArchive& topology, const std::string& checkpoint,
                        const std::string& output, const AssembleOptions& options);

// "ckpt_003.pt" for ".../ckpt_003.pt", "w.pt" for "w.safetensors" and "w.safetensors.index.json".
std::string assembled_file_name(const std::string& checkpoint);

// One line per fact, as `ptpack assemble` prints a package.
std::string assemble_report_text(const AssembleReport& report);

// `ptpack assemble --json` (schema in docs/cli.md): one entry per checkpoint, ok or its error.
struct AssembleResult {
  AssembleReport report;  // checkpoint and output are set even on error
  std::string error;      // empty when the package was written
};
std::string assemble_results_json(const std::string& topology, const std::vector<AssembleResult>& results);

}  // namespace ptpack
