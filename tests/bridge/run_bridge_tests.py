#!/usr/bin/python3
"""Interop of the LibTorch bridge (bridge/libtorch) with stock PyTorch, in both directions.

Usage: /usr/bin/python3 tests/bridge/run_bridge_tests.py --check PATH --train-resume PATH
       --ptpack PATH --work DIR [-k SUBSTRING]   (run only the tests whose name contains it)

PATH are the ptpack_torch_check driver (bridge/libtorch/examples/torch_check.cc), the
train_resume example and the ptpack CLI. SmallCnn is defined identically on both sides
(tests/bridge/small_cnn.py and examples/example_models.cc). What it proves (expected values
always come from torch 1.13 in Python, never from ptpack):

* Python-trained weights load into the C++ module and its eval forward equals Python's (bit for
  bit here: the same ATen ops; a difference within 1e-6 would be accepted and reported), from a
  plain state dict, a training checkpoint (--select model_state), the legacy
  (non-zip) format, safetensors (written by `ptpack convert` where the safetensors package is
  missing) and a DataParallel `module.`-prefixed state dict (partial mode, prefix
  strategy, every key loaded). Storages tagged "cuda:0" (which stock torch.load refuses on this
  CPU-only machine) load onto the CPU with the same output and the tag reported.
* Weights trained in C++ load in Python (torch.load with and without weights_only,
  load_state_dict(strict=True)) and compute the C++ module's output.
* Training checkpoints resume across languages for SGD with momentum and Adam: K steps in
  Python, M more in C++ equal M more in Python from the same file, and the other way round
  (parameters, buffers, momentum_buffer / exp_avg / exp_avg_sq / step). torch 1.13's
  weights_only unpickler has no float opcode, so optimizer checkpoints (Python's own included)
  load with weights_only=False only; the suite documents that with a Python-written float.
* load_model rebuilds SmallCnn, Mlp and TextRnn from their files without being told the type;
  Python reads those files with weights_only=True and the SmallCnn state dict loads strictly into
  the Python model built from the stored hyper-parameters; `ptpack info` shows the name and
  hyper-parameters (skipped with a note while it has no "model:" line); unknown names and bad
  hyper-parameters are errors with their rule ids (exit 2).
* train_resume killed by SIGKILL at 20 random moments and restarted ends with a final.pt equal,
  tensor by tensor and bit for bit, to an uninterrupted run's; every epoch's loss line equals the
  uninterrupted run's; nothing but checkpoints and final.pt is left in the directory, with
  O_TMPFILE and with named temporaries (PTPACK_OUTPUT_NAMED=1); a truncated newest checkpoint is
  skipped and training resumes from the previous one.
* Strict loading of another architecture fails with rule torch.strict, naming the key and both
  shapes.

Environment: PTPACK_KILL_SEED=N repeats the kill delays of a run that printed "kill seed N" (the
delays are spans measured on this machine, so sanitizer builds need no other setting).
"""

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pylib"))
from small_cnn import SmallCnn  # noqa: E402
import suite  # noqa: E402  (tests/pylib: the shared harness)
from suite import check, fresh_dir, note, path, test  # noqa: E402

NO_DROPOUT = json.dumps({"dropout": 0.0})
BATCH = 32  # torch_check.cc's `train`


class Env:
    check = None
    train_resume = None
    ptpack = None


# ---------------------------------------------------------------- running the programs

def run(argv, expect=0, env=None):
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    check(p.returncode == expect,
          f"{' '.join(argv)}: exit {p.returncode}, wanted {expect}\n{p.stderr}{p.stdout[-3000:]}")
    return p


def torch_check(*args, expect=0):
    return run([Env.check, *map(str, args)], expect=expect)


def ptpack(*args, expect=0):
    return run([Env.ptpack, *map(str, args)], expect=expect)


def cpp_forward(weights, inputs, *opts, expect=0):
    """C++ SmallCnn's eval-mode output on INPUTS' "input" with WEIGHTS loaded, and the report."""
    out = weights + ".out.pt"
    p = torch_check("forward", weights, inputs, out, *opts, expect=expect)
    if expect != 0:
        return None, p
    check(sum(x.startswith("loaded ") and " cuda_tags" in x for x in p.stdout.splitlines()) == 1,
          f"no load summary line:\n{p.stdout}")
    return torch.load(out, weights_only=True)["output"], p


