#include "ptpack/tree.h"

#include "ptpack/error.h"
#include "ptpack/pickle_writer.h"
#include "testing.h"

namespace ptpack {
namespace {

Artifact pickle_artifact(const std::vector<uint8_t>& bytes) {
  Artifact a;
  a.format = Format::kPickle;
  a.pickles.push_back({"pickle", "", pickle::read_pickle(bytes)});
  return a;
}

TEST(Tree, PlainDataIsKeptAndTheRestDroppedWithNotes) {
  pickle::Emitter e;
  e.empty_dict();
  e.mark();
  e.string("epoch");
  e.integer(3);
  e.string("size");
  e.global("torch", "Size");
  e.integer(2);
  e.integer(3);
  e.tuple(2);
  e.tuple(1);
  e.reduce();
  e.string("device");
  e.global("torch", "device");
  e.string("cpu");
  e.tuple(1);
  e.reduce();
  e.setitems();
  const Artifact a = pickle_artifact(e.finish());
  const Tree t = build_tree(a);
  ASSERT_EQ(t.root.kind, Node::Kind::kDict);
  ASSERT_EQ(t.root.entries.size(), 2u);  // epoch, size; the device is dropped
  EXPECT_EQ(t.root.entries[0].second.integer, 3);
  EXPECT_EQ(t.root.entries[1].second.kind, Node::Kind::kTuple);
  EXPECT_EQ(t.root.entries[1].second.items.size(), 2u);
  ASSERT_EQ(t.notes.size(), 1u);
  EXPECT_NE(t.notes[0].find("'device': torch.device dropped"), std::string::npos) << t.notes[0];
}

TEST(Tree, MemoAmplificationIsCapped) {
  // a = [0] * 4000 (one list), b = [a] * 4000 through the memo: 16M leaves as a tree.
  pickle::Emitter e;
  e.empty_list();
  e.mark();
  for (int i = 0; i < 4000; ++i) e.integer(i);
  e.appends();
  const uint32_t a = e.put();
  e.empty_list();
  e.mark();
  for (int i = 0; i < 4000; ++i) e.get(a);
  e.appends();
  const Artifact art = pickle_artifact(e.finish());
  testing::expect_error([&] { build_tree(art); }, "kMaxTreeNodes");
}

}  // namespace
}  // namespace ptpack
