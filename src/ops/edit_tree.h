// Navigating and editing checkpoint trees (ptpack/tree.h): selection by path, leaves with their
// names, the state-dict-like mappings, and the name edits of `convert`. Shared by convert and diff.
#pragma once

#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/tree.h"

namespace ptpack::ops {

// The node at `path` ("model_state", "optimizer.state.0"): dict keys may themselves contain dots
// ("layer1.0.conv1.weight"), so the longest key matching a prefix of the path wins. Throws
// Error(kNotFound) naming the keys available where the path stopped.
const Node& select_node(const Node& root, const std::string& path);

// Calls fn(name, node) for every leaf: tensors, scalars, and containers that are empty. Names
// join dict keys and indices with '.', as tensor paths do.
void for_each_leaf(const Node& node, const std::string& path,
                   const std::function<void(const std::string&, const Node&)>& fn);

size_t count_tensors(const Node& node);

// Dicts whose values are all tensors under string keys (state_dict()s), with their paths; not
// looking inside them.
std::vector<std::pair<std::string, const Node*>> state_dict_mappings(const Node& root);

struct NameEdits {
  std::vector<std::string> strip_prefixes;  // "auto" included as is
  std::vector<std::pair<std::regex, std::string>> renames;
  std::vector<std::string> rename_texts;     // for messages
  std::vector<std::regex> drops, keeps;
};

struct EditCounts {
  uint64_t renamed = 0;
  uint64_t dropped = 0;
  std::vector<std::string> notes;
};

// Applies drops/keeps (matched against source names), then prefix stripping and renames, in
// place. Containers emptied by drops disappear. Throws Error(kInvalidArgument) when two names
// collide or a rename would move a value out of its mapping.
EditCounts edit_names(Node& root, const NameEdits& edits);

// Compiles a user regex, naming the option in the error.
std::regex compile_regex(const std::string& pattern, const std::string& option);

}  // namespace ptpack::ops
