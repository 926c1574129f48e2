// Opcode decoding: turns bytes into Instructions with their arguments decoded, exactly as
// pickletools.genops does. Shared by the reader (which builds values) and the disassembler.
#include <charconv>
#include <cmath>
#include <cstring>

#include "io/checked_math.h"
#include "pickle/opcodes.h"
#include "pickle/text_codecs.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/pickle.h"

namespace ptpack::pickle {

std::string_view opcode_name(uint8_t byte) {
  switch (static_cast<Op>(byte)) {
#define PTPACK_OP(op, text) case Op::op: return text;
    PTPACK_OP(kMark, "MARK") PTPACK_OP(kStop, "STOP") PTPACK_OP(kPop, "POP")
    PTPACK_OP(kPopMark, "POP_MARK") PTPACK_OP(kDup, "DUP") PTPACK_OP(kFloat, "FLOAT")
    PTPACK_OP(kInt, "INT") PTPACK_OP(kBinInt, "BININT") PTPACK_OP(kBinInt1, "BININT1")
    PTPACK_OP(kLong, "LONG") PTPACK_OP(kBinInt2, "BININT2") PTPACK_OP(kNone, "NONE")
    PTPACK_OP(kPersId, "PERSID") PTPACK_OP(kBinPersId, "BINPERSID") PTPACK_OP(kReduce, "REDUCE")
    PTPACK_OP(kString, "STRING") PTPACK_OP(kBinString, "BINSTRING")
    PTPACK_OP(kShortBinString, "SHORT_BINSTRING") PTPACK_OP(kUnicode, "UNICODE")
    PTPACK_OP(kBinUnicode, "BINUNICODE") PTPACK_OP(kAppend, "APPEND") PTPACK_OP(kBuild, "BUILD")
    PTPACK_OP(kGlobal, "GLOBAL") PTPACK_OP(kDict, "DICT") PTPACK_OP(kEmptyDict, "EMPTY_DICT")
    PTPACK_OP(kAppends, "APPENDS") PTPACK_OP(kGet, "GET") PTPACK_OP(kBinGet, "BINGET")
    PTPACK_OP(kInst, "INST") PTPACK_OP(kLongBinGet, "LONG_BINGET") PTPACK_OP(kList, "LIST")
    PTPACK_OP(kEmptyList, "EMPTY_LIST") PTPACK_OP(kObj, "OBJ") PTPACK_OP(kPut, "PUT")
    PTPACK_OP(kBinPut, "BINPUT") PTPACK_OP(kLongBinPut, "LONG_BINPUT") PTPACK_OP(kSetItem, "SETITEM")
    PTPACK_OP(kTuple, "TUPLE") PTPACK_OP(kEmptyTuple, "EMPTY_TUPLE") PTPACK_OP(kSetItems, "SETITEMS")
    PTPACK_OP(kBinFloat, "BINFLOAT") PTPACK_OP(kProto, "PROTO") PTPACK_OP(kNewObj, "NEWOBJ")
    PTPACK_OP(kExt1, "EXT1") PTPACK_OP(kExt2, "EXT2") PTPACK_OP(kExt4, "EXT4")
    PTPACK_OP(kTuple1, "TUPLE1") PTPACK_OP(kTuple2, "TUPLE2") PTPACK_OP(kTuple3, "TUPLE3")
    PTPACK_OP(kNewTrue, "NEWTRUE") PTPACK_OP(kNewFalse, "NEWFALSE") PTPACK_OP(kLong1, "LONG1")
    PTPACK_OP(kLong4, "LONG4") PTPACK_OP(kBinBytes, "BINBYTES")
    PTPACK_OP(kShortBinBytes, "SHORT_BINBYTES") PTPACK_OP(kShortBinUnicode, "SHORT_BINUNICODE")
    PTPACK_OP(kBinUnicode8, "BINUNICODE8") PTPACK_OP(kBinBytes8, "BINBYTES8")
    PTPACK_OP(kEmptySet, "EMPTY_SET") PTPACK_OP(kAddItems, "ADDITEMS")
    PTPACK_OP(kFrozenSet, "FROZENSET") PTPACK_OP(kNewObjEx, "NEWOBJ_EX")
    PTPACK_OP(kStackGlobal, "STACK_GLOBAL") PTPACK_OP(kMemoize, "MEMOIZE") PTPACK_OP(kFrame, "FRAME")
    PTPACK_OP(kByteArray8, "BYTEARRAY8") PTPACK_OP(kNextBuffer, "NEXT_BUFFER")
    PTPACK_OP(kReadonlyBuffer, "READONLY_BUFFER")
#undef PTPACK_OP
  }
  return {};
}

namespace {

// A bounds-checked cursor over the pickle bytes.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> data, uint64_t pos, uint64_t op_offset)
      : data_(data), pos_(pos), op_offset_(op_offset) {}

