// build_key_tree (key_tree.h).
#include "match/key_tree.h"

#include <functional>

namespace ptpack::match {

namespace {

// Class contents (a few ints) as a hash key.
struct VectorHash {
  size_t operator()(const std::vector<int>& v) const {
    uint64_t h = 0x9e3779b97f4a7c15u ^ v.size();
    for (int x : v) h = (h ^ uint32_t(x)) * 0x100000001b3u;
    return size_t(h ^ (h >> 29));
  }
};

// Child slots of nodes: (parent, is a tensor, name) -> node. A tensor and a module of the same
// name under one parent stay two nodes; a repeated key (possible after --rename) finds its
// first tensor again. Open addressing in one array: at 100k keys, a heap node per slot
// (std::unordered_map) cost more in allocation and cache misses than the rest of the tree.
class SlotTable {
 public:
  explicit SlotTable(size_t expected) {
    size_t capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    resize(capacity);
  }
  // The node in slot (parent, tensor, name), or `fresh` after storing it there; and whether it was added.
  std::pair<int, bool> find_or_add(int parent, bool tensor, std::string_view name, int fresh) {
    if (size_ * 2 >= slots_.size()) grow();
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash(parent, tensor, name);; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.node < 0) {
        s = {parent, tensor, name, fresh};
        ++size_;
        return {fresh, true};
      }
      if (s.parent == parent && s.tensor == tensor && s.name == name) return {s.node, false};
    }
  }

 private:
  struct Slot {
    int parent = 0;
    bool tensor = false;
    std::string_view name;
    int node = -1;
  };
  // Fibonacci hashing: the top bits of the product, as many as the table has.
  size_t hash(int parent, bool tensor, std::string_view name) const {
    const uint64_t h =
        std::hash<std::string_view>()(name) ^ (uint64_t(uint32_t(parent)) << 1 | uint64_t(tensor));
    return size_t((h * 0x9e3779b97f4a7c15u) >> shift_);
  }
  void resize(size_t capacity) {
    slots_.assign(capacity, Slot{});
    shift_ = 64;
    for (size_t c = capacity; c > 1; c /= 2) --shift_;
    size_ = 0;
  }
  void grow() {
    std::vector<Slot> old;
    old.swap(slots_);
    resize(old.size() * 2);
    for (const Slot& s : old) {
      if (s.node >= 0) find_or_add(s.parent, s.tensor, s.name, s.node);
    }
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
  int shift_ = 64;
};

}  // namespace

size_t KeyInterner::ShapeHash::operator()(const std::vector<int64_t>& s) const {
  uint64_t h = 0x9e3779b97f4a7c15u ^ s.size();
  for (int64_t x : s) h = (h ^ uint64_t(x)) * 0x100000001b3u;
  return size_t(h ^ (h >> 29));
}

int KeyInterner::name(std::string_view n) { return names.try_emplace(n, int(names.size())).first->second; }

int KeyInterner::shape(const std::vector<int64_t>& s) {
  return shapes.try_emplace(s, int(shapes.size())).first->second;
}

KeyTree build_key_tree(const std::vector<std::string_view>& names, const std::vector<KeyInfo>& keys,
                       KeyInterner& interner) {
  KeyTree t;
  t.nodes.emplace_back();
  t.nodes[0].name = interner.name("");
  SlotTable slots(names.size() * 3 / 2 + 16);  // nodes: about 1.5 per key in a state dict
  // The previous key's modules, by depth: in state-dict order neighbours share most of their
  // path, and a component equal to the previous key's at the same depth, under the same
  // modules, is the same node, so only where paths part is the slot table consulted.
  std::vector<std::pair<std::string_view, int>> path;
  for (size_t k = 0; k < names.size(); ++k) {
    const std::string_view name = names[k];
    int at = 0;
    size_t start = 0;
    for (size_t depth = 0;; ++depth) {
      const size_t dot = name.find('.', start);
      const bool last = dot == std::string_view::npos;
      const std::string_view part = name.substr(start, last ? std::string_view::npos : dot - start);
      if (!last && depth < path.size() && path[depth].first == part) {
        at = path[depth].second;
        start = dot + 1;
        continue;
      }
      const auto [node, added] = slots.find_or_add(at, last, part, int(t.nodes.size()));
      if (added) {
        t.nodes.push_back({interner.name(part), part, last ? int(k) : -1, -1, -1, {}});
        t.nodes[size_t(at)].children.push_back(node);
      }
      at = node;
      if (last) break;
      path.resize(depth);
      path.emplace_back(part, at);
      start = dot + 1;
    }
  }
  // Classes bottom-up (children have larger node indices than their parents), so a class's
  // children have smaller class ids. A class is keyed by its contents: {0, dtype, shape} for a
  // tensor, {1 + root, child entries...} for a module.
  std::unordered_map<std::vector<int>, int, VectorHash> class_ids;
  std::unordered_map<uint64_t, int> entry_ids;  // (name << 32 | class) -> entry
  std::vector<int> contents;
  for (size_t i = t.nodes.size(); i-- > 0;) {
    KeyTree::Node& n = t.nodes[i];
    contents.clear();
    if (n.key >= 0) {
      const KeyInfo& info = keys[size_t(n.key)];
      contents = {0, int(info.dtype), interner.shape(info.shape)};
    } else {
      contents.push_back(i == 0 ? 2 : 1);
      for (int c : n.children) contents.push_back(t.nodes[size_t(c)].entry);
    }
    const auto [it, added] = class_ids.try_emplace(contents, int(t.classes.size()));
    n.cls = it->second;
    if (added) {
      KeyTree::Class c;
      c.leaf = n.key >= 0;
      c.root = i == 0;
      if (c.leaf) {
        c.dtype = keys[size_t(n.key)].dtype;
        c.shape = contents[2];
      }
      bool owns_tensor = false;
      for (int child : n.children) {
        const int e = t.nodes[size_t(child)].entry;
        const KeyTree::Class& cc = t.classes[size_t(t.entries[size_t(e)].cls)];
        c.children.push_back(e);
        c.modules += cc.modules;
        owns_tensor = owns_tensor || cc.leaf;
        c.module_children += cc.leaf ? 0 : 1;
      }
      c.modules += owns_tensor ? 1 : 0;
      t.child_links += c.children.size();
      t.classes.push_back(std::move(c));
      t.entries_of_class.emplace_back();
    }
    const auto [e, new_entry] =
        entry_ids.try_emplace(uint64_t(uint32_t(n.name)) << 32 | uint32_t(n.cls), int(t.entries.size()));
    n.entry = e->second;
    if (new_entry) {
      t.entries.push_back({n.name, n.cls});
      t.entries_of_class[size_t(n.cls)].push_back(n.entry);
      t.module_links += size_t(t.classes[size_t(n.cls)].module_children);
    }
  }
  return t;
}

}  // namespace ptpack::match
