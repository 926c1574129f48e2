// Python-like text for values, for `ptpack info` and error messages. Bounded in length and
// depth, so a hostile graph (deep, wide or cyclic) prints in bounded time.
#include <charconv>
#include <cmath>
#include <cstdio>

#include "pickle/text_codecs.h"
#include "ptpack/pickle.h"

namespace ptpack::pickle {

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // Shortest round-trip digits, then Python's float_repr_style: fixed notation when the decimal
  // exponent is in [-4, 16), else scientific with at least two exponent digits.
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exp10 = std::stoi(sci.substr(e + 1));
  const bool negative = mantissa[0] == '-';
  if (negative) mantissa.erase(0, 1);
  std::string digits;
  for (char c : mantissa) if (c != '.') digits.push_back(c);
  std::string out;
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      out = "0." + std::string(size_t(-exp10 - 1), '0') + digits;
    } else if (size_t(exp10) + 1 >= digits.size()) {
      out = digits + std::string(size_t(exp10) + 1 - digits.size(), '0') + ".0";
    } else {
      out = digits.substr(0, size_t(exp10) + 1) + "." + digits.substr(size_t(exp10) + 1);
    }
  } else {
    out = digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp10 < 0 ? '-' : '+', std::abs(exp10));
    out += ebuf;
  }
  return negative ? "-" + out : out;
}

namespace {

class Printer {
 public:
  Printer(size_t max_chars, int max_depth) : max_chars_(max_chars), max_depth_(max_depth) {}

  std::string take(const Value* v) {
    print(v, 0);
    if (out_.size() > max_chars_) out_ = out_.substr(0, max_chars_) + "...";
    return std::move(out_);
  }

 private:
  bool full() const { return out_.size() > max_chars_; }

  void quoted(std::string_view s, char prefix) {
    if (prefix) out_.push_back(prefix);
    const bool use_double = s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos;
    const char q = use_double ? '"' : '\'';
    out_.push_back(q);
    for (unsigned char c : s) {
      if (full()) return;
      if (c == '\\' || c == static_cast<unsigned char>(q)) { out_.push_back('\\'); out_.push_back(char(c)); }
      else if (c == '\n') out_ += "\\n";
      else if (c == '\t') out_ += "\\t";
      else if (c == '\r') out_ += "\\r";
      else if (c < 0x20 || c == 0x7F || (prefix == 'b' && c >= 0x80)) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\x%02x", c);
        out_ += buf;
      } else {
        out_.push_back(char(c));
      }
    }
    out_.push_back(q);
  }

  void list(const std::vector<Value*>& items, const char* open, const char* close, int depth,
            bool one_tuple = false) {
    out_ += open;
    for (size_t i = 0; i < items.size() && !full(); ++i) {
      if (i) out_ += ", ";
      print(items[i], depth + 1);
    }
    if (one_tuple && items.size() == 1) out_ += ",";
    out_ += close;
  }

  void dict(const std::vector<std::pair<Value*, Value*>>& entries, int depth) {
    out_ += "{";
    for (size_t i = 0; i < entries.size() && !full(); ++i) {
      if (i) out_ += ", ";
      print(entries[i].first, depth + 1);
      out_ += ": ";
      print(entries[i].second, depth + 1);
    }
    out_ += "}";
  }

  void print(const Value* v, int depth) {
    if (full()) return;
    if (!v) { out_ += "<null>"; return; }
    if (depth > max_depth_) { out_ += "..."; return; }
    switch (v->kind) {
      case Kind::kNone: out_ += "None"; break;
      case Kind::kBool: out_ += v->boolean ? "True" : "False"; break;
      case Kind::kInt: out_ += std::to_string(v->integer); break;
      case Kind::kBigInt: out_ += le_bytes_to_decimal(v->text); break;
      case Kind::kFloat: out_ += python_float_repr(v->real); break;
      case Kind::kString: quoted(v->text, 0); break;
      case Kind::kBytes: quoted(v->text, 'b'); break;
      case Kind::kByteArray: out_ += "bytearray("; quoted(v->text, 'b'); out_ += ")"; break;
      case Kind::kTuple: list(v->items, "(", ")", depth, true); break;
      case Kind::kList: list(v->items, "[", "]", depth); break;
      case Kind::kSet: v->items.empty() ? void(out_ += "set()") : list(v->items, "{", "}", depth); break;
      case Kind::kFrozenSet: list(v->items, "frozenset({", "})", depth); break;
      case Kind::kDict: dict(v->entries, depth); break;
      case Kind::kGlobal: out_ += v->text + "." + v->name; break;
      case Kind::kExtension: out_ += "<extension " + std::to_string(v->integer) + ">"; break;
      case Kind::kBuffer: out_ += "<out-of-band buffer>"; break;
      case Kind::kPersistentId: out_ += "persistent_id"; list({v->args}, "(", ")", depth); break;
      case Kind::kObject: object(v, depth); break;
    }
  }

  void object(const Value* v, int depth) {
    // OrderedDict and friends print as their contents, which is what users care about.
    if (v->is_call_of("collections", "OrderedDict") && v->items.empty()) {
      out_ += "OrderedDict(";
      dict(v->entries, depth);
      out_ += ")";
      return;
    }
    print(v->callable, depth + 1);
    if (v->args && v->args->kind == Kind::kTuple) list(v->args->items, "(", ")", depth);
    else { out_ += "("; print(v->args, depth + 1); out_ += ")"; }
    if (!v->items.empty()) list(v->items, " + [", "]", depth);
    if (!v->entries.empty()) { out_ += " + "; dict(v->entries, depth); }
    for (const Value* s : v->states) {
      if (full()) return;
      out_ += " <- ";
      print(s, depth + 1);
    }
  }

  size_t max_chars_;
  int max_depth_;
  std::string out_;
};

}  // namespace

std::string repr(const Value* value, size_t max_chars, int max_depth) {
  return Printer(max_chars, max_depth).take(value);
}

}  // namespace ptpack::pickle
