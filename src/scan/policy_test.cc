// The built-in allowlists, contexts, and custom policy files.
#include <fstream>

#include "scan/scan_test_util.h"

namespace ptpack::scan {
namespace {

TEST(Policy, WeightsIsTorchsWeightsOnlyList) {
  const Policy p = Policy::weights();
  const std::set<std::string> none;
  for (const char* g : {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage",
                        "torch.float8_e4m3fn", "torch.Size", "_codecs.encode", "torch.per_channel_affine",
                        "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout"}) {
    const std::string s(g);
    const size_t dot = s.rfind('.');
    EXPECT_TRUE(p.allows(s.substr(0, dot), s.substr(dot + 1), Context::kPlain, none)) << g;
  }
  EXPECT_TRUE(p.allows("__builtin__", "set", Context::kPlain, none));  // Python 2 name mapping
  for (const char* g : {"os.system", "builtins.eval", "builtins.getattr", "torch.load", "torch.nn.modules.conv.Conv2d",
                        "__torch__.M", "collections.OrderedDict.__init__", "torch.jit._pickle.build_intlist"}) {
    const std::string s(g);
    const size_t dot = s.rfind('.');
    EXPECT_FALSE(p.allows(s.substr(0, dot), s.substr(dot + 1), Context::kTorchScript, none)) << g;
  }
  EXPECT_FALSE(p.allows_code(Context::kTorchPackage));
}

TEST(Policy, TorchAddsContainerSpecificNames) {
  const Policy p = Policy::torch();
  const std::set<std::string> pkg{"mymod", "a.b"};
  EXPECT_TRUE(p.allows("__torch__.torch.nn.modules.linear", "Linear", Context::kTorchScript, {}));
  EXPECT_FALSE(p.allows("__torch__.torch.nn.modules.linear", "Linear", Context::kPlain, {}));
  EXPECT_TRUE(p.allows("torch.jit._pickle", "build_intlist", Context::kTorchScript, {}));
  EXPECT_TRUE(p.allows("torch.nn.modules.conv", "Conv2d", Context::kPlain, {}));
  EXPECT_FALSE(p.allows("torch.nn.modules.module", "register_module_forward_hook", Context::kPlain, {}));
  EXPECT_TRUE(p.allows("mymod", "Net", Context::kTorchPackage, pkg));
  EXPECT_TRUE(p.allows("<torch_package_3>.a.b", "Net.Inner", Context::kTorchPackage, pkg));
  EXPECT_FALSE(p.allows("mymod", "Net.__init__.__globals__", Context::kTorchPackage, pkg));
  EXPECT_FALSE(p.allows("os", "system", Context::kTorchPackage, pkg));
  EXPECT_FALSE(p.allows("mymod", "Net", Context::kPlain, pkg));
  EXPECT_TRUE(p.allows_code(Context::kTorchPackage));
  EXPECT_FALSE(p.allows_code(Context::kPlain));
}

TEST(Policy, CustomFiles) {
  testing::TempDir dir;
  const std::string good = dir.write("p.json", testing::bytes_of(R"({"extends": "torch", "allow": ["numpy.core.multiarray._reconstruct", "mypkg.models.*"]})"));
  const Policy p = Policy::from_file(good);
  EXPECT_EQ(p.name(), "custom");
  EXPECT_TRUE(p.allows("numpy.core.multiarray", "_reconstruct", Context::kPlain, {}));
  EXPECT_TRUE(p.allows("mypkg.models", "Net", Context::kPlain, {}));
  EXPECT_FALSE(p.allows("mypkg.models", "Net.__init__", Context::kPlain, {}));  // '*' is one identifier
  EXPECT_TRUE(p.allows("__torch__", "M", Context::kTorchScript, {}));          // extends torch
  for (const char* bad : {"[]", R"({"allow": ["os"]})", R"({"allow": ["os.sys tem"]})", R"({"extends": "all"})",
                          R"({"allowed": []})", "not json"}) {
    const std::string path = dir.write("bad.json", testing::bytes_of(bad));
    testing::expect_error([&] { Policy::from_file(path); }, "scan.policy-file");
  }
  testing::expect_error([&] { Policy::from_file(dir.path().string() + "/missing.json"); }, "scan.policy-file");
}

}  // namespace
}  // namespace ptpack::scan
