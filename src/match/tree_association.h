// Tree association strategies (isomorphism, embedding): see tree_association.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ptpack/match.h"

namespace ptpack::match {

// Upper bound on (source nodes x destination nodes): two floats each, so at most 128 MiB
// (resnet152 x backbone.densenet201 is 2.4k x 2.9k nodes, 7M pairs).
inline constexpr size_t kMaxPairs = size_t{16} << 20;

// Source key index per destination key (-1: none), or nullopt when the trees are too large
// (reason says so). `src_names` are the source keys after renames.
std::optional<std::vector<int>> tree_assignment(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst,
                                                const std::vector<std::string>& src_names, bool embedding,
                                                std::string& reason);

}  // namespace ptpack::match
