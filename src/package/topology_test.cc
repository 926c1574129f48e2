// The manifest reader: a topology is untrusted input like any archive.
#include "ptpack/topology.h"

#include <gtest/gtest.h>

#include "ptpack/assemble.h"
#include "testing.h"

namespace ptpack {
namespace {

using testing::Bytes;
using testing::bytes_of;

const char* kGood = R"({"format": "ptpack.topology", "version": 1, "source": "m.pt",
  "source_format": "torch_package", "pickle": "model/model.pkl", "root": "m/", "notes": [],
  "records": [{"name": "model/model.pkl", "size": 3, "omitted": false},
              {"name": ".data/0.storage", "size": 24, "omitted": true}],
  "keys": [{"key": "w", "kind": "parameter", "dtype": "float32", "shape": [2, 2], "stride": [2, 1],
            "record": ".data/0.storage", "byte_offset": 0, "nbytes": 16},
           {"key": "b", "kind": "buffer", "dtype": "float32", "shape": [2], "stride": [1],
            "record": ".data/0.storage", "byte_offset": 16, "nbytes": 8}]})";

std::optional<Topology> read(const std::string& manifest, Bytes pickle = bytes_of("pkl")) {
  const Bytes zip = testing::build_zip({{"m/model/model.pkl", std::move(pickle)},
                                        {"m/.ptpack/topology.json", bytes_of(manifest)}});
  return read_topology(zip::ZipArchive::open(make_memory_source(zip, "t.topo")));
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return text.replace(at, from.size(), to);
}

TEST(Topology, ReadsAManifest) {
  const auto t = read(kGood);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->keys.size(), 2u);
  EXPECT_TRUE(t->keys[1].buffer);
  EXPECT_EQ(t->omitted_bytes(), 24u);
  EXPECT_NE(topology_text(*t, 100).find("w  float32 [2, 2]"), std::string::npos);
}

TEST(Topology, ArchivesWithoutManifestAreNotTopologies) {
  const Bytes zip = testing::build_zip({{"m/data.pkl", bytes_of("x")}});
  EXPECT_FALSE(read_topology(zip::ZipArchive::open(make_memory_source(zip, "x.pt"))));
}

TEST(Topology, MalformedManifestsNameTheRule) {
  const std::vector<std::string> bad = {
      "not json",
      "[1, 2]",
      replaced(kGood, "\"format\": \"ptpack.topology\"", "\"format\": 7"),
      replaced(kGood, "\"version\": 1", "\"version\": 2"),
      replaced(kGood, "\"root\": \"m/\"", "\"root\": \"other/\""),
      replaced(kGood, "\"size\": 24", "\"size\": 32"),                        // gap in an omitted record
      replaced(kGood, "\"byte_offset\": 16", "\"byte_offset\": 20"),         // past the record's end
      replaced(kGood, "\"nbytes\": 16", "\"nbytes\": 12"),                   // not numel * size
      replaced(kGood, "\"stride\": [2, 1]", "\"stride\": [4, 1]"),           // not dense
      replaced(kGood, "\"dtype\": \"float32\"", "\"dtype\": \"float99\""),
      replaced(kGood, "\"record\": \".data/0.storage\"", "\"record\": \"nowhere\""),
      replaced(kGood, "\"size\": 3", "\"size\": 4"),                          // differs from the archive
      replaced(kGood, "\"omitted\": false", "\"omitted\": true"),             // stored yet omitted
      replaced(kGood, "\"name\": \".data/0.storage\"", "\"name\": \"../x\""),
      replaced(kGood, "\"shape\": [2, 2]", "\"shape\": \"2x2\""),
  };
  for (const std::string& manifest : bad) {
    testing::expect_error([&] { read(manifest); }, "topology.manifest");
  }
}

TEST(Topology, AssembledNamesDropTheExtension) {
  EXPECT_EQ(assembled_file_name("/a/b/ckpt_003.pt"), "ckpt_003.pt");
  EXPECT_EQ(assembled_file_name("w.safetensors"), "w.pt");
  EXPECT_EQ(assembled_file_name("dir/model.safetensors.index.json"), "model.pt");
  EXPECT_EQ(assembled_file_name("plain"), "plain.pt");
  EXPECT_EQ(assembled_file_name(".hidden"), ".hidden.pt");
}

}  // namespace
}  // namespace ptpack
