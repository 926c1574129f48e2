// Small text helpers shared by the inspection operations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ptpack::ops {

// "1.2 GB", "46.8 MB", "512 B" (decimal units, as `ls -h --si` and PyTorch's docs use).
std::string human_bytes(uint64_t bytes);

// "[3, 4]" for a shape or stride.
std::string int_list_text(const std::vector<int64_t>& values);

// Pads or keeps `text` to at least `width` columns.
std::string pad(const std::string& text, size_t width);

}  // namespace ptpack::ops
