// Key lists as module trees compressed to their distinct subtrees, for the tree strategies
// (tree_association.cc).
//
// A key list becomes a tree: a node per dotted component, children in state-dict order (first
// appearance), tensors as leaves (a tensor never merges with a module of the same name). Every
// value the tree strategies compute for a pair of nodes depends only on what lies below each
// node, on whether each is its tree's root, and on names compared with names; never on where
// the nodes sit. So equal subtrees share a *class* and the strategies work on class pairs: a
// resnet's identical bottlenecks are one class, and a synthetic tree of 100k keys built from a
// few block types has a few hundred classes, not 150k nodes.
//   class  what lies below a node: a tensor's dtype and shape, or a module's children in order,
//          each as its entry; roots get classes of their own (the renamed-module rule exempts
//          them). Children's classes have smaller ids than their parent's.
//   entry  (name, class): a node as its parent sees it. Values that compare a node's own name
//          with names below the other node (the embedding's best-below) are kept per entry.
#pragma once

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ptpack/match.h"

namespace ptpack::match {

// Names and shapes as small integers, shared by the two trees of one association so that ids
// compare across them. Views point into the caller's key strings, which must outlive it.
struct KeyInterner {
  struct ShapeHash {
    size_t operator()(const std::vector<int64_t>& s) const;
  };
  std::unordered_map<std::string_view, int> names;
  std::unordered_map<std::vector<int64_t>, int, ShapeHash> shapes;
  int name(std::string_view n);
  int shape(const std::vector<int64_t>& s);
};

struct KeyTree {
  struct Node {
    int name = 0;           // interned; the root's name is ""
    std::string_view text;  // the name itself, a view into the caller's key
    int key = -1;           // leaf: index of its key
    int cls = -1;
    int entry = -1;
    std::vector<int> children;  // node indices, larger than this node's
  };
  struct Class {
    bool leaf = false;
    bool root = false;
    DType dtype = DType::kFloat32;  // leaf
    int shape = -1;                 // leaf: interned shape
    int modules = 0;                // tensor-owning modules below, inclusive
    std::vector<int> children;      // entries, in the children's order
    int module_children = 0;        // children whose class is not a leaf
  };
  struct Entry {
    int name = 0;
    int cls = -1;
  };
  std::vector<Node> nodes;  // [0] is the root
  std::vector<Class> classes;
  std::vector<Entry> entries;
  std::vector<std::vector<int>> entries_of_class;  // per class, the entries holding it
  // Work measures for the caps (tree_association.h): a class pair aligns child_links x
  // child_links steps in total; the embedding's best-below reads module_links per entry.
  size_t child_links = 0;   // sum over classes of their children
  size_t module_links = 0;  // sum over entries of their classes' module children

  bool is_module(int entry) const { return !classes[size_t(entries[size_t(entry)].cls)].leaf; }
};

// `names[k]` is key k's dotted name and `keys[k]` its dtype and shape.
KeyTree build_key_tree(const std::vector<std::string_view>& names, const std::vector<KeyInfo>& keys,
                       KeyInterner& interner);

}  // namespace ptpack::match
