"""A safetensors validator written from the published format, independent of ptpack.

Sources: the "Format" section of https://github.com/huggingface/safetensors (README.md) and the
reference writer's conventions (safetensors/src/tensor.rs `prepare`):

* 8 bytes: N, an unsigned little-endian 64-bit integer, the size of the header (at most
  100,000,000 bytes); then N bytes of UTF-8 JSON starting with `{`, which may be padded at the
  end with spaces (0x20); then the byte buffer, which runs to the end of the file.
* The header is an object. `__metadata__` (optional) maps strings to strings. Every other key
  names a tensor: `{"dtype": CODE, "shape": [ints >= 0], "data_offsets": [BEGIN, END]}`, offsets
  relative to the byte buffer, END exclusive. No key may appear twice (at any level).
* END - BEGIN = product(shape) x size of CODE. Sorted by offset, the tensors index the whole
  buffer, from 0 to its end, with no holes and no overlaps. Data is little-endian, C order.

`conventions=True` also checks what the reference writer does and ptpack promises: the header
padded with spaces to a multiple of 8 bytes (and only by what that needs), `__metadata__` first,
tensors laid out by descending element size with each dtype in one run sorted by name, and every
tensor starting at a multiple of its element size.

Standard library only; `load_tensors` (which also needs torch) reads the tensors back with
`torch.frombuffer` from this parse alone.
"""

import json
import struct

MAX_HEADER = 100_000_000

# Element sizes in bits (the sub-byte float formats are bit-packed).
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}


class Invalid(Exception):
    pass


def _no_duplicates(pairs):
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise Invalid(f"duplicate key {key!r} in the header")
        seen.add(key)
    return dict(pairs)


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class Parsed:
    """A validated file: `tensors` {name: (dtype, shape, begin, end)} in header order,
    `metadata` (dict or None), `data_start` (file offset of the byte buffer), `keys` (header
    key order)."""

    def __init__(self, tensors, metadata, data_start, keys, size):
        self.tensors, self.metadata, self.data_start, self.keys, self.size = \
            tensors, metadata, data_start, keys, size


def validate_bytes(data, conventions=True):
    """Validates a whole safetensors file held in `data`; returns Parsed or raises Invalid."""
    if len(data) < 8:
        raise Invalid("file shorter than the 8-byte header size")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER:
        raise Invalid(f"header size {n} is over {MAX_HEADER}")
    if 8 + n > len(data):
        raise Invalid(f"header size {n} runs past the end of the file ({len(data)} bytes)")
    raw = bytes(data[8:8 + n])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Invalid(f"header is not UTF-8: {e}")
    if not text.startswith("{"):
        raise Invalid("header does not start with '{'")
    body = text.rstrip(" ")
    if not body.endswith("}"):
        raise Invalid("header is not a JSON object followed only by spaces")
    try:
        header = json.loads(body, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise Invalid(f"header is not JSON: {e}")
    keys = list(json.loads(body, object_pairs_hook=lambda pairs: [k for k, _ in pairs]))
    if not isinstance(header, dict):
        raise Invalid("header is not a JSON object")

    metadata = header.get("__metadata__")
    if "__metadata__" in header:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise Invalid("__metadata__ is not a map from strings to strings")

    buffer_len = len(data) - 8 - n
    tensors = {}
    for name in keys:
        if name == "__metadata__":
            continue
        info = header[name]
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise Invalid(f"{name!r}: entry must have exactly dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_BITS:
            raise Invalid(f"{name!r}: unknown dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise Invalid(f"{name!r}: shape {shape!r} is not a list of non-negative integers")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
            raise Invalid(f"{name!r}: data_offsets {offsets!r} is not [BEGIN, END]")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise Invalid(f"{name!r}: data_offsets {offsets!r} are not 0 <= BEGIN <= END")
        numel = 1
        for d in shape:
            numel *= d
        bits = numel * DTYPE_BITS[dtype]
        if bits % 8 or end - begin != bits // 8:
            raise Invalid(f"{name!r}: {end - begin} bytes for {numel} x {dtype}")
        tensors[name] = (dtype, shape, begin, end)

    position = 0
    for name, (dtype, shape, begin, end) in sorted(tensors.items(), key=lambda kv: kv[1][2:]):
        if begin != position:
            raise Invalid(f"{name!r} starts at {begin}, expected {position} (hole or overlap)")
        position = end
    if position != buffer_len:
        raise Invalid(f"tensors index {position} bytes of a {buffer_len}-byte buffer")

    if conventions:
        _check_conventions(n, raw, keys, tensors)
    return Parsed(tensors, metadata, 8 + n, keys, len(data))


def _check_conventions(n, raw, keys, tensors):
    if n % 8:
        raise Invalid(f"header size {n} is not a multiple of 8")
    padding = len(raw) - len(raw.rstrip(b" "))
    if padding >= 8:
        raise Invalid(f"header padded with {padding} spaces (more than alignment needs)")
    if "__metadata__" in keys and keys[0] != "__metadata__":
        raise Invalid("__metadata__ is not the first key")
    order = sorted(tensors.items(), key=lambda kv: (kv[1][2], kv[1][3]))
    # Layout order: element size never grows; each dtype is one run, sorted by name.
    runs, previous_bits = [], None
    for name, (dtype, shape, begin, end) in order:
        bits = DTYPE_BITS[dtype]
        if previous_bits is not None and bits > previous_bits:
            raise Invalid(f"{name!r} ({dtype}) comes after a smaller element type")
        previous_bits = bits
        if not runs or runs[-1][0] != dtype:
            if any(r[0] == dtype for r in runs):
                raise Invalid(f"dtype {dtype} is not laid out in one run")
            runs.append((dtype, []))
        runs[-1][1].append(name)
        if bits >= 8 and begin % (bits // 8):
            raise Invalid(f"{name!r} starts at {begin}, not aligned to its {bits // 8}-byte elements")
    for dtype, names in runs:
        # Tensors that are empty sit at the same offset; the order among equal offsets is by name too.
        if names != sorted(names):
            raise Invalid(f"{dtype} tensors are not in name order: {names[:6]}")


def validate(path, conventions=True):
    with open(path, "rb") as f:
        return validate_bytes(f.read(), conventions)


TORCH_DTYPES = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "F16": "float16",
    "BF16": "bfloat16", "I32": "int32", "F32": "float32", "F64": "float64", "I64": "int64",
    "C64": "complex64",
}


def load_tensors(path, conventions=True):
    """Validates `path` and returns ({name: torch tensor}, metadata) using only this parse."""
    import torch
    with open(path, "rb") as f:
        data = f.read()
    parsed = validate_bytes(data, conventions)
    out = {}
    for name, (dtype, shape, begin, end) in parsed.tensors.items():
        if dtype not in TORCH_DTYPES:
            raise Invalid(f"{name!r}: {dtype} has no torch 1.13 dtype")
        torch_dtype = getattr(torch, TORCH_DTYPES[dtype])
        raw = bytearray(data[parsed.data_start + begin:parsed.data_start + end])
        flat = torch.frombuffer(raw, dtype=torch_dtype) if raw else torch.empty(0, dtype=torch_dtype)
        out[name] = flat.reshape(shape)
    return out, parsed.metadata
