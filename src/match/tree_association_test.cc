// The tree strategies computed per class pair (tree_association.cc) must give exactly what the
// per-node-pair programme they replace gives: same pairs, same tie-breaks, same reason. That
// programme is kept here, unchanged, as the reference; random trees with few names and shapes
// (so classes, entries and ties abound) are compared under both strategies.
#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

#include "match/key_tree.h"
#include "match/tree_association.h"
#include "ptpack/dtype.h"
#include "ptpack/match.h"

namespace ptpack::match {
namespace {

namespace reference {
// --- the per-node-pair programme (ptpack before class pairs), verbatim -------------------------

struct TreeNode {
  std::string name;
  std::vector<int> children;
  int key = -1;          // leaf: index of its key
  int modules = 0;       // number of tensor-owning modules below (inclusive)
};

std::vector<TreeNode> build(const std::vector<std::string>& names) {
  std::vector<TreeNode> nodes(1);  // the root
  std::vector<std::unordered_map<std::string, int>> index(1);
  for (size_t k = 0; k < names.size(); ++k) {
    int at = 0;
    size_t start = 0;
    const std::string& name = names[k];
    while (true) {
      const size_t dot = name.find('.', start);
      const bool last = dot == std::string::npos;
      const std::string part = name.substr(start, last ? std::string::npos : dot - start);
      const std::string slot = (last ? "\x01" : "") + part;  // a tensor never merges with a module
      auto it = index[size_t(at)].find(slot);
      int child;
      if (it == index[size_t(at)].end()) {
        child = int(nodes.size());
        nodes.push_back({part, {}, last ? int(k) : -1, 0});
        index.emplace_back();
        index[size_t(at)].emplace(slot, child);
        nodes[size_t(at)].children.push_back(child);
      } else {
        child = it->second;
      }
      at = child;
      if (last) break;
      start = dot + 1;
    }
  }
  // Modules that own tensors, counted bottom-up (children have larger indices than parents).
  for (size_t i = nodes.size(); i-- > 0;) {
    bool owns = false;
    for (int c : nodes[i].children) {
      nodes[i].modules += nodes[size_t(c)].modules;
      owns = owns || nodes[size_t(c)].key >= 0;
    }
    nodes[i].modules += owns ? 1 : 0;
  }
  return nodes;
}

class Aligner {
 public:
  Aligner(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst, const std::vector<std::string>& src_names,
          bool embedding)
      : src_(src), dst_(dst), s_(build(src_names)), embedding_(embedding) {
    std::vector<std::string> dst_names;
    for (const KeyInfo& k : dst) dst_names.push_back(k.key);
    d_ = build(dst_names);
    score_.assign(s_.size() * d_.size(), 0);
    best_.assign(s_.size() * d_.size(), 0);
    // Children have larger indices: visiting both trees from the last node computes every
    // child pair before its parents.
    for (size_t u = s_.size(); u-- > 0;) {
      for (size_t v = d_.size(); v-- > 0;) compute(int(u), int(v));
    }
  }

  // Source key index per destination key.
  std::vector<int> assignment(std::string& reason) {
    std::vector<int> a(dst_.size(), -1);
    int bu = 0, bv = 0;
    if (embedding_) {
      // best_ at the roots already ranges over every pair below.
    } else {
      float top = -1;
      // The best pair of modules (a lone tensor pair is no common subtree).
      for (size_t u = 0; u < s_.size(); ++u) {
        if (s_[u].key >= 0) continue;
        for (size_t v = 0; v < d_.size(); ++v) {
          if (d_[v].key < 0 && score(int(u), int(v)) > top) top = score(int(u), int(v)), bu = int(u), bv = int(v);
        }
      }
    }
    collect(bu, bv, a);
    reason = "common subtree " + path_hint(s_, bu) + " ~ " + path_hint(d_, bv);
    return a;
  }

 private:
  static std::string path_hint(const std::vector<TreeNode>& t, int n) {
    return n == 0 ? std::string("(root)") : "'" + t[size_t(n)].name + "'";
  }

  float& score(int u, int v) { return score_[size_t(u) * d_.size() + size_t(v)]; }
  float& best(int u, int v) { return best_[size_t(u) * d_.size() + size_t(v)]; }
  // What a child pair contributes: its own subtree score, or (embedding) the best below it.
  float child_value(int u, int v) { return embedding_ ? best(u, v) : score(u, v); }

  bool leaves_pair(const TreeNode& a, const TreeNode& b) const {
    const KeyInfo& x = src_[size_t(a.key)];
    const KeyInfo& y = dst_[size_t(b.key)];
    return x.shape == y.shape && (x.dtype == y.dtype || (is_castable_float(x.dtype) && is_cast_target(y.dtype)));
  }

