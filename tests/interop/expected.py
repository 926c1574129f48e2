"""Expected tensor listings, computed from objects that torch itself loaded.

Contract (shared with check.py and ptpack's `tensors --json --digest`):

* `walk(obj)` yields (path, tensor) for every tensor reachable from `obj`:
  dict keys (`str(k)`) and sequence indices joined with `.`; an nn.Module's
  `_parameters`, `_buffers` and `_modules` are transparent (in that order), its
  other `__dict__` attributes appear under their names; `None` is skipped; a
  tensor reachable by two paths is listed under both.  A sparse COO tensor at P
  yields `P.indices` and `P.values`; a per-channel quantized tensor at P yields
  P itself plus `P.scales` and `P.zero_points` (its quantizer's tensors).
* `tensor_record(path, t, group)` is one entry of the expected JSON:
  path, dtype (no `torch.` prefix), shape, stride and offset (in elements),
  nbytes (the size of the logical elements), sha256 (hex digest of the logical
  elements in row-major order, little-endian; quantized: the `int_repr()`
  bytes) and storage_group.
* `StorageGroups` numbers storages in first-seen order.  A storage is identified
  by its StorageImpl (`_cdata`, which unlike `data_ptr()` also tells empty
  storages apart), or by an explicit identity (e.g. the archive record it was
  read from) when the caller knows one.
"""

import collections
import ctypes
import hashlib
import json

import torch

HASH_CHUNK = 64 << 20


def dtype_name(dtype):
    return str(dtype).replace("torch.", "")


def join(prefix, key):
    return f"{prefix}.{key}" if prefix else str(key)


def walk(obj, prefix="", _active=None):
    """Yield (path, tensor) pairs; see the module docstring for the rules."""
    active = set() if _active is None else _active
    if obj is None:
        return
    if isinstance(obj, torch.Tensor):
        yield from _walk_tensor(obj, prefix)
        return
    if id(obj) in active:  # a container that (indirectly) holds itself
        return
    active.add(id(obj))
    try:
        if isinstance(obj, torch.nn.Module):
            yield from _walk_module(obj, prefix, active)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                yield from walk(value, join(prefix, key), active)
        elif isinstance(obj, (list, tuple)):
            for index, value in enumerate(obj):
                yield from walk(value, join(prefix, index), active)
    finally:
        active.discard(id(obj))


def _walk_tensor(t, prefix):
    if t.layout == torch.sparse_coo:
        yield join(prefix, "indices"), t._indices()
        yield join(prefix, "values"), t._values()
        return
    yield prefix, t
    if t.is_quantized and t.qscheme() in (torch.per_channel_affine,
                                          torch.per_channel_affine_float_qparams):
        yield join(prefix, "scales"), t.q_per_channel_scales()
        yield join(prefix, "zero_points"), t.q_per_channel_zero_points()


MODULE_TRANSPARENT = ("_parameters", "_buffers", "_modules")


def _walk_module(module, prefix, active):
    state = module.__dict__
    for name in MODULE_TRANSPARENT:
        for key, value in state.get(name, {}).items():
            yield from walk(value, join(prefix, key), active)
    for name, value in state.items():
        if name not in MODULE_TRANSPARENT:
            yield from walk(value, join(prefix, name), active)


def logical_bytes(t):
    """Bytes of the logical elements of `t`, row-major, little-endian host order.

    Returns a zero-copy memoryview on a contiguous tensor that the caller must
    keep alive (second element of the returned pair) while using the view.
    """
    if t.is_quantized:
        t = t.int_repr()
    t = t.detach().contiguous()
    nbytes = t.numel() * t.element_size()
    if nbytes == 0:
        return memoryview(b""), t
    buf = (ctypes.c_char * nbytes).from_address(t.data_ptr())
    return memoryview(buf).cast("B"), t


def sha256_of(t):
    view, keep_alive = logical_bytes(t)
    digest = hashlib.sha256()
    for start in range(0, len(view), HASH_CHUNK):
        digest.update(view[start:start + HASH_CHUNK])
    del keep_alive
    return digest.hexdigest(), len(view)


class StorageGroups:
    """Numbers storages in first-seen order."""

    def __init__(self):
        self._numbers = {}
        self._keep = []  # keep tensors alive so StorageImpl addresses are not reused

    def number(self, t, identity=None):
        if identity is None:
            identity = storage_identity(t)
        self._keep.append(t)
        return self._numbers.setdefault(identity, len(self._numbers))


def storage_identity(t):
    """Identity of the storage behind `t` (its StorageImpl address)."""
    return ("impl", t.storage()._storage._cdata)


def tensor_record(path, t, group):
    digest, nbytes = sha256_of(t)
    return {
        "path": path,
        "dtype": dtype_name(t.dtype),
        "shape": list(t.shape),
        "stride": list(t.stride()),
        "offset": t.storage_offset(),
        "nbytes": nbytes,
        "sha256": digest,
        "storage_group": group,
    }


def records_for(obj, prefix="", groups=None, identity_of=None):
    """Expected records for every tensor in `obj`.

    `identity_of(t)` may return a storage identity overriding the StorageImpl.
    """
    groups = StorageGroups() if groups is None else groups
    records = []
    for path, t in walk(obj, prefix):
        identity = identity_of(t) if identity_of else None
        records.append(tensor_record(path, t, groups.number(t, identity)))
    return records


def write_expected(path, records):
    counts = collections.Counter(r["path"] for r in records)
    duplicates = sorted(p for p, n in counts.items() if n > 1)
    if duplicates:
        raise ValueError(f"{path}: duplicate tensor paths {duplicates}")
    with open(path, "w") as f:
        json.dump({"tensors": records}, f, indent=1)
        f.write("\n")
