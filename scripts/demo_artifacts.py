#!/usr/bin/python3
"""Writes the demo's artifacts with stock torch (Debian's, run by /usr/bin/python3):

  resnet50.pt            torchvision resnet50 state dict (torch.save, zip)       ~100 MB
  checkpoint.pt          a training checkpoint: model + SGD/momentum + StepLR + epoch + hparams
  checkpoint_legacy.pt   the same in the legacy (non-zip) format
  resnet18_package.pt    torch.package of a resnet18 with the model code interned
  scripted.pt            TorchScript (torch.jit.script) of a small CNN
  untrusted.pt           a pickle that would run os.system on torch.load (never run by ptpack)

Usage: demo_artifacts.py OUTDIR
"""
import os
import pickle
import sys

import torch
import torchvision


def training_checkpoint(out):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=5)
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        sched.step()
    ckpt = {"epoch": 2, "nb_epochs_finished": 2, "model_state": model.state_dict(),
            "optimizer_state": opt.state_dict(), "scheduler_state": sched.state_dict(),
            "hyper_parameters": {"arch": "resnet18", "num_classes": 10, "lr": 0.1}}
    torch.save(ckpt, os.path.join(out, "checkpoint.pt"))
    torch.save(ckpt, os.path.join(out, "checkpoint_legacy.pt"), _use_new_zipfile_serialization=False)
    return model


def package(out, model):
    from torch.package import PackageExporter
    with PackageExporter(os.path.join(out, "resnet18_package.pt")) as e:
        e.extern(["torch.**", "numpy.**", "PIL.**", "scipy.**", "typing_extensions", "sys"])
        e.intern("torchvision.**")
        e.mock(["requests.**", "tqdm.**"])
        e.save_pickle("model", "model.pkl", model)
        e.save_text("model", "README.txt", "resnet18, 10 classes, trained 2 steps")


class Evil:
    def __reduce__(self):
        return (os.system, ("echo PWNED > /tmp/ptpack-demo-pwned",))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), os.path.join(out, "resnet50.pt"))
    model = training_checkpoint(out)
    package(out, model)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))
    torch.jit.save(torch.jit.script(net), os.path.join(out, "scripted.pt"))
    with open(os.path.join(out, "untrusted.pt"), "wb") as f:
        pickle.dump({"weights": [1, 2, 3], "payload": Evil()}, f, protocol=2)


if __name__ == "__main__":
    main(sys.argv[1])
