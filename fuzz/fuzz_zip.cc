// Fuzzes the ZIP reader: open, list, read and CRC every entry under the usual caps.
#include "ptpack/error.h"
#include "ptpack/zip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ptpack;
  try {
    auto z = zip::ZipArchive::open(make_memory_source(std::vector<uint8_t>(data, data + size), "fuzz"));
    for (const auto& e : z.entries()) {
      try {
        (void)z.read(e, 1 << 20);
        (void)z.compute_crc32(e);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