def summary(report):
    """The "loaded N zero_copy Z cuda_tags T..." line of a forward report."""
    line = [x for x in report.splitlines() if x.startswith("loaded ") and "cuda_tags" in x][-1].split()
    return {"loaded": int(line[1]), "zero_copy": int(line[3]), "cuda_tags": line[5:]}


# ---------------------------------------------------------------- comparing with torch

def max_diff(a, b):
    if a.numel() == 0:
        return 0.0
    return (a.double() - b.double()).abs().max().item()


def same_output(got, want, what):
    """Same ATen ops in the same order: equal is expected; within 1e-6 is accepted and shown."""
    check(got.dtype == want.dtype and got.shape == want.shape,
          f"{what}: {got.dtype} {tuple(got.shape)}, wanted {want.dtype} {tuple(want.shape)}")
    if torch.equal(got, want):
        return
    d = max_diff(got, want)
    note(f"{what}: outputs not bitwise equal, max abs difference {d:.3g}")
    check(torch.allclose(got, want, rtol=0, atol=1e-6), f"{what}: max abs difference {d:.3g} > 1e-6")


def python_forward(state, x, **hparams):
    model = SmallCnn(**hparams)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        return model(x)


def compare_states(got, want, what, atol):
    """Two state dicts: same keys in the same order, dtypes and shapes; values within atol (the
    maximum difference is returned)."""
    check(list(got) == list(want), f"{what}: keys {list(got)}\nwanted {list(want)}")
    worst = 0.0
    for k in want:
        g, w = got[k], want[k]
        check(g.dtype == w.dtype and g.shape == w.shape,
              f"{what}: {k} is {g.dtype} {tuple(g.shape)}, wanted {w.dtype} {tuple(w.shape)}")
        d = max_diff(g, w)
        check(d <= atol, f"{what}: {k} differs by {d:.3g} (> {atol})")
        worst = max(worst, d)
    return worst


def compare_optimizer_states(got, want, what, atol):
    """optimizer.state_dict()s: the same per-parameter state (tensors within atol, `step` equal)
    and the same group options."""
    check(sorted(got["state"]) == sorted(want["state"]), f"{what}: state for {sorted(got['state'])}, "
          f"wanted {sorted(want['state'])}")
    worst = 0.0
    for i, w in want["state"].items():
        g = got["state"][i]
        check(sorted(g) == sorted(w), f"{what}: state[{i}] has {sorted(g)}, wanted {sorted(w)}")
        for k, wv in w.items():
            gv = g[k]
            if k == "step":
                check(float(gv) == float(wv), f"{what}: state[{i}].step {gv}, wanted {wv}")
                continue
            check(gv.shape == wv.shape and gv.dtype == wv.dtype, f"{what}: state[{i}].{k} {gv.dtype} {tuple(gv.shape)}")
            d = max_diff(gv, wv)
            check(d <= atol, f"{what}: state[{i}].{k} differs by {d:.3g} (> {atol})")
            worst = max(worst, d)
    check(len(got["param_groups"]) == len(want["param_groups"]), f"{what}: group count")
    for g, w in zip(got["param_groups"], want["param_groups"]):
        for k, wv in w.items():
            check(k in g and g[k] == wv, f"{what}: param group {k} = {g.get(k, '<missing>')!r}, wanted {wv!r}")
    return worst


# ---------------------------------------------------------------- training as torch_check does

def make_data(name, n=128, seed=0):
    """x: n x 1 x 16 x 16 float32, y: n int64 in [0, 10), saved as {"x", "y"} (read by `train`)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    y = torch.randint(10, (n,), generator=g)
    f = path(name)
    torch.save({"x": x, "y": y}, f)
    return f, x, y


def make_optimizer(kind, model):
    """The optimizers torch_check.cc's `train` builds."""
    if kind == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def train_steps(model, optimizer, x, y, step, count):
    """torch_check.cc's loop: batches of 32 in order, batch index = step % (N / 32)."""
    batches = x.shape[0] // BATCH
    model.train()
    for _ in range(count):
        b = step % batches
        loss = F.cross_entropy(model(x[b * BATCH:(b + 1) * BATCH]), y[b * BATCH:(b + 1) * BATCH])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    return step


def checkpoint_name(step):
    return f"checkpoint-{step:012d}.pt"


