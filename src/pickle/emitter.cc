#include <cstring>

#include "pickle/opcodes.h"
#include "ptpack/pickle_writer.h"

namespace ptpack::pickle {

namespace {
uint8_t code(Op op) { return static_cast<uint8_t>(op); }
}  // namespace

Emitter::Emitter() {
  op(code(Op::kProto));
  op(2);
}

void Emitter::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) out_.push_back(uint8_t(v >> (8 * i)));
}

void Emitter::none() { op(code(Op::kNone)); }

void Emitter::boolean(bool value) { op(code(value ? Op::kNewTrue : Op::kNewFalse)); }

void Emitter::integer(int64_t value) {
  if (value >= 0 && value <= 0xFF) {
    op(code(Op::kBinInt1));
    op(uint8_t(value));
  } else if (value >= 0 && value <= 0xFFFF) {
    op(code(Op::kBinInt2));
    op(uint8_t(value));
    op(uint8_t(value >> 8));
  } else if (value >= INT32_MIN && value <= INT32_MAX) {
    op(code(Op::kBinInt));
    u32(uint32_t(int32_t(value)));
  } else {
    // LONG1: the shortest little-endian two's complement that keeps the sign.
    std::string bytes;
    uint64_t u = uint64_t(value);
    for (int i = 0; i < 8; ++i) bytes.push_back(char(uint8_t(u >> (8 * i))));
    while (bytes.size() > 1) {
      const uint8_t last = uint8_t(bytes.back());
      const uint8_t before = uint8_t(bytes[bytes.size() - 2]);
      if ((last == 0x00 && !(before & 0x80)) || (last == 0xFF && (before & 0x80))) bytes.pop_back();
      else break;
    }
    big_integer(bytes);
  }
}

void Emitter::big_integer(std::string_view le) {
  op(code(Op::kLong1));
  op(uint8_t(le.size()));  // callers pass at most 255 bytes (LONG4 is not allowed by weights_only)
  out_.insert(out_.end(), le.begin(), le.begin() + std::min<size_t>(le.size(), 255));
}

void Emitter::real(double value) {
  op(code(Op::kBinFloat));
  uint64_t bits;
  std::memcpy(&bits, &value, 8);
  for (int i = 7; i >= 0; --i) out_.push_back(uint8_t(bits >> (8 * i)));
}

void Emitter::string(std::string_view utf8) {
  op(code(Op::kBinUnicode));
  u32(uint32_t(utf8.size()));
  out_.insert(out_.end(), utf8.begin(), utf8.end());
}

void Emitter::global(std::string_view module, std::string_view name) {
  const auto key = std::make_pair(std::string(module), std::string(name));
  if (auto it = globals_.find(key); it != globals_.end()) {
    get(it->second);
    return;
  }
  op(code(Op::kGlobal));
  out_.insert(out_.end(), module.begin(), module.end());
  op('\n');
  out_.insert(out_.end(), name.begin(), name.end());
  op('\n');
  globals_.emplace(key, put());
}

void Emitter::mark() { op(code(Op::kMark)); }

void Emitter::tuple(size_t count) {
  switch (count) {
    case 0: op(code(Op::kEmptyTuple)); return;
    case 1: op(code(Op::kTuple1)); return;
    case 2: op(code(Op::kTuple2)); return;
    case 3: op(code(Op::kTuple3)); return;
    default: op(code(Op::kTuple)); return;
  }
}

void Emitter::empty_list() { op(code(Op::kEmptyList)); }
void Emitter::empty_dict() { op(code(Op::kEmptyDict)); }
void Emitter::appends() { op(code(Op::kAppends)); }
void Emitter::setitems() { op(code(Op::kSetItems)); }
void Emitter::reduce() { op(code(Op::kReduce)); }
void Emitter::build() { op(code(Op::kBuild)); }
void Emitter::persistent_id() { op(code(Op::kBinPersId)); }

uint32_t Emitter::put() {
  const uint32_t index = next_memo_++;
  if (index <= 0xFF) {
    op(code(Op::kBinPut));
    op(uint8_t(index));
  } else {
    op(code(Op::kLongBinPut));
    u32(index);
  }
  return index;
}

void Emitter::get(uint32_t index) {
  if (index <= 0xFF) {
    op(code(Op::kBinGet));
    op(uint8_t(index));
  } else {
    op(code(Op::kLongBinGet));
    u32(index);
  }
}

std::vector<uint8_t> Emitter::finish() {
  op(code(Op::kStop));
  return std::move(out_);
}

}  // namespace ptpack::pickle
