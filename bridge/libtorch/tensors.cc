// ptpack tensors <-> at::Tensor (ptpack/libtorch/tensors.h).
#include "ptpack/libtorch/tensors.h"

#include <sys/mman.h>

#include <map>
#include <mutex>

#include "ptpack/error.h"
#include "ptpack/output_file.h"
#include "ptpack/tensor_data.h"
#include "ptpack/writers.h"

namespace ptpack::libtorch {

namespace {

struct DTypePair {
  DType dtype;
  at::ScalarType type;
};
constexpr DTypePair kDTypes[] = {
    {DType::kFloat64, at::kDouble},      {DType::kFloat32, at::kFloat},   {DType::kFloat16, at::kHalf},
    {DType::kBFloat16, at::kBFloat16},   {DType::kInt64, at::kLong},      {DType::kInt32, at::kInt},
    {DType::kInt16, at::kShort},         {DType::kInt8, at::kChar},       {DType::kUInt8, at::kByte},
    {DType::kBool, at::kBool},           {DType::kComplex32, at::kComplexHalf},
    {DType::kComplex64, at::kComplexFloat}, {DType::kComplex128, at::kComplexDouble},
};

// A private, copy-on-write mapping of a whole file: tensors may be written (the writes stay in
// this process) while unwritten pages remain shared with the page cache. Kept alive by every
// storage made from it.
struct PrivateMapping {
  void* base = nullptr;
  size_t size = 0;
  ~PrivateMapping() {
    if (base) ::munmap(base, size);
  }
};

// A DataPtr context: the mapping stays alive as long as one torch storage uses it.
void delete_mapping_ref(void* context) { delete static_cast<std::shared_ptr<PrivateMapping>*>(context); }

at::Tensor view_of(const c10::Storage& storage, at::ScalarType type, const Tensor& t) {
  return at::empty({0}, at::TensorOptions().dtype(type)).set_(storage, t.offset, t.shape, t.stride);
}

at::ScalarType checked_type(const Tensor& t, const Artifact& a) {
  auto type = scalar_type_of(t.dtype);
  if (!type || t.layout != "strided" || !t.quantization.empty()) {
    Error e(ErrorCode::kUnsupported, "torch.dtype",
            "'" + t.path + "' is a " + std::string(dtype_name(t.dtype)) +
                (t.layout != "strided" ? " " + t.layout : std::string()) + " tensor, which LibTorch 1.13 cannot hold");
    e.add_file(a.path);
    throw e;
  }
  if (t.storage < 0) {
    Error e(ErrorCode::kUnsupported, "torch.no-data", "'" + t.path + "' has no data (a meta tensor)");
    e.add_file(a.path);
    throw e;
  }
  return *type;
}

// The element type a storage's bytes are read as (byte swapping is per element).
DType element_type(const Storage& s, const Tensor& t) { return s.dtype == DType::kUInt8 ? t.dtype : s.dtype; }

}  // namespace

std::optional<at::ScalarType> scalar_type_of(DType dtype) {
  for (const DTypePair& p : kDTypes) {
    if (p.dtype == dtype) return p.type;
  }
  return std::nullopt;
}

std::optional<DType> dtype_of(at::ScalarType type) {
  for (const DTypePair& p : kDTypes) {
    if (p.type == type) return p.dtype;
  }
  return std::nullopt;
}

// --- reading -------------------------------------------------------------------------------------

struct TorchTensors::Impl {
  const Artifact& artifact;
  std::map<int, std::shared_ptr<PrivateMapping>> mappings;  // by source index; null = not mappable
  std::map<int, c10::Storage> storages;                      // by storage index
  std::map<int, bool> mapped;                                // by storage index

  std::shared_ptr<PrivateMapping> mapping(int source) {
    auto [it, added] = mappings.try_emplace(source);
    if (added) {
      const ByteSource& src = *artifact.sources.at(size_t(source));
      if (src.file_descriptor() >= 0 && src.size() > 0) {
        void* p = ::mmap(nullptr, size_t(src.size()), PROT_READ | PROT_WRITE, MAP_PRIVATE, src.file_descriptor(), 0);
        if (p != MAP_FAILED) {
          it->second = std::make_shared<PrivateMapping>();
          it->second->base = p;
          it->second->size = size_t(src.size());
        }
      }
    }
    return it->second;
  }

