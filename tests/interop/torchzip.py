"""A byte-exact Python re-implementation of torch.save's zip writer (test-only).

Contract: `TorchZipWriter(path, archive_name)` writes a ZIP file laid out the way
PyTorchStreamWriter (caffe2/serialize/inline_container.cc, with PyTorch's miniz)
lays it out; see /work/shared/FORMATS.md section 2.2:

* every record is stored (method 0), with an `FB` padding extra field in the local
  header so that the record's data starts at a multiple of `alignment`;
* flags 0x0808 and a data descriptor after each non-empty record (0x0800 and no
  descriptor for a 0-byte record); time, date, local CRC and sizes are zero;
* ZIP64 extras for records >= 4 GiB or at offsets >= 4 GiB, and a ZIP64
  end-of-central-directory record plus locator at the end of every file.

`save_like_torch(obj, path, ...)` replays torch 1.13's `torch.serialization._save`
(same pickler, same persistent ids) through this writer, with knobs the real
torch.save lacks: storage key naming, record layout of later releases and the
byte order of the storage records.  With the defaults the output is
byte-identical to `torch.save(obj, path)` of torch 1.13 (generate.py asserts it).

Standard library + torch only.
"""

import ctypes
import io
import os
import pickle
import struct
import zlib

import torch

U32_MAX = 0xFFFFFFFF
ZIP64_EXTRA_ID = 0x0001
PAD_EXTRA_ID = b"FB"


def _zip64_extra(size, offset, for_central):
    """The ZIP64 extra block miniz writes (empty when nothing needs 64 bits)."""
    fields = b""
    if size >= U32_MAX:
        # The local header is written before the data, so its compressed size is 0.
        fields += struct.pack("<QQ", size, size if for_central else 0)
    if offset >= U32_MAX:
        fields += struct.pack("<Q", offset)
    if not fields:
        return b""
    return struct.pack("<HH", ZIP64_EXTRA_ID, len(fields)) + fields


def _padding(cursor, name_len, size, alignment):
    """Bytes of 'Z' padding (caffe2/serialize/inline_container.cc getPadding)."""
    start = cursor + 30 + name_len + 4
    if size >= U32_MAX or cursor >= U32_MAX:
        start += 4
        if size >= U32_MAX:
            start += 16
        if cursor >= U32_MAX:
            start += 8
    return (alignment - start % alignment) % alignment


class TorchZipWriter:
    """Writes records one by one; call close() (or use `with`) to finish."""

    def __init__(self, path, archive_name, alignment=64):
        self._file = open(path, "wb")
        self._prefix = archive_name + "/"
        self._alignment = alignment
        self._central = []  # (name, flags, crc, size, offset)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def write_record(self, name, data):
        full = (self._prefix + name).encode("utf-8")
        data = bytes(data)
        size = len(data)
        offset = self._file.tell()
        flags = 0x0808 if size else 0x0800
        pad = _padding(offset, len(full), size, self._alignment)
        extra = (_zip64_extra(size, offset, for_central=False) +
                 PAD_EXTRA_ID + struct.pack("<H", pad) + b"Z" * pad)
        self._file.write(struct.pack("<IHHHIIIIHH", 0x04034B50, 0, flags, 0, 0, 0, 0, 0,
                                     len(full), len(extra)))
        self._file.write(full + extra + data)
        crc = zlib.crc32(data)
        if size:
            big = size >= U32_MAX or offset >= U32_MAX
            fmt = "<IIQQ" if big else "<IIII"
            self._file.write(struct.pack(fmt, 0x08074B50, crc, size, size))
        self._central.append((full, flags, crc, size, offset))

    def close(self):
        if self._file.closed:
            return
        cd_start = self._file.tell()
        for full, flags, crc, size, offset in self._central:
            extra = _zip64_extra(size, offset, for_central=True)
            size32 = min(size, U32_MAX)
            self._file.write(struct.pack("<IHHHHIIIIHHHHHII", 0x02014B50, 0, 0, flags, 0, 0,
                                         crc, size32, size32, len(full), len(extra), 0, 0,
                                         0, 0, min(offset, U32_MAX)))
            self._file.write(full + extra)
        cd_end = self._file.tell()
        count, cd_size = len(self._central), cd_end - cd_start
        self._file.write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 0x031E, 0x002D, 0, 0,
                                     count, count, cd_size, cd_start))
        self._file.write(struct.pack("<IIQI", 0x07064B50, 0, cd_end, 1))
        self._file.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, min(count, 0xFFFF),
                                     min(count, 0xFFFF), min(cd_size, U32_MAX),
                                     min(cd_start, U32_MAX), 0))
        self._file.close()


