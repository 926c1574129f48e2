// Constants of the ZIP format shared by the reader and (later) the writer. APPNOTE.TXT 6.3.x.
#pragma once

#include <cstdint>

namespace ptpack::zip {

inline constexpr uint32_t kLocalHeaderSignature = 0x04034b50;     // "PK\3\4"
inline constexpr uint32_t kCentralHeaderSignature = 0x02014b50;   // "PK\1\2"
inline constexpr uint32_t kEndRecordSignature = 0x06054b50;       // "PK\5\6"
inline constexpr uint32_t kZip64EndRecordSignature = 0x06064b50;  // "PK\6\6"
inline constexpr uint32_t kZip64LocatorSignature = 0x07064b50;    // "PK\6\7"
inline constexpr uint32_t kDataDescriptorSignature = 0x08074b50;  // "PK\7\8"

inline constexpr uint64_t kLocalHeaderSize = 30;
inline constexpr uint64_t kCentralHeaderSize = 46;
inline constexpr uint64_t kEndRecordSize = 22;
inline constexpr uint64_t kZip64EndRecordSize = 56;
inline constexpr uint64_t kZip64LocatorSize = 20;
inline constexpr uint64_t kMaxCommentLength = 0xFFFF;

inline constexpr uint16_t kZip64ExtraId = 0x0001;
// PyTorch's alignment padding extra field: id 'F','B' then 'Z' bytes (FORMATS.md §2.2).
inline constexpr uint16_t kPaddingExtraId = 0x4246;

}  // namespace ptpack::zip
