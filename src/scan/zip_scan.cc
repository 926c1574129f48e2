// ZIP-based artifacts (torch.save, torch.package, TorchScript, any zip): every record that is or
// may hold a pickle is scanned, Python and TorchScript sources are listed as code, archives
// inside records are followed. PyTorch's loaders read records through the central directory
// (miniz), so the strict reader (ptpack::zip::ZipArchive) is the reference; when it refuses the
// archive, or bytes hide between its records, a lenient walk over local headers finds what a
// forgiving reader (Python's zipfile, a hand-written loader) could load, and that is scanned too.
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>

#include "ptpack/error.h"
#include "ptpack/limits.h"
#include "ptpack/zip.h"
#include "scan/scan_internal.h"

namespace ptpack::scan {
namespace {

constexpr uint64_t kMaxSourceBytes = 16 << 20;   // Python sources read to list their imports
constexpr uint64_t kMaxExternBytes = 1 << 20;    // .data/extern_modules
constexpr uint64_t kMaxNestedBytes = limits::kMaxPickleBytes;  // deflated archives inside records

enum class ZipKind { kTorchSave, kTorchScript, kTorchPackage, kOther };

// One record, however it was found.
struct Record {
  std::string name;
  std::function<std::vector<uint8_t>(uint64_t cap)> read;  // uncompressed bytes; throws Error
  std::function<std::vector<uint8_t>(size_t n)> head;      // the first n uncompressed bytes
  std::function<SourcePtr()> source;                       // the bytes as a source (nested archives)
};

uint16_t u16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
uint32_t u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint64_t u64(const uint8_t* p) { return uint64_t(u32(p)) | uint64_t(u32(p + 4)) << 32; }

std::string root_of(const std::string& first) {
  const size_t slash = first.find('/');
  return slash == std::string::npos ? std::string() : first.substr(0, slash + 1);
}

ZipKind kind_of(const std::vector<Record>& records, const std::string& root) {
  auto has = [&](const std::string& rel) {
    return std::any_of(records.begin(), records.end(), [&](const Record& r) { return r.name == root + rel; });
  };
  if (has("constants.pkl")) return ZipKind::kTorchScript;
  if (has(".data/extern_modules")) return ZipKind::kTorchPackage;
  if (has("data.pkl")) return ZipKind::kTorchSave;
  return ZipKind::kOther;
}

const char* format_of(ZipKind k) {
  switch (k) {
    case ZipKind::kTorchSave: return "torch_save_zip";
    case ZipKind::kTorchScript: return "torchscript";
    case ZipKind::kTorchPackage: return "torch_package";
    case ZipKind::kOther: return "zip";
  }
  return "zip";
}

// Records PyTorch's loaders only ever read as raw storage bytes, never unpickle.
bool is_storage_record(ZipKind kind, const std::string& rel) {
  switch (kind) {
    case ZipKind::kTorchSave: return rel.starts_with("data/");
    case ZipKind::kTorchScript: return rel.starts_with("data/") || rel.starts_with("constants/");
    case ZipKind::kTorchPackage: return rel.starts_with(".data/") && rel.ends_with(".storage");
    case ZipKind::kOther: return false;
  }
  return false;
}

// "a/b.py" -> "a.b", "a/b/__init__.py" -> "a.b" (torch.package's module layout).
std::string module_of_source(std::string rel) {
  rel.resize(rel.size() - 3);
  if (rel.ends_with("/__init__")) rel.resize(rel.size() - 9);
  std::replace(rel.begin(), rel.end(), '/', '.');
  return rel;
}

std::string join_list(const std::vector<std::string>& items, size_t max_items = 30) {
  std::string s;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) s += (i ? ", " : "") + items[i];
  if (items.size() > max_items) s += ", ... (" + std::to_string(items.size()) + " in all)";
  return s.empty() ? "none" : s;
}

void scan_source_file(const Record& r, const std::string& rel, ZipKind kind, const std::string& entry,
                      Collector& out) {
  SourceFile f;
  f.entry = entry;
  const bool torchscript = (kind == ZipKind::kTorchScript && rel.starts_with("code/")) ||
                           (kind == ZipKind::kTorchPackage && rel.starts_with(".data/ts_code/"));
  f.kind = torchscript ? "torchscript" : "python";
  std::vector<uint8_t> text = r.read(kMaxSourceBytes);
  f.size = text.size();
  f.imports = python_imports(std::string_view(reinterpret_cast<const char*>(text.data()), text.size()));
  const std::string imports = "imports: " + join_list(f.imports);
  const Policy& p = out.policy();
  if (torchscript) {
    const bool ok = p.allows_code(Context::kTorchScript);
    out.add(ok ? Severity::kInfo : Severity::kUnsafe, "scan.torchscript-code", entry, std::nullopt,
            "TorchScript code, compiled and run by torch.jit.load" +
                std::string(ok ? "" : " (policy '" + p.name() + "' allows no code)"));
  } else if (kind == ZipKind::kTorchPackage && !rel.starts_with(".data/")) {
    const bool ok = p.allows_code(Context::kTorchPackage);
    out.add(ok ? Severity::kWarning : Severity::kUnsafe, "scan.package-code", entry, std::nullopt,
            "Python source that runs when the package imports it; " + imports +
                (ok ? "" : " (policy '" + p.name() + "' allows no code)"));
  } else {
    out.add(Severity::kWarning, "scan.unexpected-source", entry, std::nullopt,
            std::string("Python source in a ") + format_of(kind) + " archive (PyTorch does not import it); " + imports);
  }
  out.report().sources.push_back(std::move(f));
}

void scan_records(const std::vector<Record>& records, const std::string& prefix, int depth, Collector& out) {
  if (records.empty()) return;
  const std::string root = root_of(records.front().name);
  const ZipKind kind = kind_of(records, root);
  if (depth == 0) out.report().format = format_of(kind);
  if (kind == ZipKind::kTorchPackage) {
    for (const auto& r : records) {
      if (!r.name.starts_with(root)) continue;
      const std::string rel = r.name.substr(root.size());
      if (rel.ends_with(".py") && !rel.starts_with(".data/")) out.package_modules.insert(module_of_source(rel));
    }
  }
  for (const auto& r : records) {
    const std::string rel = r.name.starts_with(root) ? r.name.substr(root.size()) : r.name;
    const std::string entry = prefix + r.name;
    if (is_storage_record(kind, rel)) continue;
    try {
      if (rel.ends_with(".py")) {
        scan_source_file(r, rel, kind, entry, out);
        continue;
      }
      if (kind == ZipKind::kTorchPackage && rel == ".data/extern_modules") {
        std::vector<uint8_t> bytes = r.read(kMaxExternBytes);
        std::string text(bytes.begin(), bytes.end()), line;
        for (char c : text + "\n") {
          if (c == '\n') {
            if (!line.empty()) out.report().extern_modules.push_back(printable(line, 200));
            line.clear();
          } else if (c != '\r') {
            line += c;
          }
        }
        out.add(Severity::kInfo, "scan.extern-modules", entry, std::nullopt,
                "modules the package imports from the environment: " + join_list(out.report().extern_modules));
        continue;
      }
      const std::vector<uint8_t> head = r.head(32);
      const bool named_pickle = rel.ends_with(".pkl") || rel.ends_with(".debug_pkl");
      if (named_pickle || (starts_pickle(head) && !starts_legacy(head))) {
        std::vector<uint8_t> bytes = r.read(limits::kMaxPickleBytes);
        PickleScanOptions o;
        o.entry = entry;
        o.depth = depth;
        o.context = kind == ZipKind::kTorchScript ? Context::kTorchScript
                    : kind == ZipKind::kTorchPackage
                        ? (rel.starts_with(".data/ts_code/") ? Context::kTorchScript : Context::kTorchPackage)
                        : Context::kPlain;
        o.nested = nested_scanner(out);
        scan_pickle_stream(bytes, o, out);
      } else if (starts_zip(head) || starts_legacy(head)) {
        if (depth + 1 > kMaxScanDepth) {
          out.add(Severity::kUnsafe, "scan.too-deep", entry, std::nullopt,
                  "archives nested more than " + std::to_string(kMaxScanDepth) + " levels deep; not scanned");
          continue;
        }
        out.add(Severity::kWarning, "scan.nested-artifact", entry, std::nullopt,
                "the record holds another archive; scanned as '" + entry + "!...'");
        (void)scan_container(r.source(), entry + "!", depth + 1, out);
      }
    } catch (const Error& e) {
      out.add(Severity::kUnsafe, "scan.record-unreadable", entry, e.offset(),
              "the record cannot be read: " + e.detail() + " [" + e.rule() + "]");
    }
  }
}

// Raw inflate of `in` (zip method 8) up to `cap` output bytes; `consumed` = input bytes used.
// keep=false only measures (finds where the deflate stream ends).
std::vector<uint8_t> inflate_raw(std::span<const uint8_t> in, uint64_t cap, uint64_t& consumed, bool& complete,
                                 bool keep = true) {
  std::vector<uint8_t> out;
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw_corrupt("scan.inflate", "zlib init failed");
  uint8_t buf[64 << 10];
  uint64_t fed = 0, produced = 0;
  int rc = Z_OK;
  complete = false;
  while (rc == Z_OK) {
    if (z.avail_in == 0 && fed < in.size()) {
      const uint64_t n = std::min<uint64_t>(in.size() - fed, 1u << 30);
      z.next_in = const_cast<Bytef*>(in.data() + fed);
      z.avail_in = uInt(n);
      fed += n;
    }
    z.next_out = buf;
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    produced += sizeof buf - z.avail_out;
    if (keep) out.insert(out.end(), buf, buf + (sizeof buf - z.avail_out));
    if (produced > cap) break;
    if (rc == Z_BUF_ERROR && z.avail_in == 0 && fed >= in.size()) break;
  }
  complete = rc == Z_STREAM_END;
  consumed = fed - z.avail_in;
  inflateEnd(&z);
  if (out.size() > cap) out.resize(cap);
  return out;
}

}  // namespace

