// Byte layout of state-dict tensors inside storage records (shared by topology and assemble).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ptpack/dtype.h"
#include "ptpack/topology.h"

namespace ptpack::package {

// True when the strides make the tensor fill numel consecutive elements exactly once: any
// permutation of a contiguous layout (contiguous, channels_last, a transposed weight).
bool is_dense(const std::vector<int64_t>& shape, const std::vector<int64_t>& stride);

// numel * element size, saturating (manifests are untrusted input).
uint64_t dense_bytes(DType dtype, const std::vector<int64_t>& shape);

// Dimensions in the order they are laid out in memory, outermost first (stride descending;
// ties keep their order). Reading a tensor's dims in this order visits its dense storage
// region from first byte to last.
std::vector<size_t> memory_order(const std::vector<int64_t>& shape, const std::vector<int64_t>& stride);

std::string dims_text(const std::vector<int64_t>& dims);  // "[64, 3, 7, 7]"

// A key's bytes in its record.
struct Region {
  uint64_t offset = 0;
  uint64_t length = 0;
  size_t key = 0;  // index into Topology::keys
};

// A piece of an assembled record: bytes of one key (the first of tied keys), or bytes kept in
// the topology (key == kKept).
struct Segment {
  static constexpr size_t kKept = SIZE_MAX;
  uint64_t offset = 0;
  uint64_t length = 0;
  size_t key = kKept;
};

struct Coverage {
  bool complete = false;          // the regions cover [0, size) exactly
  std::string overlap;            // non-empty: two regions overlap without being the same tensor
  std::vector<Segment> segments;  // the record from first byte to last
  std::vector<std::pair<size_t, size_t>> ties;  // (key written, key tied to it and not written)
};

// How `regions` cover a record of `size` bytes. Identical regions of identical layouts are
// tied weights (one segment); other overlaps are reported.
Coverage cover(std::vector<Region> regions, const std::vector<TopologyKey>& keys, uint64_t size);

}  // namespace ptpack::package
