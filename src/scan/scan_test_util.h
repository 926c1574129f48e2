// Helpers for the scan layer's unit tests: scan bytes, look findings up by rule.
#pragma once

#include <algorithm>
#include <string>

#include "ptpack/scan.h"
#include "testing.h"

namespace ptpack::scan::test {

inline ScanReport scan_bytes(const testing::Bytes& b, const Policy& policy = Policy::weights()) {
  return scan_source(make_memory_source(b, "mem.pt"), policy);
}

inline const Finding* find_rule(const ScanReport& r, const std::string& rule) {
  auto it = std::find_if(r.findings.begin(), r.findings.end(), [&](const Finding& f) { return f.rule == rule; });
  return it == r.findings.end() ? nullptr : &*it;
}

inline bool has_global(const ScanReport& r, const std::string& module, const std::string& name) {
  return std::any_of(r.globals.begin(), r.globals.end(),
                     [&](const GlobalUse& g) { return g.module == module && g.name == name; });
}

// SHORT_BINUNICODE
inline testing::Bytes su(const std::string& s) {
  testing::Bytes b{0x8c, uint8_t(s.size())};
  b.insert(b.end(), s.begin(), s.end());
  return b;
}

inline testing::Bytes cat(std::initializer_list<testing::Bytes> parts) {
  testing::Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

}  // namespace ptpack::scan::test
