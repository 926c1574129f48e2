#include "ptpack/output_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string_view>

#include "ptpack/error.h"

namespace ptpack {

namespace {

constexpr size_t kBufferBytes = 1 << 20;
constexpr uint64_t kCopyChunk = uint64_t{64} << 20;  // kernel copies per call (progress, signals)
constexpr uint64_t kWritebackChunk = uint64_t{32} << 20;
constexpr uint64_t kReflinkBlock = 4096;  // filesystem block size of XFS/btrfs as usually made

[[noreturn]] void throw_io(const std::string& path, const std::string& what, int err) {
  Error e(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo, "io.write",
          what + ": " + std::strerror(err));
  e.add_file(path);
  throw e;
}

std::string directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void fsync_directory(const std::string& directory) {
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) throw_io(directory, "cannot open directory to sync it", errno);
  const int rc = ::fsync(dir);
  const int err = errno;
  ::close(dir);
  // Some filesystems refuse fsync on directories (EINVAL); the rename is still in place.
  if (rc != 0 && err != EINVAL) throw_io(directory, "cannot sync directory", err);
}

// True when `fd` still has a name (a concurrent clean_stale_temporaries() may have removed it
// between creation and flock).
bool still_linked(int fd) {
  struct stat st {};
  return ::fstat(fd, &st) == 0 && st.st_nlink > 0;
}

// Removes ".NAME.ptpack-*" files beside the destination that no live writer holds: every writer
// keeps an exclusive flock on its temporary until it exits, and the kernel drops the lock when a
// process dies, so an unlockable name is one a killed writer left behind. Best effort.
void clean_stale_temporaries(const std::string& directory, const std::string& name) {
  const std::string prefix = "." + name + ".ptpack-";
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string entry_name = entry->d_name;
    if (!entry_name.starts_with(prefix) || entry_name.size() != prefix.size() + 8) continue;
    const std::string path = directory + "/" + entry_name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat held {}, named {};
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &held) == 0 && S_ISREG(held.st_mode) &&
        ::lstat(path.c_str(), &named) == 0 && named.st_ino == held.st_ino && named.st_dev == held.st_dev) {
      ::unlink(path.c_str());
    }
    ::close(fd);
  }
  ::closedir(dir);
}

// PTPACK_OUTPUT_NAMED=1 makes every OutputFile take the portable named-temporary path, so tests
// can exercise what filesystems without O_TMPFILE get.
bool force_named_temporary() {
  const char* value = std::getenv("PTPACK_OUTPUT_NAMED");
  return value != nullptr && std::string_view(value) == "1";
}

}  // namespace

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

OutputFile::OutputFile(std::string destination)
    : destination_(std::move(destination)), directory_(directory_of(destination_)) {
  if (destination_.empty() || destination_.back() == '/' || is_directory(destination_)) {
    Error e(ErrorCode::kInvalidArgument, "io.destination", "is a directory, not a file name");
    e.add_file(destination_);
    throw e;
  }
  clean_stale_temporaries(directory_, base_name(destination_));
  // Unnamed until commit(): a killed process leaves nothing behind.
  fd_ = force_named_temporary() ? -1 : ::open(directory_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_EX);  // held through the moment the file gets a hidden name in commit()
  } else if (force_named_temporary() || errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
    temp_name_ = create_hidden_name([&](const std::string& name) {
      fd_ = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0) return false;
      // Locked so that no other writer takes it for a dead one's; if one removed it before the
      // lock was taken, try another name.
      if (::flock(fd_, LOCK_EX) == 0 && still_linked(fd_)) return true;
      ::close(fd_);
      fd_ = -1;
      errno = EEXIST;
      return false;
    });
  }
  if (fd_ < 0) throw_io(destination_, "cannot create the output in " + directory_, errno);
  buffer_.reserve(kBufferBytes);
}

OutputFile::~OutputFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_name_.empty()) ::unlink(temp_name_.c_str());
}

// Tries `create` on fresh ".NAME.ptpack-<8 hex digits>" names beside the destination until one
// succeeds; returns it, or "" with errno set when creation fails for a reason other than EEXIST.
std::string OutputFile::create_hidden_name(const std::function<bool(const std::string&)>& create) const {
  std::random_device random;
  for (int attempt = 0; attempt < 100; ++attempt) {
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", random());
    const std::string name = directory_ + "/." + base_name(destination_) + ".ptpack-" + suffix;
    if (create(name)) return name;
    if (errno != EEXIST) return "";
  }
  return "";
}

