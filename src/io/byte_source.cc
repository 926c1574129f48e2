#include "ptpack/byte_source.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "ptpack/error.h"

namespace ptpack {

std::optional<std::span<const uint8_t>> ByteSource::view(uint64_t offset, uint64_t length) const {
  check_range(offset, length);
  return std::nullopt;
}

void ByteSource::release(uint64_t, uint64_t) const {}

std::vector<uint8_t> ByteSource::read_vector(uint64_t offset, uint64_t length) const {
  check_range(offset, length);
  if (auto v = view(offset, length)) return std::vector<uint8_t>(v->begin(), v->end());
  std::vector<uint8_t> out(length);
  read_at(offset, out);
  return out;
}

void ByteSource::check_range(uint64_t offset, uint64_t length) const {
  if (offset > size() || length > size() - offset) {
    Error e(ErrorCode::kCorrupt, "read-past-end",
            "needs " + std::to_string(length) + " bytes at offset " + std::to_string(offset) +
                " but the data is " + std::to_string(size()) + " bytes long (truncated?)");
    e.add_file(name());
    throw e;
  }
}

namespace {

class MemorySource final : public ByteSource {
 public:
  MemorySource(std::vector<uint8_t> bytes, std::string name)
      : bytes_(std::move(bytes)), name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return bytes_.size(); }
  void read_at(uint64_t offset, std::span<uint8_t> out) const override {
    check_range(offset, out.size());
    if (!out.empty()) std::memcpy(out.data(), bytes_.data() + offset, out.size());
  }
  std::optional<std::span<const uint8_t>> view(uint64_t offset, uint64_t length) const override {
    check_range(offset, length);
    return std::span<const uint8_t>(bytes_.data() + offset, length);
  }

 private:
  std::vector<uint8_t> bytes_;
  std::string name_;
};

[[noreturn]] void throw_errno(const std::string& path, const std::string& what) {
  int err = errno;
  Error e(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "io",
          what + ": " + std::strerror(err));
  e.add_file(path);
  throw e;
}

// A file, mapped read-only when possible (zero-copy views, and the kernel pages in only what is
// touched, which is why inspecting a 1 GB checkpoint costs milliseconds). Falls back to pread
// for files that cannot be mapped (empty files, some special files).
class FileSource final : public ByteSource {
 public:
  explicit FileSource(std::string path) : name_(std::move(path)) {
    // O_NONBLOCK: opening a FIFO without a writer must not hang; only regular files are read.
    fd_ = ::open(name_.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) throw_errno(name_, "cannot open");
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      throw_errno(name_, "cannot stat");
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      Error e(ErrorCode::kInvalidArgument, "io.not-regular-file",
              S_ISDIR(st.st_mode) ? "is a directory, not a file" : "is not a regular file (pipe, device...)");
      e.add_file(name_);
      throw e;
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
      if (p != MAP_FAILED) map_ = static_cast<const uint8_t*>(p);
    }
  }
  ~FileSource() override {
    if (map_) ::munmap(const_cast<uint8_t*>(map_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  const std::string& name() const override { return name_; }
  uint64_t size() const override { return size_; }

  void read_at(uint64_t offset, std::span<uint8_t> out) const override {
    check_range(offset, out.size());
    if (out.empty()) return;
    // Small reads (headers, records) use pread even when the file is mapped: touching the mapping
    // maps whole page-cache folios into the process (up to megabytes per touch on recent
    // kernels), so scattered header reads of a large checkpoint would show as hundreds of MB of
    // resident memory. Large reads go through the mapping.
    if (map_ && out.size() >= (size_t{1} << 20)) {
      std::memcpy(out.data(), map_ + offset, out.size());
      return;
    }
    size_t done = 0;
    while (done < out.size()) {
      ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                          static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(name_, "read failed");
      if (n == 0) {
        Error e(ErrorCode::kIo, "io", "file shrank while being read");
        e.add_file(name_);
        throw e;
      }
      done += static_cast<size_t>(n);
    }
  }

  std::optional<std::span<const uint8_t>> view(uint64_t offset, uint64_t length) const override {
    check_range(offset, length);
    if (!map_) return std::nullopt;
    return std::span<const uint8_t>(map_ + offset, length);
  }

  int file_descriptor() const override { return fd_; }

  void release(uint64_t offset, uint64_t length) const override {
    if (!map_ || offset >= size_) return;
    length = std::min(length, size_ - offset);
    const uint64_t page = uint64_t(::sysconf(_SC_PAGESIZE));
    const uint64_t begin = (offset + page - 1) / page * page;  // whole pages inside the range only
    const uint64_t end = (offset + length) / page * page;
    if (end > begin) ::madvise(const_cast<uint8_t*>(map_) + begin, end - begin, MADV_DONTNEED);
  }

 private:
  std::string name_;
  int fd_ = -1;
  uint64_t size_ = 0;
  const uint8_t* map_ = nullptr;
};

}  // namespace

SourcePtr open_file_source(const std::string& path) { return std::make_shared<FileSource>(path); }

SourcePtr make_memory_source(std::vector<uint8_t> bytes, std::string name) {
  return std::make_shared<MemorySource>(std::move(bytes), std::move(name));
}

}  // namespace ptpack
