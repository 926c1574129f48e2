// ptpack's one error type.
//
// Every failure is a ptpack::Error carrying a code (what kind of failure), a rule (a short stable
// identifier of the check that failed, e.g. "zip.record-overlap"), a human detail, and where it
// happened: file, entry inside the file, byte offset. Lower layers throw with what they know (the
// rule and often the offset); upper layers add the file and entry as the error passes through
// (`add_file`, `add_entry` only fill fields that are still empty).
//
// The CLI maps codes to exit status in one place (tools/ptpack/main.cc): every Error is exit 2
// ("bad input or usage"); exit 1 is reserved for findings (unsafe, differs) which are results,
// not errors.
#pragma once

#include <cstdint>
#include <exception>
#include <optional>
#include <string>

namespace ptpack {

enum class ErrorCode {
  kInvalidArgument,  // the caller asked for something that does not make sense
  kNotFound,         // a named file, entry or path does not exist
  kCorrupt,          // the input breaks a rule of its format
  kUnsupported,      // a valid input ptpack does not handle (yet)
  kLimitExceeded,    // the input exceeds one of the caps in limits.h
  kIo,               // the operating system refused a read or write
};

std::string_view error_code_name(ErrorCode code);

// Text from a file made safe to print on one line: control bytes, DEL and NUL become \xNN
// (names in archives can hold anything, including terminal escapes). Longer than max_chars is cut
// with "...".
std::string printable(std::string_view text, size_t max_chars = 400);

class Error : public std::exception {
 public:
  Error(ErrorCode code, std::string rule, std::string detail);

  ErrorCode code() const { return code_; }
  const std::string& rule() const { return rule_; }
  const std::string& detail() const { return detail_; }
  const std::string& file() const { return file_; }
  const std::string& entry() const { return entry_; }
  std::optional<uint64_t> offset() const { return offset_; }

  // Fill context that is still unknown; fields already set are kept (the innermost knows best).
  Error& add_file(const std::string& file);
  Error& add_entry(const std::string& entry);
  Error& add_offset(uint64_t offset);

  // "FILE: entry 'ENTRY': offset N: DETAIL [RULE]", leaving out the parts that are unknown.
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  void rebuild_message();

  ErrorCode code_;
  std::string rule_;
  std::string detail_;
  std::string file_;
  std::string entry_;
  std::optional<uint64_t> offset_;
  std::string message_;
};

// Shorthands for the common cases, so call sites read as the rule they enforce.
[[noreturn]] void throw_corrupt(std::string rule, std::string detail,
                                std::optional<uint64_t> offset = std::nullopt);
[[noreturn]] void throw_limit(std::string rule, std::string detail,
                              std::optional<uint64_t> offset = std::nullopt);
[[noreturn]] void throw_unsupported(std::string rule, std::string detail);

}  // namespace ptpack
