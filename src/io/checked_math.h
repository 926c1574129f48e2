// Overflow-checked arithmetic for sizes read from files. Every function throws
// Error(kCorrupt, "size-overflow") instead of wrapping, so callers can chain them freely.
#pragma once

#include <cstdint>
#include <string_view>

#include "ptpack/error.h"

namespace ptpack {

inline uint64_t checked_add(uint64_t a, uint64_t b, std::string_view what = "size") {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    throw_corrupt("size-overflow", std::string(what) + " overflows 64 bits");
  }
  return r;
}

inline uint64_t checked_mul(uint64_t a, uint64_t b, std::string_view what = "size") {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw_corrupt("size-overflow", std::string(what) + " overflows 64 bits");
  }
  return r;
}

inline int64_t checked_mul_signed(int64_t a, int64_t b, std::string_view what = "size") {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw_corrupt("size-overflow", std::string(what) + " overflows 64 bits");
  }
  return r;
}

inline int64_t checked_add_signed(int64_t a, int64_t b, std::string_view what = "size") {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    throw_corrupt("size-overflow", std::string(what) + " overflows 64 bits");
  }
  return r;
}

// Little-endian loads from a buffer the caller has already bounds-checked.
inline uint16_t load_u16_le(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t load_u32_le(const uint8_t* p) {
  return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}
inline uint64_t load_u64_le(const uint8_t* p) {
  return uint64_t(load_u32_le(p)) | (uint64_t(load_u32_le(p + 4)) << 32);
}

}  // namespace ptpack
