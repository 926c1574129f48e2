#!/usr/bin/python3
"""Writes benchmark checkpoints with stock torch: torchvision state dicts (random init, no
download) in the zip and legacy formats. Usage: make_models.py OUTDIR NAME [NAME...]"""
import os
import sys

import torch
import torchvision


def main(out, names):
    os.makedirs(out, exist_ok=True)
    for name in names:
        path = os.path.join(out, f"{name}.pt")
        if os.path.exists(path):
            continue
        torch.manual_seed(0)
        sd = getattr(torchvision.models, name)().state_dict()
        torch.save(sd, path)
        torch.save(sd, os.path.join(out, f"{name}_legacy.pt"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
