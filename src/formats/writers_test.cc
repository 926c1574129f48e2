#include "ptpack/writers.h"

#include <cstring>

#include "ptpack/error.h"
#include "ptpack/tensor_data.h"
#include "testing.h"

namespace ptpack {
namespace {

using testing::TempDir;

// An artifact over memory: one float32 storage of 8 elements (0..7) and one int64 storage (2).
Artifact source() {
  std::vector<uint8_t> bytes(8 * 4 + 2 * 8);
  for (int i = 0; i < 8; ++i) {
    const float f = float(i);
    std::memcpy(bytes.data() + i * 4, &f, 4);
  }
  const int64_t ints[2] = {-5, 1ll << 40};
  std::memcpy(bytes.data() + 32, ints, 16);
  Artifact a;
  a.sources.push_back(make_memory_source(bytes, "mem"));
  a.storages.push_back({"0", "", DType::kFloat32, 32, "cpu", ByteOrder::kLittle, 0, 0, false});
  a.storages.push_back({"1", "", DType::kInt64, 16, "cpu", ByteOrder::kLittle, 0, 32, false});
  Tensor t;
  t.path = "w";
  t.dtype = DType::kFloat32;
  t.shape = {2, 2};
  t.stride = {1, 2};  // transposed view
  t.offset = 2;
  t.storage = 0;
  a.tensors.push_back(t);
  Tensor i = t;
  i.path = "n";
  i.dtype = DType::kInt64;
  i.shape = {2};
  i.stride = {1};
  i.offset = 0;
  i.storage = 1;
  a.tensors.push_back(i);
  return a;
}

std::vector<uint8_t> bytes_of(const Artifact& a, const Tensor& t) {
  std::vector<uint8_t> out;
  stream_tensor_bytes(a, t, [&](std::span<const uint8_t> c) { out.insert(out.end(), c.begin(), c.end()); });
  return out;
}

TEST(Writers, TorchSaveRoundTripsThroughTheReader) {
  const Artifact a = source();
  TorchSavePlan plan;
  plan.root = Node::dict(true);
  plan.root.entries.emplace_back(Node::string("w"), Node::tensor(0));
  plan.root.entries.emplace_back(Node::string("w_again"), Node::tensor(0));  // same object
  plan.root.entries.emplace_back(Node::string("n"), Node::tensor(1));
  plan.tensors = {{DType::kFloat32, {2, 2}, {1, 2}, 2, 0, false, true},
                  {DType::kInt64, {2}, {1}, 0, 1, false, false}};
  DataSource s0{DataSource::Kind::kStorageRange, 0, 0, 32, DType::kFloat32, DType::kFloat32};
  DataSource s1{DataSource::Kind::kStorageRange, 1, 0, 16, DType::kInt64, DType::kInt64};
  plan.storages = {s0, s1};
  TempDir dir;
  const std::string path = (dir.path() / "out.pt").string();
  {
    OutputFile out(path);
    write_torch_save(a, plan, out, torch_save_archive_name(path));
    out.commit();
  }
  const Artifact back = open_artifact(path);
  EXPECT_EQ(back.format, Format::kTorchSaveZip);
  EXPECT_EQ(back.root, "out/");
  ASSERT_EQ(back.tensors.size(), 3u);
  EXPECT_EQ(back.tensors[0].path, "w");
  EXPECT_TRUE(back.tensors[0].is_parameter);
  EXPECT_EQ(back.tensors[0].stride, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(back.tensors[0].offset, 2);
  EXPECT_EQ(back.tensors[1].storage, back.tensors[0].storage);  // storage written once
  EXPECT_EQ(bytes_of(back, back.tensors[0]), bytes_of(a, a.tensors[0]));
  EXPECT_EQ(bytes_of(back, back.tensors[2]), bytes_of(a, a.tensors[1]));
  EXPECT_EQ(back.storages.size(), 2u);
}

TEST(Writers, SafetensorsOrdersByAlignmentThenNameAndMakesViewsContiguous) {
  const Artifact a = source();
  std::vector<SafetensorsTensor> tensors;
  tensors.push_back({"z_float", DType::kFloat32, {2, 2}, {DataSource::Kind::kTensor, 0, 0, 0, DType::kFloat32, DType::kFloat32}});
  tensors.push_back({"a_half", DType::kFloat16, {2, 2}, {DataSource::Kind::kTensor, 0, 0, 0, DType::kFloat32, DType::kFloat16}});
  tensors.push_back({"n", DType::kInt64, {2}, {DataSource::Kind::kTensor, 1, 0, 0, DType::kInt64, DType::kInt64}});
  TempDir dir;
  const std::string path = (dir.path() / "out.safetensors").string();
  {
    OutputFile out(path);
    write_safetensors(a, tensors, {{"format", "pt"}}, out);
    out.commit();
  }
  const Artifact back = open_artifact(path);
  ASSERT_EQ(back.tensors.size(), 3u);
  // I64 before F32 before F16: the reference writer's descending dtype order.
  EXPECT_EQ(back.tensors[0].path, "n");
  EXPECT_EQ(back.tensors[1].path, "z_float");
  EXPECT_EQ(back.tensors[2].path, "a_half");
  EXPECT_EQ(bytes_of(back, back.tensors[1]), bytes_of(a, a.tensors[0]));  // [[2,4],[3,5]]
  const std::vector<uint16_t> half = {0x4000, 0x4400, 0x4200, 0x4500};  // 2, 4, 3, 5
  const auto got = bytes_of(back, back.tensors[2]);
  EXPECT_EQ(got, std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(half.data()),
                                      reinterpret_cast<const uint8_t*>(half.data()) + 8));
  const uint64_t header = back.sources[0]->read_vector(0, 1)[0] | (uint64_t(back.sources[0]->read_vector(1, 1)[0]) << 8);
  EXPECT_EQ(header % 8, 0u);
}

TEST(Writers, SafetensorsRefusesDuplicatesAndUnnamedDtypes) {
  const Artifact a = source();
  TempDir dir;
  OutputFile out((dir.path() / "x.safetensors").string());
  SafetensorsTensor t{"w", DType::kFloat32, {2, 2}, {DataSource::Kind::kTensor, 0, 0, 0, DType::kFloat32, DType::kFloat32}};
  testing::expect_error([&] { write_safetensors(a, {t, t}, {}, out); }, "safetensors.duplicate");
  SafetensorsTensor q = t;
  q.dtype = DType::kQInt8;
  testing::expect_error([&] { write_safetensors(a, {q}, {}, out); }, "safetensors.dtype");
}

TEST(Writers, ArchiveNameFollowsTorch) {
  EXPECT_EQ(torch_save_archive_name("/a/b/model.v2.pt"), "model.v2");
  EXPECT_EQ(torch_save_archive_name("sd.pt"), "sd");
  EXPECT_EQ(torch_save_archive_name(".pt"), "archive");
  EXPECT_EQ(torch_save_archive_name("d/m\xc3\xa9.pt"), "archive");
}

}  // namespace
}  // namespace ptpack
