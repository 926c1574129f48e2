// Pickle machine tests. The byte strings below were produced by CPython's pickle.dumps (the
// reference implementation), never by ptpack.
#include "ptpack/pickle.h"

#include "testing.h"

namespace ptpack::pickle {
namespace {

using testing::Bytes;
using testing::expect_error;

Bytes B(std::string_view s) { return Bytes(s.begin(), s.end()); }
#define PK(literal) B(std::string_view(literal, sizeof(literal) - 1))

// pickle.dumps({'a': [1, 2.5, 'x', None, True]}, protocol=N)
const Bytes kProto0 = PK("\x28\x64\x70\x30\x0a\x56\x61\x0a\x70\x31\x0a\x28\x6c\x70\x32\x0a\x49\x31\x0a\x61\x46\x32"
                         "\x2e\x35\x0a\x61\x56\x78\x0a\x70\x33\x0a\x61\x4e\x61\x49\x30\x31\x0a\x61\x73\x2e");
// ... protocol=2 with 'big': 2**70, 'neg': -5
const Bytes kProto2 = PK("\x80\x02\x7d\x71\x00\x28\x58\x01\x00\x00\x00\x61\x71\x01\x5d\x71\x02\x28\x4b\x01\x47\x40"
                         "\x04\x00\x00\x00\x00\x00\x00\x58\x01\x00\x00\x00\x78\x71\x03\x4e\x88\x65\x58\x03\x00\x00"
                         "\x00\x62\x69\x67\x71\x04\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40\x58\x03\x00\x00\x00"
                         "\x6e\x65\x67\x71\x05\x4a\xfb\xff\xff\xff\x75\x2e");
// ... protocol=4 with 'b': b'\x00\x01', 's': {1}, 'f': frozenset([2])
const Bytes kProto4 = PK("\x80\x04\x95\x3a\x00\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x61\x94\x5d\x94\x28\x4b"
                         "\x01\x47\x40\x04\x00\x00\x00\x00\x00\x00\x8c\x01\x78\x94\x4e\x88\x65\x8c\x01\x62\x94\x43"
                         "\x02\x00\x01\x94\x8c\x01\x73\x94\x8f\x94\x28\x4b\x01\x90\x8c\x01\x66\x94\x28\x4b\x02\x91"
                         "\x94\x75\x2e");
// pickle.dumps([bytearray(b'ab'), (1, 2, 3), 1e-05], protocol=5)
const Bytes kProto5 = PK("\x80\x05\x95\x22\x00\x00\x00\x00\x00\x00\x00\x5d\x94\x28\x96\x02\x00\x00\x00\x00\x00\x00"
                         "\x00\x61\x62\x94\x4b\x01\x4b\x02\x4b\x03\x87\x94\x47\x3e\xe4\xf8\xb5\x88\xe3\x68\xf1\x65"
                         "\x2e");
// pickle.dumps(collections.OrderedDict([('w', 1), ('b', 2)]), protocol=2)
const Bytes kOrderedDict = PK("\x80\x02\x63\x63\x6f\x6c\x6c\x65\x63\x74\x69\x6f\x6e\x73\x0a\x4f\x72\x64\x65\x72\x65"
                              "\x64\x44\x69\x63\x74\x0a\x71\x00\x29\x52\x71\x01\x28\x58\x01\x00\x00\x00\x77\x71\x02"
                              "\x4b\x01\x58\x01\x00\x00\x00\x62\x71\x03\x4b\x02\x75\x2e");

TEST(PickleReader, Protocol0TextOpcodes) {
  Pickle p = read_pickle(kProto0);
  EXPECT_EQ(p.protocol(), 0);
  EXPECT_EQ(repr(p.root()), "{'a': [1, 2.5, 'x', None, True]}");
  EXPECT_EQ(p.end_offset(), kProto0.size());
}

TEST(PickleReader, Protocol2BinaryOpcodesAndBigInts) {
  Pickle p = read_pickle(kProto2);
  EXPECT_EQ(p.protocol(), 2);
  EXPECT_EQ(repr(p.root()), "{'a': [1, 2.5, 'x', None, True], 'big': 1180591620717411303424, 'neg': -5}");
  EXPECT_EQ(p.root()->find("neg")->integer, -5);
  EXPECT_EQ(p.root()->find("big")->kind, Kind::kBigInt);
}

TEST(PickleReader, Protocol4FramesMemoizeSetsAndBytes) {
  Pickle p = read_pickle(kProto4);
  EXPECT_EQ(repr(p.root()), "{'a': [1, 2.5, 'x', None, True], 'b': b'\\x00\\x01', 's': {1}, 'f': frozenset({2})}");
}

TEST(PickleReader, Protocol5ByteArraysAndFloats) {
  Pickle p = read_pickle(kProto5);
  EXPECT_EQ(repr(p.root()), "[bytearray(b'ab'), (1, 2, 3), 1e-05]");
}

TEST(PickleReader, GlobalsAndReduceBecomeNodesNotCalls) {
  Pickle p = read_pickle(kOrderedDict);
  const Value* root = p.root();
  ASSERT_EQ(root->kind, Kind::kObject);
  EXPECT_TRUE(root->is_call_of("collections", "OrderedDict"));
  EXPECT_EQ(root->call, CallKind::kReduce);
  ASSERT_EQ(root->entries.size(), 2u);
  EXPECT_EQ(repr(root), "OrderedDict({'w': 1, 'b': 2})");
}

TEST(PickleReader, DictAssignmentReplacesLikePython) {
  // {'k': 1} then SETITEM 'k' = 2: Python keeps one key, the later value, in the first position.
  Bytes b = PK("\x80\x02}q\x00(X\x01\x00\x00\x00kK\x01X\x01\x00\x00\x00jK\x03X\x01\x00\x00\x00kK\x02u.");
  EXPECT_EQ(repr(read_pickle(b).root()), "{'k': 2, 'j': 3}");
}

TEST(PickleReader, BuildRecordsStateOnItsTarget) {
  // GLOBAL m C, EMPTY_TUPLE, NEWOBJ, EMPTY_DICT 'x'=1 SETITEM, BUILD, STOP
  Bytes b = PK("\x80\x02" "cm\nC\n" ")\x81" "}X\x01\x00\x00\x00xK\x01s" "b.");
  const Pickle p = read_pickle(b);
  const Value* obj = p.root();
  ASSERT_EQ(obj->kind, Kind::kObject);
  EXPECT_EQ(obj->call, CallKind::kNewObj);
  ASSERT_EQ(obj->states.size(), 1u);
  EXPECT_EQ(repr(obj->states[0]), "{'x': 1}");
}

TEST(PickleReader, PersistentIdsAreKeptForTheFormatLayer) {
  // (storage-like tuple) BINPERSID
  Bytes b = PK("\x80\x02(X\x07\x00\x00\x00storageK\x05tQ.");
  const Pickle p = read_pickle(b);
  const Value* v = p.root();
  ASSERT_EQ(v->kind, Kind::kPersistentId);
  EXPECT_EQ(repr(v->args), "('storage', 5)");
}

TEST(PickleReader, StackGlobalResolvesStrings) {
  Bytes b = PK("\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94.");
  const Pickle p = read_pickle(b);
  const Value* g = p.root();
  EXPECT_TRUE(g->is_global("os", "system"));
}

TEST(PickleReader, StopsAtStopAndReportsTheEnd) {
  Bytes b = PK("K\x01.K\x02.");
  Pickle p = read_pickle(b);
  EXPECT_EQ(p.root()->integer, 1);
  EXPECT_EQ(p.end_offset(), 3u);
}

TEST(PickleReader, ErrorsNameTheRuleAndOffset) {
  Error e = expect_error([] { read_pickle(PK("\x80\x02\xff")); }, "pickle.unknown-opcode");
  EXPECT_EQ(e.offset(), 2u);
  expect_error([] { read_pickle(PK("\x80\x02R.")); }, "pickle.stack-underflow");
  expect_error([] { read_pickle(PK("\x80\x02.")); }, "pickle.stack-underflow");
  expect_error([] { read_pickle(PK("\x80\x02h\x07.")); }, "pickle.memo-missing");
  expect_error([] { read_pickle(PK("\x80\x02K\x01")); }, "pickle.truncated");
  expect_error([] { read_pickle(PK("\x80\x02t.")); }, "pickle.no-mark");
  expect_error([] { read_pickle(PK("\x80\x02K\x01K\x02\x93.")); }, "pickle.stack-global");
  // BINUNICODE8 claiming 2^62 bytes: refused before any allocation.
  Error big = expect_error([] { read_pickle(PK("\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40.")); }, "kMaxPickleBytes");
  EXPECT_EQ(big.code(), ErrorCode::kLimitExceeded);
  expect_error([] { read_pickle(PK("\x80\x04\x95\xff\x00\x00\x00\x00\x00\x00\x00.")); }, "pickle.frame-past-end");
  expect_error([] { read_pickle(PK("\x80\x06N.")); }, "pickle.protocol");
  expect_error([] { read_pickle(PK("\x80\x02q\x01.")); }, "pickle.stack-underflow");
  expect_error([] { read_pickle(PK("\x80\x02Nr\xff\xff\xff\xff.")); }, "kMaxMemoIndex");
  expect_error([] { read_pickle(PK("\x80\x02K\x01" "a.")); }, "pickle.stack-underflow");
  expect_error([] { read_pickle(PK("\x80\x02K\x01K\x02" "a.")); }, "pickle.bad-target");
}

TEST(PickleReader, SelfReferenceIsAGraphNotARecursion) {
  // l = []; l.append(l)  (protocol 2: EMPTY_LIST BINPUT 0 BINGET 0 APPEND STOP)
  Bytes b = PK("\x80\x02]q\x00h\x00" "a.");
  const Pickle p = read_pickle(b);
  const Value* l = p.root();
  ASSERT_EQ(l->items.size(), 1u);
  EXPECT_EQ(l->items[0], l);
  EXPECT_NE(repr(l, 60, 4).find("..."), std::string::npos);  // printing stays bounded
}

TEST(PickleReader, DeepNestingDoesNotUseTheCStack) {
  // 200k nested lists built with MARK ... LIST: the machine is iterative.
  Bytes b = PK("\x80\x02");
  for (int i = 0; i < 200000; ++i) b.push_back('(');
  for (int i = 0; i < 200000; ++i) b.push_back('l');
  b.push_back('.');
  expect_error([&] { read_pickle(b); }, "kMaxPickleMarks");
  Bytes ok = PK("\x80\x02");
  for (int i = 0; i < 50000; ++i) ok.push_back(']');
  for (int i = 0; i < 49999; ++i) ok.push_back('a');
  ok.push_back('.');
  const Pickle deep = read_pickle(ok);
  EXPECT_EQ(deep.root()->kind, Kind::kList);
}

TEST(PythonFloatRepr, MatchesPython) {
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(100.0), "100.0");
  EXPECT_EQ(python_float_repr(1e-05), "1e-05");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(0.0), "0.0");
  EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
}

TEST(Disassemble, ListsOpcodesWithOffsetsLikePickletools) {
  const std::string text = disassemble(kOrderedDict);
  EXPECT_NE(text.find("       0: \\x80 PROTO"), std::string::npos) << text;
  EXPECT_NE(text.find("GLOBAL"), std::string::npos);
  EXPECT_NE(text.find("'collections OrderedDict'"), std::string::npos);
  EXPECT_NE(text.find("SETITEMS"), std::string::npos);
  EXPECT_NE(text.find("STOP"), std::string::npos);
}

TEST(Disassemble, ReportsWhereDecodingFails) {
  const std::string text = disassemble(PK("\x80\x02K"));
  EXPECT_NE(text.find("error:"), std::string::npos);
}

}  // namespace
}  // namespace ptpack::pickle
