#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "ptpack/dtype.h"
#include "testing.h"

namespace ptpack {
namespace {

std::vector<uint16_t> cast16(const std::vector<float>& in, DType to) {
  std::vector<uint16_t> out(in.size());
  cast_elements(DType::kFloat32, to,
                std::span(reinterpret_cast<const uint8_t*>(in.data()), in.size() * 4),
                std::span(reinterpret_cast<uint8_t*>(out.data()), out.size() * 2));
  return out;
}

// Expected bits printed by torch 1.13 (Debian python3-torch): t.to(torch.bfloat16 / float16).
const std::vector<float> kInputs = {INFINITY, -INFINITY, 1e-40f, -0.0f, 3.4e38f, 65520.0f,
                                    65519.0f, 1.0000001f, 6e-8f, 3e-8f};

TEST(Cast, Float32ToBFloat16MatchesTorch) {
  EXPECT_EQ(cast16(kInputs, DType::kBFloat16),
            (std::vector<uint16_t>{0x7f80, 0xff80, 0x1, 0x8000, 0x7f80, 0x4780, 0x4780, 0x3f80,
                                   0x3381, 0x3301}));
  EXPECT_EQ(cast16({NAN}, DType::kBFloat16)[0], 0x7FC0);
}

TEST(Cast, Float32ToFloat16MatchesTorch) {
  EXPECT_EQ(cast16(kInputs, DType::kFloat16),
            (std::vector<uint16_t>{0x7c00, 0xfc00, 0x0, 0x8000, 0x7c00, 0x7c00, 0x7bff, 0x3c00,
                                   0x1, 0x1}));
  EXPECT_EQ(cast16({NAN, -NAN}, DType::kFloat16), (std::vector<uint16_t>{0x7e00, 0xfe00}));
}

TEST(Cast, Float64ToBFloat16RoundsThroughFloat32LikeTorch) {
  // 1 + 2^-8 + 2^-30: direct rounding would give 0x3f81; torch (via float) gives 0x3f80.
  const double in = 1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -30);
  uint16_t out = 0;
  cast_elements(DType::kFloat64, DType::kBFloat16, std::span(reinterpret_cast<const uint8_t*>(&in), 8),
                std::span(reinterpret_cast<uint8_t*>(&out), 2));
  EXPECT_EQ(out, 0x3f80);
}

TEST(Cast, WideningIsExactAndHalfRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue;  // NaNs
    const uint16_t half = uint16_t(h);
    float f = 0;
    cast_elements(DType::kFloat16, DType::kFloat32, std::span(reinterpret_cast<const uint8_t*>(&half), 2),
                  std::span(reinterpret_cast<uint8_t*>(&f), 4));
    uint16_t back = 0;
    cast_elements(DType::kFloat32, DType::kFloat16, std::span(reinterpret_cast<const uint8_t*>(&f), 4),
                  std::span(reinterpret_cast<uint8_t*>(&back), 2));
    ASSERT_EQ(back, half) << std::hex << h;
  }
}

TEST(Cast, Float8Decodes) {
  const uint8_t in[] = {0x38, 0x7E, 0x7F, 0x01, 0xB8};  // e4m3fn: 1.0, 448, NaN, 2^-9, -1.0
  float out[5];
  cast_elements(DType::kFloat8E4M3FN, DType::kFloat32, in, std::span(reinterpret_cast<uint8_t*>(out), 20));
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 448.0f);
  EXPECT_TRUE(std::isnan(out[2]));
  EXPECT_EQ(out[3], std::ldexp(1.0f, -9));
  EXPECT_EQ(out[4], -1.0f);
  const uint8_t e5[] = {0x3C, 0x7C, 0x7D};  // e5m2: 1.0, inf, NaN
  cast_elements(DType::kFloat8E5M2, DType::kFloat32, e5, std::span(reinterpret_cast<uint8_t*>(out), 12));
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], INFINITY);
  EXPECT_TRUE(std::isnan(out[2]));
}

TEST(Cast, RefusesNonFloating) {
  uint8_t b[8] = {};
  testing::expect_error([&] { cast_elements(DType::kInt32, DType::kFloat32, std::span(b, 4), std::span(b, 4)); },
                        "cast.dtype");
  testing::expect_error([&] { cast_elements(DType::kFloat32, DType::kFloat8E5M2, std::span(b, 4), std::span(b, 1)); },
                        "cast.dtype");
}

}  // namespace
}  // namespace ptpack
