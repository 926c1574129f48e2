#include "package/layout.h"

#include <gtest/gtest.h>

namespace ptpack::package {
namespace {

TopologyKey key(std::string name, std::vector<int64_t> shape, std::vector<int64_t> stride) {
  TopologyKey k;
  k.key = std::move(name);
  k.shape = std::move(shape);
  k.stride = std::move(stride);
  k.nbytes = dense_bytes(k.dtype, k.shape);
  return k;
}

TEST(Layout, DenseLayoutsArePermutationsOfContiguous) {
  EXPECT_TRUE(is_dense({64, 3, 7, 7}, {147, 49, 7, 1}));   // contiguous
  EXPECT_TRUE(is_dense({64, 3, 7, 7}, {147, 1, 21, 3}));   // channels_last
  EXPECT_TRUE(is_dense({4, 8}, {1, 4}));                   // transposed
  EXPECT_TRUE(is_dense({1, 5}, {99, 1}));                  // size-1 dims have any stride
  EXPECT_TRUE(is_dense({}, {}));                           // a scalar
  EXPECT_TRUE(is_dense({0, 3}, {3, 1}));                   // empty
  EXPECT_FALSE(is_dense({4, 4}, {8, 1}));                  // a slice: gaps
  EXPECT_FALSE(is_dense({4, 4}, {0, 1}));                  // expanded: repeats
  EXPECT_FALSE(is_dense({4, 4}, {4, 4}));
  EXPECT_FALSE(is_dense({2}, {1, 1}));
}

TEST(Layout, MemoryOrderVisitsTheRegionInOrder) {
  EXPECT_EQ(memory_order({64, 3, 7, 7}, {147, 1, 21, 3}), (std::vector<size_t>{0, 2, 3, 1}));
  EXPECT_EQ(memory_order({4, 8}, {1, 4}), (std::vector<size_t>{1, 0}));
  EXPECT_EQ(memory_order({3, 1, 2}, {2, 1, 1}), (std::vector<size_t>{1, 0, 2}));
}

TEST(Layout, CoverageFindsTiesGapsAndOverlaps) {
  std::vector<TopologyKey> keys = {key("a", {4}, {1}), key("b", {4}, {1}), key("c", {2}, {1}), key("d", {2, 2}, {1, 2})};
  // a and b tied at 0..16, c at 16..24: complete.
  Coverage c = cover({{0, 16, 0}, {16, 8, 2}, {0, 16, 1}}, keys, 24);
  EXPECT_TRUE(c.complete);
  EXPECT_TRUE(c.overlap.empty());
  ASSERT_EQ(c.segments.size(), 2u);
  EXPECT_EQ(c.segments[0].key, 0u);
  // A gap before c and after it: kept segments.
  c = cover({{8, 8, 2}}, keys, 24);
  EXPECT_FALSE(c.complete);
  ASSERT_EQ(c.segments.size(), 3u);
  EXPECT_EQ(c.segments[0].key, Segment::kKept);
  EXPECT_EQ(c.segments[2].offset, 16u);
  // Same bytes, different layout: not a tie.
  c = cover({{0, 16, 0}, {0, 16, 3}}, keys, 16);
  EXPECT_FALSE(c.overlap.empty());
  // Partial overlap.
  c = cover({{0, 16, 0}, {8, 8, 2}}, keys, 16);
  EXPECT_FALSE(c.overlap.empty());
}

TEST(Layout, DenseBytesSaturates) {
  EXPECT_EQ(dense_bytes(DType::kFloat32, {2, 3}), 24u);
  EXPECT_EQ(dense_bytes(DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}), UINT64_MAX);
  EXPECT_EQ(dense_bytes(DType::kFloat32, {-1}), UINT64_MAX);
}

}  // namespace
}  // namespace ptpack::package