  const c10::Storage& storage(int index, const Tensor& first_user) {
    auto found = storages.find(index);
    if (found != storages.end()) return found->second;
    const Storage& s = artifact.storages.at(size_t(index));
    const DType element = element_type(s, first_user);
    const uint64_t align = std::min<uint64_t>(dtype_size(element), 16);
    const bool plain = !s.compressed && (s.byte_order == ByteOrder::kLittle || dtype_info(element).swap_unit == 1);
    std::shared_ptr<PrivateMapping> map = plain && s.offset % align == 0 ? mapping(s.source) : nullptr;
    c10::Storage storage;
    if (map && s.offset + s.nbytes <= map->size) {
      auto* context = new std::shared_ptr<PrivateMapping>(map);
      void* data = static_cast<uint8_t*>(map->base) + s.offset;
      storage = c10::Storage(c10::Storage::use_byte_size_t(), size_t(s.nbytes),
                             at::DataPtr(data, context, &delete_mapping_ref, at::Device(at::kCPU)),
                             /*allocator=*/nullptr, /*resizable=*/false);
      mapped[index] = true;
    } else {
      storage = c10::Storage(c10::Storage::use_byte_size_t(), size_t(s.nbytes), at::getCPUAllocator(), false);
      uint8_t* out = static_cast<uint8_t*>(storage.data());
      DataSource d;
      d.kind = DataSource::Kind::kStorageRange;
      d.index = index;
      d.byte_length = s.nbytes;
      d.from = d.to = element;
      uint64_t done = 0;
      stream_data(artifact, d, [&](std::span<const uint8_t> chunk) {
        std::memcpy(out + done, chunk.data(), chunk.size());
        done += chunk.size();
      });
      mapped[index] = false;
    }
    return storages.emplace(index, std::move(storage)).first->second;
  }
};

TorchTensors::TorchTensors(const Artifact& artifact) : impl_(new Impl{artifact, {}, {}, {}}) {}
TorchTensors::~TorchTensors() = default;

at::Tensor TorchTensors::tensor(size_t index) {
  const Tensor& t = impl_->artifact.tensors.at(index);
  const at::ScalarType type = checked_type(t, impl_->artifact);
  return view_of(impl_->storage(t.storage, t), type, t);
}

bool TorchTensors::zero_copy(size_t index) const {
  const Tensor& t = impl_->artifact.tensors.at(index);
  auto it = impl_->mapped.find(t.storage);
  return it != impl_->mapped.end() && it->second;
}

TensorSourceView::TensorSourceView(const Artifact& artifact, const Tensor& t) : artifact_(artifact) {
  const at::ScalarType type = checked_type(t, artifact);
  const Storage& s = artifact.storages.at(size_t(t.storage));
  const DType element = element_type(s, t);
  const bool plain = !s.compressed && (s.byte_order == ByteOrder::kLittle || dtype_info(element).swap_unit == 1);
  const uint64_t align = std::min<uint64_t>(dtype_size(element), 16);
  if (plain && s.offset % align == 0) {
    const ByteSource& src = *artifact.sources.at(size_t(s.source));
    if (auto view = src.view(s.offset, s.nbytes)) {
      // A read-only view: the caller promises not to write through it (it only copies from it).
      void* data = const_cast<uint8_t*>(view->data());
      c10::Storage storage(c10::Storage::use_byte_size_t(), size_t(s.nbytes),
                           at::DataPtr(data, at::Device(at::kCPU)), nullptr, false);
      tensor_ = view_of(storage, type, t);
      source_ = s.source;
      release_offset_ = s.offset;
      release_length_ = s.nbytes;
      return;
    }
  }
  // Deflated, big-endian or unmapped: the tensor's elements, read once.
  tensor_ = at::empty(t.shape, at::TensorOptions().dtype(type));
  uint8_t* out = static_cast<uint8_t*>(tensor_.data_ptr());
  uint64_t done = 0;
  stream_tensor_bytes(artifact, t, [&](std::span<const uint8_t> chunk) {
    std::memcpy(out + done, chunk.data(), chunk.size());
    done += chunk.size();
  });
}

TensorSourceView::~TensorSourceView() {
  tensor_.reset();
  if (release_length_ > 0) artifact_.sources.at(size_t(source_))->release(release_offset_, release_length_);
}

// --- writing -------------------------------------------------------------------------------------

namespace {

// The bytes of one CPU torch storage as a ByteSource, without copying; holds the storage.
class StorageSource final : public ByteSource {
 public:
  StorageSource(c10::Storage storage, std::string name) : storage_(std::move(storage)), name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return storage_.nbytes(); }
  void read_at(uint64_t offset, std::span<uint8_t> out) const override {
    check_range(offset, out.size());
    if (!out.empty()) std::memcpy(out.data(), static_cast<const uint8_t*>(storage_.data()) + offset, out.size());
  }
  std::optional<std::span<const uint8_t>> view(uint64_t offset, uint64_t length) const override {
    check_range(offset, length);
    return std::span<const uint8_t>(static_cast<const uint8_t*>(storage_.data()) + offset, size_t(length));
  }

