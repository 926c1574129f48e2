#include "ops/edit_tree.h"

#include <cstring>
#include <map>
#include <set>

#include "artifact/object_walk.h"
#include "ptpack/error.h"

namespace ptpack::ops {

namespace {

bool is_leaf(const Node& n) {
  if (n.kind == Node::Kind::kDict) return n.entries.empty();
  if (n.kind == Node::Kind::kList || n.kind == Node::Kind::kTuple) return n.items.empty();
  return true;
}

[[noreturn]] void invalid(const std::string& rule, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, rule, detail);
}

std::string keys_preview(const Node& n) {
  std::string out;
  size_t shown = 0;
  if (n.kind == Node::Kind::kDict) {
    for (const auto& [k, v] : n.entries) {
      if (shown++ == 12) return out + ", ...";
      out += (out.empty() ? "" : ", ") + printable(node_key_text(k), 60);
    }
  } else if (n.kind == Node::Kind::kList || n.kind == Node::Kind::kTuple) {
    return n.items.empty() ? "" : "0.." + std::to_string(n.items.size() - 1);
  }
  return out;
}

}  // namespace

std::regex compile_regex(const std::string& pattern, const std::string& option) {
  try {
    return std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    invalid("usage.regex", option + " '" + printable(pattern, 100) + "' is not a valid regular expression: " + e.what());
  }
}

const Node& select_node(const Node& root, const std::string& path) {
  const Node* n = &root;
  std::string rest = path;
  std::string walked;
  while (!rest.empty()) {
    const Node* next = nullptr;
    size_t used = 0;
    if (n->kind == Node::Kind::kDict) {
      for (const auto& [k, v] : n->entries) {
        const std::string key = node_key_text(k);
        const bool fits = rest == key || (rest.size() > key.size() && rest.compare(0, key.size(), key) == 0 &&
                                          rest[key.size()] == '.');
        if (fits && key.size() >= used) {
          next = &v;
          used = key.size();
        }
      }
    } else if (n->kind == Node::Kind::kList || n->kind == Node::Kind::kTuple) {
      const size_t dot = rest.find('.');
      const std::string head = rest.substr(0, dot);
      if (!head.empty() && head.find_first_not_of("0123456789") == std::string::npos && head.size() < 10 &&
          std::stoul(head) < n->items.size()) {
        next = &n->items[std::stoul(head)];
        used = head.size();
      }
    }
    if (!next) {
      Error e(ErrorCode::kNotFound, "select.path",
              "no '" + printable(rest, 100) + "' under '" + (walked.empty() ? std::string("(root)") : walked) +
              "'" + (keys_preview(*n).empty() ? std::string(" (not a container)") : "; it has: " + keys_preview(*n)));
      throw e;
    }
    walked = join_path(walked, rest.substr(0, used));
    rest = used < rest.size() ? rest.substr(used + 1) : "";
    n = next;
  }
  return *n;
}

void for_each_leaf(const Node& node, const std::string& path,
                   const std::function<void(const std::string&, const Node&)>& fn) {
  if (is_leaf(node)) return fn(path, node);
  if (node.kind == Node::Kind::kDict) {
    for (const auto& [k, v] : node.entries) for_each_leaf(v, join_path(path, node_key_text(k)), fn);
  } else {
    for (size_t i = 0; i < node.items.size(); ++i) for_each_leaf(node.items[i], join_path(path, std::to_string(i)), fn);
  }
}

size_t count_tensors(const Node& node) {
  size_t n = 0;
  for_each_leaf(node, "", [&](const std::string&, const Node& leaf) { n += leaf.kind == Node::Kind::kTensor; });
  return n;
}

std::vector<std::pair<std::string, const Node*>> state_dict_mappings(const Node& root) {
  std::vector<std::pair<std::string, const Node*>> out;
  std::function<void(const Node&, const std::string&)> walk = [&](const Node& n, const std::string& path) {
    if (n.kind == Node::Kind::kDict && !n.entries.empty()) {
      bool all = true;
      for (const auto& [k, v] : n.entries) {
        all = all && k.kind == Node::Kind::kString && v.kind == Node::Kind::kTensor;
      }
      if (all) {
        out.emplace_back(path, &n);
        return;
      }
      for (const auto& [k, v] : n.entries) walk(v, join_path(path, node_key_text(k)));
    } else if (n.kind == Node::Kind::kList || n.kind == Node::Kind::kTuple) {
      for (size_t i = 0; i < n.items.size(); ++i) walk(n.items[i], join_path(path, std::to_string(i)));
    }
  };
  walk(root, "");
  return out;
}

namespace {

class Editor {
 public:
  explicit Editor(const NameEdits& edits) : edits_(edits) {}

  // Returns false when `n` should be removed (a non-empty container emptied by drops).
  bool edit(Node& n, const std::string& source_path, const std::string& path) {
    if (n.kind == Node::Kind::kDict) return edit_dict(n, source_path, path);
    if (n.kind == Node::Kind::kList || n.kind == Node::Kind::kTuple) {
      const bool had = !n.items.empty();
      std::vector<Node> kept;
      for (size_t i = 0; i < n.items.size(); ++i) {
        const std::string index = std::to_string(i);
        Node& item = n.items[i];
        if (is_leaf(item)) {
          if (!wanted(join_path(source_path, index))) continue;
          check_not_renamed(join_path(path, std::to_string(kept.size())));
        } else if (!edit(item, join_path(source_path, index), join_path(path, std::to_string(kept.size())))) {
          continue;
        }
        kept.push_back(std::move(item));
      }
      n.items = std::move(kept);
      return !had || !n.items.empty();
    }
    return true;
  }

  EditCounts counts;

