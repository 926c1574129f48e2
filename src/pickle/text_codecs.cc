#include "pickle/text_codecs.h"

#include <algorithm>
#include <vector>

#include "ptpack/error.h"

namespace ptpack::pickle {
namespace {
// Python itself refuses int <-> str conversions above 4300 digits (sys.int_info); so do we,
// which also keeps these quadratic loops cheap.
constexpr size_t kMaxDecimalDigits = 4300;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string decimal_to_le_bytes(std::string_view text, uint64_t at) {
  bool negative = false;
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) {
    negative = text.front() == '-';
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > kMaxDecimalDigits ||
      !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw_corrupt("pickle.bad-number", "LONG: not a decimal integer (or over 4300 digits)", at);
  }
  std::vector<uint32_t> mag{0};  // little-endian base 2^32
  for (char c : text) {
    uint64_t carry = uint64_t(c - '0');
    for (auto& limb : mag) {
      uint64_t v = uint64_t(limb) * 10 + carry;
      limb = uint32_t(v);
      carry = v >> 32;
    }
    if (carry) mag.push_back(uint32_t(carry));
  }
  std::string bytes;
  for (uint32_t limb : mag) {
    for (int i = 0; i < 4; ++i) bytes.push_back(char((limb >> (8 * i)) & 0xFF));
  }
  if (negative) {  // two's complement: invert and add one
    bool carry = true;
    for (auto& b : bytes) {
      uint8_t v = uint8_t(~uint8_t(b));
      if (carry) carry = ++v == 0;
      b = char(v);
    }
  }
  // Trim to the minimal length that keeps the sign.
  while (bytes.size() > 1) {
    uint8_t last = uint8_t(bytes.back()), prev = uint8_t(bytes[bytes.size() - 2]);
    if ((last == 0x00 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80))) {
      bytes.pop_back();
    } else {
      break;
    }
  }
  if (!negative && (uint8_t(bytes.back()) & 0x80)) bytes.push_back('\0');
  return bytes;
}

std::string le_bytes_to_decimal(std::string_view bytes) {
  if (bytes.empty()) return "0";
  if (bytes.size() > 2048) return "<int of " + std::to_string(bytes.size()) + " bytes>";
  std::vector<uint8_t> mag(bytes.begin(), bytes.end());
  const bool negative = mag.back() & 0x80;
  if (negative) {
    bool carry = true;
    for (auto& b : mag) {
      b = uint8_t(~b);
      if (carry) carry = ++b == 0;
    }
  }
  std::string digits;
  // Repeated division of the big-endian magnitude by 10.
  std::vector<uint8_t> be(mag.rbegin(), mag.rend());
  while (!be.empty()) {
    uint32_t rem = 0;
    std::vector<uint8_t> q;
    for (uint8_t b : be) {
      uint32_t cur = (rem << 8) | b;
      uint8_t d = uint8_t(cur / 10);
      rem = cur % 10;
      if (!q.empty() || d) q.push_back(d);
    }
    digits.push_back(char('0' + rem));
    be.swap(q);
  }
  if (digits.empty()) digits = "0";
  if (negative) digits.push_back('-');
  std::reverse(digits.begin(), digits.end());
  return digits;
}

void append_utf8(std::string& out, uint32_t cp, uint64_t at) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp <= 0x10FFFF) {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    throw_corrupt("pickle.bad-unicode", "code point above U+10FFFF", at);
  }
}

std::string unquote_python_string(std::string_view q, uint64_t at) {
  if (q.size() < 2 || (q.front() != '\'' && q.front() != '"') || q.back() != q.front()) {
    throw_corrupt("pickle.bad-string", "STRING argument is not a quoted string", at);
  }
  q = q.substr(1, q.size() - 2);
  std::string out;
  for (size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (c != '\\' || i + 1 == q.size()) {
      out.push_back(c);
      continue;
    }
    char e = q[++i];
    switch (e) {
      case 'n': out.push_back('\n'); break;
      case 't': out.push_back('\t'); break;
      case 'r': out.push_back('\r'); break;
      case 'a': out.push_back('\a'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'v': out.push_back('\v'); break;
      case '\\': case '\'': case '"': out.push_back(e); break;
      case '\n': break;  // line continuation
      case 'x': {
        int h = i + 2 < q.size() ? hex_value(q[i + 1]) : -1;
        int l = i + 2 < q.size() ? hex_value(q[i + 2]) : -1;
        if (h < 0 || l < 0) throw_corrupt("pickle.bad-string", "invalid \\x escape in STRING", at);
        out.push_back(char(h * 16 + l));
        i += 2;
        break;
      }
      default:
        if (e >= '0' && e <= '7') {
          int v = e - '0';
          for (int k = 0; k < 2 && i + 1 < q.size() && q[i + 1] >= '0' && q[i + 1] <= '7'; ++k) {
            v = v * 8 + (q[++i] - '0');
          }
          out.push_back(char(v & 0xFF));
        } else {
          out.push_back('\\');  // Python keeps unknown escapes verbatim
          out.push_back(e);
        }
    }
  }
  return out;
}

std::string raw_unicode_escape_to_utf8(std::string_view t, uint64_t at) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    const uint8_t c = uint8_t(t[i]);
    if (c == '\\' && i + 1 < t.size() && (t[i + 1] == 'u' || t[i + 1] == 'U')) {
      const size_t n = t[i + 1] == 'u' ? 4 : 8;
      if (i + 2 + n > t.size()) throw_corrupt("pickle.bad-unicode", "truncated \\u escape", at);
      uint32_t cp = 0;
      for (size_t k = 0; k < n; ++k) {
        int h = hex_value(t[i + 2 + k]);
        if (h < 0) throw_corrupt("pickle.bad-unicode", "invalid \\u escape", at);
        cp = cp * 16 + uint32_t(h);
      }
      append_utf8(out, cp, at);
      i += 1 + n;
    } else {
      append_utf8(out, c, at);  // every other byte is latin-1
    }
  }
  return out;
}

}  // namespace ptpack::pickle
