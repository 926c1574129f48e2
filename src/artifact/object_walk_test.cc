#include "artifact/object_walk.h"

#include "testing.h"

namespace ptpack {
namespace {

using testing::Bytes;

// A tiny protocol-2 pickle writer for building value trees in tests.
class P {
 public:
  P() { b_ = {0x80, 0x02}; }
  P& global(const std::string& m, const std::string& n) { return raw("c" + m + "\n" + n + "\n"); }
  P& mark() { return raw("("); }
  P& tuple() { return raw("t"); }
  P& empty_tuple() { return raw(")"); }
  P& empty_dict() { return raw("}"); }
  P& setitems() { return raw("u"); }
  P& setitem() { return raw("s"); }
  P& reduce() { return raw("R"); }
  P& newobj() { return raw("\x81"); }
  P& build() { return raw("b"); }
  P& persid() { return raw("Q"); }
  P& no() { return raw("\x89"); }
  P& put(int i) { b_.push_back('q'); b_.push_back(uint8_t(i)); return *this; }
  P& get(int i) { b_.push_back('h'); b_.push_back(uint8_t(i)); return *this; }
  P& append() { return raw("a"); }
  P& empty_list() { return raw("]"); }
  P& i(int v) { b_.push_back('J'); testing::append_u32(b_, uint32_t(v)); return *this; }
  P& raw_long(uint64_t v) {  // LONG1 with 8 bytes (v < 2^63)
    b_.push_back(0x8a);
    b_.push_back(8);
    testing::append_u64(b_, v);
    return *this;
  }
  P& s(const std::string& v) {
    b_.push_back('X');
    testing::append_u32(b_, uint32_t(v.size()));
    return raw(v);
  }
  // _rebuild_tensor_v2(('storage', FloatStorage, key, 'cpu', numel), offset, size, stride, False, {})
  P& tensor(const std::string& key, int numel, int offset, std::vector<int> size, std::vector<int> stride) {
    global("torch._utils", "_rebuild_tensor_v2").mark();
    mark().s("storage").global("torch", "FloatStorage").s(key).s("cpu").i(numel).tuple().persid();
    i(offset);
    mark(); for (int v : size) i(v); tuple();
    mark(); for (int v : stride) i(v); tuple();
    no().empty_dict();
    return tuple().reduce();
  }
  Bytes done() { b_.push_back('.'); return b_; }

