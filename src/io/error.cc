#include "ptpack/error.h"

#include <utility>

namespace ptpack {

std::string_view error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kCorrupt: return "corrupt";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kLimitExceeded: return "limit exceeded";
    case ErrorCode::kIo: return "I/O error";
  }
  return "error";
}

std::string printable(std::string_view text, size_t max_chars) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == 0x7F) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

Error::Error(ErrorCode code, std::string rule, std::string detail)
    : code_(code), rule_(std::move(rule)), detail_(std::move(detail)) {
  rebuild_message();
}

Error& Error::add_file(const std::string& file) {
  if (file_.empty()) {
    file_ = file;
    rebuild_message();
  }
  return *this;
}

Error& Error::add_entry(const std::string& entry) {
  if (entry_.empty()) {
    entry_ = entry;
    rebuild_message();
  }
  return *this;
}

Error& Error::add_offset(uint64_t offset) {
  if (!offset_) {
    offset_ = offset;
    rebuild_message();
  }
  return *this;
}

void Error::rebuild_message() {
  message_.clear();
  if (!file_.empty()) message_ += printable(file_) + ": ";
  if (!entry_.empty()) message_ += "entry '" + printable(entry_, 200) + "': ";
  if (offset_) message_ += "offset " + std::to_string(*offset_) + ": ";
  message_ += printable(detail_, 8000);  // long enough to name every key of a mismatch list
  if (!rule_.empty()) message_ += " [" + rule_ + "]";
}

void throw_corrupt(std::string rule, std::string detail, std::optional<uint64_t> offset) {
  Error e(ErrorCode::kCorrupt, std::move(rule), std::move(detail));
  if (offset) e.add_offset(*offset);
  throw e;
}

void throw_limit(std::string rule, std::string detail, std::optional<uint64_t> offset) {
  Error e(ErrorCode::kLimitExceeded, std::move(rule), std::move(detail));
  if (offset) e.add_offset(*offset);
  throw e;
}

void throw_unsupported(std::string rule, std::string detail) {
  throw Error(ErrorCode::kUnsupported, std::move(rule), std::move(detail));
}

}  // namespace ptpack
