// Fuzzes the scanner alone through content detection: every container, the symbolic pickle
// machine, nested blobs, the lenient zip walk, text and JSON reports.
#include "fuzz_reader_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ptpack::fuzz::scan_both(ptpack::make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz.pt"));
  return 0;
}