 private:
  P& raw(const std::string& t) { b_.insert(b_.end(), t.begin(), t.end()); return *this; }
  Bytes b_;
};

// Resolves every storage id to a storage of `numel` float32 elements, one per key.
struct Fixture {
  Artifact artifact;
  StorageResolver resolver = [this](const pickle::Value* pid) {
    const auto& items = pid->items;
    for (size_t i = 0; i < artifact.storages.size(); ++i) {
      if (artifact.storages[i].key == items[2]->text) return StorageRef{int(i), DType::kFloat32, false};
    }
    Storage s;
    s.key = items[2]->text;
    s.nbytes = uint64_t(items[4]->integer) * 4;
    s.location = "cpu";
    artifact.storages.push_back(s);
    return StorageRef{int(artifact.storages.size() - 1), DType::kFloat32, false};
  };
  void collect(const Bytes& bytes) {
    pickle_ = pickle::read_pickle(bytes);
    collect_tensors(pickle_, "", resolver, artifact);
  }
  pickle::Pickle pickle_;
};

TEST(ObjectWalk, StateDictPathsAndViews) {
  P p;
  p.empty_dict().mark().s("w").tensor("0", 10, 2, {3}, {2}).s("b").tensor("1", 4, 0, {2, 2}, {1, 2}).setitems();
  Fixture f;
  f.collect(p.done());
  ASSERT_EQ(f.artifact.tensors.size(), 2u);
  const Tensor& w = f.artifact.tensors[0];
  EXPECT_EQ(w.path, "w");
  EXPECT_EQ(w.offset, 2);
  EXPECT_EQ(w.shape, std::vector<int64_t>({3}));
  EXPECT_EQ(w.stride, std::vector<int64_t>({2}));
  EXPECT_FALSE(w.is_contiguous());
  EXPECT_EQ(f.artifact.tensors[1].path, "b");
  EXPECT_FALSE(f.artifact.tensors[1].is_contiguous());  // transposed
}

TEST(ObjectWalk, ModuleInternalsAreTransparent) {
  // Net() with state {'_parameters': {'weight': t}, '_modules': {'fc': Fc() with {'_buffers': {'b': t}}}}
  P p;
  p.global("m", "Net").empty_tuple().newobj();
  p.empty_dict().mark();
  p.s("_parameters").empty_dict().mark().s("weight").tensor("0", 4, 0, {4}, {1}).setitems();
  p.s("_modules").empty_dict().mark().s("fc");
  p.global("m", "Fc").empty_tuple().newobj().empty_dict().mark()
      .s("_buffers").empty_dict().mark().s("b").tensor("1", 1, 0, {}, {}).setitems()
      .s("n").i(3).setitems().build();
  p.setitems();
  p.setitems().build();
  Fixture f;
  f.collect(p.done());
  ASSERT_EQ(f.artifact.tensors.size(), 2u);
  EXPECT_EQ(f.artifact.tensors[0].path, "weight");
  EXPECT_EQ(f.artifact.tensors[1].path, "fc.b");
  EXPECT_TRUE(f.artifact.tensors[1].shape.empty());  // 0-dim
  const auto values = collect_values(f.pickle_, 10);
  ASSERT_EQ(values.size(), 1u) << pickle::repr(f.pickle_.root(), 2000, 20);
  EXPECT_EQ(values[0].path, "fc.n");
}

TEST(ObjectWalk, SharedTensorsAppearUnderEveryPath) {
  P p;
  p.empty_dict().mark().s("a").tensor("0", 4, 0, {4}, {1}).put(9).s("b").get(9).setitems();
  Fixture f;
  f.collect(p.done());
  ASSERT_EQ(f.artifact.tensors.size(), 2u);
  EXPECT_EQ(f.artifact.tensors[1].path, "b");
  EXPECT_EQ(f.artifact.tensors[0].storage, f.artifact.tensors[1].storage);
}

TEST(ObjectWalk, TensorBeyondItsStorageIsCorrupt) {
  P p;
  p.empty_dict().mark().s("w").tensor("0", 4, 2, {3}, {1}).setitems();
  Fixture f;
  Error e = testing::expect_error([&] { f.collect(p.done()); }, "tensor.out-of-storage");
  EXPECT_NE(std::string(e.what()).find("'w' reaches element 4"), std::string::npos) << e.what();
}

// Regression (hostile suite): sizes (2^32, 2^32) made numel wrap to 0, skipping the extent check.
TEST(ObjectWalk, NumelOverflowIsRefused) {
  P p;
  p.empty_dict().mark().s("w").global("torch._utils", "_rebuild_tensor_v2").mark();
  p.mark().s("storage").global("torch", "FloatStorage").s("0").s("cpu").i(4).tuple().persid();
  p.i(0).mark().raw_long(uint64_t{1} << 32).raw_long(uint64_t{1} << 32).tuple();
  p.mark().raw_long(uint64_t{1} << 32).i(1).tuple().no().empty_dict().tuple().reduce().setitems();
  Fixture f;
  testing::expect_error([&] { f.collect(p.done()); }, "tensor.numel-overflow");
}

TEST(ObjectWalk, CyclesAreNotFollowed) {
  // d = {}; d['self'] = d
  P p;
  p.empty_dict().put(0).s("self").get(0).setitem();
  Fixture f;
  f.collect(p.done());
  EXPECT_TRUE(f.artifact.tensors.empty());
  ASSERT_EQ(f.artifact.notes.size(), 1u);
  EXPECT_NE(f.artifact.notes[0].find("cycle at 'self'"), std::string::npos);
}

TEST(ObjectWalk, AmplificationHitsTheWalkCap) {
  // x0 = [{}]; x(k+1) = [xk, xk]: 2^40 paths to one leaf.
  P p;
  p.empty_list().empty_dict().append().put(0);
  for (int k = 0; k < 40; ++k) p.empty_list().get(k).append().get(k).append().put(k + 1);
  Fixture f;
  testing::expect_error([&] { f.collect(p.done()); }, "kMaxWalkSteps");
}

TEST(ObjectWalk, TensorAmplificationHitsTheTensorCap) {
  // The same with a tensor at the bottom: 2^40 paths to one tensor.
  P p;
  p.empty_list().tensor("0", 1, 0, {}, {}).append().put(0);
  for (int k = 0; k < 40; ++k) p.empty_list().get(k).append().get(k).append().put(k + 1);
  Fixture f;
  testing::expect_error([&] { f.collect(p.done()); }, "kMaxTensors");
}

TEST(ObjectWalk, ValuesSkipTensorsAndShowScalars) {
  P p;
  p.empty_dict().mark().s("epoch").i(10).s("state").tensor("0", 1, 0, {}, {})
      .s("hp").empty_dict().mark().s("layers").empty_list().i(2).append().i(2).append().setitems().setitems();
  pickle::Pickle pk = pickle::read_pickle(p.done());
  const auto values = collect_values(pk, 10);
  ASSERT_EQ(values.size(), 2u);
  EXPECT_EQ(values[0].path, "epoch");
  EXPECT_EQ(values[1].path, "hp.layers");
  EXPECT_EQ(pickle::repr(values[1].value), "[2, 2]");
}

}  // namespace
}  // namespace ptpack
