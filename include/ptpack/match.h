// Loading weights across architectures: associating one checkpoint's keys with another model's.
//
// match_keys() pairs source keys (the weights) with destination keys (the target model's
// state-dict keys and shapes) by one association strategy, then judges each destination module
// as a unit: its tensors are loaded together (all shapes equal), adapted together (--mangle:
// same ranks, the overlapping leading corner copied), or skipped together. Strategies:
//   exact   identical names (after --rename rules);
//   prefix  a prefix removed from the source and one added to the destination: the known
//           wrappers (module., _orig_mod.) and the pair of prefixes that explains most keys,
//           inferred from remainders that are unique on both sides;
//   suffix  each destination key takes the source key sharing its longest dotted suffix (at
//           least module and tensor name) when that source key is unique and its own best match
//           is the same destination key; ties are reported as ambiguous, never guessed;
//   isomorphism  a maximum common subtree of the two module trees (torch_liberator's
//           formulation) with shapes in the leaf affinity, children aligned in state-dict order
//           (never alphabetically), renamed modules only when backed by several modules;
//   embedding    the same, allowing a wrapper level to be skipped on either side anywhere;
//   auto    the cheapest of these that maps the most keys (exact, prefix, suffix, isomorphism,
//           embedding, in that order; the tree strategies are skipped for very large trees).
// Report fields keep torch_liberator's names (full_add, partial_add, skipped, self_unset,
// other_unused) so its users recognise them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ptpack/dtype.h"

namespace ptpack {

struct KeyInfo {
  std::string key;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

enum class Association { kAuto, kExact, kPrefix, kSuffix, kIsomorphism, kEmbedding };
std::optional<Association> association_from_name(std::string_view name);
std::string_view association_name(Association a);

struct MatchOptions {
  Association association = Association::kAuto;
  std::vector<std::pair<std::string, std::string>> renames;  // applied to source names first
  bool mangle = false;  // adapt same-rank tensors of other shapes (copy the overlapping corner)
};

struct MatchPair {
  enum class Kind { kFull, kPartial, kSkipped };
  std::string src, dst;
  Kind kind = Kind::kFull;
  std::vector<int64_t> src_shape, dst_shape;
  bool cast = false;  // floating dtypes differ: the source is cast to the destination's
};

struct MatchReport {
  std::string strategy;        // the association used
  std::string reason;          // why (auto), with the inferred prefixes
  std::vector<MatchPair> pairs;        // in destination order; kSkipped pairs are not loaded
  std::vector<std::string> self_unset;    // destination keys nothing was loaded into
  std::vector<std::string> other_unused;  // source keys not loaded anywhere
  std::vector<std::pair<std::string, std::vector<std::string>>> ambiguous;  // dst key, candidates
  double seconds = 0;

  size_t count(MatchPair::Kind kind) const;
};

// Pure association: no files. Throws Error(kInvalidArgument) for a bad --rename regex.
MatchReport match_keys(const std::vector<KeyInfo>& src, const std::vector<KeyInfo>& dst,
                       const MatchOptions& options);

// Keys listed compactly: numbered siblings with the same contents collapse into ranges, and a
// module whose every tensor is listed becomes `module.*`:
// "layer{1..4}.{0..2}.bn1.*". `universe` is every key of that side (to know whole modules).
std::vector<std::string> collapse_keys(const std::vector<std::string>& keys,
                                       const std::vector<std::string>& universe);

}  // namespace ptpack

// --- files ---------------------------------------------------------------------------------------

namespace ptpack {

struct MatchFilesOptions {
  MatchOptions match;
  std::optional<std::string> src_select;  // path of the state dict in SRC ("model_state")
  std::optional<std::string> dst_select;
  std::optional<std::string> output;      // write a checkpoint in DST's key space (.pt or .safetensors)
};

struct MatchFilesReport {
  std::string src, dst;
  std::string src_keys_from, dst_keys_from;  // where each side's keys were found, in words
  std::vector<std::string> src_universe, dst_universe;  // every key of each side, in order
  MatchReport match;
  std::string output;            // written file ("" = none)
  uint64_t written_tensors = 0;  // in the output: loaded + DST's own values
  std::vector<std::string> notes;
};

// SRC: any artifact. DST: a checkpoint, a training checkpoint, a topology, a torch.package or
// TorchScript archive (its module's state-dict keys). Without a select option, a side's keys are
// its largest state-dict-like mapping (a package's module state). With `output`, writes DST's
// keys: SRC's tensors where loaded (cast to DST's float dtype, or DST's tensor with SRC's
// leading corner copied in for partial_add), DST's own tensors where nothing was loaded and DST
// has values; atomically. Throws Error on bad input; nothing is written then.
MatchFilesReport match_files(const std::string& src, const std::string& dst, const MatchFilesOptions& options);

std::string match_report_text(const MatchFilesReport& report);
std::string match_report_json(const MatchFilesReport& report);

}  // namespace ptpack
