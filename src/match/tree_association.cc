// The tree strategies of ptpack/match.h: keys as module trees, a maximum common subtree.
//
// Both sides become trees (a node per dotted component, children in state-dict order, tensors
// as leaves). score(u, v) is the number of tensor pairs a common subtree rooted at u and v can
// hold: leaves pair when their shapes are equal (and dtypes castable); internal nodes align their
// children in order (an LCS-like dynamic programme, so a module order is respected but
// alphabetical order plays no part). A pair of modules whose names differ must be backed by
// more than one module's worth of pairs: two single Linear layers with other names are not
// paired on shape alone, while `backbone` and `module` holding a whole resnet are.
//   isomorphism  the best subtree pair, rooted anywhere on each side;
//   embedding    the same, but a level may be skipped on either side anywhere below (a wrapper
//                module added or removed inside the tree).
// Cost: one score per (source node, destination node) pair, so it is capped (kMaxPairs).
#include "match/tree_association.h"

#include <algorithm>
#include <unordered_map>

#include "ptpack/dtype.h"

namespace ptpack::match {

namespace {

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

}  // namespace

std::optional<std::vector<int>> tree_assignment(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst,
                                                const std::vector<std::string>& src_names, bool embedding,
                                                std::string& reason) {
  // The pair table must stay small: count the real nodes first (building a tree is cheap).
  std::vector<std::string> dst_names;
  for (const KeyInfo& k : dst) dst_names.push_back(k.key);
  const size_t s_nodes = build(src_names).size(), d_nodes = build(dst_names).size();
  if (s_nodes * d_nodes > kMaxPairs) {
    reason = "trees too large for the tree strategies (" + std::to_string(s_nodes) + " x " +
             std::to_string(d_nodes) + " node pairs > " + std::to_string(kMaxPairs) + ")";
    return std::nullopt;
  }
  Aligner aligner(src, dst, src_names, embedding);
  return aligner.assignment(reason);
}

}  // namespace ptpack::match
