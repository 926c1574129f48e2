#!/usr/bin/python3
"""The stock Python way of loading a checkpoint into a model, for bench/bridge_load.sh: build
torchvision's ARCH, torch.load the state dict, model.load_state_dict. Prints one JSON line with
each step's time (seconds_import: `import torch, torchvision`; seconds_total: build + load, i.e.
what bridge_load_bench's seconds_total covers).

--skip-init builds the model with the torch.nn.init functions doing nothing (its random
initialisation, overwritten by load_state_dict, is most of the build time): the lower bound of
construction in torch 1.13, where torch.nn.utils.skip_init needs a module class that takes a
`device` argument (VisionTransformer does not) and there is no meta-device context manager.
--check adds "checksum" computed as bridge_load_bench --check does (sum over the keys in sorted
order of (index + 1) * tensor.sum(float64)), so the routes compare equal.
Usage: python_load.py CKPT [--arch vit_l_16] [--skip-init] [--check]"""
import argparse
import json
import time

_t0 = time.perf_counter()
import torch  # noqa: E402
import torchvision  # noqa: E402

_t_import = time.perf_counter() - _t0


def build(arch, skip_init):
    if not skip_init:
        return getattr(torchvision.models, arch)()
    init = torch.nn.init
    saved = {n: f for n, f in vars(init).items() if n.endswith("_") and not n.startswith("_")}
    for n in saved:
        setattr(init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        return getattr(torchvision.models, arch)()
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def checksum(model):
    sd = model.state_dict()
    return sum((i + 1) * sd[k].sum(dtype=torch.float64).item() for i, k in enumerate(sorted(sd)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--arch", default="vit_l_16")
    p.add_argument("--skip-init", action="store_true")
    p.add_argument("--check", action="store_true")
    a = p.parse_args()
    t = time.perf_counter()
    model = build(a.arch, a.skip_init)
    t_build = time.perf_counter() - t
    t = time.perf_counter()
    sd = torch.load(a.ckpt)
    t_torch_load = time.perf_counter() - t
    t1 = time.perf_counter()
    model.load_state_dict(sd)
    t_lsd = time.perf_counter() - t1
    t_load = time.perf_counter() - t
    out = {"mode": "python_skip_init" if a.skip_init else "python", "seconds_import": round(t_import, 4),
           "seconds_build": round(t_build, 4), "seconds_load": round(t_load, 4),
           "seconds_total": round(t_build + t_load, 4), "tensors": len(sd),
           "seconds_torch_load": round(t_torch_load, 4), "seconds_load_state_dict": round(t_lsd, 4)}
    del sd
    if a.check:
        out["checksum"] = "%.17g" % checksum(model)
    print(json.dumps(out))


t_import = _t_import
if __name__ == "__main__":
    main()
