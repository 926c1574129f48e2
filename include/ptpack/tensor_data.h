// Reading a tensor's elements from its storage, in bounded memory.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "ptpack/artifact.h"

namespace ptpack {

// Streams the tensor's logical elements in row-major order as little-endian bytes (what
// t.contiguous() holds on a little-endian machine), in chunks of at most ~1 MiB. Storages
// written big-endian are swapped per element (complex: per half). Stored records in a mapped
// file are read in place; deflated records are inflated (bounded by limits).
void stream_tensor_bytes(const Artifact& artifact, const Tensor& tensor,
                         const std::function<void(std::span<const uint8_t>)>& sink);

// Lower-case hex SHA-256 of stream_tensor_bytes (the `sha256` of `ptpack tensors --digest`).
std::string tensor_sha256(const Artifact& artifact, const Tensor& tensor);

}  // namespace ptpack
