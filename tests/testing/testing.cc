#include "testing.h"

#include <zlib.h>

#include <fstream>
#include <random>

namespace ptpack::testing {

Bytes bytes_of(std::string_view text) { return Bytes(text.begin(), text.end()); }

void append_u16(Bytes& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void append_u32(Bytes& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
void append_u64(Bytes& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(uint8_t(v >> (8 * i)));
}

namespace {
Bytes raw_deflate(const Bytes& data) {
  z_stream zs{};
  deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&zs, data.size()) + 16);
  zs.next_in = const_cast<uint8_t*>(data.data());
  zs.avail_in = uInt(data.size());
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
}  // namespace

Bytes build_zip(const std::vector<ZipRecord>& records) {
  Bytes out, central;
  for (const auto& r : records) {
    const uint32_t crc = uint32_t(crc32(0, r.data.data(), uInt(r.data.size())));
    const Bytes payload = r.deflate ? raw_deflate(r.data) : r.data;
    const uint32_t offset = uint32_t(out.size());
    append_u32(out, 0x04034b50);
    append_u16(out, 20);
    append_u16(out, 0);
    append_u16(out, r.deflate ? 8 : 0);
    append_u32(out, 0);
    append_u32(out, crc);
    append_u32(out, uint32_t(payload.size()));
    append_u32(out, uint32_t(r.data.size()));
    append_u16(out, uint16_t(r.name.size()));
    append_u16(out, 0);
    out.insert(out.end(), r.name.begin(), r.name.end());
    out.insert(out.end(), payload.begin(), payload.end());

    append_u32(central, 0x02014b50);
    append_u16(central, 20);
    append_u16(central, 20);
    append_u16(central, 0);
    append_u16(central, r.deflate ? 8 : 0);
    append_u32(central, 0);
    append_u32(central, crc);
    append_u32(central, uint32_t(payload.size()));
    append_u32(central, uint32_t(r.data.size()));
    append_u16(central, uint16_t(r.name.size()));
    append_u16(central, 0);
    append_u16(central, 0);
    append_u16(central, 0);
    append_u16(central, 0);
    append_u32(central, 0);
    append_u32(central, offset);
    central.insert(central.end(), r.name.begin(), r.name.end());
  }
  const uint32_t cd_offset = uint32_t(out.size());
  out.insert(out.end(), central.begin(), central.end());
  append_u32(out, 0x06054b50);
  append_u16(out, 0);
  append_u16(out, 0);
  append_u16(out, uint16_t(records.size()));
  append_u16(out, uint16_t(records.size()));
  append_u32(out, uint32_t(central.size()));
  append_u32(out, cd_offset);
  append_u16(out, 0);
  return out;
}

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() / ("ptpack-test-" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const Bytes& data) const {
  const std::filesystem::path p = path_ / name;
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
  return p.string();
}

}  // namespace ptpack::testing
