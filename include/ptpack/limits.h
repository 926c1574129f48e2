// Caps on what ptpack accepts from a file, all in one place.
//
// Every length read from a file is checked against the bytes that remain *and* against one of
// these caps before anything is allocated, so hostile input cannot make ptpack allocate without
// bound, loop forever or recurse off the stack. Exceeding a cap is ErrorCode::kLimitExceeded
// with the constant's name in the message. The values are far above anything PyTorch writes.
#pragma once

#include <cstdint>

namespace ptpack::limits {

// ZIP
inline constexpr uint64_t kMaxZipEntries = 1'000'000;
inline constexpr uint64_t kMaxZipNameLength = 4096;
inline constexpr uint64_t kMaxInflatedRecordBytes = uint64_t{4} << 30;  // one inflated record
inline constexpr uint64_t kMaxCompressionRatio = 1100;                  // deflate's own max ~1032

// Pickle. A value node costs ~200 bytes, so kMaxPickleValues bounds a tree at ~800 MB; a
// state dict costs ~15 nodes per tensor, so this still allows ~250k tensors in one pickle.
inline constexpr uint64_t kMaxPickleBytes = uint64_t{512} << 20;
inline constexpr uint64_t kMaxPickleValues = 4'000'000;    // nodes in one value tree
inline constexpr uint64_t kMaxPickleStack = 10'000'000;    // items on the stack at once
inline constexpr uint64_t kMaxPickleMarks = 100'000;       // open MARKs at once (nesting)
inline constexpr uint64_t kMaxMemoIndex = 100'000'000;     // memo keys above this are refused

// Walking value trees (they are DAGs through the memo and may even hold cycles)
inline constexpr int kMaxNestingDepth = 512;
inline constexpr uint64_t kMaxWalkSteps = 20'000'000;  // nodes visited by one walk
// Nodes of a plain-data tree built for writing (~130 B each; memo-shared values are copied per
// path, so a hostile pickle could otherwise expand a small file into gigabytes of tree).
inline constexpr uint64_t kMaxTreeNodes = 6'000'000;  // ~720 MB; 1M tensors need ~2.5M
inline constexpr uint64_t kMaxPathBytes = 64 << 10;  // one tensor or value path
inline constexpr uint64_t kMaxTensors = 1'000'000;     // tensors listed for one artifact (~250 B each)

// Tensors
inline constexpr int kMaxTensorRank = 64;
// Reading a broadcast view (stride 0) whose logical bytes exceed both its storage and this cap is
// refused: a 4-byte storage can describe 2^62 logical elements.
inline constexpr uint64_t kMaxBroadcastBytes = uint64_t{1} << 30;

// safetensors (the reference implementation's header cap)
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;
inline constexpr uint64_t kMaxShards = 100'000;
inline constexpr uint64_t kMaxIndexFileBytes = 256ull << 20;
inline constexpr int kMaxJsonDepth = 64;  // safetensors headers and indexes nest 3 deep

}  // namespace ptpack::limits
