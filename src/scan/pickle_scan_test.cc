// The symbolic pickle machine: globals resolved through the memo, calls attributed, everything
// unresolvable or malformed reported with its offset.
#include "scan/scan_test_util.h"

namespace ptpack::scan {
namespace {

using testing::Bytes;
using test::cat;
using test::find_rule;
using test::scan_bytes;
using test::su;

// Bytes of a literal, NULs included.
#define b(literal) PTPACK_BYTES(literal)

TEST(PickleScan, SafeStateDictPickle) {
  // OrderedDict() with one int item, protocol 2.
  ScanReport r = scan_bytes(PTPACK_BYTES("\x80\x02" "ccollections\nOrderedDict\n)R" "X\x01\x00\x00\x00" "aK\x01s."));
  EXPECT_EQ(r.verdict, Verdict::kSafe);
  EXPECT_EQ(r.format, "pickle");
  ASSERT_EQ(r.globals.size(), 1u);
  EXPECT_TRUE(r.globals[0].allowed);
  EXPECT_EQ(r.globals[0].calls, 1u);
  EXPECT_EQ(r.globals[0].call_kinds, std::vector<std::string>{"REDUCE"});
}

TEST(PickleScan, GlobalAndCallAreReportedWithOffsets) {
  ScanReport r = scan_bytes(PTPACK_BYTES("\x80\x02" "cos\nsystem\nX\x02\x00\x00\x00id\x85R."));
  EXPECT_EQ(r.verdict, Verdict::kUnsafe);
  const Finding* g = find_rule(r, "scan.global-not-allowed");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->entry, "pickle");
  EXPECT_EQ(g->offset, 2u);
  const Finding* c = find_rule(r, "scan.call-not-allowed");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->offset, 21u);  // the REDUCE
  EXPECT_NE(c->message.find("os.system"), std::string::npos);
}

TEST(PickleScan, StackGlobalResolvedThroughTheMemo) {
  // 'posix' and 'system' are PUT, popped, fetched back with BINGET, then STACK_GLOBAL.
  Bytes p = cat({b("\x80\x04"), su("posix"), b("q\x00"), su("system"), b("q\x01" "00" "h\x00h\x01\x93"), su("x"),
                 b("\x85R.")});
  ScanReport r = scan_bytes(p);
  EXPECT_EQ(r.verdict, Verdict::kUnsafe);
  EXPECT_TRUE(test::has_global(r, "posix", "system"));
  EXPECT_TRUE(find_rule(r, "scan.call-not-allowed"));
}

TEST(PickleScan, MemoizeUsesTheMemoSize) {
  // MEMOIZE stores at len(memo): 'os' at 0, 'system' at 1, the global at 2; BINGET 2 calls it.
  Bytes p = cat({b("\x80\x05"), su("os"), b("\x94"), su("system"), b("\x94\x93\x94" "0" "N0" "h\x02"), su("x"), b("\x85R.")});
  ScanReport r = scan_bytes(p);
  EXPECT_TRUE(find_rule(r, "scan.call-not-allowed"));
  EXPECT_EQ(r.verdict, Verdict::kUnsafe);
}

TEST(PickleScan, UnresolvableThingsAreUnsafe) {
  // STACK_GLOBAL of a call result.
  Bytes sg = cat({b("\x80\x04" "cbuiltins\nstr\n"), su("os"), b("\x85R"), su("system"), b("\x93"), su("x"), b("\x85R.")});
  EXPECT_TRUE(find_rule(scan_bytes(sg), "scan.unresolved-global"));
  // EXT1.
  ScanReport ext = scan_bytes(PTPACK_BYTES("\x80\x02\x82\x01N\x85R."));
  EXPECT_TRUE(find_rule(ext, "scan.extension-code"));
  EXPECT_TRUE(find_rule(ext, "scan.unresolved-callable"));
  // getattr(...)(...): the callable is the result of a call (even of allowed globals).
  ScanReport chain = scan_bytes(PTPACK_BYTES("\x80\x02" "ccollections\nOrderedDict\n)R)R."));
  EXPECT_TRUE(find_rule(chain, "scan.call-of-call-result"));
  EXPECT_EQ(chain.verdict, Verdict::kUnsafe);
}

TEST(PickleScan, CallOpcodesAreAttributed) {
  ScanReport inst = scan_bytes(b("(S'x'\nios\nsystem\n."));
  ASSERT_EQ(inst.globals.size(), 1u);
  EXPECT_EQ(inst.globals[0].call_kinds, std::vector<std::string>{"INST"});
  ScanReport obj = scan_bytes(b("(cos\nsystem\nS'x'\no."));
  EXPECT_EQ(obj.globals.at(0).call_kinds, std::vector<std::string>{"OBJ"});
  ScanReport ex = scan_bytes(PTPACK_BYTES("\x80\x04" "csubprocess\nPopen\n)}\x92."));
  EXPECT_EQ(ex.globals.at(0).call_kinds, std::vector<std::string>{"NEWOBJ_EX"});
  ScanReport build = scan_bytes(PTPACK_BYTES("\x80\x02" "ccollections\nOrderedDict\n}b."));
  EXPECT_TRUE(find_rule(build, "scan.build-on-global"));
}