  // Ordered alignment of the children of (u, v); fills `table` ((m+1) x (n+1)).
  double align(int u, int v, std::vector<double>& table) {
    const auto& cu = s_[size_t(u)].children;
    const auto& cv = d_[size_t(v)].children;
    const size_t m = cu.size(), n = cv.size();
    table.assign((m + 1) * (n + 1), 0);
    for (size_t i = 1; i <= m; ++i) {
      for (size_t j = 1; j <= n; ++j) {
        const double pair = child_value(cu[i - 1], cv[j - 1]);
        double x = std::max(table[(i - 1) * (n + 1) + j], table[i * (n + 1) + j - 1]);
        if (pair > 0) x = std::max(x, table[(i - 1) * (n + 1) + j - 1] + pair);
        table[i * (n + 1) + j] = x;
      }
    }
    return table[m * (n + 1) + n];
  }

  void compute(int u, int v) {
    const TreeNode& a = s_[size_t(u)];
    const TreeNode& b = d_[size_t(v)];
    double s = 0;
    if (a.key >= 0 && b.key >= 0) {
      s = leaves_pair(a, b) ? 1.0 + (a.name == b.name ? 1e-3 : 0) : 0;
    } else if (a.key < 0 && b.key < 0) {
      s = align(u, v, table_);
      // Renamed modules need more than one module's worth of evidence.
      if (u != 0 && v != 0 && a.name != b.name && std::min(a.modules, b.modules) < 2) s = 0;
      if (s > 0 && a.name == b.name) s += 1e-3;
    }
    score(u, v) = float(s);
    float e = float(s);
    if (embedding_ && a.key < 0 && b.key < 0) {
      // Skip a module level on either side; tensors pair only as children of paired modules.
      for (int c : b.children) {
        if (d_[size_t(c)].key < 0) e = std::max(e, best(u, c));
      }
      for (int c : a.children) {
        if (s_[size_t(c)].key < 0) e = std::max(e, best(c, v));
      }
    }
    best(u, v) = e;
  }

  void collect(int u, int v, std::vector<int>& out) {
    if (embedding_ && best(u, v) > score(u, v)) {
      // The best lies below: follow it.
      for (int c : d_[size_t(v)].children) {
        if (d_[size_t(c)].key < 0 && best(u, c) == best(u, v)) return collect(u, c, out);
      }
      for (int c : s_[size_t(u)].children) {
        if (s_[size_t(c)].key < 0 && best(c, v) == best(u, v)) return collect(c, v, out);
      }
      return;
    }
    const TreeNode& a = s_[size_t(u)];
    const TreeNode& b = d_[size_t(v)];
    if (score(u, v) <= 0) return;
    if (a.key >= 0 && b.key >= 0) {
      out[size_t(b.key)] = a.key;
      return;
    }
    std::vector<double> table;
    align(u, v, table);
    const size_t n = b.children.size();
    size_t i = a.children.size(), j = n;
    while (i > 0 && j > 0) {
      const double here = table[i * (n + 1) + j];
      if (here == table[(i - 1) * (n + 1) + j]) {
        --i;
      } else if (here == table[i * (n + 1) + j - 1]) {
        --j;
      } else {
        collect(a.children[i - 1], b.children[j - 1], out);
        --i, --j;
      }
    }
  }

