// Tree association strategies (isomorphism, embedding): see tree_association.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ptpack/match.h"

namespace ptpack::match {

// Upper bound on each of: distinct-subtree (class) pairs, two floats each; distinct (name,
// subtree) (entry) pairs, one float each and the isomorphism's search; child alignment steps;
// and, for embedding, level-skipping steps. So the tables stay under 192 MiB and the work is
// bounded. Each measure is at most (source nodes x destination nodes), the former measure, so
// every input accepted before still is. resnet152 x backbone.densenet201: 1.3k x 1.7k nodes,
// but 73 x 314 classes, 144 x 537 entries and 169 x 708 child links (key_tree.h).
inline constexpr size_t kMaxPairs = size_t{16} << 20;

// Source key index per destination key (-1: none), or nullopt when the trees are too large
// (reason says so). `src_names` are the source keys after renames.
std::optional<std::vector<int>> tree_assignment(const std::vector<KeyInfo>& src,
                                                const std::vector<KeyInfo>& dst,
                                                const std::vector<std::string>& src_names, bool embedding,
                                                std::string& reason);

}  // namespace ptpack::match