TEST(PickleScan, ReducePackagePersistentIdIsACall) {
  // ('reduce_package', 1, os.system, ('x',)) BINPERSID: torch.package calls func(importer, *args).
  ScanReport r = scan_bytes(PTPACK_BYTES("\x80\x02(X\x0e\x00\x00\x00reduce_packageK\x01" "cos\nsystem\nX\x01\x00\x00\x00x\x85tQ."));
  ASSERT_EQ(r.globals.size(), 1u);
  EXPECT_EQ(r.globals[0].call_kinds, std::vector<std::string>{"persistent_load(reduce_package)"});
}

TEST(PickleScan, MalformedPicklesReportTheOffset) {
  // Everything before the bad opcode is still reported: Python would have run it.
  ScanReport r = scan_bytes(PTPACK_BYTES("\x80\x02" "cos\nsystem\nN\x85R\xff"));
  const Finding* m = find_rule(r, "scan.malformed-pickle");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->offset, 16u);
  EXPECT_TRUE(find_rule(r, "scan.call-not-allowed"));
  ScanReport under = scan_bytes(PTPACK_BYTES("\x80\x02R."));
  ASSERT_TRUE(find_rule(under, "scan.malformed-pickle"));
  EXPECT_NE(find_rule(under, "scan.malformed-pickle")->message.find("underflow"), std::string::npos);
  ScanReport memo = scan_bytes(PTPACK_BYTES("\x80\x02h\x05."));
  EXPECT_TRUE(find_rule(memo, "scan.malformed-pickle"));
  ScanReport proto = scan_bytes(PTPACK_BYTES("\x80\x09N."));
  EXPECT_EQ(proto.verdict, Verdict::kError);  // PROTO 9 is no pickle start at all
}

TEST(PickleScan, DataAfterStopIsScanned) {
  ScanReport r = scan_bytes(PTPACK_BYTES("\x80\x02N.\x80\x02" "cos\nsystem\nN\x85R."));
  EXPECT_EQ(r.verdict, Verdict::kUnsafe);
  ASSERT_TRUE(find_rule(r, "scan.data-after-stop"));
  EXPECT_EQ(find_rule(r, "scan.data-after-stop")->offset, 4u);
  EXPECT_TRUE(find_rule(r, "scan.concatenated-pickle"));
  const Finding* call = find_rule(r, "scan.call-not-allowed");
  ASSERT_TRUE(call);
  EXPECT_EQ(call->offset, 4u + 15u);  // offsets stay file offsets
  // Junk after STOP is a warning only.
  ScanReport junk = scan_bytes(PTPACK_BYTES("\x80\x02N.\xff\xff"));
  EXPECT_EQ(junk.verdict, Verdict::kSafe);
  EXPECT_TRUE(find_rule(junk, "scan.trailing-data"));
}

TEST(PickleScan, NestedPicklesInBytesAreScanned) {
  Bytes inner = b("\x80\x02" "cos\nsystem\nN\x85R.");
  Bytes outer = cat({b("\x80\x03" "C"), Bytes{uint8_t(inner.size())}, inner, b(".")});
  ScanReport r = scan_bytes(outer);
  EXPECT_TRUE(find_rule(r, "scan.nested-artifact"));
  const Finding* call = find_rule(r, "scan.call-not-allowed");
  ASSERT_TRUE(call);
  EXPECT_EQ(call->entry, "pickle#bytes@2");
}

TEST(PickleScan, MemoAmplificationIsUnsafe) {
  Bytes p = b("\x80\x02]q\x00");
  for (int level = 1; level < 10; ++level) {
    p.push_back('0');
    p.push_back('(');
    for (int i = 0; i < 10; ++i) { p.push_back('h'); p.push_back(uint8_t(level - 1)); }
    p.push_back('l');
    p.push_back('q');
    p.push_back(uint8_t(level));
  }
  p.push_back('.');
  ScanReport r = scan_bytes(p);
  EXPECT_TRUE(find_rule(r, "scan.memo-amplification"));
  EXPECT_EQ(r.verdict, Verdict::kUnsafe);
}

TEST(PickleScan, FindingsAreCapped) {
  // Ten thousand distinct disallowed globals: findings stop at kMaxFindings, the rest counted.
  Bytes p = b("\x80\x02");
  for (int i = 0; i < 10000; ++i) {
    const std::string g = "cm" + std::to_string(i) + "\nf\n0";
    p.insert(p.end(), g.begin(), g.end());
  }
  p.insert(p.end(), {'N', '.'});
  ScanReport r = scan_bytes(p);
  EXPECT_EQ(r.findings.size(), kMaxFindings);
  EXPECT_EQ(r.findings_dropped, 10000 - kMaxFindings);
}

}  // namespace
}  // namespace ptpack::scan
