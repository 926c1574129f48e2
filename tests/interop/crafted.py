"""Hand-written torch.save pickles for dtypes torch 1.13 cannot save (test-only).

Contract: `write_v3_dtypes(path)` writes a torch.save zip in the 2.1-2.6 record
layout whose data.pkl is a protocol-2 pickle written opcode by opcode (no Python
pickler involved), using `torch._utils._rebuild_tensor_v3` with
`torch.UntypedStorage` persistent ids (numel = byte count) and the dtype globals
that 2.x uses for the "new" dtypes (FORMATS.md 2.3).  It returns the expected
records, computed from the bytes written (torch 1.13 cannot load the file).

Standard library only (plus torchzip's writer).
"""

import hashlib
import io
import pickle
import struct

from torchzip import TorchZipWriter, archive_name_for


class Pickle2:
    """Emits protocol-2 opcodes; GLOBALs are memoized with BINPUT/BINGET."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")  # PROTO 2
        self._memo = {}

    def op(self, code):
        self.out += code
        return self

    def global_(self, module, name):
        key = (module, name)
        if key in self._memo:
            return self.op(b"h" + bytes([self._memo[key]]))  # BINGET
        self.op(b"c" + f"{module}\n{name}\n".encode("ascii"))  # GLOBAL
        self._memo[key] = len(self._memo)
        return self.op(b"q" + bytes([self._memo[key]]))  # BINPUT

    def text(self, value):
        data = value.encode("utf-8")
        return self.op(b"X" + struct.pack("<I", len(data)) + data)  # BINUNICODE

    def int_(self, value):
        if 0 <= value < 256:
            return self.op(b"K" + bytes([value]))  # BININT1
        if 0 <= value < 65536:
            return self.op(b"M" + struct.pack("<H", value))  # BININT2
        if -2**31 <= value < 2**31:
            return self.op(b"J" + struct.pack("<i", value))  # BININT
        data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return self.op(b"\x8a" + bytes([len(data)]) + data)  # LONG1

    def int_tuple(self, values):
        self.op(b"(")  # MARK
        for v in values:
            self.int_(v)
        return self.op(b"t")  # TUPLE

    def ordered_dict(self):
        return self.global_("collections", "OrderedDict").op(b")R")  # EMPTY_TUPLE REDUCE

    def finish(self):
        return bytes(self.out + b".")  # STOP


class V3Tensor:
    """One tensor of the crafted file: dtype and layout over a keyed storage."""

    def __init__(self, name, dtype, elsize, key, offset, shape, stride):
        self.name, self.dtype, self.elsize = name, dtype, elsize
        self.key, self.offset, self.shape, self.stride = key, offset, shape, stride


def _emit_tensor(p, t, storage_nbytes, legacy_storage=None):
    """_rebuild_tensor_v3 (UntypedStorage) or, with legacy_storage, _rebuild_tensor_v2."""
    rebuild = "_rebuild_tensor_v2" if legacy_storage else "_rebuild_tensor_v3"
    p.global_("torch._utils", rebuild).op(b"(")
    p.op(b"(").text("storage").global_("torch", legacy_storage or "UntypedStorage")
    numel = storage_nbytes // t.elsize if legacy_storage else storage_nbytes
    p.text(t.key).text("cpu").int_(numel).op(b"tQ")  # TUPLE BINPERSID
    p.int_(t.offset).int_tuple(t.shape).int_tuple(t.stride)
    p.op(b"\x89").ordered_dict()  # requires_grad=False, hooks
    if not legacy_storage:
        p.global_("torch", t.dtype)
    p.op(b"tR")  # TUPLE REDUCE


def v3_pickle(tensors, storages, legacy_storage_of):
    """data.pkl: an OrderedDict {name: tensor}."""
    p = Pickle2()
    p.ordered_dict().op(b"(")
    for t in tensors:
        p.text(t.name)
        _emit_tensor(p, t, len(storages[t.key]), legacy_storage_of.get(t.name))
    return p.op(b"u").finish()  # SETITEMS


def gather(raw, elsize, offset, shape, stride):
    """Logical elements of a strided view over `raw` (row-major bytes)."""
    out = bytearray()
    index = [0] * len(shape)
    count = 1
    for n in shape:
        count *= n
    for _ in range(count):
        pos = offset + sum(i * s for i, s in zip(index, stride))
        out += raw[pos * elsize:(pos + 1) * elsize]
        for d in reversed(range(len(shape))):
            index[d] += 1
            if index[d] < shape[d]:
                break
            index[d] = 0
    return bytes(out)


def _le(fmt, values):
    return struct.pack("<" + fmt * len(values), *values)


def v3_contents():
    """Storages (key -> little-endian bytes) and the tensors viewing them."""
    storages = {
        "0": bytes([0x00, 0x38, 0x40, 0x7E, 0xB8, 0xFE]),          # float8_e4m3fn
        "1": bytes([0x3C, 0x40, 0x7B, 0x7C, 0xFC, 0x80]),          # float8_e5m2
        "2": _le("H", [0, 1, 2, 65535, 4660, 7]),                   # uint16
        "3": _le("I", [1, 2, 3, 4294967295]),                       # uint32
        "4": _le("Q", [0, 2**63, 2**64 - 1]),                       # uint64
        "5": _le("e", [1.0, -2.0, 0.5, 65504.0]),                   # complex32
        "6": _le("f", [1.5, -2.25, 3.0]),                           # float32 (v2)
        "7": _le("H", [513]),                                       # uint16, 0-dim
    }
    tensors = [
        V3Tensor("f8_e4m3fn", "float8_e4m3fn", 1, "0", 0, (2, 3), (3, 1)),
        V3Tensor("f8_e5m2", "float8_e5m2", 1, "1", 1, (5,), (1,)),
        V3Tensor("u16", "uint16", 2, "2", 0, (6,), (1,)),
        V3Tensor("u16_view", "uint16", 2, "2", 1, (2,), (2,)),
        V3Tensor("u32_t", "uint32", 4, "3", 0, (2, 2), (1, 2)),
        V3Tensor("u64", "uint64", 8, "4", 0, (3,), (1,)),
        V3Tensor("c32", "complex32", 4, "5", 0, (2,), (1,)),
        V3Tensor("f32", "float32", 4, "6", 0, (3,), (1,)),
        V3Tensor("u16_scalar", "uint16", 2, "7", 0, (), ()),
    ]
    legacy_storage_of = {"f32": "FloatStorage"}
    return storages, tensors, legacy_storage_of


def v3_expected(storages, tensors):
    groups = {}
    records = []
    for t in tensors:
        data = gather(storages[t.key], t.elsize, t.offset, t.shape, t.stride)
        records.append({
            "path": t.name, "dtype": t.dtype, "shape": list(t.shape),
            "stride": list(t.stride), "offset": t.offset, "nbytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "storage_group": groups.setdefault(t.key, len(groups)),
        })
    return records


def check_pickle_structure(data):
    """Parse the hand-written pickle with stand-ins (never importing torch names)."""

    class StandIn(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("collections", "OrderedDict"):
                return dict
            return lambda *args: (module, name, args)

        def persistent_load(self, pid):
            return pid

    result = StandIn(io.BytesIO(data)).load()
    assert all(v[0] == "torch._utils" for v in result.values()), result
    return result


def write_v3_dtypes(path):
    storages, tensors, legacy_storage_of = v3_contents()
    pkl = v3_pickle(tensors, storages, legacy_storage_of)
    check_pickle_structure(pkl)
    with TorchZipWriter(path, archive_name_for(path)) as zw:
        zw.write_record("data.pkl", pkl)
        zw.write_record("byteorder", b"little")
        for key in sorted(storages):
            zw.write_record("data/" + key, storages[key])
        zw.write_record("version", b"3\n")
    return v3_expected(storages, tensors)
