// Tensor element types, named as torch names them.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace ptpack {

enum class DType : uint8_t {
  kFloat64, kFloat32, kFloat16, kBFloat16,
  kInt64, kInt32, kInt16, kInt8, kUInt8, kBool,
  kComplex32, kComplex64, kComplex128,
  kUInt16, kUInt32, kUInt64,
  kFloat8E4M3FN, kFloat8E5M2, kFloat8E4M3FNUZ, kFloat8E5M2FNUZ, kFloat8E8M0FNU,
  kQInt8, kQUInt8, kQInt32, kQUInt4x2, kQUInt2x4,
  kBits8, kBits16,
};

struct DTypeInfo {
  DType dtype;
  std::string_view name;          // torch's name: "float32", "bfloat16", "float8_e4m3fn"
  uint32_t size;                  // bytes per element
  uint32_t swap_unit;             // bytes per byte-swapped unit (complex: each half), 1 = none
  bool is_floating;
  bool is_complex;
  bool is_quantized;
  std::string_view storage_class; // legacy "FloatStorage" ("" for dtypes that need UntypedStorage)
  std::string_view safetensors;   // "F32" ("" when safetensors has no name for it)
  uint32_t per_byte = 1;          // sub-byte types pack several elements per byte (quint4x2: 2)
};

const DTypeInfo& dtype_info(DType dtype);
inline std::string_view dtype_name(DType d) { return dtype_info(d).name; }
inline uint32_t dtype_size(DType d) { return dtype_info(d).size; }

// Bytes that `count` elements occupy (rounded up for sub-byte types).
inline uint64_t dtype_bytes(DType d, uint64_t count) {
  const DTypeInfo& i = dtype_info(d);
  return (count + i.per_byte - 1) / i.per_byte * i.size;
}

std::optional<DType> dtype_from_name(std::string_view torch_name);              // "float32"
std::optional<DType> dtype_from_storage_class(std::string_view storage_class);  // "FloatStorage"
std::optional<DType> dtype_from_safetensors(std::string_view code);             // "F32"


// --- Casting floating elements (ptpack convert --dtype) --------------------------------------
// Conversions follow torch's CPU Tensor.to(dtype) bit for bit on every non-NaN value: round to
// nearest even; float64 -> float16/bfloat16 goes through float32 as c10::Half/BFloat16 do;
// overflow gives infinity, float16 keeps subnormals. NaN stays NaN (bfloat16: 0x7FC0, torch's
// scalar path; its vector path writes 0xFFFF, so torch itself is not consistent there).

// True for the types cast_elements reads: float64/32/16, bfloat16 and the float8 types.
bool is_castable_float(DType dtype);
// True for the types cast_elements writes: float64, float32, float16, bfloat16.
bool is_cast_target(DType dtype);
// Converts in.size() / dtype_size(from) little-endian elements of `from` into `out`, which holds
// as many elements of `to`. Throws Error(kInvalidArgument) for types outside the sets above.
void cast_elements(DType from, DType to, std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace ptpack