def newest_checkpoint(d):
    files = sorted(glob.glob(os.path.join(d, "checkpoint-*.pt")))
    check(files, f"no checkpoint in {d}: {os.listdir(d)}")
    return files[-1]


# ---------------------------------------------------------------- 1: Python weights into C++

@test
def python_weights_forward_equal_in_cpp():
    d = fresh_dir("py2cpp")
    torch.manual_seed(11)
    model = SmallCnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    _, x, y = make_data("py2cpp/data.pt", seed=12)
    train_steps(model, optimizer, x, y, 0, 4)  # dropout on, BatchNorm statistics updated
    state = model.state_dict()
    check(int(state["bn1.num_batches_tracked"]) == 4, "BatchNorm did not track the steps")
    inputs = os.path.join(d, "input.pt")
    x = torch.randn(5, 1, 16, 16)
    torch.save({"input": x}, inputs)
    model.eval()
    with torch.no_grad():
        want = model(x)

    plain = os.path.join(d, "weights.pt")
    torch.save(state, plain)
    got, p = cpp_forward(plain, inputs)
    same_output(got, want, "plain state dict")
    s = summary(p.stdout)
    check(s["loaded"] == len(state) and s["cuda_tags"] == [], f"report: {s}\n{p.stdout}")
    note(f"plain: {s['loaded']} tensors, {s['zero_copy']} zero-copy, output equal: {torch.equal(got, want)}")

    ckpt = os.path.join(d, "train.pt")
    torch.save({"epoch": 1, "model_state": state, "optimizer_state": optimizer.state_dict()}, ckpt)
    got, p = cpp_forward(ckpt, inputs, "--select", "model_state")
    same_output(got, want, "training checkpoint --select model_state")
    check(summary(p.stdout)["loaded"] == len(state), p.stdout)

    legacy = os.path.join(d, "legacy.pt")
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    got, p = cpp_forward(legacy, inputs)
    same_output(got, want, "legacy format")

    try:
        import safetensors.torch  # noqa: F401
        st = os.path.join(d, "weights.safetensors")
        safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, st)
        got, _ = cpp_forward(st, inputs)
        same_output(got, want, "safetensors")
    except ImportError:
        # No safetensors for /usr/bin/python3: the file comes from `ptpack convert` instead (the
        # expected output is still Python's).
        st = os.path.join(d, "converted.safetensors")
        ptpack("convert", "-q", plain, st)
        got, _ = cpp_forward(st, inputs)
        same_output(got, want, "safetensors (written by ptpack convert)")
        note("safetensors: the safetensors package is missing; the file was written by ptpack convert")

    dp = os.path.join(d, "dataparallel.pt")
    dp_state = nn.DataParallel(model).state_dict()
    check(all(k.startswith("module.") for k in dp_state), "DataParallel keys are not prefixed")
    torch.save(dp_state, dp)
    cpp_forward(dp, inputs, expect=2)  # strict: the keys differ
    got, p = cpp_forward(dp, inputs, "--partial")
    same_output(got, want, "DataParallel state dict, --partial")
    check("association: prefix" in p.stdout and "'module.' -> ''" in p.stdout,
          f"the prefix strategy is not reported:\n{p.stdout}")
    check(f"loaded {len(state)} (full_add {len(state)}, partial_add 0), skipped 0, self_unset 0, other_unused 0"
          in p.stdout, f"not every key loaded:\n{p.stdout}")


# ---------------------------------------------------------------- 2: C++ weights into Python

@test
def cpp_trained_weights_load_in_python():
    d = fresh_dir("cpp2py")
    data, _, _ = make_data("cpp2py/data.pt", seed=21)
    run_dir = os.path.join(d, "run")
    torch_check("train", run_dir, "--data", data, "--steps", 6, "--seed", 22)
    weights = os.path.join(run_dir, "weights.pt")
    safe = torch.load(weights, weights_only=True)
    unsafe = torch.load(weights, weights_only=False)
    model = SmallCnn()
    check(list(safe) == list(model.state_dict()), f"keys {list(safe)}, Python's {list(model.state_dict())}")
    compare_states(unsafe, safe, "weights_only=False vs True", 0)
    model.load_state_dict(safe, strict=True)
    check(int(safe["bn1.num_batches_tracked"]) == 6, f"num_batches_tracked {safe['bn1.num_batches_tracked']}")
    x = torch.randn(3, 1, 16, 16)
    inputs = os.path.join(d, "input.pt")
    torch.save({"input": x}, inputs)
    got, _ = cpp_forward(weights, inputs)
    same_output(got, python_forward(safe, x), "C++ weights: Python forward vs C++ forward")


