// Reading and building the plain-data trees (ptpack/tree.h) the bridge's files hold. Private to
// the bridge.
#pragma once

#include <string>

#include "ptpack/error.h"
#include "ptpack/tree.h"

namespace ptpack::libtorch::tree {

// The value under a string key of a dict node; nullptr when absent or when `dict` is no dict.
inline const Node* find(const Node& dict, const std::string& key) {
  if (dict.kind != Node::Kind::kDict) return nullptr;
  for (const NodeEntry& e : dict.entries) {
    if (e.first.kind == Node::Kind::kString && e.first.text == key) return &e.second;
  }
  return nullptr;
}

// The same, required: throws Error(kInvalidArgument, rule) naming `what` and the key.
inline const Node& get(const Node& dict, const std::string& key, const std::string& rule, const std::string& what) {
  if (const Node* n = find(dict, key)) return *n;
  throw Error(ErrorCode::kInvalidArgument, rule, what + " has no '" + key + "'");
}

inline Node integer(int64_t v) {
  Node n;
  n.kind = Node::Kind::kInt;
  n.integer = v;
  return n;
}
inline Node real(double v) {
  Node n;
  n.kind = Node::Kind::kFloat;
  n.real = v;
  return n;
}
inline Node boolean(bool v) {
  Node n;
  n.kind = Node::Kind::kBool;
  n.boolean = v;
  return n;
}
inline Node none() { return Node{}; }
inline Node list(Node::Kind kind = Node::Kind::kList) {
  Node n;
  n.kind = kind;
  return n;
}
inline void put(Node& dict, const std::string& key, Node value) {
  dict.entries.emplace_back(Node::string(key), std::move(value));
}
inline void put(Node& dict, int64_t key, Node value) { dict.entries.emplace_back(integer(key), std::move(value)); }

// Scalars read back: ints and bools as numbers, floats as doubles. Throws for other kinds.
inline double number(const Node& n, const std::string& what) {
  switch (n.kind) {
    case Node::Kind::kInt: return double(n.integer);
    case Node::Kind::kBool: return n.boolean ? 1 : 0;
    case Node::Kind::kFloat: return n.real;
    default: throw Error(ErrorCode::kInvalidArgument, "torch.value", what + " is not a number");
  }
}
inline int64_t whole(const Node& n, const std::string& what) {
  if (n.kind == Node::Kind::kInt) return n.integer;
  if (n.kind == Node::Kind::kBool) return n.boolean;
  throw Error(ErrorCode::kInvalidArgument, "torch.value", what + " is not an integer");
}
inline const std::string& text(const Node& n, const std::string& what) {
  if (n.kind != Node::Kind::kString) throw Error(ErrorCode::kInvalidArgument, "torch.value", what + " is not a string");
  return n.text;
}

}  // namespace ptpack::libtorch::tree