void scan_zip_relaxed(const SourcePtr& src, uint64_t begin, uint64_t end, const std::string& prefix, int depth,
                      Collector& out) {
  uint64_t length = std::min<uint64_t>(end - begin, limits::kMaxPickleBytes);
  if (length < end - begin) {
    out.add(Severity::kUnsafe, "scan.zip-too-large", prefix.empty() ? "file" : prefix, begin + length,
            "the lenient walk stops after kMaxPickleBytes; the rest is not scanned");
  }
  auto region = std::make_shared<std::vector<uint8_t>>();
  std::span<const uint8_t> bytes;
  if (auto v = src->view(begin, length)) {
    bytes = *v;
  } else {
    *region = src->read_vector(begin, length);
    bytes = *region;
  }
  std::vector<Record> records;
  uint64_t pos = 0;
  while (records.size() < limits::kMaxZipEntries) {
    const uint8_t* hit = nullptr;
    for (uint64_t i = pos; i + 4 <= bytes.size(); ++i) {
      const uint8_t* p = static_cast<const uint8_t*>(std::memchr(bytes.data() + i, 'P', bytes.size() - i));
      if (!p) break;
      i = uint64_t(p - bytes.data());
      if (i + 4 <= bytes.size() && std::memcmp(p, "PK\x03\x04", 4) == 0) {
        hit = p;
        break;
      }
    }
    if (!hit) break;
    const uint64_t at = uint64_t(hit - bytes.data());
    if (at + 30 > bytes.size()) break;
    const uint16_t flags = u16(hit + 6), method = u16(hit + 8), nlen = u16(hit + 26), xlen = u16(hit + 28);
    uint64_t csize = u32(hit + 18), usize = u32(hit + 22);
    const uint64_t data = at + 30 + nlen + xlen;
    if (data > bytes.size()) break;
    // A ZIP64 extra (id 1) carries the sizes that are 0xFFFFFFFF in the header.
    for (uint64_t x = at + 30 + nlen; x + 4 <= at + 30 + nlen + xlen;) {
      const uint16_t id = u16(bytes.data() + x), n = u16(bytes.data() + x + 2);
      if (x + 4 + n > at + 30 + nlen + xlen) break;
      if (id == 1) {
        uint64_t f = x + 4;
        if (usize == 0xFFFFFFFF && f + 8 <= x + 4 + n) { usize = u64(bytes.data() + f); f += 8; }
        if (csize == 0xFFFFFFFF && f + 8 <= x + 4 + n) csize = u64(bytes.data() + f);
      }
      x += 4 + n;
    }
    const bool sized = !((flags & 8) && csize == 0) && csize != 0xFFFFFFFF;
    uint64_t data_end = bytes.size();
    if (sized) {
      data_end = data + std::min<uint64_t>(csize, bytes.size() - data);
    } else if (method == zip::kMethodStored) {
      for (uint64_t i = data; i + 4 <= bytes.size(); ++i) {
        const uint8_t* p = bytes.data() + i;
        if (p[0] == 'P' && p[1] == 'K' && ((p[2] == 7 && p[3] == 8) || (p[2] == 3 && p[3] == 4) || (p[2] == 1 && p[3] == 2))) {
          data_end = i;
          break;
        }
      }
    } else if (method == zip::kMethodDeflate) {
      uint64_t consumed = 0;
      bool complete = false;
      (void)inflate_raw(bytes.subspan(data), limits::kMaxInflatedRecordBytes, consumed, complete, false);
      data_end = data + consumed;
    }
    std::string name(reinterpret_cast<const char*>(hit + 30), nlen);
    const std::span<const uint8_t> raw = bytes.subspan(data, data_end - data);
    Record r;
    r.name = name;
    const uint64_t abs = begin + data;
    if (method == zip::kMethodStored) {
      r.read = [src, abs, n = raw.size()](uint64_t cap) { return src->read_vector(abs, std::min<uint64_t>(n, cap)); };
      r.head = [src, abs, n = raw.size()](size_t h) { return src->read_vector(abs, std::min<uint64_t>(n, h)); };
      r.source = [src, abs, n = raw.size(), name] { return make_slice_source(src, abs, n, name); };
    } else if (method == zip::kMethodDeflate) {
      auto inflate_to = [region, raw](uint64_t cap) {
        uint64_t consumed = 0;
        bool complete = false;
        return inflate_raw(raw, cap, consumed, complete);
      };
      r.read = inflate_to;
      r.head = [inflate_to](size_t h) { return inflate_to(h); };
      r.source = [inflate_to, name] { return make_memory_source(inflate_to(kMaxNestedBytes), name); };
    } else {
      out.add(Severity::kUnsafe, "scan.zip-method", prefix + printable(name, 200), begin + at,
              "compression method " + std::to_string(method) + " cannot be read; the record is not scanned");
      pos = at + 4;
      continue;
    }
    records.push_back(std::move(r));
    pos = data_end > at ? data_end : at + 4;
  }
  if (records.empty()) {
    out.add(Severity::kUnsafe, "scan.zip-unreadable", prefix.empty() ? "file" : prefix, begin,
            "no local file header could be read, so nothing in the archive was scanned");
    return;
  }
  scan_records(records, prefix, depth, out);
}

