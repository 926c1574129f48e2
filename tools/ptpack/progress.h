// A progress line on stderr for long work: redrawn at most 5 times a second, only when stderr is
// a terminal, erased when done. --quiet and --json turn it off.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace ptpack::cli {

class ProgressLine {
 public:
  ProgressLine(std::string label, bool enabled)
      : label_(std::move(label)), enabled_(enabled && ::isatty(STDERR_FILENO)) {}
  ~ProgressLine() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
  }
  // Safe to call from several threads.
  void update(uint64_t done, uint64_t total, const std::string& detail = "") {
    if (!enabled_) return;
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && now - last_ < std::chrono::milliseconds(200) && done < total) return;
    last_ = now;
    drawn_ = true;
    std::fprintf(stderr, "\rptpack %s: %.2f of %.2f GB (%d%%)%s\033[K", label_.c_str(), double(done) / 1e9,
                 double(total) / 1e9, total ? int(100.0 * double(done) / double(total)) : 100, detail.c_str());
    std::fflush(stderr);
  }

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_;
  std::mutex mutex_;
};

}  // namespace ptpack::cli
