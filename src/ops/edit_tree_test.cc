#include "ops/edit_tree.h"

#include "ptpack/error.h"
#include "testing.h"

namespace ptpack::ops {
namespace {

Node str(const std::string& s) { return Node::string(s); }
Node integer(int64_t v) {
  Node n;
  n.kind = Node::Kind::kInt;
  n.integer = v;
  return n;
}

// {"model": {"module.a.weight": T0, "module.b.weight": T1}, "opt": {"state": {0: {"m": T2}}}, "epoch": 3}
Node checkpoint() {
  Node model = Node::dict(true);
  model.entries.emplace_back(str("module.a.weight"), Node::tensor(0));
  model.entries.emplace_back(str("module.b.weight"), Node::tensor(1));
  model.metadata = std::make_shared<Node>(Node::dict(true));
  model.metadata->entries.emplace_back(str(""), integer(1));
  model.metadata->entries.emplace_back(str("module"), integer(2));
  model.metadata->entries.emplace_back(str("module.a"), integer(3));
  Node slot = Node::dict(false);
  slot.entries.emplace_back(str("m"), Node::tensor(2));
  Node state = Node::dict(false);
  state.entries.emplace_back(integer(0), std::move(slot));
  Node opt = Node::dict(false);
  opt.entries.emplace_back(str("state"), std::move(state));
  Node root = Node::dict(false);
  root.entries.emplace_back(str("model"), std::move(model));
  root.entries.emplace_back(str("opt"), std::move(opt));
  root.entries.emplace_back(str("epoch"), integer(3));
  return root;
}

std::vector<std::string> names(const Node& n) {
  std::vector<std::string> out;
  for_each_leaf(n, "", [&](const std::string& name, const Node&) { out.push_back(name); });
  return out;
}

TEST(EditTree, SelectsByLongestKeyAndListsKeysWhenMissing) {
  const Node root = checkpoint();
  EXPECT_EQ(select_node(root, "model.module.a.weight").integer, 0);
  EXPECT_EQ(select_node(root, "opt.state.0.m").integer, 2);
  EXPECT_EQ(&select_node(root, ""), &root);
  const Error e = testing::expect_error([&] { select_node(root, "optimizer"); }, "select.path");
  EXPECT_NE(std::string(e.what()).find("model, opt, epoch"), std::string::npos) << e.what();
}

TEST(EditTree, LeavesAndStateDictMappings) {
  const Node root = checkpoint();
  EXPECT_EQ(names(root), (std::vector<std::string>{"model.module.a.weight", "model.module.b.weight",
                                                   "opt.state.0.m", "epoch"}));
  const auto mappings = state_dict_mappings(root);
  ASSERT_EQ(mappings.size(), 2u);
  EXPECT_EQ(mappings[0].first, "model");
  EXPECT_EQ(mappings[1].first, "opt.state.0");
  EXPECT_EQ(count_tensors(root), 3u);
}

TEST(EditTree, AutoStripRemovesModulePrefixAndMetadataLikeTorch) {
  Node root = checkpoint();
  NameEdits edits;
  edits.strip_prefixes = {"auto"};
  const EditCounts counts = edit_names(root, edits);
  EXPECT_EQ(counts.renamed, 2u);
  EXPECT_EQ(names(root)[0], "model.a.weight");
  // consume_prefix_in_state_dict_if_present: "module" -> "" (replacing it), "module.a" -> "a".
  const Node& metadata = *root.entries[0].second.metadata;
  ASSERT_EQ(metadata.entries.size(), 2u);
  EXPECT_EQ(metadata.entries[0].first.text, "");
  EXPECT_EQ(metadata.entries[0].second.integer, 2);
  EXPECT_EQ(metadata.entries[1].first.text, "a");
}

TEST(EditTree, DropsAndKeepsMatchSourceNamesAndPruneEmptiedContainers) {
  Node root = checkpoint();
  NameEdits edits;
  edits.drops.push_back(compile_regex("^opt", "--drop"));
  edits.strip_prefixes = {"module."};
  EXPECT_EQ(edit_names(root, edits).dropped, 1u);
  EXPECT_EQ(names(root), (std::vector<std::string>{"model.a.weight", "model.b.weight", "epoch"}));

  Node kept = checkpoint();
  NameEdits keep;
  keep.keeps.push_back(compile_regex("weight$", "--keep"));
  edit_names(kept, keep);
  EXPECT_EQ(names(kept), (std::vector<std::string>{"model.module.a.weight", "model.module.b.weight"}));
}

TEST(EditTree, RenamesInsideMappingsRefusesMovesAndCollisions) {
  Node root = checkpoint();
  NameEdits edits;
  edits.renames.emplace_back(compile_regex("module\\.(\\w)\\.", "--rename"), "layer_$1.");
  edit_names(root, edits);
  EXPECT_EQ(names(root)[1], "model.layer_b.weight");

  Node moved = checkpoint();
  NameEdits out;
  out.renames.emplace_back(compile_regex("^model\\.", "--rename"), "");
  testing::expect_error([&] { edit_names(moved, out); }, "convert.rename");

  Node collide = checkpoint();
  NameEdits same;
  same.renames.emplace_back(compile_regex("\\.[ab]\\.", "--rename"), ".x.");
  testing::expect_error([&] { edit_names(collide, same); }, "convert.collision");
  testing::expect_error([] { compile_regex("([", "--drop"); }, "usage.regex");
}

// Regression (found by tests/convert): auto-strip of module._orig_mod. must peel each wrapper as
// torch's consume_prefix_in_state_dict_if_present does one call at a time, so `_metadata` keeps
// no 'module' entry.
TEST(EditTree, LayeredAutoStripDropsEachWrappersMetadataEntry) {
  Node sd = Node::dict(true);
  sd.entries.emplace_back(str("module._orig_mod.fc.weight"), Node::tensor(0));
  sd.metadata = std::make_shared<Node>(Node::dict(true));
  for (const char* k : {"", "module", "module._orig_mod", "module._orig_mod.fc"}) {
    sd.metadata->entries.emplace_back(str(k), integer(1));
  }
  NameEdits edits;
  edits.strip_prefixes = {"auto"};
  edit_names(sd, edits);
  EXPECT_EQ(sd.entries[0].first.text, "fc.weight");
  std::vector<std::string> keys;
  for (const auto& [k, v] : sd.metadata->entries) keys.push_back(k.text);
  EXPECT_EQ(keys, (std::vector<std::string>{"", "fc"}));
}

// Regression (found by tests/convert): 0 and '0' are two keys in Python, not a collision.
TEST(EditTree, IntAndStringKeysWithTheSameTextAreDistinct) {
  Node d = Node::dict(false);
  d.entries.emplace_back(integer(0), integer(1));
  d.entries.emplace_back(str("0"), integer(2));
  EXPECT_NO_THROW(edit_names(d, NameEdits{}));
  EXPECT_EQ(d.entries.size(), 2u);
}

}  // namespace
}  // namespace ptpack::ops
