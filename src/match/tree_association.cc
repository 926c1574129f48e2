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
// Cost: score(u, v) depends only on the classes of u and v (their contents, key_tree.h) and on
// whether their names are equal, so it is computed once per class pair, for both answers; the
// embedding's best-below also compares u's name with names below v, so it is kept per entry
// pair. Class and entry pairs are what the caps bound (kMaxPairs). The values, and so every
// tie-break, are exactly those of a per-node-pair programme: the same arithmetic on the same
// inputs, only not repeated (tree_association_test.cc checks this against that programme).
#include "match/tree_association.h"

#include <algorithm>
#include <string_view>
#include <tuple>

#include "match/key_tree.h"
#include "ptpack/dtype.h"

namespace ptpack::match {

namespace {

class Aligner {
 public:
  Aligner(const KeyTree& s, const KeyTree& d, bool embedding) : s_(s), d_(d), embedding_(embedding) {
    const size_t cs = s_.classes.size(), cd = d_.classes.size();
    score_.assign(cs * cd * 2, 0);
    if (embedding_) best_.assign(s_.entries.size() * d_.entries.size(), 0);
    // Children's classes have smaller ids: ascending ids compute every child pair first.
    for (size_t u = 0; u < cs; ++u) {
      for (size_t v = 0; v < cd; ++v) compute(int(u), int(v));
    }
  }

  // Fills `out` (source key index per destination key, -1 preset) and says which subtrees.
  void assignment(std::vector<int>& out, std::string& reason) const {
    int bu = 0, bv = 0;  // embedding: the best at the roots already ranges over every pair below
    if (!embedding_) std::tie(bu, bv) = best_module_pair();
    collect(bu, bv, out);
    reason = "common subtree " + path_hint(s_, bu) + " ~ " + path_hint(d_, bv);
  }

 private:
  void collect(int u, int v, std::vector<int>& out) const;
  static std::string path_hint(const KeyTree& t, int n);

  float score_of_classes(int cu, int cv, bool same_name) const {
    return score_[(size_t(cu) * d_.classes.size() + size_t(cv)) * 2 + (same_name ? 1 : 0)];
  }
  float score_of_entries(int eu, int ev) const {
    const auto& a = s_.entries[size_t(eu)];
    const auto& b = d_.entries[size_t(ev)];
    return score_of_classes(a.cls, b.cls, a.name == b.name);
  }
  // What a child pair contributes: its own subtree score, or (embedding, two modules) the best
  // below it. A tensor's best is its score (a tensor pairs only as the child of paired modules).
  float child_value(int eu, int ev) const {
    if (embedding_ && s_.is_module(eu) && d_.is_module(ev))
      return best_[size_t(eu) * d_.entries.size() + size_t(ev)];
    return score_of_entries(eu, ev);
  }
  float node_score(int u, int v) const {
    return score_of_entries(s_.nodes[size_t(u)].entry, d_.nodes[size_t(v)].entry);
  }
  float node_best(int u, int v) const {
    return child_value(s_.nodes[size_t(u)].entry, d_.nodes[size_t(v)].entry);
  }

  bool leaves_pair(const KeyTree::Class& x, const KeyTree::Class& y) const {
    return x.shape == y.shape &&
           (x.dtype == y.dtype || (is_castable_float(x.dtype) && is_cast_target(y.dtype)));
  }

  // Ordered alignment of the children of classes (cu, cv); fills `table` ((m+1) x (n+1)).
  double align(int cu, int cv, std::vector<double>& table) const {
    const auto& eu = s_.classes[size_t(cu)].children;
    const auto& ev = d_.classes[size_t(cv)].children;
    const size_t m = eu.size(), n = ev.size();
    table.assign((m + 1) * (n + 1), 0);
    for (size_t i = 1; i <= m; ++i) {
      for (size_t j = 1; j <= n; ++j) {
        const double pair = child_value(eu[i - 1], ev[j - 1]);
        double x = std::max(table[(i - 1) * (n + 1) + j], table[i * (n + 1) + j - 1]);
        if (pair > 0) x = std::max(x, table[(i - 1) * (n + 1) + j - 1] + pair);
        table[i * (n + 1) + j] = x;
      }
    }
    return table[m * (n + 1) + n];
  }

  void compute(int cu, int cv) {
    const KeyTree::Class& a = s_.classes[size_t(cu)];
    const KeyTree::Class& b = d_.classes[size_t(cv)];
    double other = 0, same = 0;  // the score when the two names differ / are equal
    if (a.leaf && b.leaf) {
      if (leaves_pair(a, b)) other = 1.0, same = 1.0 + 1e-3;
    } else if (!a.leaf && !b.leaf) {
      const double s = align(cu, cv, table_);
      // Renamed modules need more than one module's worth of evidence.
      other = !a.root && !b.root && std::min(a.modules, b.modules) < 2 ? 0 : s;
      same = s > 0 ? s + 1e-3 : s;
    }
    float* out = &score_[(size_t(cu) * d_.classes.size() + size_t(cv)) * 2];
    out[0] = float(other);
    out[1] = float(same);
    if (!embedding_ || a.leaf || b.leaf) return;
    // Best below, per entry pair: skip a module level on either side. Every entry pair it reads
    // has a child class on one side, computed earlier.
    for (int eu : s_.entries_of_class[size_t(cu)]) {
      for (int ev : d_.entries_of_class[size_t(cv)]) {
        float e = score_of_entries(eu, ev);
        for (int c : b.children) {
          if (d_.is_module(c)) e = std::max(e, best_[size_t(eu) * d_.entries.size() + size_t(c)]);
        }
        for (int c : a.children) {
          if (s_.is_module(c)) e = std::max(e, best_[size_t(c) * d_.entries.size() + size_t(ev)]);
        }
        best_[size_t(eu) * d_.entries.size() + size_t(ev)] = e;
      }
    }
  }

