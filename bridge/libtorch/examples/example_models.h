// Example models for the bridge's tests and the train_resume program. SmallCnn is defined
// identically in Python (tests/bridge/small_cnn.py): same modules, same registration order, so
// the same state-dict keys. All three are registered in ModelRegistry::global() by name, with
// their hyper-parameters as JSON, when this file's object is linked (it is, by anything that
// uses SmallCnn).
#pragma once

#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace ptpack::examples {

// conv(1->c, 3x3) - BatchNorm - ReLU - maxpool 2 - conv(c->2c, 3x3) - ReLU - maxpool 2 - dropout -
// linear(2c * (side/4)^2 -> classes). Input: N x 1 x side x side.
struct SmallCnnOptions {
  int64_t channels = 8;
  int64_t classes = 10;
  int64_t side = 16;
  double dropout = 0.25;
  static SmallCnnOptions from_json(const nlohmann::json& hparams);  // throws std::invalid_argument
  nlohmann::json to_json() const;
};

struct SmallCnnImpl : ::torch::nn::Module {
  explicit SmallCnnImpl(const SmallCnnOptions& options = {});
  ::torch::Tensor forward(::torch::Tensor x);

  SmallCnnOptions options;
  ::torch::nn::Conv2d conv1{nullptr};
  ::torch::nn::BatchNorm2d bn1{nullptr};
  ::torch::nn::Conv2d conv2{nullptr};
  ::torch::nn::Dropout drop{nullptr};
  ::torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(SmallCnn);

// A multi-layer perceptron: {"inputs": 4, "hidden": [16, 16], "outputs": 3}.
struct MlpImpl : ::torch::nn::Module {
  explicit MlpImpl(const nlohmann::json& hparams);
  ::torch::Tensor forward(::torch::Tensor x);
  ::torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(Mlp);

// Embedding + LSTM + linear head: {"vocabulary": 50, "embedding": 8, "hidden": 12, "classes": 2}.
struct TextRnnImpl : ::torch::nn::Module {
  explicit TextRnnImpl(const nlohmann::json& hparams);
  ::torch::Tensor forward(::torch::Tensor tokens);  // N x T int64 -> N x classes
  ::torch::nn::Embedding embed{nullptr};
  ::torch::nn::LSTM rnn{nullptr};
  ::torch::nn::Linear head{nullptr};
};
TORCH_MODULE(TextRnn);

// Forward of any of the three on an input that fits it (used by tests that hold a module by its
// base type after load_model).
::torch::Tensor forward_any(::torch::nn::Module& module, const ::torch::Tensor& input);

}  // namespace ptpack::examples
