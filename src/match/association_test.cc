#include <gtest/gtest.h>

#include "ptpack/match.h"

namespace ptpack {
namespace {

std::vector<KeyInfo> keys(const std::vector<std::pair<std::string, std::vector<int64_t>>>& list) {
  std::vector<KeyInfo> out;
  for (const auto& [k, s] : list) out.push_back({k, DType::kFloat32, s});
  return out;
}

// A small "resnet": conv, bn (5 tensors), a block, a head.
std::vector<KeyInfo> net(const std::string& prefix, int classes) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> l = {
      {"conv1.weight", {8, 3, 3, 3}}, {"bn1.weight", {8}}, {"bn1.bias", {8}}, {"bn1.running_mean", {8}},
      {"bn1.running_var", {8}}, {"bn1.num_batches_tracked", {}}, {"layer1.0.conv1.weight", {8, 8, 3, 3}},
      {"layer1.1.conv1.weight", {8, 8, 3, 3}}, {"fc.weight", {classes, 8}}, {"fc.bias", {classes}}};
  for (auto& [k, s] : l) k = prefix + k;
  return keys(l);
}

TEST(Match, ExactAndAutoPreferTheCheapest) {
  const MatchReport r = match_keys(net("", 10), net("", 10), {});
  EXPECT_EQ(r.strategy, "exact");
  EXPECT_EQ(r.count(MatchPair::Kind::kFull), 10u);
  EXPECT_TRUE(r.self_unset.empty() && r.other_unused.empty());
}

TEST(Match, PrefixAddedRemovedAndReplaced) {
  auto dst = net("module.", 10);
  dst.push_back({"extra.weight", DType::kFloat32, {1, 1}});
  MatchReport r = match_keys(net("", 10), dst, {});
  EXPECT_EQ(r.strategy, "prefix");
  EXPECT_EQ(r.count(MatchPair::Kind::kFull), 10u);
  EXPECT_EQ(r.self_unset, std::vector<std::string>{"extra.weight"});
  EXPECT_NE(r.reason.find("'' -> 'module.'"), std::string::npos) << r.reason;
  r = match_keys(net("backbone.", 10), net("model.body.", 10), {});
  EXPECT_EQ(r.count(MatchPair::Kind::kFull), 10u);
  EXPECT_EQ(r.pairs[0].src, "backbone.conv1.weight");
  EXPECT_EQ(r.pairs[0].dst, "model.body.conv1.weight");
}

TEST(Match, ModulesAreJudgedAsUnits) {
  // The head has 10 classes in SRC and 3 in DST: weight and bias are skipped together.
  MatchReport r = match_keys(net("", 10), net("", 3), {});
  EXPECT_EQ(r.count(MatchPair::Kind::kFull), 8u);
  EXPECT_EQ(r.count(MatchPair::Kind::kSkipped), 2u);
  EXPECT_EQ(r.self_unset.size(), 2u);
  EXPECT_EQ(r.other_unused.size(), 2u);
  // With --mangle they are adapted together.
  MatchOptions o;
  o.mangle = true;
  r = match_keys(net("", 10), net("", 3), o);
  EXPECT_EQ(r.count(MatchPair::Kind::kPartial), 2u);
  EXPECT_TRUE(r.self_unset.empty());
  // A BatchNorm whose num_features differ is skipped whole, num_batches_tracked included.
  auto dst = net("", 10);
  for (auto& k : dst) {
    if (k.key.starts_with("bn1.") && !k.shape.empty()) k.shape = {16};
  }
  r = match_keys(net("", 10), dst, {});
  EXPECT_EQ(r.count(MatchPair::Kind::kSkipped), 5u);
}

TEST(Match, SuffixNeverGuesses) {
  // Two DST blocks end in conv1.weight with the same shape: ambiguous, not mapped.
  const auto src = keys({{"encoder.stem.conv1.weight", {4, 4}}, {"encoder.head.weight", {2, 4}}});
  const auto dst = keys({{"a.conv1.weight", {4, 4}}, {"b.conv1.weight", {4, 4}}, {"x.head.weight", {2, 4}}});
  MatchOptions o;
  o.association = Association::kSuffix;
  const MatchReport r = match_keys(src, dst, o);
  ASSERT_EQ(r.pairs.size(), 1u);
  EXPECT_EQ(r.pairs[0].dst, "x.head.weight");
  EXPECT_EQ(r.ambiguous.size(), 2u);
}

TEST(Match, UserRenamesComeFirst) {
  MatchOptions o;
  o.association = Association::kExact;
  o.renames = {{"^enc\\.", "encoder."}};
  const MatchReport r = match_keys(keys({{"enc.w", {1}}}), keys({{"encoder.w", {1}}}), o);
  ASSERT_EQ(r.pairs.size(), 1u);
  EXPECT_EQ(r.pairs[0].src, "enc.w");
}

TEST(Match, UnrelatedKeysMapLittle) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> a, b;
  for (int i = 0; i < 50; ++i) a.push_back({"layer" + std::to_string(i % 4) + "." + std::to_string(i) + ".conv.weight", {8, 8}});
  for (int i = 0; i < 50; ++i) b.push_back({"features.block" + std::to_string(i) + ".norm.weight", {8}});
  const MatchReport r = match_keys(keys(a), keys(b), {});
  EXPECT_EQ(r.count(MatchPair::Kind::kFull) + r.count(MatchPair::Kind::kPartial), 0u);
}

