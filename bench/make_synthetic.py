#!/usr/bin/python3
"""Writes a synthetic checkpoint of about SIZE_GB gigabytes with stock torch.save: a training-style
state dict of 64 MiB float32 tensors plus a few small ones. Usage: make_synthetic.py OUT SIZE_GB"""
import os
import sys

import torch


def main(out, size_gb):
    if os.path.exists(out):
        return
    n = int(size_gb * 1e9) // (64 << 20)
    sd = {}
    for i in range(n):
        sd[f"layers.{i}.weight"] = torch.full((4096, 4096), float(i), dtype=torch.float32)
        sd[f"layers.{i}.bias"] = torch.arange(4096, dtype=torch.float32)
    tmp = out + ".tmp"
    torch.save(sd, tmp)
    os.rename(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]))
