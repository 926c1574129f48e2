// collapse_keys (ptpack/match.h): key lists short enough to read.
#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "match/key_path.h"
#include "ptpack/match.h"

namespace ptpack {

namespace {

using Parts = std::vector<std::string>;

Parts split(const std::string& key) {
  Parts out;
  size_t start = 0;
  for (size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1) {
    out.push_back(key.substr(start, dot - start));
  }
  out.push_back(key.substr(start));
  return out;
}

// "layer12" -> {"layer", 12}; "0" -> {"", 0}; no trailing number (or a leading zero) -> nullopt.
std::optional<std::pair<std::string, uint64_t>> numbered(const std::string& c) {
  size_t i = c.size();
  while (i > 0 && c[i - 1] >= '0' && c[i - 1] <= '9') --i;
  const size_t digits = c.size() - i;
  if (digits == 0 || digits > 18 || (digits > 1 && c[i] == '0')) return std::nullopt;
  return std::make_pair(c.substr(0, i), std::stoull(c.substr(i)));
}

std::string ranges(std::vector<uint64_t> n) {
  std::sort(n.begin(), n.end());
  std::string s;
  for (size_t i = 0; i < n.size();) {
    size_t j = i;
    while (j + 1 < n.size() && n[j + 1] == n[j] + 1) ++j;
    s += (s.empty() ? "" : ",") + std::to_string(n[i]);
    if (j > i) s += (j == i + 1 ? "," : "..") + std::to_string(n[j]);
    i = j + 1;
  }
  return "{" + s + "}";
}

std::vector<std::string> collapse(const std::vector<Parts>& items, size_t depth) {
  // Group by the component at `depth`, in order of first appearance.
  std::vector<std::string> order;
  std::unordered_map<std::string, std::vector<Parts>> groups;
  bool ends_here = false;
  for (const Parts& p : items) {
    if (p.size() <= depth) {
      ends_here = true;
      continue;
    }
    auto [it, fresh] = groups.try_emplace(p[depth]);
    if (fresh) order.push_back(p[depth]);
    it->second.push_back(p);
  }
  // Numbered components with identical contents merge: layer1..layer4 -> layer{1..4}.
  std::vector<std::string> out;
  if (ends_here) out.push_back("");
  std::map<std::pair<std::string, std::vector<std::string>>, std::vector<uint64_t>> merged;
  std::vector<std::pair<std::string, std::vector<std::string>>> merged_order;
  std::vector<std::pair<std::string, std::vector<std::string>>> plain;  // in order, by component
  for (const std::string& c : order) {
    std::vector<std::string> rest = collapse(groups[c], depth + 1);
    if (auto n = numbered(c)) {
      auto key = std::make_pair(n->first, rest);
      auto [it, fresh] = merged.try_emplace(key);
      if (fresh) {
        merged_order.push_back(key);
        plain.emplace_back("\x01" + std::to_string(merged_order.size() - 1), std::vector<std::string>{});
      }
      it->second.push_back(n->second);
    } else {
      plain.emplace_back(c, std::move(rest));
    }
  }
  for (auto& [c, rest] : plain) {
    std::string head = c;
    const std::vector<std::string>* tails = &rest;
    if (!c.empty() && c[0] == '\x01') {
      const auto& key = merged_order[std::stoul(c.substr(1))];
      const std::vector<uint64_t>& numbers = merged[key];
      head = key.first + (numbers.size() == 1 ? std::to_string(numbers[0]) : ranges(numbers));
      tails = &key.second;
    }
    for (const std::string& t : *tails) out.push_back(t.empty() ? head : head + "." + t);
  }
  return out;
}

}  // namespace

std::vector<std::string> collapse_keys(const std::vector<std::string>& keys, const std::vector<std::string>& universe) {
  // Whole modules become "module.*".
  std::unordered_map<std::string, size_t> module_size;
  for (const std::string& k : universe) ++module_size[match::module_of(k)];
  std::unordered_map<std::string, size_t> listed;
  std::unordered_set<std::string> unique(keys.begin(), keys.end());
  for (const std::string& k : unique) ++listed[match::module_of(k)];
  std::vector<Parts> items;
  std::unordered_set<std::string> emitted;
  for (const std::string& k : keys) {
    const std::string m = match::module_of(k);
    if (!m.empty() && listed[m] > 1 && listed[m] == module_size[m]) {
      if (emitted.insert(m).second) items.push_back(split(m + ".*"));
    } else if (emitted.insert("\x02" + k).second) {
      items.push_back(split(k));
    }
  }
  return collapse(items, 0);
}

}  // namespace ptpack
