// torch.save's zip format, written from a plan. Layout and pickle follow FORMATS.md §2.1-2.7
// (caffe2/serialize/inline_container.cc, torch/serialization.py _save, torch/_tensor.py).
#include <algorithm>

#include "formats/write_data.h"
#include "ptpack/error.h"
#include "ptpack/pickle_writer.h"
#include "ptpack/writers.h"
#include "ptpack/zip_writer.h"

namespace ptpack {

namespace {

constexpr size_t kBatch = 1000;  // items per APPENDS/SETITEMS, as Python's pickler batches

class PickleBuilder {
 public:
  explicit PickleBuilder(const TorchSavePlan& plan) : plan_(plan), tensor_memo_(plan.tensors.size(), -1) {}

  std::vector<uint8_t> build() {
    node(plan_.root, 0);
    return e_.finish();
  }

 private:
  void node(const Node& n, int depth) {
    if (depth > 1000) throw Error(ErrorCode::kLimitExceeded, "write.depth", "the object nests too deep to write");
    switch (n.kind) {
      case Node::Kind::kNone: e_.none(); return;
      case Node::Kind::kBool: e_.boolean(n.boolean); return;
      case Node::Kind::kInt: e_.integer(n.integer); return;
      case Node::Kind::kBigInt: e_.big_integer(n.text); return;
      case Node::Kind::kFloat: e_.real(n.real); return;
      case Node::Kind::kString: e_.string(n.text); return;
      case Node::Kind::kTuple:
        if (n.items.size() > 3) e_.mark();
        for (const Node& item : n.items) node(item, depth + 1);
        e_.tuple(n.items.size());
        return;
      case Node::Kind::kList:
        e_.empty_list();
        for (size_t i = 0; i < n.items.size(); i += kBatch) {
          e_.mark();
          for (size_t j = i; j < std::min(n.items.size(), i + kBatch); ++j) node(n.items[j], depth + 1);
          e_.appends();
        }
        return;
      case Node::Kind::kDict:
        dict(n, depth);
        return;
      case Node::Kind::kTensor:
        tensor(size_t(n.integer));
        return;
    }
  }

  void dict(const Node& n, int depth) {
    if (n.ordered) {
      ordered_dict_call();
    } else {
      e_.empty_dict();
    }
    for (size_t i = 0; i < n.entries.size(); i += kBatch) {
      e_.mark();
      for (size_t j = i; j < std::min(n.entries.size(), i + kBatch); ++j) {
        node(n.entries[j].first, depth + 1);
        node(n.entries[j].second, depth + 1);
      }
      e_.setitems();
    }
    if (n.ordered && n.metadata) {
      // state_dict()'s `_metadata` attribute: BUILD on an OrderedDict updates its __dict__.
      e_.empty_dict();
      e_.mark();
      e_.string("_metadata");
      node(*n.metadata, depth + 1);
      e_.setitems();
      e_.build();
    }
  }

  void ordered_dict_call() {
    e_.global("collections", "OrderedDict");
    e_.tuple(0);
    e_.reduce();
  }

