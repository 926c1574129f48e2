"""Byte-level builders for hostile inputs (test-only, standard library only).

Nothing here validates: every builder writes exactly what it is told, so a test
can put any lie into any field.  Three families of helpers:

* ZIP: `ZipRecord` + `build_zip()` lay out local headers, data, a central
  directory and the end records (ZIP64 end record and locator by default, as
  PyTorch writes them), with overrides for every count, offset and size.
  `local_header()` returns one local header alone (for records hidden inside
  other records).
* Pickle: opcode helpers that return bytes (`p_int`, `p_str`, `p_tuple`,
  `p_global`, `p_dict`, ...) and `tensor_v2()` / `state_dict()` for PyTorch's
  tensor rebuild calls.  Compose them by concatenation.
* safetensors: `safetensors_bytes()` with an arbitrary header (dict or raw
  text) and an arbitrary declared header length.

`torch_zip()` combines the first two into a minimal torch.save archive
("archive/data.pkl", "archive/data/<key>", "archive/version",
"archive/byteorder") that ptpack accepts when given valid parts.
"""

import json
import struct
import zlib

U32_MAX = 0xFFFFFFFF
ZIP64_EXTRA_ID = 0x0001

# ------------------------------------------------------------------------------------------
# ZIP


class ZipRecord:
    """One archive member.  Declared values default to the truthful ones.

    data:        the bytes written after the local header (already compressed
                 when method is 8)
    size:        declared uncompressed size (default len(data))
    csize:       declared compressed size (default len(data))
    crc:         declared CRC-32 (default the CRC of data)
    local_name:  the name written in the local header (default name)
    at:          if set, the record is not laid out; its central entry points
                 at this offset (for records hidden inside another record)
    """

    def __init__(self, name, data=b"", method=0, flags=0, size=None, csize=None, crc=None,
                 local_name=None, at=None):
        self.name = name.encode() if isinstance(name, str) else name
        self.data = data
        self.method = method
        self.flags = flags
        self.size = len(data) if size is None else size
        self.csize = len(data) if csize is None else csize
        self.crc = zlib.crc32(data) if crc is None else crc
        local = self.name if local_name is None else local_name
        self.local_name = local.encode() if isinstance(local, str) else local
        self.at = at


def _zip64_extra(rec, offset):
    """ZIP64 extra field for the central entry: values for the fields at 0xFFFFFFFF."""
    fields = b""
    if rec.size >= U32_MAX:
        fields += struct.pack("<Q", rec.size)
    if rec.csize >= U32_MAX:
        fields += struct.pack("<Q", rec.csize)
    if offset >= U32_MAX:
        fields += struct.pack("<Q", offset)
    return struct.pack("<HH", ZIP64_EXTRA_ID, len(fields)) + fields if fields else b""


def local_header(rec):
    """A local file header (30 bytes + name), sizes as declared (32-bit, clamped)."""
    return struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, rec.flags, rec.method, 0, 0, rec.crc,
                       min(rec.csize, U32_MAX), min(rec.size, U32_MAX),
                       len(rec.local_name), 0) + rec.local_name


def _central_entry(rec, offset):
    extra = _zip64_extra(rec, offset)
    return struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 0x031E, 20, rec.flags, rec.method, 0, 0,
                       rec.crc, min(rec.csize, U32_MAX), min(rec.size, U32_MAX),
                       len(rec.name), len(extra), 0, 0, 0, 0,
                       min(offset, U32_MAX)) + rec.name + extra


def build_zip(records, zip64=True, count=None, cd_offset=None, cd_size=None,
              locator_offset=None, prefix=b""):
    """Lay out `records` and return the archive bytes.

    count / cd_offset / cd_size override the values in both end records;
    locator_offset overrides where the ZIP64 locator says the ZIP64 end record is;
    prefix is written before the first record (offsets account for it).
    """
    out = bytearray(prefix)
    offsets = []
    for rec in records:
        if rec.at is not None:
            offsets.append(rec.at)
            continue
        offsets.append(len(out))
        out += local_header(rec) + rec.data
    cd_start = len(out)
    for rec, offset in zip(records, offsets):
        out += _central_entry(rec, offset)
    cd_end = len(out)
    n = len(records) if count is None else count
    size = cd_end - cd_start if cd_size is None else cd_size
    start = cd_start if cd_offset is None else cd_offset
    if zip64:
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 45, 0, 0, n, n, size, start)
        record_at = cd_end if locator_offset is None else locator_offset
        out += struct.pack("<IIQI", 0x07064B50, 0, record_at, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(n, 0xFFFF), min(n, 0xFFFF),
                       min(size, U32_MAX), min(start, U32_MAX), 0)
    return bytes(out)


def raw_deflate(data, level=9):
    """Raw deflate (no zlib header), as ZIP method 8 stores it."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def deflate_zeros_to(path, total, chunk=1 << 24):
    """Write the raw deflate stream of `total` zero bytes to `path`; returns its CRC-32."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(chunk)
    crc = 0
    with open(path, "wb") as f:
        left = total
        while left:
            n = min(left, chunk)
            f.write(c.compress(zeros[:n]))
            crc = zlib.crc32(zeros[:n], crc)
            left -= n
        f.write(c.flush())
    return crc


