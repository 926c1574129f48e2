#include "ptpack/dtype.h"

#include <array>

namespace ptpack {
namespace {

// torch/storage.py _dtype_to_storage_type_map and _new_dtypes; safetensors' Dtype names.
constexpr std::array kInfos = {
    DTypeInfo{DType::kFloat64, "float64", 8, 8, true, false, false, "DoubleStorage", "F64"},
    DTypeInfo{DType::kFloat32, "float32", 4, 4, true, false, false, "FloatStorage", "F32"},
    DTypeInfo{DType::kFloat16, "float16", 2, 2, true, false, false, "HalfStorage", "F16"},
    DTypeInfo{DType::kBFloat16, "bfloat16", 2, 2, true, false, false, "BFloat16Storage", "BF16"},
    DTypeInfo{DType::kInt64, "int64", 8, 8, false, false, false, "LongStorage", "I64"},
    DTypeInfo{DType::kInt32, "int32", 4, 4, false, false, false, "IntStorage", "I32"},
    DTypeInfo{DType::kInt16, "int16", 2, 2, false, false, false, "ShortStorage", "I16"},
    DTypeInfo{DType::kInt8, "int8", 1, 1, false, false, false, "CharStorage", "I8"},
    DTypeInfo{DType::kUInt8, "uint8", 1, 1, false, false, false, "ByteStorage", "U8"},
    DTypeInfo{DType::kBool, "bool", 1, 1, false, false, false, "BoolStorage", "BOOL"},
    DTypeInfo{DType::kComplex32, "complex32", 4, 2, false, true, false, "ComplexHalfStorage", ""},
    DTypeInfo{DType::kComplex64, "complex64", 8, 4, false, true, false, "ComplexFloatStorage", "C64"},
    DTypeInfo{DType::kComplex128, "complex128", 16, 8, false, true, false, "ComplexDoubleStorage", ""},
    DTypeInfo{DType::kUInt16, "uint16", 2, 2, false, false, false, "", "U16"},
    DTypeInfo{DType::kUInt32, "uint32", 4, 4, false, false, false, "", "U32"},
    DTypeInfo{DType::kUInt64, "uint64", 8, 8, false, false, false, "", "U64"},
    DTypeInfo{DType::kFloat8E4M3FN, "float8_e4m3fn", 1, 1, true, false, false, "", "F8_E4M3"},
    DTypeInfo{DType::kFloat8E5M2, "float8_e5m2", 1, 1, true, false, false, "", "F8_E5M2"},
    DTypeInfo{DType::kFloat8E4M3FNUZ, "float8_e4m3fnuz", 1, 1, true, false, false, "", "F8_E4M3FNUZ"},
    DTypeInfo{DType::kFloat8E5M2FNUZ, "float8_e5m2fnuz", 1, 1, true, false, false, "", "F8_E5M2FNUZ"},
    DTypeInfo{DType::kFloat8E8M0FNU, "float8_e8m0fnu", 1, 1, true, false, false, "", "F8_E8M0"},
    DTypeInfo{DType::kQInt8, "qint8", 1, 1, false, false, true, "QInt8Storage", ""},
    DTypeInfo{DType::kQUInt8, "quint8", 1, 1, false, false, true, "QUInt8Storage", ""},
    DTypeInfo{DType::kQInt32, "qint32", 4, 4, false, false, true, "QInt32Storage", ""},
    DTypeInfo{DType::kQUInt4x2, "quint4x2", 1, 1, false, false, true, "QUInt4x2Storage", "", 2},
    DTypeInfo{DType::kQUInt2x4, "quint2x4", 1, 1, false, false, true, "QUInt2x4Storage", "", 4},
    DTypeInfo{DType::kBits8, "bits8", 1, 1, false, false, false, "", ""},
    DTypeInfo{DType::kBits16, "bits16", 2, 2, false, false, false, "", ""},
};

}  // namespace

const DTypeInfo& dtype_info(DType dtype) {
  for (const auto& info : kInfos) {
    if (info.dtype == dtype) return info;
  }
  return kInfos[0];  // unreachable: every enumerator has a row
}

std::optional<DType> dtype_from_name(std::string_view name) {
  for (const auto& info : kInfos) {
    if (info.name == name) return info.dtype;
  }
  // Aliases torch also accepts as attribute names of the torch module.
  if (name == "float" ) return DType::kFloat32;
  if (name == "double") return DType::kFloat64;
  if (name == "half") return DType::kFloat16;
  if (name == "long") return DType::kInt64;
  if (name == "int") return DType::kInt32;
  if (name == "short") return DType::kInt16;
  if (name == "cfloat") return DType::kComplex64;
  if (name == "cdouble") return DType::kComplex128;
  if (name == "chalf") return DType::kComplex32;
  return std::nullopt;
}

std::optional<DType> dtype_from_storage_class(std::string_view storage_class) {
  if (storage_class.empty()) return std::nullopt;
  for (const auto& info : kInfos) {
    if (info.storage_class == storage_class) return info.dtype;
  }
  return std::nullopt;
}

std::optional<DType> dtype_from_safetensors(std::string_view code) {
  if (code.empty()) return std::nullopt;
  for (const auto& info : kInfos) {
    if (info.safetensors == code) return info.dtype;
  }
  return std::nullopt;
}

}  // namespace ptpack
