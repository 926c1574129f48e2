// Scan: what a file would import and call if it were unpickled, judged against an allowlist.
//
// The scanner never executes anything. It opens every pickle a file holds, whatever its
// container (torch.save zip or legacy stream, torch.package, TorchScript, a bare pickle, pickles
// stored as bytes inside pickles, archives inside archives; detected from content), and runs the
// opcode stream through a small symbolic machine (stack + memo) that resolves every global,
// including STACK_GLOBAL through the memo, and attributes every call (REDUCE, NEWOBJ, NEWOBJ_EX,
// INST, OBJ, BUILD, torch.package's reduce_package persistent ids) to its callable. Anything
// outside the policy, anything the machine cannot resolve, and malformed pickles are `unsafe`
// findings; structural red flags (data after STOP, concatenated pickles, archives a strict ZIP
// reader refuses, hidden entries, memo amplification) are reported with the offsets involved.
//
// Verdicts: `safe` (no unsafe finding), `unsafe` (at least one), `error` (the file could not be
// read at all: missing, unreadable, or not any format ptpack knows).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ptpack/byte_source.h"

namespace ptpack::scan {

// Nesting of containers the scanner follows (zip in zip, pickle in bytes in pickle...). Deeper
// nesting is itself an unsafe finding.
inline constexpr int kMaxScanDepth = 6;
// Findings kept per file; the rest are counted (a memo loop can repeat one call millions of times).
inline constexpr size_t kMaxFindings = 500;
// Pickles concatenated in one stream that are scanned before giving up (an unsafe finding).
inline constexpr int kMaxConcatenatedPickles = 64;

enum class Severity { kInfo, kWarning, kUnsafe };
enum class Verdict { kSafe, kUnsafe, kError };
std::string_view severity_name(Severity s);  // "info", "warning", "unsafe"
std::string_view verdict_name(Verdict v);    // "safe", "unsafe", "error"

// Where a global may be used. The `torch` policy allows some names only in the container that
// legitimately produces them (TorchScript classes in TorchScript pickles...).
enum class Context { kPlain, kTorchPackage, kTorchScript };

// An allowlist of globals. Entries are "module.name" (exact) or "module.*" (any single
// identifier in that module, never a dotted attribute chain). Python 2 names are mapped first
// (`__builtin__` -> `builtins`, `copy_reg` -> `copyreg`) as torch's unpickler does.
class Policy {
 public:
  // Exactly what torch.load(weights_only=True) allows in torch 2.x (tensors, storages, dtypes,
  // plain containers; see policy.cc for the list and its upstream source).
  static Policy weights();
  // weights + what torch.package and TorchScript archives legitimately pickle.
  static Policy torch();
  // A JSON policy file (docs/cli.md): {"extends": "weights"|"torch", "allow": ["mod.name", "mod.*"]}.
  // Throws Error(kInvalidArgument, "scan.policy-file") on a malformed file.
  static Policy from_file(const std::string& path);

  const std::string& name() const { return name_; }
  // `package_modules`: modules provided by the archive's own sources (torch.package only).
  bool allows(const std::string& module, const std::string& name, Context context,
              const std::set<std::string>& package_modules) const;
  bool allows_code(Context context) const;  // Python/TorchScript source inside packages

 private:
  std::string name_;
  bool torch_extras_ = false;
  std::set<std::string> exact_;
  std::set<std::string> modules_;  // "module.*" entries
};

// Python 2 compatibility names as torch's unpickler maps them ("__builtin__" -> "builtins").
std::string normalize_module(const std::string& module);

struct Finding {
  Severity severity = Severity::kInfo;
  std::string rule;   // stable id: "scan.global-not-allowed", "scan.malformed-pickle", ...
  std::string entry;  // the pickle or record ("sd/data.pkl", "data.pkl", "pkg.zip!inner/data.pkl")
  std::optional<uint64_t> offset;  // opcode offset inside `entry` (file offset for stream formats)
  std::string message;
};

// One distinct global of one pickle entry, with what was done with it.
struct GlobalUse {
  std::string entry;
  std::string module;
  std::string name;
  uint64_t offset = 0;  // first import
  bool allowed = false;
  uint64_t imports = 0;                 // GLOBAL / STACK_GLOBAL / INST occurrences
  std::vector<std::string> call_kinds;  // distinct: "REDUCE", "NEWOBJ", "BUILD", ...
  uint64_t calls = 0;
};

struct SourceFile {
  std::string entry;                 // "pkg/mymod/__init__.py"
  std::string kind;                  // "python" (imported by torch.package) or "torchscript"
  uint64_t size = 0;
  std::vector<std::string> imports;  // modules named by `import x` / `from x import y`
};

struct ScanReport {
  std::string path;
  std::string format;  // "torch_save_zip", "torch_save_legacy", "torch_package", "torchscript",
                       // "pickle", "safetensors", "safetensors_index", "zip", "unknown"
  Verdict verdict = Verdict::kSafe;
  std::string policy;
  std::vector<std::string> pickles;  // entries scanned as pickles, in order
  std::vector<GlobalUse> globals;
  std::vector<SourceFile> sources;
  std::vector<std::string> extern_modules;  // torch.package .data/extern_modules
  std::vector<Finding> findings;
  uint64_t findings_dropped = 0;  // beyond kMaxFindings
  std::string error;              // verdict error: why the file could not be scanned
};

struct ScanOptions {
  bool recursive = false;  // descend into directories
  int jobs = 0;            // threads; 0 = hardware concurrency (at least 1)
};

// Scans one file / one byte source. Never throws for bad content: problems become findings or
// the `error` verdict.
ScanReport scan_file(const std::string& path, const Policy& policy);
ScanReport scan_source(SourcePtr source, const Policy& policy);

// Scans every path (files; directories with options.recursive, their regular files sorted by
// path) in parallel. Reports come back in a stable order: the paths' order, directory contents
// sorted.
std::vector<ScanReport> scan_paths(const std::vector<std::string>& paths, const Policy& policy,
                                   const ScanOptions& options);

// `PATH: verdict (...)` then one indented line per finding: `severity entry@offset: message [rule]`.
// verbose adds each pickle's globals and calls.
std::string report_text(const ScanReport& report, bool verbose);
// {"policy": ..., "files": [report...]} following the schema in docs/cli.md.
std::string reports_json(const std::vector<ScanReport>& reports, const std::string& policy);

}  // namespace ptpack::scan