def archive_name_for(path):
    """PyTorchStreamWriter's folder name: basename minus its last extension."""
    return os.path.splitext(os.path.basename(path))[0]


def pickle_like_torch(obj, key_for_index=str, protocol=2):
    """Pickle `obj` as torch 1.13 `_save` does.

    Returns (data.pkl bytes, [(key, typed_storage)] in first-encounter order).
    `key_for_index(i)` names the i-th distinct storage (torch 1.13: str(i)).
    """
    keys = {}
    storages = []

    def persistent_id(value):
        if not isinstance(value, torch.storage.TypedStorage):
            return None
        impl = value._storage
        if impl._cdata not in keys:
            keys[impl._cdata] = key_for_index(len(keys))
            storages.append((keys[impl._cdata], value))
        storage_type = getattr(torch, value.pickle_storage_type())
        return ("storage", storage_type, keys[impl._cdata], "cpu", value.size())

    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=protocol)
    pickler.persistent_id = persistent_id
    pickler.dump(obj)
    return buf.getvalue(), storages


def storage_bytes(typed_storage, big_endian=False):
    """The raw bytes of a storage, optionally byte-swapped per element.

    Complex dtypes swap each real/imaginary half separately (FORMATS.md 2.4).
    """
    impl = typed_storage._storage
    raw = ctypes.string_at(impl.data_ptr(), impl.nbytes()) if impl.nbytes() else b""
    if not big_endian:
        return raw
    unit = typed_storage.element_size()
    if typed_storage.dtype.is_complex:
        unit //= 2
    return swap_bytes(raw, unit)


def swap_bytes(raw, unit):
    """Reverse every `unit`-byte group of `raw`."""
    if unit == 1:
        return raw
    out = bytearray(len(raw))
    for i in range(unit):
        out[i::unit] = raw[unit - 1 - i::unit]
    return bytes(out)


SERIALIZATION_ID = "0" * 20 + "1" * 20  # informational only; never validated


def save_like_torch(obj, path, key_for_index=str, layout="1.13", big_endian=False):
    """Write `obj` as a torch.save zip with the chosen variations.

    layout: "1.13" (data.pkl, data/* lexicographic, version),
            "2.1" (data.pkl, byteorder, data/* lexicographic, version, .data/serialization_id),
            "2.7" (data.pkl, .format_version, .storage_alignment, byteorder,
                   data/* numeric, version, .data/serialization_id).
    """
    pkl, storages = pickle_like_torch(obj, key_for_index)
    byteorder = b"big" if big_endian else b"little"
    if layout == "2.7":
        ordered = storages  # first-encounter (numeric) order
    else:
        ordered = sorted(storages, key=lambda item: item[0])
    with TorchZipWriter(path, archive_name_for(path)) as zw:
        zw.write_record("data.pkl", pkl)
        if layout == "2.7":
            zw.write_record(".format_version", b"1")
            zw.write_record(".storage_alignment", b"64")
        if layout in ("2.1", "2.7"):
            zw.write_record("byteorder", byteorder)
        elif big_endian:
            raise ValueError("a big-endian file needs the byteorder record (layout 2.1+)")
        for key, storage in ordered:
            zw.write_record("data/" + key, storage_bytes(storage, big_endian))
        zw.write_record("version", b"3\n")
        if layout in ("2.1", "2.7"):
            zw.write_record(".data/serialization_id", SERIALIZATION_ID.encode())
