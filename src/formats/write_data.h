// Sending one DataSource's bytes to a writer, shared by the torch.save and safetensors writers.
#pragma once

#include <algorithm>
#include <span>

#include "ptpack/tensor_data.h"
#include "ptpack/writers.h"

namespace ptpack::formats {

// Bytes that need no change go to copy_range(source, offset, length) in 64 MiB pieces (the
// writer copies them file to file or straight from the mapping); anything cast, swapped,
// inflated or gathered streams through write(chunk). progress(bytes) follows every piece.
template <typename CopyRange, typename Write>
void send_data(const Artifact& artifact, const DataSource& data, CopyRange&& copy_range, Write&& write,
               const ProgressFn& progress) {
  if (auto range = plain_range(artifact, data)) {
    const ByteSource& src = *artifact.sources.at(size_t(range->source));
    constexpr uint64_t kPiece = uint64_t{64} << 20;
    for (uint64_t done = 0; done < range->length; done += kPiece) {
      const uint64_t n = std::min(kPiece, range->length - done);
      copy_range(src, range->offset + done, n);
      if (progress) progress(n);
    }
    return;
  }
  stream_data(artifact, data, [&](std::span<const uint8_t> chunk) {
    write(chunk);
    if (progress) progress(chunk.size());
  });
}

}  // namespace ptpack::formats
