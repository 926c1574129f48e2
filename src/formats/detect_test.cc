// Content-based format detection and the errors for files that are not artifacts.
#include "ptpack/artifact.h"
#include "testing.h"
#include <cstring>

namespace ptpack {
namespace {

using testing::Bytes;
using testing::bytes_of;

class Detect : public ::testing::Test {
 protected:
  std::string write(const Bytes& b, const std::string& name = "file.pt") { return dir_.write(name, b); }
  testing::TempDir dir_;
};

TEST_F(Detect, EmptyFile) {
  testing::expect_error([&] { open_artifact(write({})); }, "format.empty");
}

TEST_F(Detect, PreviewAndTarFormatsAreNamed) {
  Error e = testing::expect_error([&] { open_artifact(write(bytes_of("PYTORCH1xxxxxxxx"))); }, "format.preview");
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  Bytes tar(1024, 0);
  std::memcpy(tar.data() + 257, "ustar", 5);
  testing::expect_error([&] { open_artifact(write(tar)); }, "format.tar");
}

TEST_F(Detect, RandomBytesAreNotAFormat) {
  testing::expect_error([&] { open_artifact(write(bytes_of("\x01\x02garbage"))); }, "format.unknown");
}

TEST_F(Detect, ExtensionDoesNotMatter) {
  // A bare pickle named .safetensors is still read as a pickle.
  const Bytes pickle = PTPACK_BYTES("\x80\x02}q\x00X\x01\x00\x00\x00" "aK\x01s.");
  Artifact a = open_artifact(write(pickle, "weights.safetensors"));
  EXPECT_EQ(a.format, Format::kPickle);
  EXPECT_EQ(a.pickles.size(), 1u);
}

TEST_F(Detect, ZipWithoutTorchRecords) {
  Bytes zip = testing::build_zip({{"x/readme.txt", bytes_of("hi")}});
  testing::expect_error([&] { open_artifact(write(zip)); }, "format.zip-kind");
}

TEST_F(Detect, TorchZipNeedsARootFolderAndAVersion) {
  testing::expect_error([&] { open_artifact(write(testing::build_zip({{"data.pkl", bytes_of("N.")}}))); },
                        "torch.no-root-folder");
  testing::expect_error([&] { open_artifact(write(testing::build_zip({{"a/data.pkl", bytes_of("N.")}}))); },
                        "torch.missing-version");
}

TEST_F(Detect, MinimalTorchZip) {
  // data.pkl = pickle of None, version 3: a valid (empty) torch.save file; deflated records too.
  Bytes zip = testing::build_zip({{"a/data.pkl", PTPACK_BYTES("\x80\x02N."), true}, {"a/version", bytes_of("3\n")}});
  Artifact a = open_artifact(write(zip));
  EXPECT_EQ(a.format, Format::kTorchSaveZip);
  EXPECT_EQ(a.format_version, "3");
  EXPECT_TRUE(a.tensors.empty());
}

TEST_F(Detect, MissingStorageRecordIsNamed) {
  // {'w': _rebuild_tensor_v2(('storage', FloatStorage, '0', 'cpu', 1), 0, (), (), False, {})}
  const Bytes pk = PTPACK_BYTES(
      "\x80\x02}X\x01\x00\x00\x00w"
      "ctorch._utils\n_rebuild_tensor_v2\n(" "(X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x00" "0"
      "X\x03\x00\x00\x00" "cpuK\x01tQK\x00))\x89}tRs.");
  Bytes good = testing::build_zip({{"a/data.pkl", pk}, {"a/data/0", Bytes(4, 0)}, {"a/version", bytes_of("3\n")}});
  EXPECT_EQ(open_artifact(write(good)).tensors.size(), 1u);
  Bytes missing = testing::build_zip({{"a/data.pkl", pk}, {"a/version", bytes_of("3\n")}});
  Error e = testing::expect_error([&] { open_artifact(write(missing)); }, "storage.missing-record");
  EXPECT_EQ(e.entry(), "a/data/0");
  Bytes short_record = testing::build_zip({{"a/data.pkl", pk}, {"a/data/0", Bytes(3, 0)}, {"a/version", bytes_of("3\n")}});
  testing::expect_error([&] { open_artifact(write(short_record)); }, "storage.size-mismatch");
}

}  // namespace
}  // namespace ptpack
