// The association strategies of ptpack/match.h and the per-module judgement.
#include <algorithm>
#include <chrono>
#include <map>
#include <regex>
#include <set>
#include <string_view>
#include <unordered_map>

#include "match/tree_association.h"
#include "ptpack/error.h"
#include "match/key_path.h"
#include "ptpack/match.h"

namespace ptpack {

namespace {

using Assignment = std::vector<int>;  // per destination key: source index, or -1

// The first `depth` dotted components with their dot ("a.b."), and the rest, as views of `key`.
// The rest keeps at least a module name and a tensor name: a prefix never renames the module
// itself ("fc.weight" and "head.weight" share no module, only a tensor name).
std::vector<std::pair<std::string_view, std::string_view>> splits(std::string_view key, size_t max_depth) {
  std::vector<std::pair<std::string_view, std::string_view>> out{{std::string_view(), key}};
  size_t at = 0;
  for (size_t depth = 1; depth <= max_depth; ++depth) {
    at = key.find('.', at);
    if (at == std::string_view::npos) break;
    ++at;
    if (key.find('.', at) == std::string_view::npos) break;
    out.emplace_back(key.substr(0, at), key.substr(at));
  }
  return out;
}

// The dotted suffixes of `key` with at least two components, longest first, as views of it.
std::vector<std::string_view> suffixes(std::string_view key) {
  std::vector<std::string_view> out;
  const size_t last = key.rfind('.');
  if (last == std::string_view::npos) return out;
  out.push_back(key);
  for (size_t dot = key.find('.'); dot != std::string_view::npos && dot < last; dot = key.find('.', dot + 1)) {
    out.push_back(key.substr(dot + 1));
  }
  return out;
}

Assignment exact(const std::vector<std::string>& src, const std::vector<std::string>& dst) {
  std::unordered_map<std::string_view, int> by_name;
  by_name.reserve(src.size());
  for (size_t i = 0; i < src.size(); ++i) by_name.emplace(src[i], int(i));
  Assignment a(dst.size(), -1);
  for (size_t j = 0; j < dst.size(); ++j) {
    if (auto it = by_name.find(dst[j]); it != by_name.end()) a[j] = it->second;
  }
  return a;
}

// Rounds of "remove Ps from source names, add Pd": each round takes the prefix pair that the
// most remainders unique on both sides agree on, among keys not yet paired.
constexpr size_t kMaxPrefixDepth = 4;
constexpr int kMaxPrefixRounds = 4;

Assignment prefix(const std::vector<std::string>& src, const std::vector<std::string>& dst, std::string& reason) {
  Assignment a(dst.size(), -1);
  std::vector<bool> src_used(src.size(), false);
  for (int round = 0; round < kMaxPrefixRounds; ++round) {
    std::unordered_map<std::string_view, std::vector<std::pair<std::string_view, int>>> src_rest, dst_rest;
    src_rest.reserve(src.size() * 3);
    dst_rest.reserve(dst.size() * 3);
    for (size_t i = 0; i < src.size(); ++i) {
      if (src_used[i]) continue;
      for (auto& [p, r] : splits(src[i], kMaxPrefixDepth)) src_rest[r].emplace_back(p, int(i));
    }
    for (size_t j = 0; j < dst.size(); ++j) {
      if (a[j] >= 0) continue;
      for (auto& [p, r] : splits(dst[j], kMaxPrefixDepth)) dst_rest[r].emplace_back(p, int(j));
    }
    std::map<std::pair<std::string_view, std::string_view>, int> votes;
    for (const auto& [rest, s] : src_rest) {
      const auto it = dst_rest.find(rest);
      if (s.size() == 1 && it != dst_rest.end() && it->second.size() == 1) ++votes[{s[0].first, it->second[0].first}];
    }
    const std::pair<std::string_view, std::string_view>* best = nullptr;
    int best_votes = 0;
    for (const auto& [pair, n] : votes) {
      const bool shorter = best && n == best_votes && pair.first.size() + pair.second.size() < best->first.size() + best->second.size();
      if (n > best_votes || shorter) best = &pair, best_votes = n;
    }
    if (!best || best_votes < (round == 0 ? 1 : 2)) break;
    std::unordered_map<std::string_view, int> dst_index;
    dst_index.reserve(dst.size());
    for (size_t j = 0; j < dst.size(); ++j) {
      if (a[j] < 0) dst_index.emplace(dst[j], int(j));
    }
    int mapped = 0;
    for (size_t i = 0; i < src.size(); ++i) {
      if (src_used[i] || !src[i].starts_with(best->first)) continue;
      const auto it = dst_index.find(std::string(best->second) + src[i].substr(best->first.size()));
      if (it == dst_index.end() || a[size_t(it->second)] >= 0) continue;
      a[size_t(it->second)] = int(i);
      src_used[i] = true;
      ++mapped;
    }
    reason += (reason.empty() ? "prefixes " : ", ") + std::string("'") + std::string(best->first) + "' -> '" + std::string(best->second) + "' (" +
              std::to_string(mapped) + " keys)";
  }
  return a;
}

// At most this many tied candidates are kept per key (for the report); more would make
// association quadratic in the number of keys that share a common suffix like "bn1.weight".
constexpr size_t kMaxTies = 8;

// For each key of `from`, the unique key of `to` sharing its longest dotted suffix of at least
// two components, or -1; `ties` receives (some of) the candidates where that suffix is shared.
std::vector<int> best_by_suffix(const std::vector<std::string>& from, const std::vector<std::string>& to,
                                std::vector<std::vector<int>>* ties) {
  std::unordered_map<std::string_view, std::vector<int>> index;
  index.reserve(to.size() * 3);
  for (size_t i = 0; i < to.size(); ++i) {
    for (std::string_view s : suffixes(to[i])) {
      std::vector<int>& v = index[s];
      if (v.size() <= kMaxTies) v.push_back(int(i));
    }
  }
  std::vector<int> best(from.size(), -1);
  if (ties) ties->assign(from.size(), {});
  for (size_t j = 0; j < from.size(); ++j) {
    for (std::string_view s : suffixes(from[j])) {
      const auto it = index.find(s);
      if (it == index.end()) continue;
      if (it->second.size() == 1) {
        best[j] = it->second[0];
      } else if (ties) {
        (*ties)[j].assign(it->second.begin(), it->second.begin() + std::min(it->second.size(), kMaxTies));
      }
      break;
    }
  }
  return best;
}

Assignment suffix(const std::vector<std::string>& src, const std::vector<std::string>& dst,
                  std::vector<std::vector<int>>& ties) {
  const std::vector<int> dst_best = best_by_suffix(dst, src, &ties);
  const std::vector<int> src_best = best_by_suffix(src, dst, nullptr);
  Assignment a(dst.size(), -1);
  for (size_t j = 0; j < dst.size(); ++j) {
    const int i = dst_best[j];
    if (i >= 0 && src_best[size_t(i)] == int(j)) a[j] = i;
    if (i >= 0 && src_best[size_t(i)] != int(j)) ties[j] = {i};  // not mutual: reported, not taken
  }
  return a;
}

// Judges each destination module as a unit and fills the report.
void judge(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst, const Assignment& a,
           bool mangle, MatchReport& r) {
  std::map<std::string, std::vector<size_t>> modules;  // dst module -> its paired dst keys
  for (size_t j = 0; j < dst.size(); ++j) {
    if (a[j] >= 0) modules[match::module_of(dst[j].key)].push_back(j);
  }
  std::vector<MatchPair::Kind> kind(dst.size(), MatchPair::Kind::kSkipped);
  for (const auto& [module, members] : modules) {
    bool equal = true, adaptable = mangle;
    for (size_t j : members) {
      const KeyInfo& s = src[size_t(a[j])];
      const KeyInfo& d = dst[j];
      const bool dtypes_ok = s.dtype == d.dtype || (is_castable_float(s.dtype) && is_cast_target(d.dtype));
      equal = equal && dtypes_ok && s.shape == d.shape;
      adaptable = adaptable && dtypes_ok && s.shape.size() == d.shape.size();
    }
    for (size_t j : members) {
      const bool same = src[size_t(a[j])].shape == dst[j].shape;
      kind[j] = equal ? MatchPair::Kind::kFull
              : adaptable ? (same ? MatchPair::Kind::kFull : MatchPair::Kind::kPartial)
                          : MatchPair::Kind::kSkipped;
    }
  }
  std::vector<bool> src_loaded(src.size(), false);
  for (size_t j = 0; j < dst.size(); ++j) {
    if (a[j] < 0) {
      r.self_unset.push_back(dst[j].key);
      continue;
    }
    const KeyInfo& s = src[size_t(a[j])];
    r.pairs.push_back({s.key, dst[j].key, kind[j], s.shape, dst[j].shape, s.dtype != dst[j].dtype});
    if (kind[j] == MatchPair::Kind::kSkipped) {
      r.self_unset.push_back(dst[j].key);
    } else {
      src_loaded[size_t(a[j])] = true;
    }
  }
  for (size_t i = 0; i < src.size(); ++i) {
    if (!src_loaded[i]) r.other_unused.push_back(src[i].key);
  }
}

size_t loaded(const Assignment& a) {
  return size_t(std::count_if(a.begin(), a.end(), [](int i) { return i >= 0; }));
}

}  // namespace

std::optional<Association> association_from_name(std::string_view name) {
  if (name == "auto") return Association::kAuto;
  if (name == "exact") return Association::kExact;
  if (name == "prefix") return Association::kPrefix;
  if (name == "suffix") return Association::kSuffix;
  if (name == "isomorphism") return Association::kIsomorphism;
  if (name == "embedding") return Association::kEmbedding;
  return std::nullopt;
}

std::string_view association_name(Association a) {
  switch (a) {
    case Association::kAuto: return "auto";
    case Association::kExact: return "exact";
    case Association::kPrefix: return "prefix";
    case Association::kSuffix: return "suffix";
    case Association::kIsomorphism: return "isomorphism";
    case Association::kEmbedding: return "embedding";
  }
  return "?";
}

size_t MatchReport::count(MatchPair::Kind kind) const {
  return size_t(std::count_if(pairs.begin(), pairs.end(), [&](const MatchPair& p) { return p.kind == kind; }));
}

MatchReport match_keys(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst, const MatchOptions& o) {
  const auto started = std::chrono::steady_clock::now();
  // Source names as the strategies see them: after the user's rename rules, in order.
  std::vector<std::string> names, dst_names;
  std::vector<std::pair<std::regex, std::string>> rules;
  for (const auto& [pattern, replacement] : o.renames) {
    try {
      rules.emplace_back(std::regex(pattern, std::regex::ECMAScript), replacement);
    } catch (const std::regex_error& e) {
      throw Error(ErrorCode::kInvalidArgument, "usage.regex", "--rename '" + pattern + "': " + e.what());
    }
  }
  for (const KeyInfo& k : src) {
    std::string n = k.key;
    for (const auto& [re, replacement] : rules) n = std::regex_replace(n, re, replacement);
    names.push_back(std::move(n));
  }
  for (const KeyInfo& k : dst) dst_names.push_back(k.key);

  MatchReport r;
  std::vector<std::vector<int>> ties;
  std::string prefix_reason, tree_reason;
  Assignment chosen;
  const auto reason_of = [&](Association a) {
    return a == Association::kPrefix ? prefix_reason
         : a == Association::kIsomorphism || a == Association::kEmbedding ? tree_reason : std::string();
  };
  const auto run = [&](Association a) -> Assignment {
    switch (a) {
      case Association::kExact: return exact(names, dst_names);
      case Association::kPrefix: prefix_reason.clear(); return prefix(names, dst_names, prefix_reason);
      case Association::kSuffix: return suffix(names, dst_names, ties);
      case Association::kIsomorphism:
      case Association::kEmbedding: {
        tree_reason.clear();
        auto got = match::tree_assignment(src, dst, names, a == Association::kEmbedding, tree_reason);
        return got ? *got : Assignment(dst.size(), -1);
      }
      case Association::kAuto: break;
    }
    return {};
  };
  if (o.association != Association::kAuto) {
    chosen = run(o.association);
    r.strategy = std::string(association_name(o.association));
    r.reason = reason_of(o.association);
  } else {
    // The cheapest strategy that maps the most keys.
    std::string summary;
    size_t best = 0;
    for (Association a : {Association::kExact, Association::kPrefix, Association::kSuffix, Association::kIsomorphism,
                          Association::kEmbedding}) {
      if (a == Association::kSuffix) ties.clear();
      Assignment got = run(a);
      const size_t n = loaded(got);
      summary += (summary.empty() ? "" : ", ") + std::string(association_name(a)) + " pairs " + std::to_string(n);
      if (n > best || chosen.empty()) {
        best = n;
        chosen = std::move(got);
        r.strategy = std::string(association_name(a));
        r.reason = reason_of(a);
      }
      if (n == dst.size() || n == src.size()) break;  // everything explained: stop at the cheapest
    }
    r.reason = "auto: " + summary + (r.reason.empty() ? "" : "; " + r.reason);
  }
  if (r.strategy != "suffix") ties.clear();
  judge(src, dst, chosen, o.mangle, r);
  for (size_t j = 0; j < ties.size() && j < dst.size(); ++j) {
    if (chosen[j] >= 0 || ties[j].empty()) continue;
    std::vector<std::string> candidates;
    for (int i : ties[j]) candidates.push_back(src[size_t(i)].key);
    r.ambiguous.emplace_back(dst[j].key, std::move(candidates));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return r;
}

}  // namespace ptpack