  const std::vector<KeyInfo>& src_;
  const std::vector<KeyInfo>& dst_;
  std::vector<TreeNode> s_, d_;
  bool embedding_;
  std::vector<float> score_, best_;  // per (source node, destination node); float halves the table
  std::vector<double> table_;
};


std::vector<int> tree_assignment(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst,
                                 const std::vector<std::string>& src_names, bool embedding, std::string& reason) {
  Aligner aligner(src, dst, src_names, embedding);
  return aligner.assignment(reason);
}
}  // namespace reference

std::vector<std::string> names_of(const std::vector<KeyInfo>& keys) {
  std::vector<std::string> out;
  for (const KeyInfo& k : keys) out.push_back(k.key);
  return out;
}

// Both programmes on one pair of key lists, both strategies.
void expect_same_as_reference(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst, const std::string& what) {
  for (bool embedding : {false, true}) {
    std::string reason, want_reason;
    const auto got = tree_assignment(src, dst, names_of(src), embedding, reason);
    const auto want = reference::tree_assignment(src, dst, names_of(src), embedding, want_reason);
    ASSERT_TRUE(got.has_value()) << what;
    EXPECT_EQ(*got, want) << what << (embedding ? " (embedding)" : " (isomorphism)");
    EXPECT_EQ(reason, want_reason) << what << (embedding ? " (embedding)" : " (isomorphism)");
  }
}

// A random module tree: repeated blocks (shared classes) under a few names, so that equal
// subtrees sit under equal and different names, and wrappers appear at random.
std::vector<KeyInfo> random_keys(std::mt19937& rng, const std::string& root) {
  const auto pick = [&](std::initializer_list<const char*> l) { return std::string(l.begin()[rng() % l.size()]); };
  const std::vector<std::vector<int64_t>> shapes = {{}, {2}, {3}, {2, 2}, {4, 2}};
  const auto dtype = [&] {
    const int r = int(rng() % 8);
    return r < 5 ? DType::kFloat32 : r < 7 ? DType::kFloat16 : DType::kInt64;
  };
  // A few block templates: (module name, tensor name, shape, dtype) lists.
  std::vector<std::vector<KeyInfo>> templates(1 + rng() % 3);
  for (auto& t : templates) {
    const int modules = 1 + int(rng() % 3);
    for (int m = 0; m < modules; ++m) {
      const std::string module = pick({"conv", "bn", "fc", "a", "0", "1"}) + (rng() % 2 ? "" : std::to_string(m));
      const int tensors = 1 + int(rng() % 3);
      for (int k = 0; k < tensors; ++k) {
        t.push_back({module + "." + pick({"weight", "bias", "a", "w"}), dtype(), shapes[rng() % shapes.size()]});
      }
    }
  }
  std::vector<KeyInfo> out;
  std::unordered_map<std::string, bool> seen;
  const int blocks = 1 + int(rng() % 7);
  for (int b = 0; b < blocks; ++b) {
    std::string prefix = root;
    if (rng() % 3) prefix += pick({"layer1", "layer2", "features", "a", "0"}) + ".";
    if (rng() % 4 == 0) prefix += pick({"wrap", "body", "a", "inner"}) + ".";
    prefix += pick({"0", "1", "2", "block", "a"}) + ".";
    for (KeyInfo k : templates[rng() % templates.size()]) {
      k.key = prefix + k.key;
      if (!seen.emplace(k.key, true).second) continue;  // keys of a state dict are unique
      out.push_back(std::move(k));
    }
  }
  if (rng() % 3 == 0) out.push_back({pick({"fc.weight", "head.weight", "a.weight", "weight"}), dtype(), shapes[rng() % shapes.size()]});
  return out;
}

TEST(TreeAssociation, SameAsThePerNodePairProgrammeOnRandomTrees) {
  std::mt19937 rng(20261122);
  for (int round = 0; round < 2000; ++round) {
    const std::string src_root = rng() % 3 ? "" : "module.";
    const std::string dst_root = rng() % 3 ? "" : rng() % 2 ? "backbone.body." : "model.";
    const auto src = random_keys(rng, src_root);
    // Half the rounds: the destination is the source under another root, with some keys
    // dropped or reshaped (common subtrees with near-ties); otherwise an unrelated tree.
    std::vector<KeyInfo> dst;
    if (rng() % 2) {
      for (KeyInfo k : src) {
        if (rng() % 8 == 0) continue;
        if (rng() % 8 == 0) k.shape = {5};
        k.key = dst_root + (k.key.starts_with(src_root) ? k.key.substr(src_root.size()) : k.key);
        dst.push_back(std::move(k));
      }
    } else {
      dst = random_keys(rng, dst_root);
    }
    expect_same_as_reference(src, dst, "round " + std::to_string(round));
    if (HasFailure()) break;
  }
}

std::vector<KeyInfo> f32(const std::vector<std::pair<std::string, std::vector<int64_t>>>& list) {
  std::vector<KeyInfo> out;
  for (const auto& [k, s] : list) out.push_back({k, DType::kFloat32, s});
  return out;
}

TEST(TreeAssociation, EmbeddingComparesAModulesNameWithNamesBelowTheOther) {
  // wrap.x and other.y hold equal contents (one class), but only x's name matches: the best
  // below `wrap` and below `other` differ although their classes' contents differ only by a
  // name below. A best-below kept per class instead of per (name, class) would pick either.
  const auto src = f32({{"x.w", {2}}, {"x.b", {3}}});
  const auto dst = f32({{"other.y.w", {2}}, {"other.y.b", {3}}, {"wrap.x.w", {2}}, {"wrap.x.b", {3}}});
  std::string reason;
  const auto got = tree_assignment(src, dst, names_of(src), true, reason);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, (std::vector<int>{-1, -1, 0, 1}));
  expect_same_as_reference(src, dst, "wrap.x");
}

TEST(TreeAssociation, EqualSubtreesUnderOtherNamesAreStillTiedInOrder) {
  // Four identical blocks on each side under other names: one class, ties everywhere; the
  // first-in-order tie-breaks of the per-node programme must hold.
  std::vector<std::pair<std::string, std::vector<int64_t>>> a, b;
  for (const char* block : {"0", "1", "2", "3"}) {
    for (const char* m : {"conv", "bn"}) {
      a.push_back({std::string("layer.") + block + "." + m + ".weight", {4}});
      b.push_back({std::string("stage.") + char('a' + (block[0] - '0')) + "." + m + ".weight", {4}});
    }
  }
  b.erase(b.begin() + 2, b.begin() + 4);  // one block fewer on the destination
  expect_same_as_reference(f32(a), f32(b), "tied blocks");
}

// Blocks named 0..n-1 under stages, the same few block types: classes stay few however many keys.
std::vector<KeyInfo> repetitive(const std::string& prefix, int keys) {
  std::vector<KeyInfo> out;
  for (int i = 0; int(out.size()) < keys; ++i) {
    const std::string base = prefix + "stage" + std::to_string(i / 64) + "." + std::to_string(i % 64) + ".";
    out.push_back({base + "conv.weight", DType::kFloat32, {int64_t(8 + i % 5), 8}});
    out.push_back({base + "bn.weight", DType::kFloat32, {int64_t(8 + i % 5)}});
  }
  return out;
}

TEST(TreeAssociation, LargeRepetitiveTreesAreWithinTheCaps) {
  // 20k keys a side: 30k x 30k nodes, far beyond kMaxPairs node pairs, but few classes.
  const auto src = repetitive("", 20000), dst = repetitive("backbone.", 20000);
  for (bool embedding : {false, true}) {
    std::string reason;
    const auto got = tree_assignment(src, dst, names_of(src), embedding, reason);
    ASSERT_TRUE(got.has_value()) << reason;
    for (size_t j = 0; j < got->size(); ++j) ASSERT_EQ((*got)[j], int(j)) << dst[j].key;
  }
}

TEST(TreeAssociation, TreesWithoutRepetitionAreStillCapped) {
  // Every tensor its own shape: every node its own class, 5k x 5k classes > kMaxPairs.
  std::vector<KeyInfo> src, dst;
  for (int i = 0; i < 5000; ++i) {
    src.push_back({"m" + std::to_string(i) + ".w", DType::kFloat32, {i + 1}});
    dst.push_back({"n" + std::to_string(i) + ".w", DType::kFloat32, {i + 1}});
  }
  std::string reason;
  EXPECT_FALSE(tree_assignment(src, dst, names_of(src), false, reason).has_value());
  EXPECT_NE(reason.find("too large"), std::string::npos) << reason;
}

TEST(TreeAssociation, SharedClassesAndEntries) {
  KeyInterner interner;
  const auto keys = f32({{"l.0.c.w", {2}}, {"l.1.c.w", {2}}, {"l.2.c.w", {3}}, {"m.0.c.w", {2}}});
  std::vector<std::string_view> names;
  for (const KeyInfo& k : keys) names.push_back(k.key);
  const KeyTree t = build_key_tree(names, keys, interner);
  // Nodes: root, l, 0, c, w, 1, c, w, 2, c, w, m, 0, c, w.
  ASSERT_EQ(t.nodes.size(), 15u);
  const auto cls = [&](int n) { return t.nodes[size_t(n)].cls; };
  const auto entry = [&](int n) { return t.nodes[size_t(n)].entry; };
  EXPECT_EQ(cls(2), cls(5));      // l.0 and l.1: equal contents
  EXPECT_NE(entry(2), entry(5));  // ... under other names
  EXPECT_NE(cls(2), cls(8));      // l.2 holds another shape
  EXPECT_EQ(entry(2), entry(12));  // l.0 and m.0: same name, same contents
  EXPECT_NE(cls(1), cls(11));
  EXPECT_TRUE(t.classes[size_t(cls(0))].root);
  EXPECT_EQ(t.classes[size_t(cls(1))].modules, 3);
  for (size_t n = 1; n < t.nodes.size(); ++n) {
    for (int c : t.nodes[n].children) EXPECT_LT(cls(c), cls(int(n)));  // children's classes first
  }
}

}  // namespace
}  // namespace ptpack::match
