// Internal contracts of the scan layer: the per-file Collector every part reports into, the
// opcode-level pickle scanner, and the container walkers. Not part of the public API.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "ptpack/artifact.h"
#include "ptpack/byte_source.h"
#include "ptpack/scan.h"

namespace ptpack::scan {

// Everything found in one file. Not thread-safe: one Collector per file.
class Collector {
 public:
  Collector(ScanReport& report, const Policy& policy) : report_(report), policy_(policy) {}

  const Policy& policy() const { return policy_; }
  ScanReport& report() { return report_; }

  // Adds a finding; identical findings (same rule, entry and message) are kept once, and past
  // kMaxFindings they are only counted. Severity kUnsafe always makes the verdict unsafe.
  void add(Severity severity, const std::string& rule, const std::string& entry,
           std::optional<uint64_t> offset, const std::string& message);

  // A global imported by GLOBAL / STACK_GLOBAL / INST; reports it when the policy refuses it.
  // Returns whether it is allowed.
  bool import_global(const std::string& entry, uint64_t offset, const std::string& module,
                     const std::string& name, Context context);
  // A call of a resolved global (REDUCE, NEWOBJ, NEWOBJ_EX, INST, OBJ, BUILD, persistent_load).
  void call_global(const std::string& entry, uint64_t offset, const std::string& module,
                   const std::string& name, std::string_view kind, Context context);

  void add_pickle(const std::string& entry) { report_.pickles.push_back(entry); }

  // Modules provided by the torch.package being scanned (its own .py files).
  std::set<std::string> package_modules;

 private:
  GlobalUse& use(const std::string& entry, const std::string& module, const std::string& name,
                 uint64_t offset, Context context);

  ScanReport& report_;
  const Policy& policy_;
  std::map<std::tuple<std::string, std::string, std::string>, size_t> uses_;
  std::set<std::tuple<std::string, std::string, std::string>> seen_findings_;
};

// Called with bytes found inside a pickle that may hold another artifact (a bytes value that
// starts like a pickle or a zip): `name` names it for findings.
using NestedFn = std::function<void(std::vector<uint8_t> bytes, const std::string& name, int depth)>;

struct PickleScanOptions {
  std::string entry;         // named in findings
  uint64_t base_offset = 0;  // added to every reported offset (stream formats: file offsets)
  Context context = Context::kPlain;
  int depth = 0;
  // Bytes after a STOP: a decoding failure is a warning (trailing data), not a malformed pickle.
  bool tentative = false;
  NestedFn nested;           // may be empty
};

struct PickleScanResult {
  std::optional<uint64_t> end;  // just past STOP (relative to data), when a STOP was reached
  uint64_t opcodes = 0;
  bool failed = false;          // stopped on a decoding or stack error (reported)
};

// Runs the symbolic machine over `data` from offset 0 to the first STOP, reporting into `out`.
PickleScanResult scan_pickle(std::span<const uint8_t> data, const PickleScanOptions& options,
                             Collector& out);

// Scans one pickle stream: the pickle at 0, then anything after its STOP (data after STOP is a
// finding; further complete pickles are scanned and reported as concatenated).
// Returns the first pickle's result.
PickleScanResult scan_pickle_stream(std::span<const uint8_t> data, const PickleScanOptions& options,
                                    Collector& out);

// Scans any artifact held by `source` (format sniffed from content). `prefix` is prepended to
// entry names ("" for the file itself, "outer/entry!" when nested). Sets the report's format
// when depth == 0. Returns why, when the content is no format at all (depth 0: verdict error).
std::optional<std::string> scan_container(const SourcePtr& source, const std::string& prefix, int depth, Collector& out);

// The zip walkers (zip_scan.cc): the strict reader first; when it refuses the archive, a
// lenient walk over local headers (what Python's zipfile or a forgiving loader could accept).
void scan_zip(const SourcePtr& source, const std::string& prefix, int depth, Collector& out);
void scan_zip_relaxed(const SourcePtr& source, uint64_t begin, uint64_t end, const std::string& prefix,
                      int depth, Collector& out);

// Scans bytes found inside another artifact (a pickle's bytes value, a zip record): a pickle
// stream or any container, one level deeper.
void scan_blob(std::vector<uint8_t> bytes, const std::string& name, int depth, Collector& out);
NestedFn nested_scanner(Collector& out);

// Opens the file with ptpack's readers (the same checks `ptpack info` applies): a reader refusing
// a file the scanner could walk means sizes or structure do not add up (an unsafe finding;
// an unsupported feature is a warning). Reader notes become info findings.
std::optional<Artifact> check_with_reader(const SourcePtr& source, const std::string& prefix, Collector& out);

// True for bytes that start a pickle: PROTO 0..5.
bool starts_pickle(std::span<const uint8_t> head);
bool starts_zip(std::span<const uint8_t> head);
bool starts_legacy(std::span<const uint8_t> head);

// Module names imported by Python source (`import a.b`, `from a import b`), in order, unique.
std::vector<std::string> python_imports(std::string_view source);

// A ByteSource that is a window into another one (a stored zip entry holding an archive).
SourcePtr make_slice_source(SourcePtr parent, uint64_t offset, uint64_t length, std::string name);

}  // namespace ptpack::scan
