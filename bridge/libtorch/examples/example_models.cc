// Example models (example_models.h) and their registration by name.
#include "example_models.h"

#include <stdexcept>

#include "ptpack/libtorch/models.h"

namespace ptpack::examples {

namespace {

int64_t positive(const nlohmann::json& j, const char* key, int64_t fallback) {
  if (!j.contains(key)) return fallback;
  if (!j.at(key).is_number_integer() || j.at(key).get<int64_t>() <= 0) {
    throw std::invalid_argument(std::string("'") + key + "' must be a positive integer");
  }
  return j.at(key).get<int64_t>();
}

void only_keys(const nlohmann::json& j, std::initializer_list<const char*> keys) {
  if (!j.is_object()) throw std::invalid_argument("hyper-parameters must be a JSON object");
  for (const auto& item : j.items()) {
    if (std::find_if(keys.begin(), keys.end(), [&](const char* k) { return item.key() == k; }) == keys.end()) {
      throw std::invalid_argument("unknown hyper-parameter '" + item.key() + "'");
    }
  }
}

}  // namespace

SmallCnnOptions SmallCnnOptions::from_json(const nlohmann::json& j) {
  only_keys(j, {"channels", "classes", "side", "dropout"});
  SmallCnnOptions o;
  o.channels = positive(j, "channels", o.channels);
  o.classes = positive(j, "classes", o.classes);
  o.side = positive(j, "side", o.side);
  if (o.side % 4 != 0) throw std::invalid_argument("'side' must be a multiple of 4");
  if (j.contains("dropout")) {
    if (!j.at("dropout").is_number() || j.at("dropout").get<double>() < 0 || j.at("dropout").get<double>() >= 1) {
      throw std::invalid_argument("'dropout' must be a number in [0, 1)");
    }
    o.dropout = j.at("dropout").get<double>();
  }
  return o;
}

nlohmann::json SmallCnnOptions::to_json() const {
  return {{"channels", channels}, {"classes", classes}, {"side", side}, {"dropout", dropout}};
}

SmallCnnImpl::SmallCnnImpl(const SmallCnnOptions& o) : options(o) {
  namespace nn = ::torch::nn;
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, o.channels, 3).padding(1)));
  bn1 = register_module("bn1", nn::BatchNorm2d(o.channels));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(o.channels, 2 * o.channels, 3).padding(1)));
  drop = register_module("drop", nn::Dropout(o.dropout));
  fc = register_module("fc", nn::Linear(2 * o.channels * (o.side / 4) * (o.side / 4), o.classes));
}

::torch::Tensor SmallCnnImpl::forward(::torch::Tensor x) {
  x = ::torch::max_pool2d(::torch::relu(bn1(conv1(x))), 2);
  x = ::torch::max_pool2d(::torch::relu(conv2(x)), 2);
  return fc(drop(x.flatten(1)));
}

MlpImpl::MlpImpl(const nlohmann::json& j) {
  only_keys(j, {"inputs", "hidden", "outputs"});
  int64_t width = positive(j, "inputs", 4);
  layers = register_module("layers", ::torch::nn::Sequential());
  if (j.contains("hidden")) {
    if (!j.at("hidden").is_array()) throw std::invalid_argument("'hidden' must be a list of widths");
    for (const auto& h : j.at("hidden")) {
      if (!h.is_number_integer() || h.get<int64_t>() <= 0) throw std::invalid_argument("'hidden' widths must be positive integers");
      layers->push_back(::torch::nn::Linear(width, h.get<int64_t>()));
      layers->push_back(::torch::nn::ReLU());
      width = h.get<int64_t>();
    }
  }
  layers->push_back(::torch::nn::Linear(width, positive(j, "outputs", 3)));
}

::torch::Tensor MlpImpl::forward(::torch::Tensor x) { return layers->forward(x); }

TextRnnImpl::TextRnnImpl(const nlohmann::json& j) {
  only_keys(j, {"vocabulary", "embedding", "hidden", "classes"});
  const int64_t embedding = positive(j, "embedding", 8), hidden = positive(j, "hidden", 12);
  embed = register_module("embed", ::torch::nn::Embedding(positive(j, "vocabulary", 50), embedding));
  rnn = register_module("rnn", ::torch::nn::LSTM(::torch::nn::LSTMOptions(embedding, hidden).batch_first(true)));
  head = register_module("head", ::torch::nn::Linear(hidden, positive(j, "classes", 2)));
}

::torch::Tensor TextRnnImpl::forward(::torch::Tensor tokens) {
  auto out = std::get<0>(rnn(embed(tokens)));
  return head(out.select(1, out.size(1) - 1));
}

::torch::Tensor forward_any(::torch::nn::Module& module, const ::torch::Tensor& input) {
  if (auto* m = dynamic_cast<SmallCnnImpl*>(&module)) return m->forward(input);
  if (auto* m = dynamic_cast<MlpImpl*>(&module)) return m->forward(input);
  if (auto* m = dynamic_cast<TextRnnImpl*>(&module)) return m->forward(input);
  throw std::invalid_argument("forward_any: not an example model");
}

PTPACK_REGISTER_MODEL(SmallCnn, [](const nlohmann::json& h) -> ptpack::libtorch::ModulePtr {
  return std::make_shared<SmallCnnImpl>(SmallCnnOptions::from_json(h));
});
PTPACK_REGISTER_MODEL(Mlp, [](const nlohmann::json& h) -> ptpack::libtorch::ModulePtr { return std::make_shared<MlpImpl>(h); });
PTPACK_REGISTER_MODEL(TextRnn, [](const nlohmann::json& h) -> ptpack::libtorch::ModulePtr { return std::make_shared<TextRnnImpl>(h); });

}  // namespace ptpack::examples
