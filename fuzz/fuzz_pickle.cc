// Fuzzes the pickle machine, repr and the disassembler.
#include "ptpack/error.h"
#include "ptpack/pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ptpack;
  std::span<const uint8_t> bytes(data, size);
  (void)pickle::disassemble(bytes);
  try {
    pickle::Pickle p = pickle::read_pickle(bytes);
    (void)pickle::repr(p.root(), 4096, 32);
  } catch (const Error&) {
  }
  return 0;
}