  // The first pair of module nodes (source index, then destination index) with the highest
  // score: a lone tensor pair is no common subtree. Scores depend on entries only, so the
  // highest is found over entry pairs and then located among the nodes.
  std::pair<int, int> best_module_pair() const {
    std::vector<float> row(s_.entries.size(), -1);  // per source entry: its best over all of DST
    float top = -1;
    for (size_t eu = 0; eu < s_.entries.size(); ++eu) {
      if (!s_.is_module(int(eu))) continue;
      for (size_t ev = 0; ev < d_.entries.size(); ++ev) {
        if (d_.is_module(int(ev))) row[eu] = std::max(row[eu], score_of_entries(int(eu), int(ev)));
      }
      top = std::max(top, row[eu]);
    }
    for (size_t u = 0; u < s_.nodes.size(); ++u) {
      if (s_.nodes[u].key >= 0 || row[size_t(s_.nodes[u].entry)] != top) continue;
      for (size_t v = 0; v < d_.nodes.size(); ++v) {
        if (d_.nodes[v].key < 0 && node_score(int(u), int(v)) == top) return {int(u), int(v)};
      }
    }
    return {0, 0};
  }

  const KeyTree& s_;
  const KeyTree& d_;
  bool embedding_;
  std::vector<float> score_;  // per class pair: names differ, names equal; float halves the table
  std::vector<float> best_;   // embedding: per entry pair of two modules, the best below
  std::vector<double> table_;
};

std::string Aligner::path_hint(const KeyTree& t, int n) {
  return n == 0 ? std::string("(root)") : "'" + std::string(t.nodes[size_t(n)].text) + "'";
}

void Aligner::collect(int u, int v, std::vector<int>& out) const {
  if (embedding_ && node_best(u, v) > node_score(u, v)) {
    // The best lies below: follow it.
    for (int c : d_.nodes[size_t(v)].children) {
      if (d_.nodes[size_t(c)].key < 0 && node_best(u, c) == node_best(u, v)) return collect(u, c, out);
    }
    for (int c : s_.nodes[size_t(u)].children) {
      if (s_.nodes[size_t(c)].key < 0 && node_best(c, v) == node_best(u, v)) return collect(c, v, out);
    }
    return;
  }
  const KeyTree::Node& a = s_.nodes[size_t(u)];
  const KeyTree::Node& b = d_.nodes[size_t(v)];
  if (node_score(u, v) <= 0) return;
  if (a.key >= 0 && b.key >= 0) {
    out[size_t(b.key)] = a.key;
    return;
  }
  // A class's children are its nodes' children, in the same order.
  std::vector<double> table;
  align(a.cls, b.cls, table);
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

}  // namespace

std::optional<std::vector<int>> tree_assignment(const std::vector<KeyInfo>& src,
                                                const std::vector<KeyInfo>& dst,
                                                const std::vector<std::string>& src_names, bool embedding,
                                                std::string& reason) {
  KeyInterner interner;
  std::vector<std::string_view> s_names(src_names.begin(), src_names.end()), d_names;
  for (const KeyInfo& k : dst) d_names.push_back(k.key);
  const KeyTree s = build_key_tree(s_names, src, interner);
  const KeyTree d = build_key_tree(d_names, dst, interner);
  // Tables and work stay bounded. Each measure is at most (source nodes x destination nodes),
  // so every input within the former per-node-pair cap is still accepted.
  const auto too_large = [&](const char* what, size_t x, size_t y) {
    if (x == 0 || y == 0 || x <= kMaxPairs / y) return false;
    reason = "trees too large for the tree strategies (" + std::to_string(x) + " x " + std::to_string(y) +
             " " + what + " > " + std::to_string(kMaxPairs) + ")";
    return true;
  };
  if (too_large("distinct subtree pairs", s.classes.size(), d.classes.size()) ||
      too_large("distinct (name, subtree) pairs", s.entries.size(), d.entries.size()) ||
      too_large("child alignment steps", s.child_links, d.child_links) ||
      (embedding && (too_large("skip steps", s.entries.size(), d.module_links) ||
                     too_large("skip steps", s.module_links, d.entries.size())))) {
    return std::nullopt;
  }
  Aligner aligner(s, d, embedding);
  std::vector<int> a(dst.size(), -1);
  aligner.assignment(a, reason);
  return a;
}

}  // namespace ptpack::match
