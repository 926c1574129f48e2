// Test helpers shared by the unit tests: byte builders, a minimal ZIP writer for crafting
// archives (stored or deflated records, optional faults), and temporary files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "ptpack/byte_source.h"
#include "ptpack/error.h"

namespace ptpack::testing {

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(std::string_view text);
// Bytes of a string literal that may contain NULs: PTPACK_BYTES("\x80\x02N.").
#define PTPACK_BYTES(literal) ::ptpack::testing::Bytes(literal, literal + sizeof(literal) - 1)
void append_u16(Bytes& out, uint16_t v);
void append_u32(Bytes& out, uint32_t v);
void append_u64(Bytes& out, uint64_t v);

// A minimal ZIP writer for tests. Records are stored unless `deflate` is set.
struct ZipRecord {
  std::string name;
  Bytes data;
  bool deflate = false;
};
Bytes build_zip(const std::vector<ZipRecord>& records);

// A temporary directory removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path() const { return path_; }
  // Writes `data` to `name` inside the directory and returns the full path.
  std::string write(const std::string& name, const Bytes& data) const;

 private:
  std::filesystem::path path_;
};

// Runs `fn`, expects a ptpack::Error whose rule is `rule`; returns the error for more checks.
template <typename Fn>
Error expect_error(Fn&& fn, const std::string& rule);

}  // namespace ptpack::testing

#include <gtest/gtest.h>

namespace ptpack::testing {

template <typename Fn>
Error expect_error(Fn&& fn, const std::string& rule) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.rule(), rule) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected an error with rule " << rule;
  return Error(ErrorCode::kCorrupt, "", "");
}

}  // namespace ptpack::testing
