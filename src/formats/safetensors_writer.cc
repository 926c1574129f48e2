// safetensors, written as the reference implementation (huggingface/safetensors, safetensors/src/
// tensor.rs `prepare` and `serialize`) writes it; docs/formats/safetensors.md has the rules.
#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/write_data.h"
#include "ptpack/error.h"
#include "ptpack/writers.h"

namespace ptpack {

namespace {

// The reference sorts by its Dtype enum (descending), which orders element sizes so that every
// tensor starts aligned to its element size. Position in this list = the enum's order.
int dtype_rank(std::string_view code) {
  static const char* kOrder[] = {"BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2",
                                 "F8_E4M3", "F8_E5M2FNUZ", "F8_E4M3FNUZ", "F8_E8M0", "I16", "U16",
                                 "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"};
  for (size_t i = 0; i < std::size(kOrder); ++i) {
    if (code == kOrder[i]) return int(i);
  }
  return -1;
}

[[noreturn]] void refuse(const std::string& rule, const std::string& detail) {
  throw Error(ErrorCode::kInvalidArgument, rule, detail);
}

}  // namespace

void write_safetensors(const Artifact& source, std::vector<SafetensorsTensor> tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata,
                       OutputFile& out, const ProgressFn& progress) {
  std::set<std::string_view> names;
  for (const SafetensorsTensor& t : tensors) {
    if (dtype_info(t.dtype).safetensors.empty()) {
      refuse("safetensors.dtype", "'" + printable(t.name) + "' is " + std::string(dtype_name(t.dtype)) +
             ", which safetensors has no name for");
    }
    if (t.name == "__metadata__") refuse("safetensors.name", "a tensor cannot be named __metadata__");
    if (!names.insert(t.name).second) refuse("safetensors.duplicate", "two tensors are named '" + printable(t.name) + "'");
  }
  std::stable_sort(tensors.begin(), tensors.end(), [](const SafetensorsTensor& a, const SafetensorsTensor& b) {
    const int ra = dtype_rank(dtype_info(a.dtype).safetensors), rb = dtype_rank(dtype_info(b.dtype).safetensors);
    if (ra != rb) return ra > rb;
    return a.name < b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    header["__metadata__"] = std::move(m);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const SafetensorsTensor& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= uint64_t(d);
    const uint64_t bytes = dtype_bytes(t.dtype, numel);
    if (t.data.output_bytes(source) != bytes) {
      throw Error(ErrorCode::kInvalidArgument, "safetensors.size",
                  "'" + printable(t.name) + "': data gives " + std::to_string(t.data.output_bytes(source)) +
                  " bytes for " + std::to_string(bytes));
    }
    header[t.name] = {{"dtype", dtype_info(t.dtype).safetensors}, {"shape", t.shape},
                      {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string text;
  try {
    text = header.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::strict);
  } catch (const nlohmann::json::exception&) {
    refuse("safetensors.utf8", "a tensor name or metadata value is not valid UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));
  out.write(std::span<const uint8_t>(length, 8));
  out.write(text);

  for (const SafetensorsTensor& t : tensors) {
    // Unchanged bytes: the kernel copies them file to file (copy_file_range).
    formats::send_data(
        source, t.data, [&](const ByteSource& src, uint64_t at, uint64_t n) { out.copy_from(src, at, n); },
        [&](std::span<const uint8_t> chunk) { out.write(chunk); }, progress);
  }
}

}  // namespace ptpack
