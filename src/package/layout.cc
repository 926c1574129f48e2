#include "package/layout.h"

#include <algorithm>
#include <numeric>

namespace ptpack::package {

std::vector<size_t> memory_order(const std::vector<int64_t>& shape, const std::vector<int64_t>& stride) {
  std::vector<size_t> order(shape.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    // Size-1 dims do not move through memory; put them outermost so they never split a run.
    const int64_t sa = shape[a] == 1 ? INT64_MAX : stride[a];
    const int64_t sb = shape[b] == 1 ? INT64_MAX : stride[b];
    return sa > sb;
  });
  return order;
}

bool is_dense(const std::vector<int64_t>& shape, const std::vector<int64_t>& stride) {
  if (shape.size() != stride.size()) return false;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d == 0) return true;  // no elements: nothing to place
  }
  const std::vector<size_t> order = memory_order(shape, stride);
  int64_t expected = 1;
  for (size_t i = order.size(); i-- > 0;) {
    const size_t d = order[i];
    if (shape[d] == 1) continue;
    if (stride[d] != expected) return false;
    if (__builtin_mul_overflow(expected, shape[d], &expected)) return false;
  }
  return true;
}

uint64_t dense_bytes(DType dtype, const std::vector<int64_t>& shape) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(numel, uint64_t(d), &numel)) return UINT64_MAX;
  }
  return numel > (UINT64_MAX >> 4) ? UINT64_MAX : dtype_bytes(dtype, numel);
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

Coverage cover(std::vector<Region> regions, const std::vector<TopologyKey>& keys, uint64_t size) {
  Coverage c;
  std::erase_if(regions, [](const Region& r) { return r.length == 0; });
  std::stable_sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) { return a.offset < b.offset; });
  uint64_t cursor = 0;
  const Region* last = nullptr;
  for (const Region& r : regions) {
    if (last && r.offset < last->offset + last->length) {
      const TopologyKey& a = keys[last->key];
      const TopologyKey& b = keys[r.key];
      const bool tied = r.offset == last->offset && r.length == last->length && a.dtype == b.dtype &&
                        a.shape == b.shape && a.stride == b.stride;
      if (!tied) {
        c.overlap = "'" + a.key + "' and '" + b.key + "' overlap in record '" + a.record +
                    "' without being the same tensor";
        return c;
      }
      c.ties.emplace_back(last->key, r.key);
      continue;
    }
    if (r.offset > cursor) c.segments.push_back({cursor, r.offset - cursor, Segment::kKept});
    c.segments.push_back({r.offset, r.length, r.key});
    cursor = r.offset + r.length;
    last = &r;
  }
  const bool gaps = std::any_of(c.segments.begin(), c.segments.end(), [](const Segment& s) { return s.key == Segment::kKept; });
  if (cursor < size) c.segments.push_back({cursor, size - cursor, Segment::kKept});
  c.complete = !gaps && cursor == size;
  return c;
}

}  // namespace ptpack::package