  const uint8_t* take(uint64_t n, std::string_view what) {
    if (n > data_.size() - pos_) {
      throw_corrupt("pickle.truncated", std::string(what) + " needs " + std::to_string(n) +
                    " bytes but only " + std::to_string(data_.size() - pos_) + " remain",
                    op_offset_);
    }
    const uint8_t* p = data_.data() + pos_;
    pos_ += n;
    return p;
  }
  std::string_view line(std::string_view what) {
    const uint8_t* start = data_.data() + pos_;
    const void* nl = std::memchr(start, '\n', data_.size() - pos_);
    if (!nl) throw_corrupt("pickle.truncated", std::string(what) + ": no end of line", op_offset_);
    const uint64_t n = static_cast<const uint8_t*>(nl) - start;
    pos_ += n + 1;
    return {reinterpret_cast<const char*>(start), n};
  }
  std::string bytes(uint64_t n, std::string_view what) {
    if (n > limits::kMaxPickleBytes) throw_limit("kMaxPickleBytes", std::string(what) + " length", op_offset_);
    const uint8_t* p = take(n, what);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  uint64_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> data_;
  uint64_t pos_;
  uint64_t op_offset_;
};

int64_t parse_decimal(std::string_view text, uint64_t at, std::string_view what) {
  int64_t v = 0;
  std::string_view t = text;
  if (!t.empty() && t.front() == '+') t.remove_prefix(1);
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size()) {
    throw_corrupt("pickle.bad-number", std::string(what) + ": '" + std::string(text.substr(0, 40)) +
                  "' is not a valid integer", at);
  }
  return v;
}

// Sets an integer argument: int64 when it fits, else little-endian two's-complement bytes.
void set_long_from_bytes(Instruction& ins, std::string bytes) {
  if (bytes.size() <= 8) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes.size(); ++i) v |= uint64_t(uint8_t(bytes[i])) << (8 * i);
    if (!bytes.empty() && bytes.size() < 8 && (uint8_t(bytes.back()) & 0x80)) {
      v |= ~uint64_t{0} << (8 * bytes.size());  // sign-extend
    }
    ins.arg = Instruction::Arg::kInt;
    ins.integer = static_cast<int64_t>(v);
    return;
  }
  ins.arg = Instruction::Arg::kBigInt;
  ins.text = std::move(bytes);
}

}  // namespace

