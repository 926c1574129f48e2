// safetensors validation: one test per rule of the reference implementation.
#include "ptpack/artifact.h"
#include "testing.h"

namespace ptpack {
namespace {

using testing::Bytes;

Bytes safetensors(const std::string& header, size_t data_bytes, bool pad = true) {
  std::string h = header;
  if (pad) while ((8 + h.size()) % 8) h.push_back(' ');
  Bytes out;
  testing::append_u64(out, h.size());
  out.insert(out.end(), h.begin(), h.end());
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(uint8_t(i));
  return out;
}

class Safetensors : public ::testing::Test {
 protected:
  Artifact open(const Bytes& bytes) { return open_artifact(dir_.write("m.safetensors", bytes)); }
  Error fails(const Bytes& bytes, const std::string& rule) {
    return testing::expect_error([&] { open(bytes); }, rule);
  }
  testing::TempDir dir_;
};

TEST_F(Safetensors, ReadsTensorsAndMetadata) {
  Artifact a = open(safetensors(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("a":{"dtype":"I64","shape":[],"data_offsets":[24,32]},"e":{"dtype":"BF16","shape":[0],"data_offsets":[32,32]}})",
      32));
  EXPECT_EQ(a.format, Format::kSafetensors);
  ASSERT_EQ(a.tensors.size(), 3u);
  EXPECT_EQ(a.tensors[0].path, "b");
  EXPECT_EQ(a.tensors[0].stride, std::vector<int64_t>({3, 1}));
  EXPECT_EQ(a.tensors[1].dtype, DType::kInt64);
  EXPECT_TRUE(a.tensors[1].shape.empty());
  ASSERT_EQ(a.metadata.size(), 1u);
  EXPECT_EQ(a.metadata[0].second, "pt");
}

TEST_F(Safetensors, HeaderLengthPastTheEnd) {
  Bytes b = safetensors(R"({})", 0);
  b[0] = 0xF0;
  fails(b, "safetensors.header-past-end");
}

TEST_F(Safetensors, HeaderCap) {
  Bytes b;
  testing::append_u64(b, 100'000'001);
  b.push_back('{');
  Error e = fails(b, "kMaxSafetensorsHeaderBytes");
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
}

TEST_F(Safetensors, DuplicateKeys) {
  fails(safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2),
        "safetensors.duplicate-key");
}

TEST_F(Safetensors, Hole) {
  fails(safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2), "safetensors.hole");
}

TEST_F(Safetensors, Overlap) {
  fails(safetensors(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2),
        "safetensors.overlap");
}

TEST_F(Safetensors, SizeMismatch) {
  fails(safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "safetensors.size-mismatch");
}

TEST_F(Safetensors, TrailingBytes) {
  fails(safetensors(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 5), "safetensors.buffer-size");
}

TEST_F(Safetensors, UnknownDtype) {
  Error e = fails(safetensors(R"({"a":{"dtype":"X9","shape":[1],"data_offsets":[0,1]}})", 1), "safetensors.dtype");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
}

TEST_F(Safetensors, NotJson) {
  fails(safetensors(R"({"a": nope})", 0), "safetensors.json");
}

TEST_F(Safetensors, NegativeShape) {
  fails(safetensors(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", 0), "safetensors.bad-field");
}

TEST_F(Safetensors, MetadataMustBeStrings) {
  fails(safetensors(R"({"__metadata__":{"k":{"x":1}}})", 0), "safetensors.metadata");
}

// Regression (hostile suite): a 100k-deep JSON value followed by a key overflowed the stack
// inside the JSON library; nesting is now measured before parsing.
TEST_F(Safetensors, DeepJsonIsRefusedBeforeParsing) {
  std::string deep = R"({"a":)" + std::string(100000, '[') + std::string(100000, ']') + R"(,"b":1})";
  fails(safetensors(deep, 0), "kMaxJsonDepth");
}

// Regression (found by fuzz_safetensors and by review): a number beyond double range made the
// JSON library throw out_of_range, which escaped as an internal error.
TEST_F(Safetensors, NumberOutOfRangeIsCorrupt) {
  fails(safetensors(R"({"a":{"dtype":"I64","shape":[88888888888888888888888],"data_offsets":[0,8]}})", 8),
        "safetensors.bad-field");  // parsed as a double: not an integer
  fails(safetensors(R"({"__metadata__":{"x":"y"},"n":1e400})", 0), "safetensors.json");
}

TEST_F(Safetensors, ErrorsNameTheFileAndTensor) {
  Error e = fails(safetensors(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4), "safetensors.size-mismatch");
  EXPECT_NE(std::string(e.what()).find("m.safetensors"), std::string::npos);
  EXPECT_EQ(e.entry(), "w");
}

}  // namespace
}  // namespace ptpack