# ---------------------------------------------------------------- 3: optimizer resume

RESUME_ATOL = 1e-5


@test
def optimizer_state_resumes_python_to_cpp():
    data, x, y = make_data("resume-data.pt", seed=31)
    k, m = 5, 6
    for kind in ("sgd", "adam"):
        d = fresh_dir(f"resume-py2cpp-{kind}")
        torch.manual_seed(32)
        model = SmallCnn(dropout=0.0)
        optimizer = make_optimizer(kind, model)
        step = train_steps(model, optimizer, x, y, 0, k)
        ckpt = os.path.join(d, checkpoint_name(step))
        torch.save({"ptpack_checkpoint": 1, "epoch": 0, "step": step, "metrics": {},
                    "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict()}, ckpt)
        # C++ resumes from the Python file and takes M steps ...
        p = torch_check("train", d, "--optimizer", kind, "--steps", m, "--data", data, "--hparams", NO_DROPOUT)
        check(checkpoint_name(k + m) in p.stdout and f"step {k + m}" in p.stdout, f"did not resume at step {k}:\n{p.stdout}")
        # ... and Python takes the same M steps from the same file.
        saved = torch.load(ckpt)
        model = SmallCnn(dropout=0.0)
        model.load_state_dict(saved["model_state"], strict=True)
        optimizer = make_optimizer(kind, model)
        optimizer.load_state_dict(saved["optimizer_state"])
        train_steps(model, optimizer, x, y, saved["step"], m)
        cpp = torch.load(os.path.join(d, checkpoint_name(k + m)))
        dw = compare_states(torch.load(os.path.join(d, "weights.pt"), weights_only=True), model.state_dict(),
                            f"{kind}: weights.pt", RESUME_ATOL)
        dc = compare_states(cpp["model_state"], model.state_dict(), f"{kind}: checkpoint model_state", RESUME_ATOL)
        do = compare_optimizer_states(cpp["optimizer_state"], optimizer.state_dict(), f"{kind}: optimizer state",
                                      RESUME_ATOL)
        check(cpp["step"] == k + m, f"{kind}: step {cpp['step']}")
        note(f"{kind}: Python {k} steps -> C++ {m} vs Python {m}: max |diff| parameters {max(dw, dc):.3g}, "
             f"optimizer state {do:.3g}")


@test
def optimizer_state_resumes_cpp_to_python():
    # Why weights_only=False below: torch 1.13's weights_only unpickler has no BINFLOAT, so any
    # checkpoint with an optimizer's lr (Python's own included) is refused by it.
    floats = path("float.pt")
    torch.save({"lr": 0.1}, floats)
    try:
        torch.load(floats, weights_only=True)
        refused = False
    except Exception:  # noqa: BLE001  (torch raises UnpicklingError or RuntimeError)
        refused = True
    check(refused, "torch.load(weights_only=True) now reads floats: load optimizer checkpoints with it")
    data, x, y = make_data("resume-data.pt", seed=31)
    k, m = 5, 6
    for kind in ("sgd", "adam"):
        d = fresh_dir(f"resume-cpp2py-{kind}")
        torch_check("train", d, "--optimizer", kind, "--steps", k, "--data", data, "--seed", 33, "--hparams", NO_DROPOUT)
        saved = torch.load(os.path.join(d, checkpoint_name(k)), weights_only=False)
        check(saved["ptpack_checkpoint"] == 1 and saved["step"] == k and saved["epoch"] == 0, f"header {saved['step']}")
        check(saved["rng_state"].dtype == torch.uint8 and saved["rng_state"].shape == torch.get_rng_state().shape,
              "rng_state is not torch.get_rng_state()'s layout")
        model = SmallCnn(dropout=0.0)
        model.load_state_dict(saved["model_state"], strict=True)
        optimizer = make_optimizer(kind, model)
        optimizer.load_state_dict(saved["optimizer_state"])
        check(len(optimizer.state) == len(list(model.parameters())), f"{kind}: state for {len(optimizer.state)} parameters")
        train_steps(model, optimizer, x, y, saved["step"], m)
        torch_check("train", d, "--optimizer", kind, "--steps", m, "--data", data, "--hparams", NO_DROPOUT)
        cpp = torch.load(os.path.join(d, checkpoint_name(k + m)), weights_only=False)
        dc = compare_states(cpp["model_state"], model.state_dict(), f"{kind}: model_state", RESUME_ATOL)
        do = compare_optimizer_states(cpp["optimizer_state"], optimizer.state_dict(), f"{kind}: optimizer state",
                                      RESUME_ATOL)
        note(f"{kind}: C++ {k} steps -> Python {m} vs C++ {m}: max |diff| parameters {dc:.3g}, optimizer state {do:.3g}")


# ---------------------------------------------------------------- 4: cuda:0 tags

@test
def cuda_tagged_storages_load_on_cpu():
    d = fresh_dir("cuda")
    torch.manual_seed(41)
    model = SmallCnn()
    state = model.state_dict()
    cpu_file, cuda_file = os.path.join(d, "cpu.pt"), os.path.join(d, "cuda.pt")
    torch.save(state, cpu_file)
    entry = (0, lambda obj: "cuda:0", lambda obj, location: None)
    torch.serialization.register_package(*entry)
    try:
        torch.save(state, cuda_file)
    finally:
        torch.serialization._package_registry.remove(entry)
    check(entry not in torch.serialization._package_registry, "tagger still registered")
    with zipfile.ZipFile(cuda_file) as z:
        pickle = z.read(next(n for n in z.namelist() if n.endswith("/data.pkl")))
    check(b"cuda:0" in pickle and b"cpu" not in pickle, "the storages are not all tagged cuda:0")
    check(not torch.cuda.is_available(), "this test needs a machine without CUDA")
    try:
        torch.load(cuda_file)
        check(False, "stock torch.load read cuda:0 storages without a GPU")
    except RuntimeError as e:
        check("CUDA" in str(e), f"unexpected refusal: {e}")
    torch.load(cuda_file, map_location="cpu")  # the file itself is fine
    x = torch.randn(2, 1, 16, 16)
    inputs = os.path.join(d, "input.pt")
    torch.save({"input": x}, inputs)
    got_cuda, p = cpp_forward(cuda_file, inputs)
    check(summary(p.stdout)["cuda_tags"] == ["cuda:0"], f"cuda tags not reported:\n{p.stdout}")
    got_cpu, _ = cpp_forward(cpu_file, inputs)
    check(torch.equal(got_cuda, got_cpu), "the cuda-tagged file computes another output")
    same_output(got_cuda, python_forward(state, x), "cuda-tagged file vs Python")


# ---------------------------------------------------------------- 5: models by name

@test
def models_load_by_name():
    d = fresh_dir("models")
    torch_check("save-models", d)
    files = {n: os.path.join(d, n + ".ptm") for n in ("SmallCnn", "Mlp", "TextRnn")}
    check(sorted(os.listdir(d)) == sorted(os.path.basename(f) for f in files.values()), f"files {os.listdir(d)}")
    p = torch_check("load-models", *files.values())
    lines = p.stdout.splitlines()
    check(len(lines) == 3, f"load-models printed:\n{p.stdout}")
    for (name, f), line in zip(files.items(), lines):
        saved = torch.load(f, weights_only=True)
        header = saved["ptpack_model"]
        check(header["name"] == name and header["format"] == 1, f"{f}: header {header}")
        hparams = json.loads(header["hparams"])
        metadata = json.loads(saved["metadata"])
        check(metadata == {"written_by": "ptpack_torch_check", "epoch": 3}, f"{f}: metadata {metadata}")
        count = sum(v.numel() for k, v in saved["state_dict"].items()
                    if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
        fields = dict(x.split("=", 1) for x in line.split()[1:])
        check(line.split()[0] == f and fields["name"] == name, f"line {line!r}")
        check(json.loads(fields["hparams"]) == hparams and json.loads(fields["metadata"]) == metadata,
              f"{name}: printed {fields['hparams']} {fields['metadata']}, file has {hparams} {metadata}")
        check(int(fields["parameters"]) == count, f"{name}: {fields['parameters']} parameters, the file holds {count}")
        note(f"{name}: hparams {hparams}, {count} parameters, forward sum {fields['forward_sum']}")
        if name == "SmallCnn":
            check(hparams == {"channels": 4, "classes": 3, "side": 8, "dropout": 0.0}, f"hparams {hparams}")
            model = SmallCnn.from_hparams(hparams)
            model.load_state_dict(saved["state_dict"], strict=True)
            check(list(saved["state_dict"]) == list(model.state_dict()), "SmallCnn keys out of Python's order")
        info = ptpack("info", f).stdout
        model_lines = [x for x in info.splitlines() if x.startswith("model:")]
        if not model_lines:
            note(f"ptpack info {os.path.basename(f)} shows no 'model:' line yet; assertion skipped")
        else:
            shown = model_lines[0].split(None, 2)
            check(len(shown) == 3 and shown[1] == name and json.loads(shown[2]) == hparams,
                  f"ptpack info shows {model_lines[0]!r}, the file holds {name} {hparams}")

    saved = torch.load(files["SmallCnn"], weights_only=True)
    unknown = os.path.join(d, "unknown.ptm")
    saved["ptpack_model"]["name"] = "NoSuchNet"
    torch.save(saved, unknown)
    p = torch_check("load-models", unknown, expect=2)
    check("torch.registry-unknown" in p.stderr and "NoSuchNet" in p.stderr, f"stderr: {p.stderr}")
    check(all(n in p.stderr for n in files), f"the registered names are not listed: {p.stderr}")

    saved = torch.load(files["SmallCnn"], weights_only=True)
    bad = os.path.join(d, "bad-hparams.ptm")
    saved["ptpack_model"]["hparams"] = json.dumps({"channels": -1, "classes": 3, "side": 8, "dropout": 0.0})
    torch.save(saved, bad)
    p = torch_check("load-models", bad, expect=2)
    check("torch.hparams" in p.stderr and "channels" in p.stderr, f"stderr: {p.stderr}")


# ---------------------------------------------------------------- 6: train_resume crash safety

EPOCHS, SEED, KILLS = 16, 61, 20
STEPS_PER_EPOCH = 2048 // 64  # train_resume.cc's kSamples / kBatch


def train_resume(d, env=None, epochs=EPOCHS, expect=0):
    return run([Env.train_resume, "--dir", d, "--epochs", str(epochs), "--seed", str(SEED)], expect=expect, env=env)


def loss_lines(text):
    """{epoch: [lines]} of the complete "epoch E loss L" lines in TEXT."""
    lines = {}
    for line in text.split("\n")[:-1]:  # a line cut by the kill has no newline
        parts = line.split()
        if len(parts) == 4 and parts[0] == "epoch" and parts[2] == "loss":
            lines.setdefault(int(parts[1]), []).append(line)
    return lines


def load_bitwise_equal(got_file, want_file, what):
    got, want = torch.load(got_file, weights_only=True), torch.load(want_file, weights_only=True)
    check(list(got) == list(want), f"{what}: keys {list(got)}")
    for k in want:
        check(got[k].dtype == want[k].dtype and got[k].shape == want[k].shape and torch.equal(got[k], want[k]),
              f"{what}: {k} differs (max |diff| {max_diff(got[k], want[k]):.3g})")


def kill_loop(d, reference_lines, timing, rng, env=None):
    """Runs train_resume in D until KILLS runs were SIGKILLed at random moments (at most 3 x KILLS
    runs), then once more to completion (it must exit 0). While epochs remain, runs alternate:
    killed at a random moment from late start-up into the first epoch, or once they have printed
    an epoch's line, within the epoch that follows (inside training, the checkpoint save, or
    final.pt), so each killed run advances at most an epoch or two and the kills spread over the
    whole training; once training is done, during start-up or final.pt. Checks every run's
    leftovers and loss lines and returns counts for the report."""
    startup, per_epoch = timing
    stats = {"killed": 0, "finished early": 0, "killed after progress": 0, "hidden temporaries seen": 0}
    printed = {}
    argv = [Env.train_resume, "--dir", d, "--epochs", str(EPOCHS), "--seed", str(SEED)]
    out_file = path(os.path.basename(d) + ".stdout")
    attempt = 0
    while True:
        last = stats["killed"] >= KILLS or attempt >= 3 * KILLS
        before = sorted(glob.glob(os.path.join(d, "checkpoint-*.pt")))
        done = max((int(os.path.basename(f)[11:23]) for f in before), default=0) // STEPS_PER_EPOCH
        with open(out_file, "w") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
            if not last:
                if done < EPOCHS and attempt % 2:
                    while proc.poll() is None and os.path.getsize(out_file) == 0:
                        time.sleep(0.01)
                    time.sleep(rng.uniform(0, per_epoch))
                elif done < EPOCHS:
                    time.sleep(rng.uniform(0.5 * startup, startup + per_epoch))
                else:
                    time.sleep(rng.uniform(0.5 * startup, startup + 0.1))
                proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
        attempt += 1
        with open(out_file) as f:
            for e, lines in loss_lines(f.read()).items():
                printed.setdefault(e, []).extend(lines)
        if last:
            check(rc == 0, f"the final run in {d} exited {rc}")
        elif rc == -signal.SIGKILL:
            stats["killed"] += 1
            stats["killed after progress"] += sorted(glob.glob(os.path.join(d, "checkpoint-*.pt"))) != before
        else:
            check(rc == 0, f"a run in {d} exited {rc} on its own")
            stats["finished early"] += 1
        # After any run: checkpoints, final.pt and killed writers' hidden temporaries (named mode,
        # or with O_TMPFILE a kill between commit()'s link and rename), which the next write to
        # the same destination removes; after the last run there must be none.
        for name in os.listdir(d):
            hidden = name.startswith(".") and ".ptpack-" in name
            check(name == "final.pt" or (name.startswith("checkpoint-") and name.endswith(".pt")) or hidden,
                  f"stray file {name} in {d} after a run that exited {rc}")
            stats["hidden temporaries seen"] += hidden
        if last:
            break
    os.unlink(out_file)
    for e, lines in printed.items():
        for line in lines:
            check(line == reference_lines[e][0], f"epoch {e}: {line!r} after kills, uninterrupted {reference_lines[e][0]!r}")
    check(sorted(printed) == list(range(1, EPOCHS + 1)), f"epochs printed across the runs in {d}: {sorted(printed)}")
    stats["loss lines"] = sum(map(len, printed.values()))
    return stats


@test
def train_resume_survives_sigkill():
    seed = int(os.environ.get("PTPACK_KILL_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 30)
    note(f"kill seed {seed} (PTPACK_KILL_SEED={seed} repeats these delays)")
    # The uninterrupted run, timed by its lines: start-up (libtorch, data) and seconds per epoch.
    a = fresh_dir("resume-A")
    t0 = time.monotonic()
    proc = subprocess.Popen([Env.train_resume, "--dir", a, "--epochs", str(EPOCHS), "--seed", str(SEED)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps, out = [], []
    for line in proc.stdout:
        stamps.append(time.monotonic() - t0)
        out.append(line)
    stderr = proc.stderr.read()
    check(proc.wait() == 0 and len(stamps) == EPOCHS, f"uninterrupted run: exit {proc.returncode}\n{stderr}{''.join(out)}")
    total = time.monotonic() - t0
    per_epoch = (stamps[-1] - stamps[0]) / (EPOCHS - 1)
    startup = max(stamps[0] - per_epoch, 0.05)
    note(f"uninterrupted: {total:.2f} s (start-up {startup:.2f} s, {per_epoch:.2f} s per epoch)")
    p = subprocess.CompletedProcess([], 0, "".join(out), stderr)
    reference = loss_lines(p.stdout)
    check(sorted(reference) == list(range(1, EPOCHS + 1)) and all(len(v) == 1 for v in reference.values()),
          f"uninterrupted run printed:\n{p.stdout}")
    final_a = os.path.join(a, "final.pt")
    # train_resume's SmallCnn has the default hyper-parameters: its final.pt loads into Python's strictly
    SmallCnn().load_state_dict(torch.load(final_a, weights_only=True), strict=True)
    for name in os.listdir(a):
        check(name == "final.pt" or (name.startswith("checkpoint-") and name.endswith(".pt")), f"stray {name} in A")

    # The two kill loops run side by side (each run is single-threaded; 2 cores), each with its own
    # generator derived from the seed.
    loops = {"O_TMPFILE": ("resume-B", None),
             "named temporaries": ("resume-C", dict(os.environ, PTPACK_OUTPUT_NAMED="1"))}
    results = {}

    def loop(label, i):
        name, env = loops[label]
        try:
            results[label] = kill_loop(fresh_dir(name), reference, (startup, per_epoch), random.Random(seed * 2 + i), env)
        except BaseException as e:  # noqa: BLE001  (re-raised by the main thread)
            results[label] = e

    threads = [threading.Thread(target=loop, args=(label, i)) for i, label in enumerate(loops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for label, (name, _) in loops.items():
        if isinstance(results[label], BaseException):
            raise results[label]
        d = path(name)
        load_bitwise_equal(os.path.join(d, "final.pt"), final_a, f"{label}: final.pt")
        leftovers = [n for n in os.listdir(d) if not (n == "final.pt" or (n.startswith("checkpoint-") and n.endswith(".pt")))]
        check(not leftovers, f"{label}: left behind {leftovers}")
        r = results[label]
        note(f"{label}: {r['killed']} runs killed ({r['killed after progress']} after saving a checkpoint), "
             f"{r['finished early']} finished before their kill, {r['hidden temporaries seen']} hidden temporaries "
             f"seen between runs, {r['loss lines']} loss lines, all equal to the uninterrupted run's")
        check(r["killed"] == KILLS, f"{label}: {r['killed']} runs were killed, not {KILLS}")
        check(r["killed after progress"] >= KILLS // 4, f"{label}: only {r['killed after progress']} runs were killed after they made progress")

    # a truncated newest checkpoint is skipped: training resumes from the one before
    a2 = fresh_dir("resume-A2")
    for name in os.listdir(a):
        shutil.copy(os.path.join(a, name), os.path.join(a2, name))
    os.unlink(os.path.join(a2, "final.pt"))
    newest = newest_checkpoint(a2)
    with open(newest, "r+b") as f:
        f.truncate(os.path.getsize(newest) // 2)
    p = train_resume(a2)
    check("skipped" in p.stderr and os.path.basename(newest) in p.stderr, f"no skipped checkpoint named:\n{p.stderr}")
    check(f"resumed after epoch {EPOCHS - 1}" in p.stderr, f"did not resume from the previous checkpoint:\n{p.stderr}")
    check(loss_lines(p.stdout) == {EPOCHS: reference[EPOCHS]}, f"after the truncation it printed:\n{p.stdout}")
    load_bitwise_equal(os.path.join(a2, "final.pt"), final_a, "after a truncated checkpoint: final.pt")


# ---------------------------------------------------------------- 7: strict mode

@test
def strict_mismatch_names_keys_and_shapes():
    d = fresh_dir("strict")
    torch.manual_seed(71)
    small = os.path.join(d, "channels4.pt")
    torch.save(SmallCnn(channels=4).state_dict(), small)
    inputs = os.path.join(d, "input.pt")
    torch.save({"input": torch.randn(1, 1, 16, 16)}, inputs)
    _, p = cpp_forward(small, inputs, expect=2)
    check("torch.strict" in p.stderr, f"no torch.strict rule:\n{p.stderr}")
    want_shape, got_shape = tuple(SmallCnn().conv1.weight.shape), tuple(SmallCnn(channels=4).conv1.weight.shape)
    line = [x for x in p.stderr.splitlines() if "conv1.weight" in x] or [p.stderr]
    shapes = [", ".join(map(str, s)) for s in (want_shape, got_shape)] + ["x".join(map(str, s)) for s in (want_shape, got_shape)]
    check("conv1.weight" in p.stderr and ((shapes[0] in p.stderr and shapes[1] in p.stderr)
                                          or (shapes[2] in p.stderr and shapes[3] in p.stderr)),
          f"conv1.weight with shapes {want_shape} and {got_shape} not listed:\n{p.stderr}")
    note(f"message: {line[0].strip()[:200]}")
    # with the right hyper-parameters the same file loads
    cpp_forward(small, inputs, "--hparams", json.dumps({"channels": 4}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", required=True, help="ptpack_torch_check")
    parser.add_argument("--train-resume", required=True, help="train_resume")
    parser.add_argument("--ptpack", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    Env.check = os.path.abspath(args.check)
    Env.train_resume = os.path.abspath(args.train_resume)
    Env.ptpack = os.path.abspath(args.ptpack)
    suite.set_work(args.work)
    # One thread, as torch_check's `train` and train_resume: the same reductions in the same order.
    torch.set_num_threads(1)
    # Outputs are kept only when something failed (to look at).
    sys.exit(suite.run(args.k, full_tracebacks=True, total="line", cleanup=True))


if __name__ == "__main__":
    main()
