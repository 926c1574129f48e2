// Format dispatch by content, the stream formats (bare pickles, legacy torch.save), nested
// blobs, the reader cross-check, and the public scan_file / scan_source entry points.
#include <algorithm>
#include <cstring>

#include "pickle/opcodes.h"
#include "ptpack/artifact.h"
#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "scan/scan_internal.h"

namespace ptpack::scan {
namespace {

// The first bytes of a source.
std::vector<uint8_t> head_of(const ByteSource& src, size_t n) {
  std::vector<uint8_t> head(std::min<uint64_t>(src.size(), n));
  src.read_at(0, head);
  return head;
}

// Bytes [offset, offset + n) of a source: a view when mapped, else a copy into `copy`.
std::span<const uint8_t> bytes_at(const ByteSource& src, uint64_t offset, uint64_t n, std::vector<uint8_t>& copy) {
  if (auto v = src.view(offset, n)) return *v;
  copy = src.read_vector(offset, n);
  return copy;
}

// Legacy torch.save (FORMATS.md §3): five pickles back to back (magic, protocol, sys_info, the
// object, the storage keys), then raw storages whose sizes only the object pickle knows. Each
// pickle is scanned; what follows the last storage (found by ptpack's reader) is scanned as
// trailing data.
void scan_legacy(const SourcePtr& src, const std::string& prefix, int depth, Collector& out) {
  static const char* const kRegions[] = {"magic", "protocol", "sys_info", "data.pkl", "storage keys"};
  uint64_t pos = 0;
  for (const char* region : kRegions) {
    if (pos >= src->size()) {
      out.add(Severity::kUnsafe, "scan.legacy-truncated", prefix + region, pos,
              "the file ends before this pickle of a legacy torch.save stream");
      return;
    }
    std::vector<uint8_t> copy;
    const auto data = bytes_at(*src, pos, std::min<uint64_t>(src->size() - pos, limits::kMaxPickleBytes), copy);
    PickleScanOptions o;
    o.entry = prefix + region;
    o.base_offset = pos;
    o.depth = depth;
    o.nested = nested_scanner(out);
    out.add_pickle(o.entry);
    const PickleScanResult r = scan_pickle(data, o, out);
    if (!r.end) return;
    pos += *r.end;
  }
  uint64_t end = pos;
  const std::optional<Artifact> a = check_with_reader(src, prefix, out);
  if (!a) return;  // the reader reported why; the storages cannot be delimited
  for (const auto& e : a->entries) end = std::max(end, e.offset + e.stored_size);
  if (end < src->size()) {
    out.add(Severity::kWarning, "scan.data-after-end", prefix + "tail", end,
            std::to_string(src->size() - end) + " bytes follow the last storage of the legacy stream (scanned)");
    std::vector<uint8_t> copy;
    const auto tail = bytes_at(*src, end, std::min<uint64_t>(src->size() - end, limits::kMaxPickleBytes), copy);
    PickleScanOptions o;
    o.entry = prefix + "tail";
    o.base_offset = end;
    o.depth = depth;
    o.tentative = true;
    o.nested = nested_scanner(out);
    scan_pickle_stream(tail, o, out);
  }
}

// A file that is not a zip at offset 0 yet ends with a zip's end record: Python's zipfile (which
// reads from the end) opens it while torch.load takes the other path. Both views are scanned.
void check_embedded_zip(const SourcePtr& src, const std::string& prefix, int depth, Collector& out) {
  const uint64_t size = src->size();
  const uint64_t tail = std::min<uint64_t>(size, 65535 + 22);
  if (tail < 22) return;
  std::vector<uint8_t> buf(tail);
  src->read_at(size - tail, buf);
  for (size_t i = buf.size() - 22 + 1; i-- > 0;) {
    if (buf[i] == 'P' && buf[i + 1] == 'K' && buf[i + 2] == 5 && buf[i + 3] == 6) {
      out.add(Severity::kUnsafe, "scan.embedded-zip", prefix.empty() ? "file" : prefix, size - tail + i,
              "the file ends with a ZIP end record although it does not start as a ZIP: zip readers "
              "that search from the end open a different file than torch.load does (a polyglot); "
              "its local headers were scanned");
      scan_zip_relaxed(src, 0, size, prefix, depth + 1, out);
      return;
    }
  }
}

}  // namespace

bool starts_pickle(std::span<const uint8_t> h) {
  return h.size() >= 3 && h[0] == 0x80 && h[1] <= pickle::kHighestProtocol;
}
bool starts_zip(std::span<const uint8_t> h) {
  return h.size() >= 4 && std::memcmp(h.data(), "PK\x03\x04", 4) == 0;
}
bool starts_legacy(std::span<const uint8_t> h) {
  // As formats/detect.cc: the magic long after PROTO (and FRAME), or protocol 0/1's text form.
  static const uint8_t kMagic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  static const char kMagicText[] = "L119547037146038801333356L\n";
  if (h.size() >= sizeof kMagicText - 1 && std::memcmp(h.data(), kMagicText, sizeof kMagicText - 1) == 0) return true;
  if (h.size() < sizeof kMagic || h[0] != 0x80) return false;
  for (size_t i = 2; i + sizeof kMagic <= std::min<size_t>(h.size(), 16 + sizeof kMagic); ++i) {
    if (std::memcmp(h.data() + i, kMagic, sizeof kMagic) == 0) return true;
  }
  return false;
}

std::optional<Artifact> check_with_reader(const SourcePtr& source, const std::string& prefix, Collector& out) {
  try {
    Artifact a = read_artifact(source);
    for (const auto& note : a.notes) {
      out.add(Severity::kInfo, "scan.reader-note", prefix.empty() ? "file" : prefix, std::nullopt, note);
    }
    return a;
  } catch (const Error& e) {
    const bool unsupported = e.code() == ErrorCode::kUnsupported;
    out.add(unsupported ? Severity::kWarning : Severity::kUnsafe, "scan.reader-refused",
            prefix + (e.entry().empty() ? std::string(prefix.empty() ? "file" : "") : e.entry()), e.offset(),
            std::string(unsupported ? "ptpack's reader does not support part of the file: "
                                    : "the file breaks its format's rules (structure or sizes do not add up): ") +
                e.detail() + " [" + e.rule() + "]");
    return std::nullopt;
  }
}

NestedFn nested_scanner(Collector& out) {
  return [&out](std::vector<uint8_t> bytes, const std::string& name, int depth) {
    scan_blob(std::move(bytes), name, depth, out);
  };
}

void scan_blob(std::vector<uint8_t> bytes, const std::string& name, int depth, Collector& out) {
  if (depth > kMaxScanDepth) {
    out.add(Severity::kUnsafe, "scan.too-deep", name, std::nullopt,
            "nested more than " + std::to_string(kMaxScanDepth) + " levels deep; not scanned");
    return;
  }
  if (starts_pickle(bytes) && !starts_legacy(bytes)) {
    PickleScanOptions o;
    o.entry = name;
    o.depth = depth;
    o.nested = nested_scanner(out);
    scan_pickle_stream(bytes, o, out);
    return;
  }
  (void)scan_container(make_memory_source(std::move(bytes), name), name + "!", depth, out);
}

std::optional<std::string> scan_container(const SourcePtr& src, const std::string& prefix, int depth,
                                          Collector& out) {
  ScanReport& report = out.report();
  auto set_format = [&](const char* f) {
    if (depth == 0) report.format = f;
  };
  if (depth > kMaxScanDepth) {
    out.add(Severity::kUnsafe, "scan.too-deep", prefix, std::nullopt,
            "nested more than " + std::to_string(kMaxScanDepth) + " levels deep; not scanned");
    return std::nullopt;
  }
  if (src->size() == 0) return std::string("the file is empty");
  const std::vector<uint8_t> head = head_of(*src, 512);
  if (starts_zip(head)) {
    scan_zip(src, prefix, depth, out);
    return std::nullopt;
  }
  if (starts_legacy(head)) {
    set_format("torch_save_legacy");
    scan_legacy(src, prefix, depth, out);
    check_embedded_zip(src, prefix, depth, out);
    return std::nullopt;
  }
  if (head.size() >= 8 && std::memcmp(head.data(), "PYTORCH1", 8) == 0) {
    return std::string("a PYTORCH1 preview archive (PyTorch itself refuses these)");
  }
  if (head.size() >= 262 && std::memcmp(head.data() + 257, "ustar", 5) == 0) {
    return std::string("a tar archive (PyTorch 0.1.x format), which ptpack does not read");
  }
  // safetensors (u64 header length, then '{') and sharded indexes (JSON) hold no pickle; the
  // reader checks that their sizes add up.
  size_t ws = 0;
  while (ws < head.size() && (head[ws] == ' ' || head[ws] == '\n' || head[ws] == '\r' || head[ws] == '\t')) ++ws;
  const bool safetensors = head.size() >= 9 && head[8] == '{';
  if (safetensors || (ws < head.size() && head[ws] == '{')) {
    set_format(safetensors ? "safetensors" : "safetensors_index");
    try {
      for (const auto& note : read_artifact(src).notes) {
        out.add(Severity::kInfo, "scan.reader-note", prefix.empty() ? "file" : prefix, std::nullopt, note);
      }
    } catch (const Error& e) {
      // No pickle, nothing that could run: a file that does not parse cannot be scanned (error),
      // whether a broken safetensors file or JSON that is no index.
      if (depth == 0) return std::string(e.what());
      out.add(Severity::kWarning, "scan.reader-refused", prefix, e.offset(), e.detail() + " [" + e.rule() + "]");
    }
    return std::nullopt;
  }
  // A bare pickle stream.
  set_format("pickle");
  const size_t findings_before = report.findings.size();
  const Verdict verdict_before = report.verdict;
  std::vector<uint8_t> copy;
  const auto data = bytes_at(*src, 0, std::min<uint64_t>(src->size(), limits::kMaxPickleBytes), copy);
  PickleScanOptions o;
  o.entry = prefix.empty() ? "pickle" : prefix.substr(0, prefix.size() - 1);
  o.depth = depth;
  o.nested = nested_scanner(out);
  const PickleScanResult r = scan_pickle_stream(data, o, out);
  if (r.failed && !starts_pickle(head) && report.globals.empty() && r.opcodes <= 1) {
    // Not even the first opcode made sense: this is not a pickle (nor anything else ptpack knows).
    report.findings.resize(findings_before);
    report.verdict = verdict_before;
    report.pickles.pop_back();
    set_format("unknown");
    if (depth == 0) return std::string("not a format ptpack knows (not a zip, legacy torch.save, safetensors or pickle)");
    return std::nullopt;
  }
  if (src->size() > limits::kMaxPickleBytes) {
    out.add(Severity::kUnsafe, "scan.pickle-too-large", o.entry, limits::kMaxPickleBytes,
            "the pickle stream is larger than kMaxPickleBytes; the rest was not scanned");
  }
  check_embedded_zip(src, prefix, depth, out);
  return std::nullopt;
}

ScanReport scan_source(SourcePtr source, const Policy& policy) {
  ScanReport report;
  report.path = source->name();
  report.policy = policy.name();
  report.format = "unknown";
  Collector out(report, policy);
  try {
    if (auto why = scan_container(source, "", 0, out)) {
      report.verdict = Verdict::kError;
      report.error = *why;
    }
  } catch (const Error& e) {
    report.verdict = Verdict::kError;
    report.error = e.what();
  } catch (const std::bad_alloc&) {
    report.verdict = Verdict::kError;
    report.error = "out of memory";
  }
  return report;
}

ScanReport scan_file(const std::string& path, const Policy& policy) {
  SourcePtr src;
  try {
    src = open_file_source(path);
  } catch (Error& e) {
    ScanReport report;
    report.path = path;
    report.policy = policy.name();
    report.format = "unknown";
    report.verdict = Verdict::kError;
    e.add_file(path);
    report.error = e.what();
    return report;
  }
  ScanReport r = scan_source(std::move(src), policy);
  r.path = path;
  return r;
}

}  // namespace ptpack::scan
