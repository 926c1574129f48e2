// Fuzzes formats::read_torch_package directly (whatever detection would pick), then the scanner.
#include "fuzz_reader_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ptpack::fuzz::run_zip_reader(data, size, &ptpack::formats::read_torch_package);
  return 0;
}
