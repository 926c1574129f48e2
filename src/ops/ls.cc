// `ptpack ls`: the archive as a tree, like torch.package's PackageImporter.file_structure().
#include <map>
#include <memory>

#include "ops/text_util.h"
#include "ptpack/error.h"
#include "ptpack/inspect.h"

namespace ptpack {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return parts;
    start = slash + 1;
  }
}

// '*' within one segment: iterative wildcard match with backtracking to the last star.
bool segment_match(const std::string& pat, const std::string& text) {
  size_t p = 0, t = 0, star = std::string::npos, mark = 0;
  while (t < text.size()) {
    if (p < pat.size() && pat[p] == '*') { star = p++; mark = t; }
    else if (p < pat.size() && pat[p] == text[t]) { ++p; ++t; }
    else if (star != std::string::npos) { p = star + 1; t = ++mark; }
    else return false;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool segments_match(const std::vector<std::string>& pat, size_t i, const std::vector<std::string>& path, size_t j) {
  if (i == pat.size()) return j == path.size();
  if (pat[i] == "**") {
    // zero or more whole (non-empty) segments
    for (size_t k = j; k <= path.size(); ++k) {
      if (k > j && path[k - 1].empty()) break;
      if (segments_match(pat, i + 1, path, k)) return true;
    }
    return false;
  }
  return j < path.size() && segment_match(pat[i], path[j]) && segments_match(pat, i + 1, path, j + 1);
}

struct Node {
  std::map<std::string, std::unique_ptr<Node>> children;
  const Entry* entry = nullptr;  // set for files
};

// Exactly torch.package's Directory._stringify_tree: directories first, then files, each sorted.
void render(const Node& node, const std::string& preamble, bool long_format, std::string& out) {
  std::vector<const std::pair<const std::string, std::unique_ptr<Node>>*> dirs, files;
  for (const auto& child : node.children) (child.second->entry ? files : dirs).push_back(&child);
  for (size_t i = 0; i < dirs.size(); ++i) {
    const bool last = i + 1 == dirs.size() && files.empty();
    out += preamble + (last ? "└── " : "├── ") + printable(dirs[i]->first) + "\n";
    render(*dirs[i]->second, preamble + (last ? "    " : "│   "), long_format, out);
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const Entry* e = files[i]->second->entry;
    out += preamble + (i + 1 == files.size() ? "└── " : "├── ") + printable(files[i]->first);
    if (long_format) {
      out += "  (" + std::string(entry_kind_name(e->kind)) + ", " + ops::human_bytes(e->size) +
             (e->compressed ? ", deflated" : "") + ")";
    }
    out += "\n";
  }
}

}  // namespace

bool glob_match(const std::string& pattern, const std::string& path) {
  return segments_match(split(pattern), 0, split(path), 0);
}

std::string ls_tree(const Artifact& a, const LsOptions& options) {
  Node root;
  for (const auto& e : a.entries) {
    std::string rel = e.name;
    if (!a.root.empty() && rel.rfind(a.root, 0) == 0) rel = rel.substr(a.root.size());
    bool included = options.include.empty();
    for (const auto& p : options.include) included = included || glob_match(p, rel);
    for (const auto& p : options.exclude) included = included && !glob_match(p, rel);
    if (!included) continue;
    Node* node = &root;
    for (const auto& part : split(rel)) {
      if (part.empty()) continue;
      auto& child = node->children[part];
      if (!child) child = std::make_unique<Node>();
      node = child.get();
    }
    node->entry = &e;
  }
  std::string out = "─── " + printable(a.path) + "\n";
  render(root, "    ", options.long_format, out);
  return out;
}

}  // namespace ptpack
