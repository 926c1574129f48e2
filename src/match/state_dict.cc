// find_state_dict (ptpack/state_dict.h).
#include <algorithm>

#include "ops/edit_tree.h"
#include "package/module_state.h"
#include "ptpack/error.h"
#include "ptpack/state_dict.h"
#include "ptpack/tree.h"

namespace ptpack {

StateDictKeys find_state_dict(const Artifact& a, const std::optional<std::string>& select,
                              const std::string& option) {
  StateDictKeys result;
  if (a.format == Format::kTorchPackage || a.format == Format::kTorchScript) {
    // The module's state dict, from the pickle holding it (select: the pickle's entry).
    std::vector<const PickleDoc*> modules;
    for (const PickleDoc& doc : a.pickles) {
      const std::string entry = doc.entry.substr(a.root.size());
      if (select ? entry == *select : package::holds_module(a, doc)) modules.push_back(&doc);
    }
    if (modules.size() != 1) {
      Error e(ErrorCode::kInvalidArgument, "match.select", modules.empty()
              ? "no pickle holds an nn.Module" + (select ? " named '" + *select + "'" : std::string())
              : "several pickles hold an nn.Module; choose one with " + option);
      e.add_file(a.path);
      throw e;
    }
    for (const package::StateKey& k : package::module_state(a, *modules[0])) result.keys.emplace_back(k.key, k.tensor);
    result.from = "the state dict of the module in " + modules[0]->entry.substr(a.root.size());
    return result;
  }
  const Tree tree = build_tree(a);
  const Node* node = &tree.root;
  if (select) {
    node = &ops::select_node(tree.root, *select);
    result.from = "'" + *select + "' (" + option + ")";
  } else {
    auto mappings = ops::state_dict_mappings(tree.root);
    std::stable_sort(mappings.begin(), mappings.end(), [](const auto& x, const auto& y) {
      return x.second->entries.size() > y.second->entries.size();
    });
    if (!mappings.empty()) {
      node = mappings[0].second;
      result.from = mappings[0].first.empty() ? std::string("the file's state dict")
                                              : "the state dict at '" + mappings[0].first + "'";
      if (mappings.size() > 1) {
        result.from += " (the largest of " + std::to_string(mappings.size()) + " tensor mappings; " + option + " chooses)";
      }
    } else {
      result.from = "every tensor of the file";
    }
  }
  ops::for_each_leaf(*node, "", [&](const std::string& name, const Node& leaf) {
    if (leaf.kind == Node::Kind::kTensor) result.keys.emplace_back(name, size_t(leaf.integer));
  });
  return result;
}

}  // namespace ptpack
