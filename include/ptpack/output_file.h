// OutputFile: a file that appears at its destination whole, or not at all.
//
// Every file ptpack writes goes through this class. The bytes go to an unnamed file in the
// destination's directory (Linux O_TMPFILE: if the process is killed, even by SIGKILL, the kernel
// frees it and nothing is left anywhere); where the filesystem lacks O_TMPFILE, to a hidden
// ".NAME.ptpack-<8 random hex digits>" beside the destination, removed on error. commit() fsyncs the data,
// gives it its final name in one rename(2) and fsyncs the directory, so after a crash the
// destination holds either the old content or the complete new one.
//
// A hidden name left by a killed writer (the portable path, or a kill between commit()'s link and
// rename) is removed by the next OutputFile for the same destination: each writer holds an
// exclusive flock(2) on its temporary until it exits, and a name nobody holds is a dead one's.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ptpack/byte_source.h"

namespace ptpack {

class OutputFile {
 public:
  // Creates the temporary file. Throws Error(kIo) naming the destination when the directory is
  // not writable, Error(kInvalidArgument) when the destination is a directory.
  explicit OutputFile(std::string destination);
  ~OutputFile();  // without commit(): the temporary is discarded, the destination untouched
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  const std::string& destination() const { return destination_; }
  uint64_t position() const { return position_; }  // bytes written so far

  // Appends bytes (small writes are buffered).
  void write(std::span<const uint8_t> bytes);
  void write(std::string_view text) {
    write(std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
  }
  void write_zeros(uint64_t count);

  // Appends [offset, offset + length) of `source` unchanged. When the source is a file the
  // kernel copies it (copy_file_range: no pass through user space, and a reflink where the
  // filesystem shares extents); otherwise it goes through write(). Mapped pages are released.
  void copy_from(const ByteSource& source, uint64_t offset, uint64_t length);

  // Makes the file durable and visible at the destination (replacing any file there). Throws
  // Error(kIo) on failure, leaving the destination as it was.
  void commit();

 private:
  void flush();
  void write_direct(const uint8_t* data, size_t size);
  std::string create_hidden_name(const std::function<bool(const std::string&)>& create) const;
  void start_writeback();

  std::string destination_;
  std::string directory_;
  std::string temp_name_;  // set only when O_TMPFILE was not available
  int fd_ = -1;
  uint64_t position_ = 0;
  uint64_t handed_ = 0;     // bytes given to the kernel (written or copied)
  uint64_t writeback_ = 0;  // of those, bytes already submitted for writeback
  std::vector<uint8_t> buffer_;
  bool committed_ = false;
};

// True when the path names an existing directory.
bool is_directory(const std::string& path);

}  // namespace ptpack
