"""A minimal safetensors writer following the published spec (test-only).

Layout (huggingface/safetensors, FORMATS.md 6.2): an 8-byte little-endian
header length N, N bytes of compact JSON (`__metadata__` first) right-padded
with spaces to a multiple of 8, then the data buffer.  Tensors are laid out
sorted by descending dtype rank (the Rust enum order), then name, contiguous
and little-endian; `data_offsets` are [begin, end) relative to the buffer.
torch 1.13 has no safetensors package, so this is written by hand; the
expected listing comes from the tensors given.
"""

import json
import struct

import torch

from expected import logical_bytes

SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16",
    torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


# The Rust `Dtype` enum order (safetensors/src/tensor.rs, "in increasing alignment
# order"); the writer sorts by this rank descending, then by name.
DTYPE_RANK = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
              "I32", "U32", "F32", "F64", "I64", "U64"]


def _order(item):
    name, t = item
    return (-DTYPE_RANK.index(SAFETENSORS_DTYPES[t.dtype]), name)


def safetensors_bytes(tensors, metadata=None):
    """Serialize a {name: tensor} dict to the bytes of a .safetensors file."""
    header = {} if metadata is None else {"__metadata__": metadata}
    chunks = []
    offset = 0
    for name, t in sorted(tensors.items(), key=_order):
        view, keep_alive = logical_bytes(t)
        data = bytes(view)
        del view, keep_alive
        header[name] = {"dtype": SAFETENSORS_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write_safetensors(path, tensors, metadata=None):
    data = safetensors_bytes(tensors, metadata)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)