Instruction decode_instruction(std::span<const uint8_t> data, uint64_t offset) {
  if (offset >= data.size()) throw_corrupt("pickle.truncated", "pickle ends without STOP", offset);
  Instruction ins;
  ins.offset = offset;
  ins.opcode = data[offset];
  ins.name = opcode_name(ins.opcode);
  if (ins.name.empty()) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02x", ins.opcode);
    throw_corrupt("pickle.unknown-opcode", std::string("unknown opcode ") + hex, offset);
  }
  Cursor in(data, offset + 1, offset);
  using A = Instruction::Arg;
  auto set_int = [&](int64_t v) { ins.arg = A::kInt; ins.integer = v; };
  auto set_text = [&](std::string t) { ins.arg = A::kText; ins.text = std::move(t); };
  auto set_bytes = [&](std::string t) { ins.arg = A::kBytes; ins.text = std::move(t); };

  switch (static_cast<Op>(ins.opcode)) {
    case Op::kInt: {
      std::string_view t = in.line("INT");
      if (t == "01" || t == "00") {  // protocol 0 spells True/False this way
        ins.arg = A::kBool;
        ins.boolean = t == "01";
      } else {
        set_int(parse_decimal(t, offset, "INT"));
      }
      break;
    }
    case Op::kLong: {
      std::string_view t = in.line("LONG");
      if (!t.empty() && t.back() == 'L') t.remove_suffix(1);
      set_long_from_bytes(ins, decimal_to_le_bytes(t, offset));
      break;
    }
    case Op::kBinInt: set_int(static_cast<int32_t>(load_u32_le(in.take(4, "BININT")))); break;
    case Op::kBinInt1: set_int(*in.take(1, "BININT1")); break;
    case Op::kBinInt2: set_int(load_u16_le(in.take(2, "BININT2"))); break;
    case Op::kLong1: {
      uint64_t n = *in.take(1, "LONG1 length");
      set_long_from_bytes(ins, in.bytes(n, "LONG1"));
      break;
    }
    case Op::kLong4: {
      int32_t n = static_cast<int32_t>(load_u32_le(in.take(4, "LONG4 length")));
      if (n < 0) throw_corrupt("pickle.negative-length", "LONG4 byte count is negative", offset);
      set_long_from_bytes(ins, in.bytes(uint64_t(n), "LONG4"));
      break;
    }
    case Op::kFloat: {
      std::string t(in.line("FLOAT"));
      char* end = nullptr;
      errno = 0;
      double v = std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size()) {
        throw_corrupt("pickle.bad-number", "FLOAT: '" + t.substr(0, 40) + "' is not a number", offset);
      }
      ins.arg = A::kFloat;
      ins.real = v;
      break;
    }
    case Op::kBinFloat: {
      // BINFLOAT is an 8-byte IEEE double in *big-endian* order, unlike everything else.
      const uint8_t* p = in.take(8, "BINFLOAT");
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
      ins.arg = A::kFloat;
      std::memcpy(&ins.real, &bits, 8);
      break;
    }
    case Op::kString: set_text(unquote_python_string(in.line("STRING"), offset)); break;
    case Op::kBinString: {
      int32_t n = static_cast<int32_t>(load_u32_le(in.take(4, "BINSTRING length")));
      if (n < 0) throw_corrupt("pickle.negative-length", "BINSTRING length is negative", offset);
      set_text(in.bytes(uint64_t(n), "BINSTRING"));
      break;
    }
    case Op::kShortBinString: set_text(in.bytes(*in.take(1, "length"), "SHORT_BINSTRING")); break;
    case Op::kUnicode: set_text(raw_unicode_escape_to_utf8(in.line("UNICODE"), offset)); break;
    case Op::kBinUnicode: set_text(in.bytes(load_u32_le(in.take(4, "length")), "BINUNICODE")); break;
    case Op::kShortBinUnicode: set_text(in.bytes(*in.take(1, "length"), "SHORT_BINUNICODE")); break;
    case Op::kBinUnicode8: set_text(in.bytes(load_u64_le(in.take(8, "length")), "BINUNICODE8")); break;
    case Op::kBinBytes: set_bytes(in.bytes(load_u32_le(in.take(4, "length")), "BINBYTES")); break;
    case Op::kShortBinBytes: set_bytes(in.bytes(*in.take(1, "length"), "SHORT_BINBYTES")); break;
    case Op::kBinBytes8: set_bytes(in.bytes(load_u64_le(in.take(8, "length")), "BINBYTES8")); break;
    case Op::kByteArray8: set_bytes(in.bytes(load_u64_le(in.take(8, "length")), "BYTEARRAY8")); break;
    case Op::kGlobal:
    case Op::kInst: {
      ins.arg = A::kGlobal;
      ins.text = std::string(in.line("GLOBAL module"));
      ins.text2 = std::string(in.line("GLOBAL name"));
      break;
    }
    case Op::kPersId: set_text(std::string(in.line("PERSID"))); break;
    case Op::kGet:
    case Op::kPut: {
      int64_t v = parse_decimal(in.line("memo index"), offset, "memo index");
      if (v < 0) throw_corrupt("pickle.negative-memo", "memo index is negative", offset);
      set_int(v);
      break;
    }
    case Op::kBinGet:
    case Op::kBinPut: set_int(*in.take(1, "memo index")); break;
    case Op::kLongBinGet:
    case Op::kLongBinPut: set_int(load_u32_le(in.take(4, "memo index"))); break;
    case Op::kProto: set_int(*in.take(1, "protocol")); break;
    case Op::kExt1: set_int(*in.take(1, "extension code")); break;
    case Op::kExt2: set_int(load_u16_le(in.take(2, "extension code"))); break;
    case Op::kExt4: set_int(static_cast<int32_t>(load_u32_le(in.take(4, "extension code")))); break;
    case Op::kFrame: {
      uint64_t n = load_u64_le(in.take(8, "FRAME length"));
      if (n > data.size() - in.pos()) {
        throw_corrupt("pickle.frame-past-end", "FRAME of " + std::to_string(n) +
                      " bytes runs past the end of the pickle", offset);
      }
      set_int(static_cast<int64_t>(n));
      break;
    }
    default: break;  // no argument
  }
  ins.next_offset = in.pos();
  return ins;
}

}  // namespace ptpack::pickle
