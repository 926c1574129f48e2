// The pickle machine: one switch over decoded instructions, checked stack/mark/memo helpers
// written once. Nothing is imported or called; see pickle.h for what each opcode builds.
#include <cstdint>
#include <string_view>
#include <unordered_map>

#include "pickle/opcodes.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/pickle.h"

namespace ptpack::pickle {

const Value* Value::find(std::string_view key) const {
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
    if (it->first->kind == Kind::kString && it->first->text == key) return it->second;
  }
  return nullptr;
}

class Reader {
 public:
  explicit Reader(std::span<const uint8_t> data) : data_(data) {}

  Pickle run() {
    if (data_.size() > limits::kMaxPickleBytes) {
      throw_limit("kMaxPickleBytes", "pickle is " + std::to_string(data_.size()) + " bytes", 0);
    }
    uint64_t pos = 0;
    while (true) {
      Instruction ins = decode_instruction(data_, pos);
      at_ = ins.offset;
      ++out_.opcodes_;
      if (static_cast<Op>(ins.opcode) == Op::kStop) {
        if (stack_.empty()) throw_corrupt("pickle.stack-underflow", "STOP with an empty stack", at_);
        out_.root_ = stack_.back();
        out_.end_ = ins.next_offset;
        return std::move(out_);
      }
      execute(ins);
      pos = ins.next_offset;
    }
  }

 private:
  Value* make(Kind kind) {
    if (out_.values_.size() >= limits::kMaxPickleValues) {
      throw_limit("kMaxPickleValues", "pickle builds more than " +
                  std::to_string(limits::kMaxPickleValues) + " values", at_);
    }
    Value& v = out_.values_.emplace_back();
    v.id = static_cast<uint32_t>(out_.values_.size() - 1);
    v.kind = kind;
    v.offset = at_;
    return &v;
  }

  void push(Value* v) {
    if (stack_.size() >= limits::kMaxPickleStack) {
      throw_limit("kMaxPickleStack", "pickle stack grows beyond the cap", at_);
    }
    stack_.push_back(v);
  }

  // Items above the innermost mark (the mark's own base).
  size_t mark_base() const { return marks_.empty() ? 0 : marks_.back(); }

  Value* pop(std::string_view op) {
    if (stack_.size() <= mark_base()) {
      throw_corrupt("pickle.stack-underflow", std::string(op) + " needs a value but the stack " +
                    (marks_.empty() ? "is empty" : "has only a MARK"), at_);
    }
    Value* v = stack_.back();
    stack_.pop_back();
    return v;
  }

  Value* top(std::string_view op) {
    if (stack_.size() <= mark_base()) {
      throw_corrupt("pickle.stack-underflow", std::string(op) + " needs a value on the stack", at_);
    }
    return stack_.back();
  }

  // Pops everything above the innermost MARK, and the MARK.
  std::vector<Value*> pop_mark(std::string_view op) {
    if (marks_.empty()) throw_corrupt("pickle.no-mark", std::string(op) + " without a MARK", at_);
    const size_t base = marks_.back();
    marks_.pop_back();
    std::vector<Value*> items(stack_.begin() + base, stack_.end());
    stack_.resize(base);
    return items;
  }

  Value* make_sequence(Kind kind, std::vector<Value*> items) {
    Value* v = make(kind);
    v->items = std::move(items);
    return v;
  }

  Value* make_object(CallKind call, Value* callable, Value* args) {
    Value* v = make(Kind::kObject);
    v->call = call;
    v->callable = callable;
    v->args = args;
    return v;
  }

  // Python dict semantics: assigning an existing key replaces its value in place. The index
  // views key text owned by the arena (never copied, so one huge memoised key reused as the key
  // of many dicts costs nothing); int and bool keys share a map as Python's 1 == True.
  struct DictIndex {
    std::unordered_map<std::string_view, size_t> strings;
    std::unordered_map<int64_t, size_t> ints;
    size_t none = SIZE_MAX;
  };
  void set_item(Value* target, Value* key, Value* value, std::string_view op) {
    if (target->kind != Kind::kDict && target->kind != Kind::kObject) {
      throw_corrupt("pickle.bad-target", std::string(op) + " on a value that is not a dict", at_);
    }
    size_t* slot = nullptr;
    bool fresh = true;
    const size_t next = target->entries.size();
    if (key->kind == Kind::kString) {
      auto [it, inserted] = dict_index_[target].strings.emplace(std::string_view(key->text), next);
      slot = &it->second;
      fresh = inserted;
    } else if (key->kind == Kind::kInt || key->kind == Kind::kBool) {
      const int64_t k = key->kind == Kind::kInt ? key->integer : int64_t(key->boolean);
      auto [it, inserted] = dict_index_[target].ints.emplace(k, next);
      slot = &it->second;
      fresh = inserted;
    } else if (key->kind == Kind::kNone) {
      size_t& none = dict_index_[target].none;
      fresh = none == SIZE_MAX;
      if (fresh) none = next;
      slot = &none;
    }
    if (slot && !fresh) {
      target->entries[*slot].second = value;
      return;
    }
    target->entries.emplace_back(key, value);
  }

