// Scan reports as text and JSON (schema: docs/cli.md, `ptpack scan --json`), and scan_paths:
// many files in parallel, reported in a stable order.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>
#include <thread>

#include "ptpack/error.h"
#include "ptpack/scan.h"

namespace ptpack::scan {
namespace {

std::string where(const Finding& f) {
  std::string s = printable(f.entry.empty() ? std::string("file") : f.entry, 300);
  if (f.offset) s += "@" + std::to_string(*f.offset);
  return s;
}

std::string plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

nlohmann::json report_json(const ScanReport& r) {
  nlohmann::json j;
  j["path"] = r.path;
  j["format"] = r.format;
  j["verdict"] = verdict_name(r.verdict);
  if (r.verdict == Verdict::kError) j["error"] = r.error;
  j["pickles"] = r.pickles;
  nlohmann::json globals = nlohmann::json::array();
  for (const auto& g : r.globals) {
    globals.push_back({{"entry", g.entry}, {"module", g.module}, {"name", g.name}, {"offset", g.offset},
                       {"allowed", g.allowed}, {"imports", g.imports}, {"calls", g.calls},
                       {"call_kinds", g.call_kinds}});
  }
  j["globals"] = std::move(globals);
  nlohmann::json sources = nlohmann::json::array();
  for (const auto& s : r.sources) {
    sources.push_back({{"entry", s.entry}, {"kind", s.kind}, {"size", s.size}, {"imports", s.imports}});
  }
  j["sources"] = std::move(sources);
  j["extern_modules"] = r.extern_modules;
  nlohmann::json findings = nlohmann::json::array();
  for (const auto& f : r.findings) {
    nlohmann::json fj = {{"severity", severity_name(f.severity)}, {"rule", f.rule}, {"entry", f.entry},
                         {"message", f.message}};
    fj["offset"] = f.offset ? nlohmann::json(*f.offset) : nlohmann::json(nullptr);
    findings.push_back(std::move(fj));
  }
  j["findings"] = std::move(findings);
  j["findings_dropped"] = r.findings_dropped;
  return j;
}

}  // namespace

std::string report_text(const ScanReport& r, bool verbose) {
  std::string out = printable(r.path, 1000) + ": " + std::string(verdict_name(r.verdict));
  if (r.verdict == Verdict::kError) return out + ": " + printable(r.error, 1000) + "\n";
  size_t unsafe = 0;
  for (const auto& f : r.findings) unsafe += f.severity == Severity::kUnsafe;
  out += " (" + r.format + ", " + plural(r.pickles.size(), "pickle") + ", " + plural(r.globals.size(), "global");
  if (!r.sources.empty()) out += ", " + plural(r.sources.size(), "source file");
  if (unsafe) out += ", " + plural(unsafe, "unsafe finding");
  out += ")\n";
  for (const auto& f : r.findings) {
    out += "  " + std::string(severity_name(f.severity)) + " " + where(f) + ": " + f.message + " [" + f.rule + "]\n";
  }
  if (r.findings_dropped) out += "  ... " + std::to_string(r.findings_dropped) + " more findings\n";
  if (verbose) {
    for (const auto& g : r.globals) {
      out += "  global " + printable(g.entry, 300) + "@" + std::to_string(g.offset) + " " +
             printable(g.module + "." + g.name, 300) + (g.allowed ? " allowed" : " NOT ALLOWED");
      if (g.calls) {
        out += ", called " + std::to_string(g.calls) + "x (";
        for (size_t i = 0; i < g.call_kinds.size(); ++i) out += (i ? ", " : "") + g.call_kinds[i];
        out += ")";
      }
      out += "\n";
    }
  }
  return out;
}

std::string reports_json(const std::vector<ScanReport>& reports, const std::string& policy) {
  nlohmann::json j;
  j["policy"] = policy;
  nlohmann::json files = nlohmann::json::array();
  size_t counts[3] = {0, 0, 0};
  for (const auto& r : reports) {
    files.push_back(report_json(r));
    ++counts[int(r.verdict)];
  }
  j["files"] = std::move(files);
  j["summary"] = {{"files", reports.size()}, {"safe", counts[0]}, {"unsafe", counts[1]}, {"error", counts[2]}};
  // Names from files may hold invalid UTF-8: replaced rather than refused.
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::vector<ScanReport> scan_paths(const std::vector<std::string>& paths, const Policy& policy,
                                   const ScanOptions& options) {
  namespace fs = std::filesystem;
  // Expand directories first so the output order does not depend on scheduling.
  struct Job {
    std::string path;
    std::string error;  // set: not scanned, reported as an error
  };
  std::vector<Job> jobs;
  for (const auto& p : paths) {
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      jobs.push_back({p, {}});
      continue;
    }
    if (!options.recursive) {
      jobs.push_back({p, "is a directory (use --recursive to scan the files under it)"});
      continue;
    }
    std::vector<std::string> files;
    fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      std::error_code fec;
      if (it->is_regular_file(fec)) files.push_back(it->path().string());
    }
    if (ec) jobs.push_back({p, "cannot list the directory: " + ec.message()});
    std::sort(files.begin(), files.end());
    for (auto& f : files) jobs.push_back({std::move(f), {}});
  }

  std::vector<ScanReport> reports(jobs.size());
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < jobs.size();) {
      if (!jobs[i].error.empty()) {
        reports[i].path = jobs[i].path;
        reports[i].policy = policy.name();
        reports[i].format = "unknown";
        reports[i].verdict = Verdict::kError;
        reports[i].error = jobs[i].error;
      } else {
        reports[i] = scan_file(jobs[i].path, policy);
      }
    }
  };
  size_t threads = options.jobs > 0 ? size_t(options.jobs) : std::max(1u, std::thread::hardware_concurrency());
  threads = std::min(threads, jobs.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return reports;
}

}  // namespace ptpack::scan
