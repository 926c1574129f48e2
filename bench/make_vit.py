#!/usr/bin/python3
"""Writes the bridge benchmark's inputs with stock torch: torchvision vit_l_16 (random init, no
download) as a state dict (torch.save, vit_l_16.pt) and the same model as TorchScript
(torch.jit.script + torch.jit.save, vit_l_16_script.pt), so every route loads the same values; and
the state dict as a plain dict (vit_l_16_dict.pt): LibTorch's torch::pickle_load cannot read the
OrderedDict that state_dict() returns ("Expected GenericDict but got None", pytorch/pytorch#37213,
#95362, #100741), and dict(model.state_dict()) is the documented workaround.
Existing files are kept. Usage: make_vit.py OUTDIR"""
import os
import sys

import torch
import torchvision


def main(out):
    os.makedirs(out, exist_ok=True)
    sd_path = os.path.join(out, "vit_l_16.pt")
    ts_path = os.path.join(out, "vit_l_16_script.pt")
    dict_path = os.path.join(out, "vit_l_16_dict.pt")
    if all(os.path.exists(p) for p in (sd_path, ts_path, dict_path)):
        return
    torch.manual_seed(0)
    model = torchvision.models.vit_l_16().eval()
    torch.save(model.state_dict(), sd_path + ".tmp")
    os.replace(sd_path + ".tmp", sd_path)
    torch.jit.save(torch.jit.script(model), ts_path + ".tmp")
    os.replace(ts_path + ".tmp", ts_path)
    torch.save(dict(model.state_dict()), dict_path + ".tmp")
    os.replace(dict_path + ".tmp", dict_path)


if __name__ == "__main__":
    main(sys.argv[1])