 private:
  c10::Storage storage_;
  std::string name_;
};

}  // namespace

Node tensor_node(std::vector<at::Tensor>& tensors, const at::Tensor& t) {
  tensors.push_back(t);
  return Node::tensor(tensors.size() - 1);
}

void write_torch_file(const std::string& path, const Node& root, const std::vector<at::Tensor>& tensors) {
  // The writer streams from an Artifact: make one whose sources are the tensors' storages.
  Artifact source;
  source.path = "<torch tensors>";
  TorchSavePlan plan;
  plan.root = root;
  std::map<const void*, int> storage_index;  // StorageImpl -> plan storage
  for (size_t i = 0; i < tensors.size(); ++i) {
    at::Tensor t = tensors[i].detach();
    if (t.is_sparse() || t.is_quantized() || t.layout() != at::kStrided) {
      throw Error(ErrorCode::kUnsupported, "torch.layout", "tensor " + std::to_string(i) + " is not a dense strided tensor");
    }
    if (!t.device().is_cpu()) t = t.to(at::kCPU);
    auto dtype = dtype_of(t.scalar_type());
    if (!dtype) {
      throw Error(ErrorCode::kUnsupported, "torch.dtype", std::string("tensor dtype ") + c10::toString(t.scalar_type()) +
                  " has no torch.save name in ptpack");
    }
    const c10::Storage& st = t.storage();
    auto [it, added] = storage_index.try_emplace(st.unsafeGetStorageImpl(), int(plan.storages.size()));
    if (added) {
      Storage s;
      s.key = std::to_string(it->second);
      s.dtype = *dtype;
      s.nbytes = st.nbytes();
      s.location = "cpu";
      s.source = int(source.sources.size());
      source.sources.push_back(std::make_shared<StorageSource>(st, "tensor " + std::to_string(i)));
      source.storages.push_back(std::move(s));
      DataSource d;
      d.kind = DataSource::Kind::kStorageRange;
      d.index = it->second;
      d.byte_length = st.nbytes();
      d.from = d.to = *dtype;
      plan.storages.push_back(d);
    } else if (source.storages[size_t(it->second)].dtype != *dtype) {
      throw Error(ErrorCode::kUnsupported, "torch.storage-dtypes",
                  "tensor " + std::to_string(i) + " views a storage shared with a tensor of another dtype");
    }
    OutputTensor o;
    o.dtype = *dtype;
    o.shape = t.sizes().vec();
    o.stride = t.strides().vec();
    o.offset = t.storage_offset();
    o.storage = it->second;
    plan.tensors.push_back(std::move(o));
  }
  OutputFile out(path);
  write_torch_save(source, plan, out, torch_save_archive_name(path));
  out.commit();
}

}  // namespace ptpack::libtorch