 private:
  bool wanted(const std::string& source_name) {
    bool keep = edits_.keeps.empty();
    for (const auto& re : edits_.keeps) keep = keep || std::regex_search(source_name, re);
    for (const auto& re : edits_.drops) keep = keep && !std::regex_search(source_name, re);
    if (!keep) ++counts.dropped;
    return keep;
  }

  std::string renamed(const std::string& name) {
    std::string out = name;
    for (const auto& [re, replacement] : edits_.renames) out = std::regex_replace(out, re, replacement);
    return out;
  }

  void check_not_renamed(const std::string& name) {
    if (renamed(name) != name) {
      invalid("convert.rename", "--rename would rename '" + printable(name, 200) +
              "', an item of a list; only dict keys can be renamed");
    }
  }

  // The prefixes stripped from this dict's string keys.
  std::vector<std::string> prefixes_for(const Node& dict) {
    std::vector<std::string> out;
    for (const std::string& p : edits_.strip_prefixes) {
      if (p != "auto") {
        out.push_back(p);
        continue;
      }
      // auto: DataParallel's "module." and torch.compile's "_orig_mod.", when every key that
      // holds a tensor carries it (layered wrappers peel one after the other). Each layer is its
      // own prefix so `_metadata` loses each wrapper's module entry, as consuming the prefixes
      // one by one does in torch.
      std::string stripped;
      for (bool changed = true; changed;) {
        changed = false;
        for (const char* candidate : {"module.", "_orig_mod."}) {
          size_t tensors = 0, with = 0;
          for (const auto& [k, v] : dict.entries) {
            if (v.kind != Node::Kind::kTensor) continue;
            ++tensors;
            with += k.kind == Node::Kind::kString && k.text.compare(0, stripped.size(), stripped) == 0 &&
                    k.text.compare(stripped.size(), std::strlen(candidate), candidate) == 0;
          }
          if (tensors && with == tensors) {
            stripped += candidate;
            out.push_back(candidate);
            changed = true;
          }
        }
      }
    }
    return out;
  }

  bool edit_dict(Node& n, const std::string& source_path, const std::string& path) {
    const bool had = !n.entries.empty();
    const std::vector<std::string> prefixes = prefixes_for(n);
    std::vector<NodeEntry> kept;
    // Keys are told apart by kind and text, as Python does: 0 and '0' are two keys.
    std::set<std::pair<Node::Kind, std::string>> keys;
    for (auto& [k, v] : n.entries) {
      const std::string source_key = node_key_text(k);
      const std::string source_name = join_path(source_path, source_key);
      Node key = k;
      if (key.kind == Node::Kind::kString) {
        for (const std::string& p : prefixes) {
          if (!p.empty() && key.text.compare(0, p.size(), p) == 0) key.text = key.text.substr(p.size());
        }
      }
      if (is_leaf(v)) {
        if (!wanted(source_name)) continue;
        const std::string name = join_path(path, node_key_text(key));
        const std::string new_name = renamed(name);
        if (new_name != name) {
          const std::string parent = path.empty() ? "" : path + ".";
          if (key.kind != Node::Kind::kString || new_name.compare(0, parent.size(), parent) != 0 ||
              new_name.size() == parent.size()) {
            invalid("convert.rename", "--rename turns '" + printable(name, 200) + "' into '" +
                    printable(new_name, 200) + "', which moves it out of '" + path +
                    "'; renames may change only the key inside its mapping");
          }
          key.text = new_name.substr(parent.size());
        }
      } else if (!edit(v, source_name, join_path(path, node_key_text(key)))) {
        continue;
      }
      if (key.kind == Node::Kind::kString && key.text != k.text) ++counts.renamed;
      const std::string final_key = node_key_text(key);
      if (!keys.insert({key.kind, final_key}).second) {
        invalid("convert.collision", "two values would both be named '" + printable(join_path(path, final_key), 200) +
                "' (check --strip-prefix and --rename)");
      }
      kept.emplace_back(std::move(key), std::move(v));
    }
    n.entries = std::move(kept);
    if (n.metadata) strip_metadata(*n.metadata, prefixes);
    return !had || !n.entries.empty();
  }

  // torch.nn.modules.utils.consume_prefix_in_state_dict_if_present: `_metadata` keys are module
  // paths ("", "module", "module.conv1"); strip the prefix, and its bare form, too.
  static void strip_metadata(Node& metadata, const std::vector<std::string>& prefixes) {
    if (metadata.kind != Node::Kind::kDict) return;
    for (const std::string& p : prefixes) {
      const std::string bare = !p.empty() && p.back() == '.' ? p.substr(0, p.size() - 1) : p;
      std::vector<NodeEntry> out;
      std::map<std::string, size_t> seen;  // a renamed key replaces an existing one, as in torch
      for (auto& [k, v] : metadata.entries) {
        Node key = k;
        if (key.kind == Node::Kind::kString && !key.text.empty()) {
          if (key.text == bare) key.text = "";
          else if (key.text.compare(0, p.size(), p) == 0) key.text = key.text.substr(p.size());
        }
        if (key.kind == Node::Kind::kString) {
          if (auto it = seen.find(key.text); it != seen.end()) {
            out[it->second].second = std::move(v);
            continue;
          }
          seen.emplace(key.text, out.size());
        }
        out.emplace_back(std::move(key), std::move(v));
      }
      metadata.entries = std::move(out);
    }
  }

  const NameEdits& edits_;
};

}  // namespace

EditCounts edit_names(Node& root, const NameEdits& edits) {
  Editor editor(edits);
  if (is_leaf(root)) {
    return editor.counts;
  }
  editor.edit(root, "", "");
  return editor.counts;
}

}  // namespace ptpack::ops
