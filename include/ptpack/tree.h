// Tree: a checkpoint's content as plain data, ready to be edited and written again.
//
// Writers cannot replay an arbitrary pickle: they must emit only what torch.load(weights_only=
// True) rebuilds. The tree is that subset of a pickle's value graph: None, bools, ints, floats,
// strings, lists, tuples, dicts and OrderedDicts (with a state_dict()'s `_metadata`), and tensors
// as references into Artifact::tensors. build_tree() maps everything else to it and says so in
// Tree::notes: torch.Size becomes a tuple, sets become lists, a pickled object that holds tensors
// (a whole nn.Module) becomes an OrderedDict of its tensors named like state_dict() keys, and
// values with no plain-data form (bytes, argparse.Namespace, torch.device...) are dropped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/artifact.h"

namespace ptpack {

struct NodeEntry;

struct Node {
  enum class Kind : uint8_t { kNone, kBool, kInt, kBigInt, kFloat, kString, kList, kTuple, kDict, kTensor };
  Kind kind = Kind::kNone;
  bool ordered = false;   // kDict: a collections.OrderedDict (else a plain dict)
  bool boolean = false;
  int64_t integer = 0;    // kInt; kTensor: index into Artifact::tensors
  double real = 0;
  std::string text;       // kString: UTF-8; kBigInt: little-endian two's complement
  std::vector<Node> items;                     // kList, kTuple
  std::vector<NodeEntry> entries;  // kDict, in order; keys are scalars
  std::shared_ptr<Node> metadata;              // kDict: state_dict()'s `_metadata` (a dict)

  static Node tensor(size_t index);
  static Node string(std::string text);
  static Node dict(bool ordered);
  bool is_container() const { return kind == Kind::kList || kind == Kind::kTuple || kind == Kind::kDict; }
};

// A dict entry. (Not std::pair: a pair of an incomplete type does not compile with every
// standard library, while a vector of an incomplete type is allowed since C++17.)
struct NodeEntry {
  NodeEntry(Node k, Node v) : first(std::move(k)), second(std::move(v)) {}
  Node first;   // the key
  Node second;  // the value
};

struct Tree {
  Node root;
  std::vector<std::string> notes;  // "'hparams': argparse.Namespace dropped (not plain data)"
};

// Builds the tree of an artifact. torch.save (zip or legacy) and bare pickles give their object;
// safetensors, torch.package and TorchScript give a flat OrderedDict from tensor path to tensor.
// Throws Error(kLimitExceeded) on graphs that expand beyond limits::kMaxWalkSteps.
Tree build_tree(const Artifact& artifact);

// The text a key has in a path ("layer1", "0"), as in tensor paths.
std::string node_key_text(const Node& key);

}  // namespace ptpack
