#include "ptpack/tensor_data.h"

#include "testing.h"

namespace ptpack {
namespace {

// An artifact over a memory buffer holding bytes 0, 1, 2, ... with one storage.
Artifact artifact_over(size_t nbytes, DType storage_dtype, ByteOrder order = ByteOrder::kLittle) {
  testing::Bytes bytes(nbytes);
  for (size_t i = 0; i < nbytes; ++i) bytes[i] = uint8_t(i);
  Artifact a;
  a.sources.push_back(make_memory_source(bytes, "mem"));
  Storage s;
  s.key = "0";
  s.dtype = storage_dtype;
  s.nbytes = nbytes;
  s.byte_order = order;
  a.storages.push_back(s);
  return a;
}

testing::Bytes bytes_of_tensor(const Artifact& a, const Tensor& t) {
  testing::Bytes out;
  stream_tensor_bytes(a, t, [&](std::span<const uint8_t> c) { out.insert(out.end(), c.begin(), c.end()); });
  return out;
}

Tensor tensor(DType d, std::vector<int64_t> shape, std::vector<int64_t> stride, int64_t offset) {
  Tensor t;
  t.path = "t";
  t.dtype = d;
  t.shape = std::move(shape);
  t.stride = std::move(stride);
  t.offset = offset;
  t.storage = 0;
  return t;
}

TEST(TensorData, ContiguousWithOffset) {
  Artifact a = artifact_over(16, DType::kInt16);
  EXPECT_EQ(bytes_of_tensor(a, tensor(DType::kInt16, {2}, {1}, 3)), testing::Bytes({6, 7, 8, 9}));
}

TEST(TensorData, TransposedIsReadInLogicalRowMajorOrder) {
  // storage int8 [0 1 2 3 4 5] as 2x3, transposed to 3x2 with stride (1, 3)
  Artifact a = artifact_over(6, DType::kInt8);
  EXPECT_EQ(bytes_of_tensor(a, tensor(DType::kInt8, {3, 2}, {1, 3}, 0)), testing::Bytes({0, 3, 1, 4, 2, 5}));
}

TEST(TensorData, StrideZeroRepeatsElements) {
  Artifact a = artifact_over(3, DType::kUInt8);
  EXPECT_EQ(bytes_of_tensor(a, tensor(DType::kUInt8, {2, 3}, {0, 1}, 0)), testing::Bytes({0, 1, 2, 0, 1, 2}));
}

TEST(TensorData, BigEndianIsSwappedPerElement) {
  Artifact a = artifact_over(8, DType::kInt32, ByteOrder::kBig);
  EXPECT_EQ(bytes_of_tensor(a, tensor(DType::kInt32, {2}, {1}, 0)), testing::Bytes({3, 2, 1, 0, 7, 6, 5, 4}));
  // complex64 swaps each 4-byte half separately
  Artifact c = artifact_over(8, DType::kComplex64, ByteOrder::kBig);
  EXPECT_EQ(bytes_of_tensor(c, tensor(DType::kComplex64, {1}, {1}, 0)), testing::Bytes({3, 2, 1, 0, 7, 6, 5, 4}));
}

TEST(TensorData, ZeroDimAndEmpty) {
  Artifact a = artifact_over(8, DType::kFloat32);
  EXPECT_EQ(bytes_of_tensor(a, tensor(DType::kFloat32, {}, {}, 1)), testing::Bytes({4, 5, 6, 7}));
  EXPECT_TRUE(bytes_of_tensor(a, tensor(DType::kFloat32, {0, 3}, {3, 1}, 0)).empty());
  // sha256 of nothing
  EXPECT_EQ(tensor_sha256(a, tensor(DType::kFloat32, {0}, {1}, 0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(TensorData, LargeStridedTensorsStreamInChunks) {
  Artifact a = artifact_over(3 << 20, DType::kUInt8);
  const Tensor t = tensor(DType::kUInt8, {1 << 20}, {3}, 1);
  size_t chunks = 0, total = 0;
  stream_tensor_bytes(a, t, [&](std::span<const uint8_t> c) {
    ++chunks;
    total += c.size();
    EXPECT_LE(c.size(), size_t(1) << 20);
  });
  EXPECT_EQ(total, size_t(1) << 20);
  EXPECT_GE(chunks, 1u);
}

}  // namespace
}  // namespace ptpack
