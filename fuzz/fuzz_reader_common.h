// Shared by the per-format fuzz targets: run one format's reader on the input (forced, whatever
// detection would say), then the scanner with both built-in policies.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "formats/readers.h"
#include "formats/zip_common.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/scan.h"
#include "ptpack/zip.h"

namespace ptpack::fuzz {

inline void scan_both(const SourcePtr& src) {
  for (const auto& policy : {scan::Policy::weights(), scan::Policy::torch()}) {
    const scan::ScanReport r = scan::scan_source(src, policy);
    (void)scan::report_text(r, true);
    (void)scan::reports_json({r}, policy.name());
  }
}

// Zip-based formats: open the archive strictly, then the given reader on its root folder.
inline void run_zip_reader(const uint8_t* data, size_t size,
                           void (*reader)(Artifact&, const std::string&)) {
  SourcePtr src = make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz.pt");
  try {
    Artifact a;
    a.path = "fuzz.pt";
    a.sources.push_back(src);
    a.archive = std::make_shared<zip::ZipArchive>(zip::ZipArchive::open(src));
    for (const auto& e : a.archive->entries()) {
      a.entries.push_back({e.name, Entry::Kind::kOther, e.data_offset, e.compressed_size, e.size,
                           e.method != zip::kMethodStored, 0});
    }
    a.root = formats::archive_root(*a.archive);
    reader(a, a.root);
  } catch (const Error&) {
  }
  scan_both(src);
}

inline void run_stream_reader(const uint8_t* data, size_t size, void (*reader)(Artifact&)) {
  SourcePtr src = make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz.pt");
  try {
    Artifact a;
    a.path = "fuzz.pt";
    a.sources.push_back(src);
    reader(a);
  } catch (const Error&) {
  }
  scan_both(src);
}

}  // namespace ptpack::fuzz