  void tensor(size_t index) {
    if (index >= plan_.tensors.size()) {
      throw Error(ErrorCode::kInvalidArgument, "write.tensor", "tensor node refers to a missing tensor");
    }
    if (tensor_memo_[index] >= 0) {
      e_.get(uint32_t(tensor_memo_[index]));  // the same tensor object, as torch.load gives it
      return;
    }
    const OutputTensor& t = plan_.tensors[index];
    if (t.is_parameter) {
      // Parameter.__reduce_ex__: _rebuild_parameter(data, requires_grad, OrderedDict())
      e_.global("torch._utils", "_rebuild_parameter");
      plain_tensor(t, false);
      e_.boolean(t.requires_grad);
      ordered_dict_call();
      e_.tuple(3);
      e_.reduce();
    } else {
      plain_tensor(t, t.requires_grad);
    }
    tensor_memo_[index] = int64_t(e_.put());
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict()); dtypes
  // without a legacy storage class use _rebuild_tensor_v3 over an UntypedStorage (torch 2.1+).
  void plain_tensor(const OutputTensor& t, bool requires_grad) {
    if (t.storage < 0 || size_t(t.storage) >= plan_.storages.size()) {
      throw Error(ErrorCode::kInvalidArgument, "write.storage", "tensor refers to a missing storage");
    }
    const DTypeInfo& info = dtype_info(t.dtype);
    const bool v3 = info.storage_class.empty();
    e_.global("torch._utils", v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
    e_.mark();
    // Persistent id ('storage', <class>, key, location, numel)
    e_.mark();
    e_.string("storage");
    e_.global("torch", v3 ? "UntypedStorage" : info.storage_class);
    e_.string(std::to_string(t.storage));
    e_.string("cpu");
    const uint64_t bytes = storage_bytes_[size_t(t.storage)];
    e_.integer(int64_t(v3 ? bytes : bytes / info.size * info.per_byte));
    e_.tuple(5);
    e_.persistent_id();
    e_.integer(t.offset);
    int_tuple(t.shape);
    int_tuple(t.stride);
    e_.boolean(requires_grad);
    ordered_dict_call();
    if (v3) e_.global("torch", info.name);
    e_.tuple(v3 ? 7 : 6);
    e_.reduce();
  }

  void int_tuple(const std::vector<int64_t>& values) {
    if (values.size() > 3) e_.mark();
    for (int64_t v : values) e_.integer(v);
    e_.tuple(values.size());
  }

 public:
  std::vector<uint64_t> storage_bytes_;  // output size of each storage

 private:
  const TorchSavePlan& plan_;
  std::vector<int64_t> tensor_memo_;
  pickle::Emitter e_;
};

std::vector<uint64_t> storage_sizes(const TorchSavePlan& plan, const Artifact& source) {
  std::vector<uint64_t> sizes;
  for (const DataSource& s : plan.storages) sizes.push_back(s.output_bytes(source));
  return sizes;
}

std::vector<uint8_t> build_pickle(const TorchSavePlan& plan, std::vector<uint64_t> sizes) {
  PickleBuilder b(plan);
  b.storage_bytes_ = std::move(sizes);
  return b.build();
}

}  // namespace

std::vector<uint8_t> torch_save_pickle(const Artifact& source, const TorchSavePlan& plan) {
  return build_pickle(plan, storage_sizes(plan, source));
}

std::string torch_save_archive_name(const std::string& destination) {
  std::string name = destination.substr(destination.rfind('/') == std::string::npos ? 0 : destination.rfind('/') + 1);
  if (const size_t dot = name.rfind('.'); dot != std::string::npos) name.resize(dot);
  const bool ascii = std::all_of(name.begin(), name.end(), [](char c) {
    return c > 0x20 && c < 0x7F && c != '\\';
  });
  return name.empty() || !ascii ? "archive" : name;
}

void write_torch_save(const Artifact& source, const TorchSavePlan& plan, OutputFile& out,
                      const std::string& archive_name, const ProgressFn& progress) {
  const std::vector<uint64_t> sizes = storage_sizes(plan, source);
  const std::vector<uint8_t> pickle = build_pickle(plan, sizes);
  const std::string root = archive_name + "/";
  zip::ZipWriter zip(out);
  zip.add(root + "data.pkl", pickle);
  zip.add(root + "byteorder", std::string_view("little"));
  // Records in the order torch 2.1-2.6 writes them: keys sorted as strings ("0", "1", "10", "2").
  std::vector<size_t> order(plan.storages.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [](size_t a, size_t b) { return std::to_string(a) < std::to_string(b); });
  for (size_t i : order) {
    const DataSource& s = plan.storages[i];
    zip.begin(root + "data/" + std::to_string(i), sizes[i]);
    // Unchanged bytes come straight from the mapped file (the CRC needs them in user space).
    formats::send_data(
        source, s, [&](const ByteSource& src, uint64_t offset, uint64_t n) { zip.write_from(src, offset, n); },
        [&](std::span<const uint8_t> chunk) { zip.write(chunk); }, progress);
    zip.end();
  }
  zip.add(root + "version", std::string_view("3\n"));
  zip.finish();
}

}  // namespace ptpack
