// Dotted key paths, as the match layer reads them.
#pragma once

#include <string>

namespace ptpack::match {

// The module a tensor key belongs to: the key without its last component ("" at the top level).
inline std::string module_of(const std::string& key) {
  const size_t dot = key.rfind('.');
  return dot == std::string::npos ? "" : key.substr(0, dot);
}

}  // namespace ptpack::match
