"""Exact comparison of objects that stock torch loaded (the judge of ptpack's output).

`assert_same(original, output)` walks both objects together and raises Mismatch at the first
difference: container types (dict vs OrderedDict, list vs tuple) and key order (keys compared
with their types), an OrderedDict's `_metadata`, non-tensor values (with their types; NaN equals
NaN), and for tensors: type (Parameter or Tensor), dtype, shape, stride, storage_offset,
requires_grad, the logical bytes and, with `whole_storage`, the storage's size. Storage sharing
is compared as a partition: the i-th and j-th tensors met share a storage in the output exactly
when they do in the original.
"""

import collections
import ctypes
import math

import torch


class Mismatch(AssertionError):
    pass


def raw_bytes(t):
    """The logical elements of `t` as bytes (row-major, host order)."""
    c = t.detach().contiguous()
    n = c.numel() * c.element_size()
    return ctypes.string_at(c.data_ptr(), n) if n else b""


def storage_key(t):
    return t.storage()._storage._cdata


def tensor_fields(t):
    return {"type": type(t).__name__, "dtype": t.dtype, "shape": tuple(t.shape),
            "stride": tuple(t.stride()), "offset": t.storage_offset(),
            "requires_grad": t.requires_grad}


def assert_tensor_same(a, b, path, whole_storage=True, layout=True):
    fa, fb = tensor_fields(a), tensor_fields(b)
    if not layout:
        for k in ("stride", "offset"):
            fa.pop(k), fb.pop(k)
    if fa != fb:
        raise Mismatch(f"{path or '(root)'}: tensor {fa} != {fb}")
    if raw_bytes(a) != raw_bytes(b):
        raise Mismatch(f"{path or '(root)'}: tensor bytes differ")
    if whole_storage and a.storage().nbytes() != b.storage().nbytes():
        raise Mismatch(f"{path}: storage of {a.storage().nbytes()} bytes became {b.storage().nbytes()}")


def same_scalar(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return a == b


def assert_same(a, b, path="", whole_storage=True, sharing=True):
    pairs = []
    _walk_same(a, b, path, pairs, whole_storage)
    if sharing:
        assert_same_sharing(pairs)


def _join(path, key):
    return f"{path}.{key}" if path else str(key)


def _walk_same(a, b, path, pairs, whole_storage):
    if type(a) is not type(b):
        raise Mismatch(f"{path or '(root)'}: {type(a).__name__} became {type(b).__name__}")
    if isinstance(a, torch.Tensor):
        assert_tensor_same(a, b, path, whole_storage)
        pairs.append((path, a, b))
    elif isinstance(a, dict):
        ka = [(type(k), k) for k in a.keys()]
        kb = [(type(k), k) for k in b.keys()]
        if ka != kb:
            raise Mismatch(f"{path or '(root)'}: keys {list(a.keys())[:8]}... != {list(b.keys())[:8]}...")
        ma, mb = getattr(a, "_metadata", None), getattr(b, "_metadata", None)
        if (ma is None) != (mb is None) or (ma is not None and (type(ma) is not type(mb) or ma != mb
                                                               or list(ma) != list(mb))):
            raise Mismatch(f"{path or '(root)'}: _metadata {ma!r} != {mb!r}")
        for k in a:
            _walk_same(a[k], b[k], _join(path, k), pairs, whole_storage)
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise Mismatch(f"{path or '(root)'}: length {len(a)} != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            _walk_same(x, y, _join(path, i), pairs, whole_storage)
    elif not same_scalar(a, b):
        raise Mismatch(f"{path or '(root)'}: value {a!r} != {b!r}")


def partition(tensors):
    """For each tensor, the index of the first tensor sharing its storage."""
    first = {}
    return [first.setdefault(storage_key(t), i) for i, t in enumerate(tensors)]


def assert_same_sharing(pairs):
    pa = partition([a for _, a, _ in pairs])
    pb = partition([b for _, _, b in pairs])
    for i, (x, y) in enumerate(zip(pa, pb)):
        if x != y:
            raise Mismatch(f"storage sharing differs at {pairs[i][0]}: shares with "
                           f"{pairs[x][0]} in the original, {pairs[y][0]} in the output")


def has_float(obj):
    """Whether a Python float occurs in obj (1.13's weights_only unpickler lacks BINFLOAT)."""
    if isinstance(obj, float):
        return True
    if isinstance(obj, dict):
        return any(has_float(k) or has_float(v) for k, v in obj.items()) or \
            has_float(getattr(obj, "_metadata", None))
    if isinstance(obj, (list, tuple)):
        return any(has_float(x) for x in obj)
    return False


def leaves(obj, path=""):
    """(path, value) of every leaf as ptpack names them: tensors, scalars, empty containers."""
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from leaves(v, _join(path, k))
    elif isinstance(obj, (list, tuple)) and obj:
        for i, v in enumerate(obj):
            yield from leaves(v, _join(path, i))
    else:
        yield path, obj


def json_value(v):
    """The JSON ptpack promises for a non-tensor leaf in __metadata__["ptpack.values"]."""
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if isinstance(v, dict):
        return {}
    if isinstance(v, (list, tuple)):
        return []
    return v


def without(obj, drop):
    """A copy of a (nested) dict without the top-level keys in `drop`, same type."""
    out = type(obj)() if not isinstance(obj, collections.defaultdict) else dict()
    for k, v in obj.items():
        if k not in drop:
            out[k] = v
    if hasattr(obj, "_metadata"):
        out._metadata = obj._metadata
    return out
