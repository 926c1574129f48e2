// pickletools.dis-style listing: "offset: code  NAME  argument", indented by open MARKs.
#include <algorithm>
#include <cstdio>

#include "pickle/opcodes.h"
#include "pickle/text_codecs.h"
#include "ptpack/error.h"
#include "ptpack/pickle.h"

namespace ptpack::pickle {
namespace {

// Opcodes that consume the innermost MARK (dedented, like pickletools does).
bool pops_mark(Op op) {
  switch (op) {
    case Op::kTuple: case Op::kList: case Op::kDict: case Op::kAppends: case Op::kSetItems:
    case Op::kAddItems: case Op::kFrozenSet: case Op::kInst: case Op::kObj: case Op::kPopMark:
      return true;
    default:
      return false;
  }
}

std::string code_repr(uint8_t byte) {
  if (byte >= 0x20 && byte < 0x7F && byte != '\\' && byte != '\'') return std::string(1, char(byte));
  if (byte == '\\') return "\\\\";
  if (byte == '\'') return "\\'";
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", byte);
  return buf;
}

std::string argument_text(const Instruction& ins) {
  using A = Instruction::Arg;
  Value tmp;
  switch (ins.arg) {
    case A::kNone: return "";
    case A::kInt: return std::to_string(ins.integer);
    case A::kBigInt: return le_bytes_to_decimal(ins.text);
    case A::kBool: return ins.boolean ? "True" : "False";
    case A::kFloat: return python_float_repr(ins.real);
    case A::kText: tmp.kind = Kind::kString; tmp.text = ins.text; return repr(&tmp, 120);
    case A::kBytes: tmp.kind = Kind::kBytes; tmp.text = ins.text; return repr(&tmp, 120);
    case A::kGlobal: tmp.kind = Kind::kString; tmp.text = ins.text + " " + ins.text2; return repr(&tmp, 200);
  }
  return "";
}

}  // namespace

std::string disassemble(std::span<const uint8_t> data) {
  std::string out;
  uint64_t pos = 0;
  int marks = 0;
  int highest = 0;
  while (true) {
    Instruction ins;
    try {
      ins = decode_instruction(data, pos);
    } catch (const Error& e) {
      out += "error: " + std::string(e.what()) + "\n";
      return out;
    }
    const Op op = static_cast<Op>(ins.opcode);
    if (pops_mark(op) && marks > 0) --marks;
    char head[32];
    std::snprintf(head, sizeof head, "%8llu: %-4s ", static_cast<unsigned long long>(ins.offset),
                  code_repr(ins.opcode).c_str());
    // Indentation follows open MARKs like pickletools, but stops at kMaxIndent levels so that
    // hostile nesting cannot make the listing grow with the square of its depth.
    constexpr int kMaxIndent = 16;
    const size_t indent = size_t(std::min(marks, kMaxIndent)) * 4;
    std::string line = head + std::string(indent, ' ') + std::string(ins.name);
    const std::string arg = argument_text(ins);
    if (!arg.empty()) {
      if (line.size() < 34 + indent) line.resize(34 + indent, ' ');
      line += " " + arg;
    }
    out += line + "\n";
    if (op == Op::kMark) ++marks;
    if (op == Op::kProto && ins.integer > highest) highest = int(ins.integer);
    if (op == Op::kStop) {
      out += "protocol (from PROTO) = " + std::to_string(highest) + "\n";
      if (ins.next_offset < data.size()) {
        out += "note: " + std::to_string(data.size() - ins.next_offset) +
               " bytes follow STOP (not part of this pickle)\n";
      }
      return out;
    }
    pos = ins.next_offset;
  }
}

}  // namespace ptpack::pickle
