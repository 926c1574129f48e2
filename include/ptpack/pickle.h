// Pickle, read without executing anything.
//
// Python's pickle is a little stack machine (protocols 0-5, Lib/pickletools.py documents every
// opcode). ptpack runs the same machine but never imports or calls: a GLOBAL becomes a Value of
// kind kGlobal holding its qualified name, REDUCE/NEWOBJ/NEWOBJ_EX/INST/OBJ become kObject nodes
// recording the callable and its arguments, BUILD appends a state to its target, and persistent
// ids become kPersistentId nodes for the format layer to resolve (storages, in PyTorch's files).
//
// The result is a value tree owned by a Pickle. Through the memo one node can be reached from
// several parents and a malicious pickle can even make cycles, so the tree is a graph: walk it
// with a depth cap (limits::kMaxNestingDepth).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ptpack::pickle {

enum class Kind : uint8_t {
  kNone,
  kBool,
  kInt,           // fits in int64
  kBigInt,        // `text` holds the little-endian two's-complement bytes
  kFloat,
  kString,        // `text` holds the bytes as written (UTF-8 for str)
  kBytes,         // bytes (protocol 3+) ...
  kByteArray,     // ... and bytearray (protocol 5)
  kTuple,
  kList,
  kDict,
  kSet,
  kFrozenSet,
  kGlobal,        // `text` = module, `name` = qualified name
  kObject,        // the result of calling `callable` with `args`
  kPersistentId,  // `args` = the persistent id value
  kExtension,     // EXT1/2/4: `integer` = the copyreg extension code (unresolvable here)
  kBuffer,        // protocol 5 out-of-band buffer (NEXT_BUFFER): no data in the pickle
};

// Which opcode created a kObject, i.e. how Python would have called `callable`.
enum class CallKind : uint8_t { kReduce, kNewObj, kNewObjEx, kInst, kObj };

struct Value {
  Kind kind = Kind::kNone;
  CallKind call = CallKind::kReduce;
  bool boolean = false;
  uint32_t id = 0;  // index in its Pickle, 0 .. value_count() - 1 (for walkers' side tables)
  int64_t integer = 0;
  double real = 0;
  std::string text;  // string/bytes payload, big-int bytes, or a global's module
  std::string name;  // a global's name
  std::vector<Value*> items;                       // tuple/list/set; object: APPENDed items
  std::vector<std::pair<Value*, Value*>> entries;  // dict; object: SETITEMs (OrderedDict...)
  Value* callable = nullptr;                       // object: the class or function called
  Value* args = nullptr;                           // object: argument tuple; persistent id: id
  Value* kwargs = nullptr;                         // object made by NEWOBJ_EX
  std::vector<Value*> states;                      // BUILD states applied, in order
  uint64_t offset = 0;                             // offset of the opcode that created it

  bool is_global(std::string_view module, std::string_view qualname) const {
    return kind == Kind::kGlobal && text == module && name == qualname;
  }
  // For objects: true when the callable is the global module.qualname.
  bool is_call_of(std::string_view module, std::string_view qualname) const {
    return kind == Kind::kObject && callable && callable->is_global(module, qualname);
  }
  bool is_sequence() const { return kind == Kind::kTuple || kind == Kind::kList; }
  bool is_string() const { return kind == Kind::kString; }
  // Value stored under string key `key` in a dict (or an object's set items); null if absent.
  const Value* find(std::string_view key) const;
};

// The value tree of one pickle and everything needed to interpret it.
class Pickle {
 public:
  const Value* root() const { return root_; }
  int protocol() const { return protocol_; }       // 0 when there is no PROTO opcode
  uint64_t end_offset() const { return end_; }     // just past STOP
  size_t value_count() const { return values_.size(); }
  uint64_t opcode_count() const { return opcodes_; }

 private:
  friend class Reader;
  std::deque<Value> values_;  // the arena; deque keeps node addresses stable
  const Value* root_ = nullptr;
  int protocol_ = 0;
  uint64_t end_ = 0;
  uint64_t opcodes_ = 0;
};

// Runs the pickle machine over `data` from offset 0 up to and including the first STOP.
// Bytes after STOP are not read (legacy torch.save files concatenate pickles).
// Throws Error(kCorrupt / kLimitExceeded / kUnsupported) with the opcode offset.
Pickle read_pickle(std::span<const uint8_t> data);

// A Python-like repr of a value: None, True, 3, 0.1, 'text', b'..', [..], {..}, module.Name(...).
// Output is cut near max_chars (with "...") and nesting below max_depth is shown as "...".
std::string repr(const Value* value, size_t max_chars = 200, int max_depth = 6);

// Python's repr() of a float ('0.1', '1e-05', '100.0', 'inf', 'nan').
std::string python_float_repr(double v);

// One decoded opcode, as pickletools.genops yields it.
struct Instruction {
  enum class Arg : uint8_t { kNone, kInt, kBigInt, kBool, kFloat, kText, kBytes, kGlobal };
  uint8_t opcode = 0;         // the wire byte
  std::string_view name;      // "BINUNICODE"
  uint64_t offset = 0;
  uint64_t next_offset = 0;   // where the following opcode starts
  Arg arg = Arg::kNone;
  int64_t integer = 0;        // kInt; also memo indices, PROTO, FRAME length, EXT codes
  bool boolean = false;       // kBool (protocol 0 "I01"/"I00")
  double real = 0;            // kFloat
  std::string text;           // kText / kBytes payload, kBigInt bytes, kGlobal module
  std::string text2;          // kGlobal name
};

// Decodes one instruction at `offset`. Throws Error(kCorrupt) on an unknown opcode or an argument
// that runs past the end of `data`.
Instruction decode_instruction(std::span<const uint8_t> data, uint64_t offset);

// pickletools.dis-style listing of the pickle that starts at offset 0, up to STOP (or the end
// of data when there is no STOP, then reporting where decoding stopped).
std::string disassemble(std::span<const uint8_t> data);

}  // namespace ptpack::pickle
