#!/usr/bin/python3
"""The stock Python way of converting a checkpoint, for bench/convert.sh: torch.load, then
torch.save (to .pt) or a safetensors file written the way safetensors.torch.save_file lays it out
(the safetensors package is not in Debian; tests/interop/safetensors_writer.py follows the spec).
Usage: python_convert.py SRC DST"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "interop"))


def main(src, dst):
    obj = torch.load(src)
    if dst.endswith(".safetensors"):
        from safetensors_writer import write_safetensors
        write_safetensors(dst, {k: v.contiguous() for k, v in obj.items()})
    else:
        torch.save(obj, dst)
    with open(dst, "rb+") as f:  # durable, like ptpack's output
        os.fsync(f.fileno())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
