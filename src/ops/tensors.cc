// `ptpack tensors`: every tensor with path, dtype, shape, stride, offset, storage and bytes.
// The JSON is a contract (docs/cli.md): {"format", "tensors": [{"path", "dtype", "shape",
// "stride", "offset", "storage", "nbytes", "sha256"?}]}.
#include <nlohmann/json.hpp>

#include "ops/text_util.h"
#include "ptpack/error.h"
#include "ptpack/inspect.h"
#include "ptpack/tensor_data.h"

namespace ptpack {

std::string storage_id(const Artifact& a, const Storage& s) {
  if (!a.root.empty() && s.entry.rfind(a.root, 0) == 0) return s.entry.substr(a.root.size());
  if (a.format == Format::kSafetensorsIndex && s.source > 0) {
    const std::string& shard = a.sources[size_t(s.source)]->name();
    const size_t slash = shard.rfind('/');
    return (slash == std::string::npos ? shard : shard.substr(slash + 1)) + ":" + s.entry;
  }
  return s.entry;
}

std::string tensors_text(const Artifact& a, bool digest) {
  size_t width = 4;
  for (const auto& t : a.tensors) width = std::max(width, t.path.size());
  width = std::min<size_t>(width, 60);
  std::string out = ops::pad("path", width) + "  " + ops::pad("dtype", 9) + "  " + ops::pad("shape", 18) + "  " +
                    ops::pad("stride", 18) + "  offset  " + ops::pad("bytes", 9) + (digest ? "  sha256" : "") + "\n";
  for (const auto& t : a.tensors) {
    out += ops::pad(printable(t.path), width) + "  " + ops::pad(std::string(dtype_name(t.dtype)), 9) + "  " +
           ops::pad(ops::int_list_text(t.shape), 18) + "  " + ops::pad(ops::int_list_text(t.stride), 18) + "  " +
           ops::pad(std::to_string(t.offset), 6) + "  " + ops::pad(ops::human_bytes(t.nbytes()), 9);
    if (digest) out += "  " + (t.storage >= 0 || t.numel() == 0 ? tensor_sha256(a, t) : std::string("-"));
    if (t.layout != "strided") out += "  (" + t.layout + ")";
    if (!t.quantization.empty()) out += "  (" + t.quantization + ")";
    out += "\n";
  }
  return out;
}

std::string tensors_json(const Artifact& a, bool digest) {
  using nlohmann::ordered_json;
  ordered_json j;
  j["format"] = format_name(a.format);
  j["tensors"] = ordered_json::array();
  for (const auto& t : a.tensors) {
    ordered_json row;
    row["path"] = t.path;
    row["dtype"] = dtype_name(t.dtype);
    row["shape"] = t.shape;
    row["stride"] = t.stride;
    row["offset"] = t.offset;
    row["storage"] = t.storage >= 0 ? ordered_json(storage_id(a, a.storages[size_t(t.storage)])) : ordered_json(nullptr);
    row["nbytes"] = t.nbytes();
    if (digest) row["sha256"] = t.storage >= 0 || t.numel() == 0 ? ordered_json(tensor_sha256(a, t)) : ordered_json(nullptr);
    if (t.layout != "strided") row["layout"] = t.layout;
    if (!t.quantization.empty()) row["quantization"] = t.quantization;
    if (!t.device.empty() && t.device != "cpu") row["device"] = t.device;
    j["tensors"].push_back(std::move(row));
  }
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace ptpack