void OutputFile::write_direct(const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd_, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_io(destination_, "write failed", errno);
    data += n;
    size -= size_t(n);
    handed_ += uint64_t(n);
  }
  start_writeback();
}

// Starts writing finished parts of the file to disk while the rest is produced, so commit()'s
// fsync waits for the tail only: the copy and the disk work overlap instead of adding up.
void OutputFile::start_writeback() {
  if (handed_ - writeback_ < kWritebackChunk) return;
  ::sync_file_range(fd_, off64_t(writeback_), off64_t(handed_ - writeback_), SYNC_FILE_RANGE_WRITE);
  writeback_ = handed_;
}

void OutputFile::flush() {
  if (!buffer_.empty()) write_direct(buffer_.data(), buffer_.size());
  buffer_.clear();
}

void OutputFile::write(std::span<const uint8_t> bytes) {
  position_ += bytes.size();
  if (buffer_.size() + bytes.size() <= kBufferBytes) {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
    return;
  }
  flush();
  if (bytes.size() >= kBufferBytes) {
    write_direct(bytes.data(), bytes.size());
  } else {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  }
}

void OutputFile::write_zeros(uint64_t count) {
  static const uint8_t kZeros[4096] = {};
  while (count > 0) {
    const uint64_t n = std::min<uint64_t>(count, sizeof kZeros);
    write(std::span(kZeros, size_t(n)));
    count -= n;
  }
}

void OutputFile::copy_from(const ByteSource& source, uint64_t offset, uint64_t length) {
  if (length == 0) return;
  if (offset > source.size() || length > source.size() - offset) {
    throw_corrupt("read-past-end", "copy of " + std::to_string(length) + " bytes at " +
                  std::to_string(offset) + " runs past the end of " + source.name());
  }
  const int in = source.file_descriptor();
  if (in >= 0) {
    flush();
    loff_t in_offset = loff_t(offset);
    uint64_t left = length;
    // Where input and output sit at the same place within 4 KiB blocks, the first call stops at
    // a block boundary so that the following ones start block-aligned on both sides: then
    // filesystems with reflinks (XFS, btrfs) share the blocks instead of copying them. The
    // kernel shortens aligned calls to whole blocks and copies the rest itself.
    uint64_t head = 0;
    if (offset % kReflinkBlock == position_ % kReflinkBlock) {
      head = (kReflinkBlock - offset % kReflinkBlock) % kReflinkBlock;
    }
    while (left > 0) {
      const uint64_t want = head > 0 ? std::min(left, head) : std::min(left, kCopyChunk);
      head = 0;
      const ssize_t n = ::copy_file_range(in, &in_offset, fd_, nullptr, size_t(want), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // EXDEV, ENOSYS, EINVAL...: finish with plain writes below
      left -= uint64_t(n);
      position_ += uint64_t(n);
      handed_ += uint64_t(n);
      start_writeback();
    }
    offset = uint64_t(in_offset);
    length = left;
  }
  // Through user space (memory sources, or where the kernel cannot copy).
  source.for_each_chunk(offset, length, uint64_t{8} << 20, [&](std::span<const uint8_t> piece) { write(piece); });
}

void OutputFile::commit() {
  flush();
  if (::fsync(fd_) != 0) throw_io(destination_, "cannot sync the output", errno);
  if (temp_name_.empty()) {
    // Give the unnamed file a hidden name, then rename it over the destination atomically
    // (linkat cannot replace an existing file).
    const std::string proc = "/proc/self/fd/" + std::to_string(fd_);
    temp_name_ = create_hidden_name([&](const std::string& name) {
      return ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW) == 0;
    });
    if (temp_name_.empty()) throw_io(destination_, "cannot name the output", errno);
  }
  if (::rename(temp_name_.c_str(), destination_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_name_.c_str());
    temp_name_.clear();
    throw_io(destination_, "cannot move the output into place", err);
  }
  committed_ = true;
  ::close(fd_);
  fd_ = -1;
  fsync_directory(directory_);
}

}  // namespace ptpack