void scan_zip(const SourcePtr& src, const std::string& prefix, int depth, Collector& out) {
  std::shared_ptr<zip::ZipArchive> archive;
  try {
    archive = std::make_shared<zip::ZipArchive>(zip::ZipArchive::open(src));
  } catch (const Error& e) {
    out.add(Severity::kUnsafe, "scan.zip-strict-refused", prefix + (e.entry().empty() ? "" : e.entry()),
            e.offset(),
            "a strict ZIP reader refuses the archive (" + e.detail() + " [" + e.rule() +
                "]); lenient readers may still open it, so its local headers were scanned");
    scan_zip_relaxed(src, 0, src->size(), prefix, depth, out);
    return;
  }
  std::vector<Record> records;
  for (const auto& e : archive->entries()) {
    Record r;
    r.name = e.name;
    r.read = [archive, &e](uint64_t cap) {
      if (e.size > cap) throw_limit("scan.record-too-large", "the record has " + std::to_string(e.size) +
                                    " bytes, more than the " + std::to_string(cap) + " scanned");
      return archive->read(e, cap);
    };
    r.head = [archive, &e](size_t n) {
      std::vector<uint8_t> head;
      if (e.method == zip::kMethodStored) {
        head.resize(std::min<uint64_t>(n, e.size));
        archive->source()->read_at(e.data_offset, head);
        return head;
      }
      struct Enough {};
      try {
        archive->stream(e, [&](std::span<const uint8_t> chunk) {
          head.insert(head.end(), chunk.begin(), chunk.end());
          if (head.size() >= n) throw Enough{};
        });
      } catch (const Enough&) {
      }
      if (head.size() > n) head.resize(n);
      return head;
    };
    r.source = [archive, &e, src] {
      if (e.method == zip::kMethodStored) return make_slice_source(src, e.data_offset, e.size, e.name);
      return make_memory_source(archive->read(e, kMaxNestedBytes), e.name);
    };
    records.push_back(std::move(r));
  }
  scan_records(records, prefix, depth, out);

  // Bytes between records that the central directory does not account for can hide entries
  // that only a local-header walk sees.
  std::vector<const zip::ZipEntry*> by_offset;
  for (const auto& e : archive->entries()) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const zip::ZipEntry* a, const zip::ZipEntry* b) { return a->header_offset < b->header_offset; });
  uint64_t expected = 0;
  auto check_gap = [&](uint64_t next, const std::string& where) {
    if (next <= expected) return;
    const uint64_t gap = next - expected;
    std::vector<uint8_t> bytes = src->read_vector(expected, std::min<uint64_t>(gap, 1 << 20));
    const bool has_header = std::search(bytes.begin(), bytes.end(), "PK\x03\x04", "PK\x03\x04" + 4) != bytes.end();
    if (has_header) {
      out.add(Severity::kUnsafe, "scan.zip-hidden-entry", prefix.empty() ? "file" : prefix, expected,
              std::to_string(gap) + " bytes " + where + " hold a local file header the central directory "
              "does not list (readers that walk local headers load it; scanned)");
      scan_zip_relaxed(src, expected, next, prefix + "(hidden)/", depth, out);
    } else {
      out.add(Severity::kWarning, "scan.zip-gap", prefix.empty() ? "file" : prefix, expected,
              std::to_string(gap) + " bytes " + where + " belong to no record");
    }
  };
  for (const zip::ZipEntry* e : by_offset) {
    check_gap(e->header_offset, "before record '" + printable(e->name, 200) + "'");
    uint64_t end = e->data_end();
    if (e->flags & 8) {
      uint8_t sig[4] = {};
      if (end + 4 <= src->size()) src->read_at(end, sig);
      const bool signed_descriptor = std::memcmp(sig, "PK\x07\x08", 4) == 0;
      end += (signed_descriptor ? 4 : 0) + (e->local_zip64 ? 20 : 12);
    }
    expected = std::max(expected, end);
  }
  check_gap(archive->central_directory_offset(), "before the central directory");
  if (kind_of(records, records.empty() ? std::string() : root_of(records.front().name)) != ZipKind::kOther) {
    (void)check_with_reader(src, prefix, out);
  }
}

}  // namespace ptpack::scan