  void append(Value* target, Value* item, std::string_view op) {
    if (target->kind != Kind::kList && target->kind != Kind::kObject) {
      throw_corrupt("pickle.bad-target", std::string(op) + " on a value that is not a list", at_);
    }
    target->items.push_back(item);
  }

  void memo_put(uint64_t index, std::string_view op) {
    if (index > limits::kMaxMemoIndex) {
      throw_limit("kMaxMemoIndex", std::string(op) + " memo index " + std::to_string(index), at_);
    }
    memo_[index] = top(op);
  }

  Value* memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) {
      throw_corrupt("pickle.memo-missing", "memo key " + std::to_string(index) + " was never PUT", at_);
    }
    return it->second;
  }

  Value* make_global(std::string module, std::string name) {
    Value* g = make(Kind::kGlobal);
    g->text = std::move(module);
    g->name = std::move(name);
    return g;
  }

  void execute(Instruction& ins) {
    using A = Instruction::Arg;
    const std::string_view op = ins.name;
    switch (static_cast<Op>(ins.opcode)) {
      case Op::kProto:
        if (ins.integer > kHighestProtocol) {
          throw_unsupported("pickle.protocol", "pickle protocol " + std::to_string(ins.integer) +
                            " is newer than 5");
        }
        out_.protocol_ = static_cast<int>(ins.integer);
        break;
      case Op::kFrame: break;  // framing only groups opcodes; FRAME's length was bounds-checked
      case Op::kMark:
        if (marks_.size() >= limits::kMaxPickleMarks) throw_limit("kMaxPickleMarks", "too many open MARKs", at_);
        marks_.push_back(stack_.size());
        break;
      case Op::kPop:
        if (stack_.size() > mark_base()) stack_.pop_back();
        else pop_mark(op);  // Python: POP with only a MARK on top discards the mark
        break;
      case Op::kPopMark: pop_mark(op); break;
      case Op::kDup: push(top(op)); break;

      case Op::kNone: push(make(Kind::kNone)); break;
      case Op::kNewTrue:
      case Op::kNewFalse: {
        Value* v = make(Kind::kBool);
        v->boolean = static_cast<Op>(ins.opcode) == Op::kNewTrue;
        push(v);
        break;
      }
      case Op::kInt: case Op::kBinInt: case Op::kBinInt1: case Op::kBinInt2:
      case Op::kLong: case Op::kLong1: case Op::kLong4: {
        Value* v = make(ins.arg == A::kBool ? Kind::kBool
                        : ins.arg == A::kBigInt ? Kind::kBigInt : Kind::kInt);
        v->boolean = ins.boolean;
        v->integer = ins.integer;
        v->text = std::move(ins.text);
        push(v);
        break;
      }
      case Op::kFloat: case Op::kBinFloat: {
        Value* v = make(Kind::kFloat);
        v->real = ins.real;
        push(v);
        break;
      }
      case Op::kString: case Op::kBinString: case Op::kShortBinString:
      case Op::kUnicode: case Op::kBinUnicode: case Op::kShortBinUnicode: case Op::kBinUnicode8: {
        Value* v = make(Kind::kString);
        v->text = std::move(ins.text);
        push(v);
        break;
      }
      case Op::kBinBytes: case Op::kShortBinBytes: case Op::kBinBytes8: case Op::kByteArray8: {
        Value* v = make(static_cast<Op>(ins.opcode) == Op::kByteArray8 ? Kind::kByteArray : Kind::kBytes);
        v->text = std::move(ins.text);
        push(v);
        break;
      }
      case Op::kNextBuffer: push(make(Kind::kBuffer)); break;
      case Op::kReadonlyBuffer: top(op); break;

      case Op::kEmptyTuple: push(make(Kind::kTuple)); break;
      case Op::kTuple: push(make_sequence(Kind::kTuple, pop_mark(op))); break;
      case Op::kTuple1: case Op::kTuple2: case Op::kTuple3: {
        const size_t n = ins.opcode - static_cast<uint8_t>(Op::kTuple1) + 1;
        std::vector<Value*> items(n);
        for (size_t i = n; i-- > 0;) items[i] = pop(op);
        push(make_sequence(Kind::kTuple, std::move(items)));
        break;
      }
      case Op::kEmptyList: push(make(Kind::kList)); break;
      case Op::kList: push(make_sequence(Kind::kList, pop_mark(op))); break;
      case Op::kAppend: {
        Value* item = pop(op);
        append(top(op), item, op);
        break;
      }
      case Op::kAppends: {
        std::vector<Value*> items = pop_mark(op);
        Value* target = top(op);
        for (Value* item : items) append(target, item, op);
        break;
      }
      case Op::kEmptyDict: push(make(Kind::kDict)); break;
      case Op::kDict: {
        std::vector<Value*> items = pop_mark(op);
        if (items.size() % 2) throw_corrupt("pickle.odd-dict", "DICT with an odd number of items", at_);
        Value* d = make(Kind::kDict);
        for (size_t i = 0; i < items.size(); i += 2) set_item(d, items[i], items[i + 1], op);
        push(d);
        break;
      }
      case Op::kSetItem: {
        Value* value = pop(op);
        Value* key = pop(op);
        set_item(top(op), key, value, op);
        break;
      }
      case Op::kSetItems: {
        std::vector<Value*> items = pop_mark(op);
        if (items.size() % 2) throw_corrupt("pickle.odd-dict", "SETITEMS with an odd number of items", at_);
        Value* target = top(op);
        for (size_t i = 0; i < items.size(); i += 2) set_item(target, items[i], items[i + 1], op);
        break;
      }
      case Op::kEmptySet: push(make(Kind::kSet)); break;
      case Op::kAddItems: {
        std::vector<Value*> items = pop_mark(op);
        Value* target = top(op);
        if (target->kind != Kind::kSet && target->kind != Kind::kObject) {
          throw_corrupt("pickle.bad-target", "ADDITEMS on a value that is not a set", at_);
        }
        target->items.insert(target->items.end(), items.begin(), items.end());
        break;
      }
      case Op::kFrozenSet: push(make_sequence(Kind::kFrozenSet, pop_mark(op))); break;

      case Op::kGlobal: push(make_global(std::move(ins.text), std::move(ins.text2))); break;
      case Op::kStackGlobal: {
        Value* name = pop(op);
        Value* module = pop(op);
        if (!module->is_string() || !name->is_string()) {
          throw_corrupt("pickle.stack-global", "STACK_GLOBAL needs two strings (module, name)", at_);
        }
        push(make_global(module->text, name->text));
        break;
      }
      case Op::kExt1: case Op::kExt2: case Op::kExt4: {
        Value* v = make(Kind::kExtension);
        v->integer = ins.integer;
        push(v);
        break;
      }
      case Op::kReduce: {
        Value* args = pop(op);
        Value* callable = pop(op);
        push(make_object(CallKind::kReduce, callable, args));
        break;
      }
      case Op::kNewObj: {
        Value* args = pop(op);
        Value* cls = pop(op);
        push(make_object(CallKind::kNewObj, cls, args));
        break;
      }
      case Op::kNewObjEx: {
        Value* kwargs = pop(op);
        Value* args = pop(op);
        Value* cls = pop(op);
        Value* v = make_object(CallKind::kNewObjEx, cls, args);
        v->kwargs = kwargs;
        push(v);
        break;
      }
      case Op::kInst: {
        Value* args = make_sequence(Kind::kTuple, pop_mark(op));
        push(make_object(CallKind::kInst, make_global(std::move(ins.text), std::move(ins.text2)), args));
        break;
      }
      case Op::kObj: {
        std::vector<Value*> items = pop_mark(op);
        if (items.empty()) throw_corrupt("pickle.stack-underflow", "OBJ needs a class after MARK", at_);
        Value* cls = items.front();
        items.erase(items.begin());
        push(make_object(CallKind::kObj, cls, make_sequence(Kind::kTuple, std::move(items))));
        break;
      }
      case Op::kBuild: {
        Value* state = pop(op);
        top(op)->states.push_back(state);
        break;
      }
      case Op::kPersId:
      case Op::kBinPersId: {
        Value* id;
        if (static_cast<Op>(ins.opcode) == Op::kPersId) {
          id = make(Kind::kString);
          id->text = std::move(ins.text);
        } else {
          id = pop(op);
        }
        Value* v = make(Kind::kPersistentId);
        v->args = id;
        push(v);
        break;
      }
      case Op::kPut: case Op::kBinPut: case Op::kLongBinPut:
        memo_put(static_cast<uint64_t>(ins.integer), op);
        break;
      case Op::kMemoize: memo_put(memo_.size(), op); break;
      case Op::kGet: case Op::kBinGet: case Op::kLongBinGet:
        push(memo_get(static_cast<uint64_t>(ins.integer)));
        break;
      case Op::kStop: break;  // handled by run()
    }
  }

  std::span<const uint8_t> data_;
  Pickle out_;
  std::vector<Value*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Value*> memo_;
  std::unordered_map<const Value*, DictIndex> dict_index_;
  uint64_t at_ = 0;
};

Pickle read_pickle(std::span<const uint8_t> data) { return Reader(data).run(); }

}  // namespace ptpack::pickle
