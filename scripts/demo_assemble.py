#!/usr/bin/python3
"""The topology-first workflow of scripts/demo, with stock torch (Debian's, /usr/bin/python3).

export DIR
  DIR/resnet18_package.pt   the untrained torchvision resnet18 (10 classes, random init, seed 0)
                            exported with PackageExporter as model/model.pkl
  DIR/resnet18_scripted.pt  the same model, torch.jit.script + torch.jit.save
train DIR
  DIR/ckpt_001.pt ...       three checkpoints (torch.save(model.state_dict())) written while
                            training the same model (seed 0) a few SGD steps on random data

check REFERENCE_DIR CKPT_DIR PACKAGE...
  Loads each PACKAGE with stock torch (PackageImporter, or torch.jit.load for TorchScript), then
  checks that the model holds exactly the weights of CKPT_DIR/<name> (state_dict, tensor by
  tensor) and that its forward output equals the output of the Python-built package
  REFERENCE_DIR/<name> (bench/python_assemble.py) on the same input. One line per package; exit 1
  if any differs.
"""
import os
import sys
import zipfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
from python_assemble import build, export_package, export_torchscript  # noqa: E402

ARCH, NUM_CLASSES, SIDE = "resnet18", 10, 64


def export(out):
    os.makedirs(out, exist_ok=True)
    model = build(ARCH, NUM_CLASSES).eval()
    export_package(model, os.path.join(out, "resnet18_package.pt"),
                   note="torchvision resnet18, 10 classes, untrained: a topology source")
    export_torchscript(model, os.path.join(out, "resnet18_scripted.pt"))
    print(f"wrote {out}/resnet18_package.pt (PackageExporter, torchvision interned) and "
          f"{out}/resnet18_scripted.pt (torch.jit.script)")


def train(out):
    os.makedirs(out, exist_ok=True)
    model = build(ARCH, NUM_CLASSES).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    for ckpt in range(1, 4):
        for _ in range(2):
            x = torch.randn(8, 3, SIDE, SIDE, generator=g)
            y = torch.randint(0, NUM_CLASSES, (8,), generator=g)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        torch.save(model.state_dict(), os.path.join(out, f"ckpt_{ckpt:03d}.pt"))
        print(f"step {2 * ckpt}: loss {loss.item():.3f}, wrote {out}/ckpt_{ckpt:03d}.pt")


def is_torchscript(path):
    with zipfile.ZipFile(path) as z:
        return any(n.split("/", 1)[-1] == "constants.pkl" for n in z.namelist())


def load(path):
    """The model in `path`, loaded the stock way; its kind."""
    if is_torchscript(path):
        return torch.jit.load(path, map_location="cpu"), "TorchScript"
    from torch.package import PackageImporter
    return PackageImporter(path).load_pickle("model", "model.pkl", map_location="cpu"), "torch.package"


def check(ref_dir, ckpt_dir, packages):
    torch.manual_seed(2)
    x = torch.randn(2, 3, SIDE, SIDE)
    failed = 0
    for path in packages:
        name = os.path.basename(path)
        model, kind = load(path)
        model.eval()
        sd = model.state_dict()
        ckpt = torch.load(os.path.join(ckpt_dir, name), map_location="cpu")
        same_keys = list(sd) == list(ckpt)
        same_weights = same_keys and all(sd[k].dtype == v.dtype and torch.equal(sd[k], v)
                                         for k, v in ckpt.items())
        ref, _ = load(os.path.join(ref_dir, name))
        with torch.no_grad():
            y, y_ref = model(x), ref.eval()(x)
        same_output = torch.equal(y, y_ref)
        ok = same_weights and same_output
        failed += not ok
        diff = (y - y_ref).abs().max().item()
        print(f"{'ok  ' if ok else 'FAIL'} {path}: {kind}, "
              f"{len(sd)} tensors {'==' if same_weights else '!='} {ckpt_dir}/{name}, "
              f"output {'==' if same_output else '!='} Python-built {ref_dir}/{name} "
              f"(max |diff| {diff:g}, logits[0,:3] {[round(v, 4) for v in y[0, :3].tolist()]})")
    return 1 if failed else 0


def main(argv):
    if len(argv) == 2 and argv[0] in ("export", "train"):
        (export if argv[0] == "export" else train)(argv[1])
        return 0
    if len(argv) >= 4 and argv[0] == "check":
        return check(argv[1], argv[2], argv[3:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
