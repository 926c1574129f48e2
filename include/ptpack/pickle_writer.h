// Writing pickles that torch.load rebuilds with and without weights_only.
//
// The Emitter produces protocol 2 and only the opcodes that torch.load(weights_only=True)
// accepts in torch 1.13 and 2.x (FORMATS.md §2.5, torch/_weights_only_unpickler.py): no FRAME,
// MEMOIZE, STACK_GLOBAL, SHORT_BINUNICODE, BINBYTES. It is a thin layer over the opcodes; what to
// emit (which globals, in which shape) is the caller's business. BINFLOAT is the one opcode torch
// 1.13's restricted unpickler lacks: callers that want 1.13 weights_only loads avoid floats.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ptpack::pickle {

class Emitter {
 public:
  Emitter();  // starts with PROTO 2

  void none();
  void boolean(bool value);                 // NEWTRUE / NEWFALSE
  void integer(int64_t value);              // BININT1 / BININT2 / BININT / LONG1
  void big_integer(std::string_view le_twos_complement);  // LONG1 (Python's long encoding)
  void real(double value);                  // BINFLOAT (big-endian IEEE double)
  void string(std::string_view utf8);       // BINUNICODE
  // GLOBAL module\nname\n, memoized: later uses of the same global are a BINGET.
  void global(std::string_view module, std::string_view name);

  void mark();
  void tuple(size_t count);  // the last `count` items (0-3 without a mark); > 3 needs mark() first
  void empty_list();
  void empty_dict();
  void appends();            // MARK ... APPENDS (mark() before the items)
  void setitems();           // MARK ... SETITEMS
  void reduce();             // callable args -> callable(*args)
  void build();              // obj state -> obj.__setstate__(state)
  void persistent_id();      // the tuple on the stack -> BINPERSID

  // Memo: put() stores the top of the stack and returns its index; get() pushes it again.
  uint32_t put();
  void get(uint32_t index);

  // Appends STOP and returns the pickle.
  std::vector<uint8_t> finish();

 private:
  void op(uint8_t code) { out_.push_back(code); }
  void u32(uint32_t v);

  std::vector<uint8_t> out_;
  uint32_t next_memo_ = 0;
  std::map<std::pair<std::string, std::string>, uint32_t> globals_;
};

}  // namespace ptpack::pickle