TEST(Match, TreeStrategiesFindTheCommonSubtree) {
  MatchOptions o;
  for (Association a : {Association::kIsomorphism, Association::kEmbedding}) {
    o.association = a;
    // A renamed wrapper holding a whole network is paired...
    MatchReport r = match_keys(net("backbone.", 10), net("model.", 10), o);
    EXPECT_EQ(r.count(MatchPair::Kind::kFull), 10u) << association_name(a);
    EXPECT_EQ(r.pairs[0].dst, "model.conv1.weight");
    // ... a renamed single layer is not, whatever its shapes.
    r = match_keys(keys({{"a.fc.weight", {2, 2}}, {"a.fc.bias", {2}}}), keys({{"b.head.weight", {2, 2}}, {"b.head.bias", {2}}}), o);
    EXPECT_EQ(r.pairs.size(), 0u) << association_name(a);
  }
  // Children are aligned in state-dict order, never alphabetically.
  o.association = Association::kIsomorphism;
  const MatchReport r = match_keys(keys({{"m.z", {3}}, {"m.a", {4}}}), keys({{"m.p", {3}}, {"m.q", {4}}}), o);
  ASSERT_EQ(r.pairs.size(), 2u);
  EXPECT_EQ(r.pairs[0].src, "m.z");
  EXPECT_EQ(r.pairs[0].dst, "m.p");
  // Embedding skips a wrapper level inserted inside the tree.
  o.association = Association::kEmbedding;
  EXPECT_EQ(match_keys(net("x.", 10), net("x.inner.", 10), o).count(MatchPair::Kind::kFull), 10u);
}

TEST(Match, CollapsedKeys) {
  std::vector<std::string> universe, listed;
  for (int layer = 1; layer <= 4; ++layer) {
    for (int block = 0; block <= 2; ++block) {
      for (const char* t : {"weight", "bias", "running_mean"}) {
        const std::string k = "layer" + std::to_string(layer) + "." + std::to_string(block) + ".bn1." + t;
        universe.push_back(k);
        listed.push_back(k);
      }
      universe.push_back("layer" + std::to_string(layer) + "." + std::to_string(block) + ".conv1.weight");
    }
  }
  universe.push_back("fc.weight");
  listed.push_back("fc.weight");
  EXPECT_EQ(collapse_keys(listed, universe), (std::vector<std::string>{"layer{1..4}.{0..2}.bn1.*", "fc.weight"}));
  EXPECT_EQ(collapse_keys({"a.1.w", "a.3.w", "a.4.w"}, {"a.1.w", "a.3.w", "a.4.w", "a.1.b"}),
            (std::vector<std::string>{"a.{1,3,4}.w"}));
}

}  // namespace
}  // namespace ptpack
