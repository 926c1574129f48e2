// The symbolic pickle machine: the opcode stream (pickle::decode_instruction) run against a
// stack and memo of symbols, not values. It resolves what Python's Unpickler would import and
// call, including STACK_GLOBAL operands fetched from the memo, and never builds a value tree,
// so it also runs over pickles the value-tree reader rejects: reporting stops at the first
// opcode Python would fail on, after everything before it was reported (Python would already
// have executed those).
#include <memory>
#include <unordered_map>

#include "pickle/opcodes.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/pickle.h"
#include "scan/scan_internal.h"

namespace ptpack::scan {
namespace {

using pickle::Op;

// What the machine knows about a stack item.
struct Sym {
  enum class Kind : uint8_t {
    kOther,       // numbers, None, containers: nothing to resolve
    kString,      // str (text holds it): STACK_GLOBAL operands, _codecs.encode payloads
    kBytes,       // bytes / bytearray
    kGlobal,      // a resolved global: module in text, name in text2
    kUnresolved,  // a global the machine cannot name (EXT codes, STACK_GLOBAL of non-strings)
    kResult,      // the result of a call; `callable` is what was called
    kTuple,       // items kept (call arguments, persistent ids)
  };
  Kind kind = Kind::kOther;
  std::string text, text2;
  std::vector<std::shared_ptr<Sym>> items;
  std::shared_ptr<Sym> callable;
  uint64_t tree = 1;  // nodes a consumer walking the value (a DAG through the memo) would visit
};
using SymPtr = std::shared_ptr<Sym>;

// A reason to stop: Python's Unpickler would raise here.
struct Stop {
  uint64_t offset;
  std::string message;
};

// Expanded value trees beyond this many nodes, and this many times the opcode count, are a
// memo/DUP amplification (a "billion laughs": tiny pickle, huge tree for whoever walks it).
constexpr uint64_t kAmplifiedNodes = 50'000'000;
constexpr uint64_t kAmplifiedRatio = 1000;
constexpr uint64_t kTreeSaturate = uint64_t{1} << 62;

uint64_t add_sat(uint64_t a, uint64_t b) { return a > kTreeSaturate - b ? kTreeSaturate : a + b; }

std::string_view kind_name(Sym::Kind k) {
  switch (k) {
    case Sym::Kind::kOther: return "non-string value";
    case Sym::Kind::kString: return "string";
    case Sym::Kind::kBytes: return "bytes";
    case Sym::Kind::kGlobal: return "global";
    case Sym::Kind::kUnresolved: return "unresolved global";
    case Sym::Kind::kResult: return "call result";
    case Sym::Kind::kTuple: return "tuple";
  }
  return "value";
}

// UTF-8 text to latin-1 bytes, as _codecs.encode(text, 'latin1') would produce; nullopt if a code
// point is above 0xFF or the UTF-8 is broken.
std::optional<std::vector<uint8_t>> utf8_to_latin1(const std::string& s) {
  std::vector<uint8_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size() && c <= 0xC3) {
      out.push_back(uint8_t(((c & 0x1F) << 6) | (uint8_t(s[i + 1]) & 0x3F)));
      i += 2;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

bool looks_nested(std::span<const uint8_t> b) {
  if (b.size() >= 3 && b[0] == 0x80 && b[1] <= pickle::kHighestProtocol) return true;  // PROTO
  return b.size() >= 4 && b[0] == 'P' && b[1] == 'K' && b[2] == 3 && b[3] == 4;      // a zip
}

class Machine {
 public:
  Machine(std::span<const uint8_t> data, const PickleScanOptions& o, Collector& out)
      : data_(data), o_(o), out_(out) {}

  PickleScanResult run() {
    PickleScanResult r;
    uint64_t pos = 0;
    try {
      while (true) {
        pickle::Instruction ins;
        try {
          ins = pickle::decode_instruction(data_, pos);
        } catch (const Error& e) {
          throw Stop{e.offset().value_or(pos), e.detail() + " [" + e.rule() + "]"};
        }
        ++r.opcodes;
        at_ = ins.offset;
        if (step(ins)) {
          r.end = ins.next_offset;
          break;
        }
        pos = ins.next_offset;
      }
    } catch (const Stop& s) {
      r.failed = true;
      if (o_.tentative) {
        out_.add(Severity::kWarning, "scan.trailing-data", o_.entry, o_.base_offset + s.offset,
                 "bytes after STOP stop decoding as a pickle here: " + s.message);
      } else {
        out_.add(Severity::kUnsafe, "scan.malformed-pickle", o_.entry, o_.base_offset + s.offset,
                 "malformed pickle (Python's unpickler fails here after running everything "
                 "before): " + s.message);
      }
    }
    opcodes_ = r.opcodes;
    return r;
  }

 private:
  [[noreturn]] void stop(const std::string& message) { throw Stop{at_, message}; }
  uint64_t where() const { return o_.base_offset + at_; }

  SymPtr make(Sym::Kind kind) {
    auto s = std::make_shared<Sym>();
    s->kind = kind;
    return s;
  }
  void push(SymPtr s) {
    if (stack_.size() >= limits::kMaxPickleStack) stop("more than kMaxPickleStack items on the stack");
    stack_.push_back(std::move(s));
  }
  SymPtr pop() {
    if (stack_.size() <= floor()) stop("stack underflow");
    SymPtr s = std::move(stack_.back());
    stack_.pop_back();
    return s;
  }
  SymPtr& top() {
    if (stack_.size() <= floor()) stop("stack underflow");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<SymPtr> pop_mark() {
    if (marks_.empty()) stop("no MARK to pop to");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<SymPtr> items(std::make_move_iterator(stack_.begin() + std::ptrdiff_t(m)),
                              std::make_move_iterator(stack_.end()));
    stack_.resize(m);
    return items;
  }
  static uint64_t tree_of(const std::vector<SymPtr>& items) {
    uint64_t t = 1;
    for (const auto& s : items) t = add_sat(t, s->tree);
    return t;
  }
  void grow(Sym& target, uint64_t by) {
    target.tree = add_sat(target.tree, by);
    check_amplification(target.tree);
  }
  void check_amplification(uint64_t tree) {
    if (amplified_ || tree < kAmplifiedNodes || tree / kAmplifiedRatio < uint64_t(at_ + 1)) return;
    amplified_ = true;
    out_.add(Severity::kUnsafe, "scan.memo-amplification", o_.entry, where(),
             "memo/DUP amplification: a value reaches " +
                 (tree >= kTreeSaturate ? std::string("more than 2^62") : std::to_string(tree)) +
                 " nodes when walked, from " + std::to_string(at_ + 1) + " bytes of pickle");
  }

  void import(const std::string& module, const std::string& name) {
    SymPtr g = make(Sym::Kind::kGlobal);
    g->text = module;
    g->text2 = name;
    out_.import_global(o_.entry, where(), module, name, o_.context);
    push(std::move(g));
  }

  // Records a call of `callable` and returns its result symbol.
  SymPtr call(const SymPtr& callable, std::string_view kind, uint64_t arg_tree) {
    switch (callable->kind) {
      case Sym::Kind::kGlobal:
        out_.call_global(o_.entry, where(), callable->text, callable->text2, kind, o_.context);
        break;
      case Sym::Kind::kResult: {
        std::string inner = "another call";
        if (callable->callable && callable->callable->kind == Sym::Kind::kGlobal) {
          inner = callable->callable->text + "." + callable->callable->text2 + "(...)";
        }
        out_.add(Severity::kUnsafe, "scan.call-of-call-result", o_.entry, where(),
                 std::string(kind) + " calls the result of " + inner +
                     " (e.g. getattr(...)(...)); the callable cannot be named");
        break;
      }
      default:
        out_.add(Severity::kUnsafe, "scan.unresolved-callable", o_.entry, where(),
                 std::string(kind) + " calls " + std::string(callable->kind == Sym::Kind::kUnresolved ? "an " : "a ") + std::string(kind_name(callable->kind)) +
                     ", not a named global");
        break;
    }
    SymPtr r = make(Sym::Kind::kResult);
    r->callable = callable;
    r->tree = add_sat(1, arg_tree);
    check_amplification(r->tree);
    return r;
  }

  void nested(std::vector<uint8_t> bytes, const char* how) {
    if (!o_.nested) return;
    const std::string name = o_.entry + "#" + how + "@" + std::to_string(where());
    out_.add(Severity::kWarning, "scan.nested-artifact", o_.entry, where(),
             std::string("a value (") + how + ") holds a pickle or an archive; scanned as '" + name + "'");
    o_.nested(std::move(bytes), name, o_.depth + 1);
  }

  void reduce_like(std::string_view kind, const SymPtr& callable, const SymPtr& args) {
    SymPtr r = call(callable, kind, args->tree);
    // bytes under protocol 2: _codecs.encode('<latin-1 text>', 'latin1'); may hide a pickle.
    if (callable->kind == Sym::Kind::kGlobal && callable->text == "_codecs" && callable->text2 == "encode" &&
        args->kind == Sym::Kind::kTuple && !args->items.empty() && args->items[0]->kind == Sym::Kind::kString) {
      if (auto b = utf8_to_latin1(args->items[0]->text); b && looks_nested(*b)) nested(std::move(*b), "encoded-bytes");
    }
    push(std::move(r));
  }

  // One opcode; true at STOP.
  bool step(const pickle::Instruction& ins) {
    using K = Sym::Kind;
    switch (static_cast<Op>(ins.opcode)) {
      case Op::kStop:
        pop();
        return true;
      case Op::kMark:
        if (marks_.size() >= limits::kMaxPickleMarks) stop("more than kMaxPickleMarks open MARKs");
        marks_.push_back(stack_.size());
        break;
      case Op::kPop:
        // Python 3: POP with nothing above the mark pops the mark itself.
        if (!marks_.empty() && stack_.size() == marks_.back()) marks_.pop_back();
        else pop();
        break;
      case Op::kPopMark: pop_mark(); break;
      case Op::kDup: { SymPtr t = top(); push(std::move(t)); check_amplification(stack_.back()->tree); break; }
      case Op::kProto:
        if (ins.integer > pickle::kHighestProtocol) stop("unsupported pickle protocol " + std::to_string(ins.integer));
        break;
      case Op::kFrame: case Op::kReadonlyBuffer: break;
      case Op::kInt: case Op::kBinInt: case Op::kBinInt1: case Op::kBinInt2: case Op::kLong:
      case Op::kLong1: case Op::kLong4: case Op::kFloat: case Op::kBinFloat: case Op::kNone:
      case Op::kNewTrue: case Op::kNewFalse: case Op::kEmptyList: case Op::kEmptyDict:
      case Op::kEmptySet: case Op::kNextBuffer:
        push(make(K::kOther));
        break;
      case Op::kString: case Op::kBinString: case Op::kShortBinString: case Op::kUnicode:
      case Op::kBinUnicode: case Op::kShortBinUnicode: case Op::kBinUnicode8: {
        SymPtr s = make(K::kString);
        s->text = ins.text;
        push(std::move(s));
        break;
      }
      case Op::kBinBytes: case Op::kShortBinBytes: case Op::kBinBytes8: case Op::kByteArray8: {
        const std::span<const uint8_t> b(reinterpret_cast<const uint8_t*>(ins.text.data()), ins.text.size());
        if (looks_nested(b)) nested(std::vector<uint8_t>(b.begin(), b.end()), "bytes");
        push(make(K::kBytes));
        break;
      }
      case Op::kEmptyTuple: push(make(K::kTuple)); break;
      case Op::kTuple1: case Op::kTuple2: case Op::kTuple3: {
        const int n = ins.opcode - uint8_t(Op::kTuple1) + 1;
        SymPtr t = make(K::kTuple);
        t->items.resize(size_t(n));
        for (int i = n - 1; i >= 0; --i) t->items[size_t(i)] = pop();
        t->tree = tree_of(t->items);
        push(std::move(t));
        break;
      }
      case Op::kTuple: {
        SymPtr t = make(K::kTuple);
        t->items = pop_mark();
        t->tree = tree_of(t->items);
        check_amplification(t->tree);
        push(std::move(t));
        break;
      }
      case Op::kList: case Op::kDict: case Op::kFrozenSet: {
        SymPtr c = make(K::kOther);
        c->tree = tree_of(pop_mark());
        check_amplification(c->tree);
        push(std::move(c));
        break;
      }
      case Op::kAppend: { SymPtr v = pop(); grow(*top(), v->tree); break; }
      case Op::kSetItem: { SymPtr v = pop(); SymPtr k = pop(); grow(*top(), add_sat(k->tree, v->tree)); break; }
      case Op::kAppends: case Op::kSetItems: case Op::kAddItems: {
        const uint64_t t = tree_of(pop_mark()) - 1;
        grow(*top(), t);
        break;
      }
      case Op::kGlobal: import(ins.text, ins.text2); break;
      case Op::kStackGlobal: {
        SymPtr name = pop();
        SymPtr module = pop();
        if (module->kind == K::kString && name->kind == K::kString) {
          import(module->text, name->text);
        } else {
          out_.add(Severity::kUnsafe, "scan.unresolved-global", o_.entry, where(),
                   "STACK_GLOBAL with a " + std::string(kind_name(module->kind)) + " module and a " +
                       std::string(kind_name(name->kind)) + " name: what it imports cannot be named");
          push(make(K::kUnresolved));
        }
        break;
      }
      case Op::kExt1: case Op::kExt2: case Op::kExt4:
        out_.add(Severity::kUnsafe, "scan.extension-code", o_.entry, where(),
                 std::string(ins.name) + " " + std::to_string(ins.integer) +
                     ": a global from copyreg's extension registry, which cannot be known from the file");
        push(make(K::kUnresolved));
        break;
      case Op::kInst: {
        std::vector<SymPtr> args = pop_mark();
        import(ins.text, ins.text2);
        SymPtr cls = pop();
        push(call(cls, "INST", tree_of(args)));
        break;
      }
      case Op::kObj: {
        std::vector<SymPtr> items = pop_mark();
        if (items.empty()) stop("OBJ without a class");
        SymPtr cls = items.front();
        push(call(cls, "OBJ", tree_of(items)));
        break;
      }
      case Op::kReduce: {
        SymPtr args = pop();
        SymPtr callable = pop();
        reduce_like("REDUCE", callable, args);
        break;
      }
      case Op::kNewObj: {
        SymPtr args = pop();
        SymPtr cls = pop();
        push(call(cls, "NEWOBJ", args->tree));
        break;
      }
      case Op::kNewObjEx: {
        SymPtr kwargs = pop();
        SymPtr args = pop();
        SymPtr cls = pop();
        push(call(cls, "NEWOBJ_EX", add_sat(args->tree, kwargs->tree)));
        break;
      }
      case Op::kBuild: {
        SymPtr state = pop();
        SymPtr& target = top();
        build(*target);
        grow(*target, state->tree);
        break;
      }
      case Op::kPersId: {
        push(make(K::kResult));
        break;
      }
      case Op::kBinPersId: {
        SymPtr pid = pop();
        persistent_load(*pid);
        // Legacy torch.save writes a pickled module's class as ('module', cls, source_file,
        // source); torch's persistent_load returns cls (torch/serialization.py _legacy_load).
        if (pid->kind == K::kTuple && pid->items.size() == 4 && pid->items[0]->kind == K::kString &&
            pid->items[0]->text == "module" && pid->items[1]->kind == K::kGlobal) {
          push(pid->items[1]);
          break;
        }
        SymPtr r = make(K::kResult);
        r->tree = add_sat(1, pid->tree);
        push(std::move(r));
        break;
      }
      case Op::kGet: case Op::kBinGet: case Op::kLongBinGet: {
        auto it = memo_.find(uint64_t(ins.integer));
        if (it == memo_.end()) stop("memo key " + std::to_string(ins.integer) + " was never PUT");
        push(it->second);
        check_amplification(it->second->tree);
        break;
      }
      case Op::kPut: case Op::kBinPut: case Op::kLongBinPut: memoize(uint64_t(ins.integer)); break;
      case Op::kMemoize: memoize(memo_.size()); break;
    }
    return false;
  }

  void memoize(uint64_t key) {
    if (key > limits::kMaxMemoIndex) stop("memo key above kMaxMemoIndex");
    memo_[key] = top();
  }

  // BUILD calls target.__setstate__(state) or updates its __dict__: code of the target's class.
  void build(const Sym& target) {
    if (target.kind == Sym::Kind::kResult && target.callable) {
      const Sym& c = *target.callable;
      if (c.kind == Sym::Kind::kGlobal) {
        out_.call_global(o_.entry, where(), c.text, c.text2, "BUILD", o_.context);
      }
      // Results of unnamed callables were reported when they were called.
      return;
    }
    if (target.kind == Sym::Kind::kResult) return;  // a persistent_load result
    if (target.kind == Sym::Kind::kGlobal || target.kind == Sym::Kind::kUnresolved) {
      out_.add(Severity::kUnsafe, "scan.build-on-global", o_.entry, where(),
               "BUILD on the global " + (target.kind == Sym::Kind::kGlobal ? target.text + "." + target.text2 : std::string("(unresolved)")) +
                   " itself: sets attributes of a class or module object");
      return;
    }
    out_.add(Severity::kWarning, "scan.build-on-value", o_.entry, where(),
             "BUILD on a " + std::string(kind_name(target.kind)) + " (Python's unpickler fails or sets attributes)");
  }

  // torch.package's persistent_load calls func(importer, *args) for
  // ('reduce_package', [id,] func, args) (torch/package/package_importer.py).
  void persistent_load(const Sym& pid) {
    if (pid.kind != Sym::Kind::kTuple || pid.items.empty() || pid.items[0]->kind != Sym::Kind::kString ||
        pid.items[0]->text != "reduce_package") {
      return;
    }
    if (pid.items.size() != 3 && pid.items.size() != 4) return;  // the importer rejects it
    const SymPtr& func = pid.items[pid.items.size() - 2];
    const SymPtr& args = pid.items.back();
    (void)call(func, "persistent_load(reduce_package)", args->tree);
  }

  std::span<const uint8_t> data_;
  const PickleScanOptions& o_;
  Collector& out_;
  std::vector<SymPtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, SymPtr> memo_;
  uint64_t at_ = 0;
  uint64_t opcodes_ = 0;
  bool amplified_ = false;
};

}  // namespace

PickleScanResult scan_pickle(std::span<const uint8_t> data, const PickleScanOptions& options, Collector& out) {
  Machine m(data, options, out);
  return m.run();
}

PickleScanResult scan_pickle_stream(std::span<const uint8_t> data, const PickleScanOptions& options,
                                    Collector& out) {
  if (!options.tentative) out.add_pickle(options.entry);
  const PickleScanResult first = scan_pickle(data, options, out);
  if (!first.end) return first;
  uint64_t pos = *first.end;
  for (int count = 1; pos < data.size(); ++count) {
    if (count == 1) {
      out.add(Severity::kWarning, "scan.data-after-stop", options.entry, options.base_offset + pos,
              std::to_string(data.size() - pos) + " bytes follow the pickle's STOP (a loader that "
              "keeps reading would run them; scanned)");
    }
    if (count >= kMaxConcatenatedPickles) {
      out.add(Severity::kUnsafe, "scan.too-many-pickles", options.entry, options.base_offset + pos,
              "more than " + std::to_string(kMaxConcatenatedPickles) + " pickles concatenated; the rest is not scanned");
      break;
    }
    PickleScanOptions next = options;
    next.base_offset = options.base_offset + pos;
    next.tentative = true;
    const PickleScanResult r = scan_pickle(data.subspan(pos), next, out);
    if (!r.end) break;
    out.add(Severity::kWarning, "scan.concatenated-pickle", options.entry, next.base_offset,
            "another complete pickle follows (" + std::to_string(r.opcodes) + " opcodes; scanned)");
    pos += *r.end;
  }
  return first;
}

}  // namespace ptpack::scan
