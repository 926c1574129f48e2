// Floating-point element conversion, matching torch's CPU kernels (c10/util/Half.h, BFloat16.h).
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "ptpack/dtype.h"
#include "ptpack/error.h"

namespace ptpack {

namespace {

static_assert(std::endian::native == std::endian::little, "ptpack assumes a little-endian host");

float from_bits(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t to_bits(float f) { return std::bit_cast<uint32_t>(f); }

// c10::detail::fp16_ieee_from_fp32_value (from the FP16 library): rounds to nearest even with
// float arithmetic, keeps subnormals, NaN becomes a quiet NaN with its sign.
inline uint16_t float_to_half(float f) {
  const float scale_to_inf = 0x1.0p+112f;
  const float scale_to_zero = 0x1.0p-110f;
  float base = (std::fabs(f) * scale_to_inf) * scale_to_zero;
  const uint32_t w = to_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = from_bits((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = to_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007C00u;
  const uint32_t mantissa_bits = bits & 0x00000FFFu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return uint16_t((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

// c10::detail::fp16_ieee_to_fp32_value.
float half_to_float(uint16_t h) {
  const uint32_t w = uint32_t(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;
  const uint32_t exp_offset = 0xE0u << 23;
  const float exp_scale = 0x1.0p-112f;
  const float normalized = from_bits((two_w >> 4) + exp_offset) * exp_scale;
  const uint32_t magic_mask = 126u << 23;
  const float magic_bias = 0.5f;
  const float denormalized = from_bits((two_w >> 17) | magic_mask) - magic_bias;
  const uint32_t denormalized_cutoff = 1u << 27;
  const uint32_t result =
      sign | (two_w < denormalized_cutoff ? to_bits(denormalized) : to_bits(normalized));
  return from_bits(result);
}

// c10::detail::round_to_nearest_even.
inline uint16_t float_to_bfloat16(float f) {
  if (f != f) return 0x7FC0;  // NaN
  const uint32_t u = to_bits(f);
  const uint32_t rounding_bias = ((u >> 16) & 1) + 0x7FFFu;
  return uint16_t((u + rounding_bias) >> 16);
}

float bfloat16_to_float(uint16_t b) { return from_bits(uint32_t(b) << 16); }

// float8 decoders (c10/util/Float8_*.h), as 256-entry tables.
using Table = std::array<float, 256>;

Table make_table(int exponent_bits, int bias, bool fnuz, bool has_inf) {
  Table t{};
  const int mantissa_bits = 7 - exponent_bits;
  for (int b = 0; b < 256; ++b) {
    const bool negative = b & 0x80;
    const int e = (b >> mantissa_bits) & ((1 << exponent_bits) - 1);
    const int m = b & ((1 << mantissa_bits) - 1);
    float v;
    if (fnuz && b == 0x80) {
      v = std::numeric_limits<float>::quiet_NaN();  // the one NaN, no negative zero
    } else if (!fnuz && e == (1 << exponent_bits) - 1 &&
               (has_inf ? true : m == (1 << mantissa_bits) - 1)) {
      v = (has_inf && m == 0) ? std::numeric_limits<float>::infinity()
                              : std::numeric_limits<float>::quiet_NaN();
    } else if (e == 0) {
      v = std::ldexp(float(m), 1 - bias - mantissa_bits);
    } else {
      v = std::ldexp(float(m + (1 << mantissa_bits)), e - bias - mantissa_bits);
    }
    t[size_t(b)] = negative && !std::isnan(v) ? -v : v;
  }
  return t;
}

const Table& float8_table(DType d) {
  static const Table e4m3fn = make_table(4, 7, false, false);
  static const Table e5m2 = make_table(5, 15, false, true);
  static const Table e4m3fnuz = make_table(4, 8, true, false);
  static const Table e5m2fnuz = make_table(5, 16, true, false);
  static const Table e8m0 = [] {
    Table t{};
    for (int b = 0; b < 256; ++b) {
      t[size_t(b)] = b == 0xFF ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, b - 127);
    }
    return t;
  }();
  switch (d) {
    case DType::kFloat8E4M3FN: return e4m3fn;
    case DType::kFloat8E5M2: return e5m2;
    case DType::kFloat8E4M3FNUZ: return e4m3fnuz;
    case DType::kFloat8E5M2FNUZ: return e5m2fnuz;
    default: return e8m0;
  }
}

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// The conversion loops are instantiated per (from, to) pair so the element loop has no branch on
// the types: GCC vectorizes the float32 -> bfloat16/float16 paths, which are what `--dtype` spends
// its time in (several GB/s instead of ~0.2 GB/s through a per-element switch).
template <typename In, typename Out, typename Convert>
void convert_all(const uint8_t* in, uint8_t* out, size_t count, Convert convert) {
  for (size_t i = 0; i < count; ++i) store<Out>(out + i * sizeof(Out), convert(load<In>(in + i * sizeof(In))));
}

template <typename Out, typename Convert>
void from_any(DType from, const uint8_t* in, uint8_t* out, size_t count, Convert convert) {
  switch (from) {
    case DType::kFloat32:
      return convert_all<float, Out>(in, out, count, [&](float f) { return convert(f); });
    case DType::kFloat64:
      return convert_all<double, Out>(in, out, count, [&](double d) { return convert(float(d)); });
    case DType::kFloat16:
      return convert_all<uint16_t, Out>(in, out, count, [&](uint16_t h) { return convert(half_to_float(h)); });
    case DType::kBFloat16:
      return convert_all<uint16_t, Out>(in, out, count, [&](uint16_t b) { return convert(bfloat16_to_float(b)); });
    default: {
      const Table& table = float8_table(from);
      return convert_all<uint8_t, Out>(in, out, count, [&](uint8_t b) { return convert(table[b]); });
    }
  }
}

}  // namespace

bool is_castable_float(DType d) {
  switch (d) {
    case DType::kFloat64: case DType::kFloat32: case DType::kFloat16: case DType::kBFloat16:
    case DType::kFloat8E4M3FN: case DType::kFloat8E5M2: case DType::kFloat8E4M3FNUZ:
    case DType::kFloat8E5M2FNUZ: case DType::kFloat8E8M0FNU:
      return true;
    default:
      return false;
  }
}

bool is_cast_target(DType d) {
  return d == DType::kFloat64 || d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16;
}

void cast_elements(DType from, DType to, std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (!is_castable_float(from) || !is_cast_target(to)) {
    throw Error(ErrorCode::kInvalidArgument, "cast.dtype",
                "cannot cast " + std::string(dtype_name(from)) + " to " + std::string(dtype_name(to)));
  }
  const size_t fs = dtype_size(from), ts = dtype_size(to);
  const size_t count = in.size() / fs;
  if (in.size() % fs || out.size() != count * ts) {
    throw Error(ErrorCode::kInvalidArgument, "cast.size", "cast buffers do not hold whole elements");
  }
  const uint8_t* i = in.data();
  uint8_t* o = out.data();
  if (from == to) {
    std::memcpy(o, i, in.size());
    return;
  }
  switch (to) {
    case DType::kFloat64:
      if (from == DType::kFloat32) {  // exact widening, no detour through the float path
        return convert_all<float, double>(i, o, count, [](float f) { return double(f); });
      }
      return from_any<double>(from, i, o, count, [](float f) { return double(f); });
    case DType::kFloat32:
      if (from == DType::kFloat64) {  // one rounding, to nearest even
        return convert_all<double, float>(i, o, count, [](double d) { return float(d); });
      }
      return from_any<float>(from, i, o, count, [](float f) { return f; });
    case DType::kFloat16:
      return from_any<uint16_t>(from, i, o, count, [](float f) { return float_to_half(f); });
    default:  // lambdas, not function pointers: the conversion must inline into the loop
      return from_any<uint16_t>(from, i, o, count, [](float f) { return float_to_bfloat16(f); });
  }
}

}  // namespace ptpack
