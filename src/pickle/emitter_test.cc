#include <set>

#include "ptpack/pickle.h"
#include "ptpack/pickle_writer.h"
#include "testing.h"

namespace ptpack::pickle {
namespace {

// Opcodes torch.load(weights_only=True) accepts in 1.13 and 2.x, plus BINFLOAT (2.x only).
// torch/_weights_only_unpickler.py; FORMATS.md §2.5.
const std::set<std::string_view> kAllowed = {
    "GLOBAL", "NEWOBJ", "REDUCE", "BUILD", "APPEND", "APPENDS", "SETITEM", "SETITEMS", "MARK",
    "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "NONE", "NEWFALSE", "NEWTRUE", "EMPTY_TUPLE",
    "EMPTY_LIST", "EMPTY_DICT", "BININT", "BININT1", "BININT2", "BINFLOAT", "BINUNICODE",
    "BINPERSID", "BINGET", "LONG_BINGET", "BINPUT", "LONG_BINPUT", "LONG1", "PROTO", "STOP"};

void expect_allowed_opcodes(const std::vector<uint8_t>& bytes) {
  uint64_t offset = 0;
  while (offset < bytes.size()) {
    const Instruction ins = decode_instruction(bytes, offset);
    EXPECT_TRUE(kAllowed.count(ins.name)) << ins.name << " at " << offset;
    offset = ins.next_offset;
  }
}

TEST(Emitter, IntegersRoundTripAtEveryWidth) {
  const std::vector<int64_t> values = {0, 1, 255, 256, 65535, 65536, -1, -129, INT32_MAX,
                                       int64_t(INT32_MAX) + 1, INT32_MIN, int64_t(INT32_MIN) - 1,
                                       INT64_MAX, INT64_MIN, 1ll << 40, -(1ll << 40), 128, -128};
  Emitter e;
  e.mark();
  for (int64_t v : values) e.integer(v);
  e.tuple(values.size());
  const auto bytes = e.finish();
  expect_allowed_opcodes(bytes);
  const Pickle p = read_pickle(bytes);
  ASSERT_EQ(p.root()->items.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(p.root()->items[i]->kind, Kind::kInt) << values[i];
    EXPECT_EQ(p.root()->items[i]->integer, values[i]);
  }
}

TEST(Emitter, ContainersGlobalsAndMemo) {
  Emitter e;
  e.global("collections", "OrderedDict");
  e.tuple(0);
  e.reduce();
  e.mark();
  e.string("a");
  e.real(0.1);
  e.string("b");
  e.global("collections", "OrderedDict");  // second use: a BINGET, not a second GLOBAL
  e.tuple(0);
  e.reduce();
  e.string("c");
  e.boolean(true);
  e.setitems();
  e.empty_dict();
  e.mark();
  e.string("x");
  e.none();
  e.setitems();
  e.build();
  const auto bytes = e.finish();
  expect_allowed_opcodes(bytes);
  const Pickle p = read_pickle(bytes);
  const Value* root = p.root();
  ASSERT_EQ(root->entries.size(), 3u);
  EXPECT_EQ(root->entries[1].first->text, "b");
  EXPECT_TRUE(root->entries[1].second->is_call_of("collections", "OrderedDict"));
  EXPECT_DOUBLE_EQ(root->entries[0].second->real, 0.1);
  ASSERT_EQ(root->states.size(), 1u);
  size_t globals = 0;
  for (uint64_t offset = 0; offset < bytes.size();) {
    const Instruction ins = decode_instruction(bytes, offset);
    globals += ins.name == "GLOBAL";
    offset = ins.next_offset;
  }
  EXPECT_EQ(globals, 1u);
}

}  // namespace
}  // namespace ptpack::pickle