# ------------------------------------------------------------------------------------------
# Pickle opcodes (protocol 2 unless a helper says otherwise)

PROTO2 = b"\x80\x02"
STOP = b"."
MARK = b"("
EMPTY_DICT = b"}"
EMPTY_LIST = b"]"
EMPTY_TUPLE = b")"
APPEND = b"a"
APPENDS = b"e"
LIST = b"l"
TUPLE = b"t"
SETITEM = b"s"
SETITEMS = b"u"
REDUCE = b"R"
BINPERSID = b"Q"
POP = b"0"
NEWFALSE = b"\x89"


def p_int(v):
    """The shortest integer opcode for v (BININT1/BININT2/BININT/LONG1)."""
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if 0 <= v < 65536:
        return b"M" + struct.pack("<H", v)
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    data = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def p_str(s):
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def p_global(module, name):
    return b"c" + f"{module}\n{name}\n".encode()


def p_tuple(*parts):
    return MARK + b"".join(parts) + TUPLE


def p_binput(i):
    return b"q" + bytes([i])


def p_binget(i):
    return b"h" + bytes([i])


def p_dict(pairs):
    """EMPTY_DICT then one SETITEMS; pairs are (key bytes, value bytes)."""
    if not pairs:
        return EMPTY_DICT
    return EMPTY_DICT + MARK + b"".join(k + v for k, v in pairs) + SETITEMS


def p_call(callable_bytes, *args):
    return callable_bytes + p_tuple(*args) + REDUCE


def ordered_dict():
    return p_global("collections", "OrderedDict") + EMPTY_TUPLE + REDUCE


def storage_pid(key="0", storage_type="FloatStorage", numel=4, location="cpu"):
    """('storage', torch.<type>, key, location, numel) BINPERSID."""
    return p_tuple(p_str("storage"), p_global("torch", storage_type), p_str(key), p_str(location),
                   p_int(numel)) + BINPERSID


def int_tuple(values):
    return p_tuple(*(p_int(v) for v in values))


def tensor_v2(storage=None, offset=None, size=None, stride=None):
    """_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()); each argument
    is pickle bytes, defaulting to a float32 (4,) tensor over storage '0' of 4 elements."""
    return p_call(p_global("torch._utils", "_rebuild_tensor_v2"),
                  storage if storage is not None else storage_pid(),
                  offset if offset is not None else p_int(0),
                  size if size is not None else int_tuple([4]),
                  stride if stride is not None else int_tuple([1]),
                  NEWFALSE, ordered_dict())


def tensor_v3(dtype_global, storage=None, size=None, stride=None):
    """_rebuild_tensor_v3(UntypedStorage pid, 0, size, stride, False, OrderedDict(), dtype)."""
    return p_call(p_global("torch._utils", "_rebuild_tensor_v3"),
                  storage if storage is not None else storage_pid(storage_type="UntypedStorage",
                                                                  numel=16),
                  p_int(0),
                  size if size is not None else int_tuple([4]),
                  stride if stride is not None else int_tuple([1]),
                  NEWFALSE, ordered_dict(), dtype_global)


def state_dict(pairs):
    """A protocol-2 pickle of {name: value} (values are pickle bytes)."""
    return PROTO2 + p_dict([(p_str(k), v) for k, v in pairs]) + STOP


# ------------------------------------------------------------------------------------------
# torch.save archives

FLOATS_1_TO_4 = struct.pack("<4f", 1.0, 2.0, 3.0, 4.0)


def torch_zip(pkl, storages=None, root="archive", extra=()):
    """A torch.save zip: <root>/data.pkl, <root>/data/<key> for each storage, version,
    byteorder, then any `extra` ZipRecords.  Stored records, no alignment padding."""
    records = [ZipRecord(f"{root}/data.pkl", pkl)]
    for key, data in (storages or {}).items():
        records.append(ZipRecord(f"{root}/data/{key}", data))
    records.append(ZipRecord(f"{root}/version", b"3\n"))
    records.append(ZipRecord(f"{root}/byteorder", b"little"))
    records.extend(extra)
    return build_zip(records)


def one_tensor_zip(tensor_pickle=None, storage=FLOATS_1_TO_4, key="0"):
    """torch_zip of {'w': tensor} over one storage (default: a valid float32 (4,) tensor)."""
    pkl = state_dict([("w", tensor_pickle if tensor_pickle is not None else tensor_v2())])
    return torch_zip(pkl, {key: storage} if storage is not None else {})


# ------------------------------------------------------------------------------------------
# safetensors


def safetensors_bytes(header, data=b"", length=None):
    """u64 header length, header, data.  `header` is a dict (dumped as JSON) or str/bytes
    written verbatim; `length` overrides the declared header length."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode()
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def f32_entry(begin, shape):
    """A header entry for a float32 tensor at `begin` with the truthful end."""
    count = 1
    for d in shape:
        count *= d
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, begin + 4 * count]}
