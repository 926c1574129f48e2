#!/usr/bin/python3
"""The stock Python way of turning a checkpoint into a deployable package, for bench/assemble.sh
and scripts/demo: build the torchvision model, torch.load the checkpoint (a state dict),
model.load_state_dict, then PackageExporter.save_pickle of the model into a new torch.package
(torch extern, torchvision intern) -- or, with --torchscript, torch.jit.script + torch.jit.save.
The output is fsynced, like ptpack's.

Without a checkpoint (CKPT is `-`) it writes the untrained model (random init, seed 0): the
source of `ptpack topology`.

Usage: python_assemble.py ARCH CKPT|- OUT [--torchscript] [--num-classes N] [--skip-init]
  ARCH: a torchvision.models constructor (resnet18, resnet50, vit_l_16...)
  --skip-init: the fastest Python way: the torch.nn.init functions do nothing while the model is
    built (its random initialisation, overwritten by load_state_dict, is most of the build time)
  PYTHON_ASSEMBLE_TIMES=1 prints the time of each step on stderr."""
import argparse
import os
import sys
import time

_t0 = time.perf_counter()
import torch  # noqa: E402
import torchvision  # noqa: E402

# What the package needs besides the interned torchvision code: torch and the modules torchvision
# imports at module level (extern: the loading environment provides them), and what it imports
# only for downloads (mock: never called by a loaded model).
EXTERN = ["torch.**", "numpy.**", "PIL.**", "scipy.**", "typing_extensions", "sys"]
MOCK = ["requests.**", "tqdm.**"]


def export_package(model, path, note=None):
    """Writes `model` with PackageExporter as model/model.pkl (torch extern, torchvision intern)."""
    from torch.package import PackageExporter
    with PackageExporter(path) as e:
        e.extern(EXTERN)
        e.intern("torchvision.**")
        e.mock(MOCK)
        e.save_pickle("model", "model.pkl", model)
        if note:
            e.save_text("model", "README.txt", note)


def export_torchscript(model, path):
    torch.jit.save(torch.jit.script(model.eval()), path)


def build(arch, num_classes=None, seed=0, skip_init=False):
    torch.manual_seed(seed)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if not skip_init:
        return getattr(torchvision.models, arch)(**kwargs)
    init = torch.nn.init
    saved = {n: f for n, f in vars(init).items() if n.endswith("_") and not n.startswith("_")}
    for n in saved:
        setattr(init, n, lambda tensor, *args, **kwargs: tensor)
    try:
        return getattr(torchvision.models, arch)(**kwargs)
    finally:
        for n, f in saved.items():
            setattr(init, n, f)


def fsync(path):
    with open(path, "rb+") as f:  # durable, like ptpack's output
        os.fsync(f.fileno())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arch")
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--torchscript", action="store_true")
    p.add_argument("--num-classes", type=int)
    p.add_argument("--skip-init", action="store_true")
    args = p.parse_args()
    times = [("import torch, torchvision", time.perf_counter() - _t0)]

    def lap(name, t):
        times.append((name, time.perf_counter() - t))
        return time.perf_counter()

    t = time.perf_counter()
    model = build(args.arch, args.num_classes, skip_init=args.skip_init)
    t = lap("build model" + (" (init skipped)" if args.skip_init else " (random init)"), t)
    if args.skip_init and args.ckpt == "-":
        p.error("--skip-init needs a checkpoint")
    if args.ckpt != "-":
        sd = torch.load(args.ckpt, map_location="cpu")
        t = lap("torch.load", t)
        model.load_state_dict(sd)
        del sd
        t = lap("load_state_dict", t)
    model.eval()
    if args.torchscript:
        export_torchscript(model, args.out)
    else:
        export_package(model, args.out)
    t = lap("export", t)
    fsync(args.out)
    lap("fsync", t)
    if os.environ.get("PYTHON_ASSEMBLE_TIMES"):
        for name, s in times:
            print(f"  {name}: {s:.2f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
