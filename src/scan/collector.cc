// The Collector (findings, globals and calls of one file) and small helpers shared by the
// container walkers: Python import listing and slice sources.
#include <algorithm>
#include <cstring>

#include "ptpack/error.h"
#include "scan/scan_internal.h"

namespace ptpack::scan {

std::string_view severity_name(Severity s) {
  switch (s) {
    case Severity::kInfo: return "info";
    case Severity::kWarning: return "warning";
    case Severity::kUnsafe: return "unsafe";
  }
  return "?";
}

std::string_view verdict_name(Verdict v) {
  switch (v) {
    case Verdict::kSafe: return "safe";
    case Verdict::kUnsafe: return "unsafe";
    case Verdict::kError: return "error";
  }
  return "?";
}

void Collector::add(Severity severity, const std::string& rule, const std::string& entry,
                    std::optional<uint64_t> offset, const std::string& message) {
  if (severity == Severity::kUnsafe && report_.verdict == Verdict::kSafe) report_.verdict = Verdict::kUnsafe;
  if (!seen_findings_.emplace(rule, entry, message).second) return;
  if (report_.findings.size() >= kMaxFindings) {
    ++report_.findings_dropped;
    return;
  }
  report_.findings.push_back({severity, rule, entry, offset, printable(message, 600)});
}

GlobalUse& Collector::use(const std::string& entry, const std::string& module, const std::string& name,
                          uint64_t offset, Context context) {
  auto key = std::make_tuple(entry, module, name);
  if (auto it = uses_.find(key); it != uses_.end()) return report_.globals[it->second];
  GlobalUse g;
  g.entry = entry;
  g.module = module;
  g.name = name;
  g.offset = offset;
  g.allowed = policy_.allows(module, name, context, package_modules);
  report_.globals.push_back(std::move(g));
  uses_.emplace(std::move(key), report_.globals.size() - 1);
  return report_.globals.back();
}

bool Collector::import_global(const std::string& entry, uint64_t offset, const std::string& module,
                              const std::string& name, Context context) {
  GlobalUse& g = use(entry, module, name, offset, context);
  ++g.imports;
  if (!g.allowed) {
    add(Severity::kUnsafe, "scan.global-not-allowed", entry, offset,
        "imports " + module + "." + name + " (not allowed by policy '" + policy_.name() + "')");
  }
  return g.allowed;
}

void Collector::call_global(const std::string& entry, uint64_t offset, const std::string& module,
                            const std::string& name, std::string_view kind, Context context) {
  GlobalUse& g = use(entry, module, name, offset, context);
  ++g.calls;
  if (std::find(g.call_kinds.begin(), g.call_kinds.end(), kind) == g.call_kinds.end()) {
    g.call_kinds.emplace_back(kind);
  }
  if (!g.allowed) {
    add(Severity::kUnsafe, "scan.call-not-allowed", entry, offset,
        std::string(kind) + " calls " + module + "." + name);
  }
}

std::vector<std::string> python_imports(std::string_view source) {
  std::vector<std::string> out;
  auto add = [&](std::string_view m) {
    while (!m.empty() && (m.back() == ' ' || m.back() == '\t' || m.back() == '\r' || m.back() == '(' ||
                          m.back() == '\\')) {
      m.remove_suffix(1);
    }
    while (!m.empty() && (m.front() == ' ' || m.front() == '\t' || m.front() == '(')) m.remove_prefix(1);
    if (const size_t as = m.find(" as "); as != m.npos) m = m.substr(0, as);
    while (!m.empty() && (m.back() == ' ' || m.back() == '\t')) m.remove_suffix(1);
    if (m.empty() || m.size() > 200) return;
    const std::string s(m);
    if (std::find(out.begin(), out.end(), s) == out.end() && out.size() < 1000) out.push_back(s);
  };
  size_t pos = 0;
  while (pos < source.size()) {
    size_t nl = source.find('\n', pos);
    if (nl == source.npos) nl = source.size();
    std::string_view line = source.substr(pos, nl - pos);
    pos = nl + 1;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (const size_t hash = line.find('#'); hash != line.npos) line = line.substr(0, hash);
    if (line.starts_with("import ")) {
      line.remove_prefix(7);
      size_t start = 0;
      while (start <= line.size()) {
        size_t comma = line.find(',', start);
        if (comma == line.npos) comma = line.size();
        add(line.substr(start, comma - start));
        start = comma + 1;
      }
    } else if (line.starts_with("from ")) {
      line.remove_prefix(5);
      const size_t imp = line.find(" import ");
      if (imp != line.npos) add(line.substr(0, imp));
    }
  }
  return out;
}

namespace {

class SliceSource final : public ByteSource {
 public:
  SliceSource(SourcePtr parent, uint64_t offset, uint64_t length, std::string name)
      : parent_(std::move(parent)), offset_(offset), length_(length), name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  uint64_t size() const override { return length_; }
  void read_at(uint64_t offset, std::span<uint8_t> out) const override {
    check_range(offset, out.size());
    parent_->read_at(offset_ + offset, out);
  }
  std::optional<std::span<const uint8_t>> view(uint64_t offset, uint64_t length) const override {
    check_range(offset, length);
    return parent_->view(offset_ + offset, length);
  }

 private:
  SourcePtr parent_;
  uint64_t offset_, length_;
  std::string name_;
};

}  // namespace

SourcePtr make_slice_source(SourcePtr parent, uint64_t offset, uint64_t length, std::string name) {
  if (offset > parent->size() || length > parent->size() - offset) {
    throw_corrupt("scan.slice", "slice outside its source", offset);
  }
  return std::make_shared<SliceSource>(std::move(parent), offset, length, std::move(name));
}

}  // namespace ptpack::scan
