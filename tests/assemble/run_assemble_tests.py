#!/usr/bin/python3
"""End-to-end tests of `ptpack topology` and `ptpack assemble`, judged by stock PyTorch.

Usage: /usr/bin/python3 tests/assemble/run_assemble_tests.py --ptpack PATH --work DIR
       [-k SUBSTRING]   (run only the tests whose name contains it)

What it proves (truth always comes from torch 1.13: the checkpoints torch.save wrote, and the
package or TorchScript archive built the Python way from the same checkpoint; never from bytes
ptpack wrote):

* A torchvision resnet18 in a torch.package and TorchScript archives (scripted and traced): the
  topology keeps every record but the state-dict storages (in order, bytes unchanged) plus its
  manifest, whose keys are torch's state dict (dtype, shape, stride); `ptpack info` shows it. Every
  package `assemble` writes from real SGD checkpoints loads in stock PackageImporter /
  torch.jit.load with exactly the checkpoint's state dict, in the topology's layout, and a forward
  pass equal bit for bit to the package built the Python way (load_state_dict, then
  PackageExporter.save_pickle / torch.jit.script|trace + save). Records copied whole keep their
  offset modulo 4096 and valid CRCs.
* Tied weights stay one storage, buffers (running stats, num_batches_tracked) come from the
  checkpoint, a non-persistent buffer and a plain tensor attribute keep the topology's values, a
  view attribute and a parameter filling part of its storage end as torch's load_state_dict
  leaves them. Tied keys with different values in a checkpoint are refused or resolved as torch.
* Checkpoint kinds: training checkpoints (auto prefix and --select), DataParallel `module.`,
  non-contiguous and view tensors (zip and legacy), a flat storage holding every key, the legacy
  format, safetensors (written by the independent Python writer) and a sharded index, a
  torch.package and a TorchScript archive as the checkpoint, an ambiguous prefix; channels_last
  topologies filled from a contiguous checkpoint; --allow-cast bit for bit as torch's .to().
* Bad checkpoints (missing key, shape, dtype, extra keys, --strict-extra, truncated) exit 2 with
  a message naming every mismatched key and leave nothing at DIR/<stem>.pt (nor temporaries),
  while the good checkpoints of the same run are written. Refused topologies (several modules
  without --pickle, gaps, overlaps). The --json reports follow docs/cli.md.
* On a loop-mounted XFS with reflink (root only; SKIPPED otherwise) the output shares the
  checkpoint's extents instead of copying them.
* SIGKILL at random moments never leaves a partial DIR/<stem>.pt.

Environment: PTPACK_SANITIZED=1 keeps models and sizes small for ASan builds.
"""

import argparse
import collections
import copy
import filecmp
import hashlib
import importlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.join(os.path.dirname(HERE), "interop")
sys.path.insert(0, INTEROP)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "pylib"))

import torch  # noqa: E402
import torch.package  # noqa: E402
from torch import nn  # noqa: E402

import safetensors_writer  # noqa: E402  (tests/interop: an independent Python writer)
import suite  # noqa: E402  (tests/pylib: the shared harness)
from suite import Failure, check, fresh_dir, note, path, test  # noqa: E402

SANITIZED = os.environ.get("PTPACK_SANITIZED") == "1"


class Env:
    ptpack = None
    models = None  # the asm_models module (written under WORK, interned in the packages)


# ---------------------------------------------------------------- the models

# Written to WORK/pymodels/asm_models.py and imported from there, so that torch.package can
# intern the module's source (it cannot intern __main__).
MODELS_SOURCE = '''\
import torch
from torch import nn


class BNNet(nn.Module):
    """Convs with BatchNorm and a Linear head."""

    def __init__(self, classes=5, width=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean((2, 3)))


class TiedNet(nn.Module):
    """fc2.weight IS fc1.weight (one Parameter under two keys), BatchNorm buffers, `scale` a
    non-persistent buffer (or, with scale_buffer=False, a plain attribute as TorchScript 1.13
    forgets persistence) and `prior` a plain tensor attribute: neither is in the state dict.
    `part` is a parameter filling 4 of its storage's 10 elements."""

    def __init__(self, n=16, scale_buffer=True):
        super().__init__()
        self.fc1 = nn.Linear(n, n)
        self.bn = nn.BatchNorm1d(n)
        self.fc2 = nn.Linear(n, n)
        self.fc2.weight = self.fc1.weight
        if scale_buffer:
            self.register_buffer("scale", torch.rand(n) + 0.5, persistent=False)
        else:
            self.scale = torch.rand(n) + 0.5
        self.prior = torch.randn(n)
        self.bias_view = self.fc2.bias.detach()[2:6]  # a plain attribute viewing a parameter
        self.part = nn.Parameter(torch.randn(10)[3:7])  # a parameter in part of its storage

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x)))) * self.scale + self.prior + self.part.sum()


class Flat(nn.Module):
    """Parameters given as {name: tensor}, any dtype and layout (casts, layouts)."""

    def __init__(self, tensors):
        super().__init__()
        for k, t in tensors.items():
            self.register_parameter(k, nn.Parameter(t, requires_grad=t.is_floating_point()))

    def forward(self, x):
        return x


class BigNet(nn.Module):
    """`count` flat parameters of `numel` floats (zeros): large storages, trivial code."""

    def __init__(self, count, numel):
        super().__init__()
        for i in range(count):
            self.register_parameter(f"w{i}", nn.Parameter(torch.zeros(numel)))

    def forward(self, x):
        return sum(p[: x.numel()] * x for p in self.parameters())
'''


def load_models():
    d = path("pymodels")
    os.makedirs(d, exist_ok=True)
    f = os.path.join(d, "asm_models.py")
    if not (os.path.isfile(f) and open(f).read() == MODELS_SOURCE):
        with open(f, "w") as out:
            out.write(MODELS_SOURCE)
    sys.path.insert(0, d)
    Env.models = importlib.import_module("asm_models")


def resnet18(seed):
    import torchvision
    torch.manual_seed(seed)
    return torchvision.models.resnet18()


def bnnet(seed, **kwargs):
    torch.manual_seed(seed)
    return Env.models.BNNet(**kwargs)


# ---------------------------------------------------------------- torch: truths

PICKLE = ("model", "model.pkl")


def export_package(model, dst, extra_pickles=()):
    """The stock way: torchvision and torch extern, the test's model module interned."""
    with torch.package.PackageExporter(dst) as exp:
        exp.extern("torchvision.**")
        exp.intern("asm_models")
        exp.save_pickle(*PICKLE, model)
        for package, resource, obj in extra_pickles:
            exp.save_pickle(package, resource, obj)


def import_package(src):
    return torch.package.PackageImporter(src).load_pickle(*PICKLE)


def train_checkpoints(model, make_batch, count, steps, seed, dst_dir, prefix="ckpt"):
    """`count` checkpoints (torch.save(model.state_dict())) after `steps` SGD+momentum steps each
    on random data; returns the paths."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    paths = []
    for i in range(count):
        for _ in range(steps):
            x, y = make_batch()
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        p = os.path.join(dst_dir, f"{prefix}_{i + 1:03d}.pt")
        torch.save(model.state_dict(), p)
        paths.append(p)
    return paths, opt


def image_batch(classes, size=32, n=4):
    return lambda: (torch.randn(n, 3, size, size), torch.randint(0, classes, (n,)))


def vector_batch(features, n=8):
    return lambda: (torch.randn(n, features), torch.randint(0, features, (n,)))


def forward(module, x):
    module.eval()
    with torch.no_grad():
        return module(x)


def storage_bytes(tensors):
    """Bytes of the distinct storages of `tensors`."""
    seen = {}
    for t in tensors:
        s = t.storage()
        seen[(s.data_ptr(), s.nbytes())] = s.nbytes()
    return sum(seen.values())


def omitted_storage_bytes(tensors):
    """Bytes of the distinct storages whose every byte belongs to one of `tensors` (the records a
    topology omits); `tensors` are dense (their elements span numel x element size bytes)."""
    spans = {}
    for t in tensors:
        s = t.storage()
        begin = t.storage_offset() * t.element_size()
        spans.setdefault((s.data_ptr(), s.nbytes()), []).append((begin, begin + t.numel() * t.element_size()))
    total = 0
    for (_, nbytes), ranges in spans.items():
        covered, end = 0, 0
        for a, b in sorted(ranges):
            covered += max(0, b - max(a, end))
            end = max(end, b)
        total += nbytes if covered == nbytes else 0
    return total


def assert_state_dict(module, want, what, layout_of=None):
    """module.state_dict() holds exactly `want` (keys, dtype, shape, values); with layout_of (a
    module built the Python way) every tensor also has its strides."""
    got = module.state_dict()
    check(set(got) == set(want), f"{what}: state dict keys differ: only in output "
          f"{sorted(set(got) - set(want))[:5]}, only in the checkpoint {sorted(set(want) - set(got))[:5]}")
    ref = layout_of.state_dict() if layout_of is not None else {}
    for k, w in want.items():
        g = got[k]
        check(g.dtype == w.dtype and g.shape == w.shape,
              f"{what}: {k}: {g.dtype}{list(g.shape)} != checkpoint {w.dtype}{list(w.shape)}")
        check(torch.equal(g, w), f"{what}: {k}: values differ from the checkpoint "
              f"(max abs diff {(g.double() - w.double()).abs().max().item()})")
        if k in ref:
            check(g.stride() == ref[k].stride() and g.storage_offset() == ref[k].storage_offset(),
                  f"{what}: {k}: stride {g.stride()}+{g.storage_offset()}, the Python way has "
                  f"{ref[k].stride()}+{ref[k].storage_offset()}")


def assert_forward(got, want, what):
    check(got.dtype == want.dtype and got.shape == want.shape, f"{what}: output {got.dtype}"
          f"{list(got.shape)} != {want.dtype}{list(want.shape)}")
    check(torch.equal(got, want), f"{what}: forward differs from the Python-way package "
          f"(max abs diff {(got.double() - want.double()).abs().max().item()})")


# ---------------------------------------------------------------- running ptpack

def run(*args, timeout=600, env=None):
    return subprocess.run([Env.ptpack, *args], capture_output=True, text=True, timeout=timeout, env=env)


def cmdline(args):
    return "ptpack " + " ".join(args)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# `topology --json` (docs/cli.md): the manifest of docs/formats/topology.md plus "size".
MANIFEST_FIELDS = {"format": str, "version": is_int, "source": str, "source_format": str, "pickle": str,
                   "root": str, "records": list, "keys": list, "notes": list, "size": is_int}
MANIFEST_RECORD_FIELDS = {"name": str, "size": is_int, "omitted": bool}
MANIFEST_KEY_FIELDS = {"key": str, "kind": str, "dtype": str, "shape": list, "stride": list, "record": str,
                       "byte_offset": is_int, "nbytes": is_int}
# assemble --json (docs/cli.md; the brief's contract minus crc_reused_bytes)
PACKAGE_FIELDS = {"checkpoint": str, "output": str, "status": str, "source_format": str, "prefix": str,
                  "keys": is_int, "data_bytes": is_int, "cloned_or_copied_bytes": is_int,
                  "crc_reused_bytes": is_int, "gathered_bytes": is_int, "cast": list, "extra_keys": list,
                  "seconds": (int, float)}


def has_type(v, t):
    if t is bool:
        return isinstance(v, bool)
    if callable(t) and not isinstance(t, type) and not isinstance(t, tuple):
        return t(v)
    return isinstance(v, t) and not isinstance(v, bool)


def short(obj, n=300):
    text = repr(obj)
    return text if len(text) <= n else text[:n] + "..."


def check_fields(obj, fields, what, required=True):
    check(isinstance(obj, dict), f"{what}: not an object: {short(obj)}")
    for k, t in fields.items():
        if k not in obj:
            check(not required, f"{what}: no {k!r} in {short(obj)}")
            continue
        check(has_type(obj[k], t) or (not required and obj[k] is None),
              f"{what}: {k!r} is {short(obj[k])} ({type(obj[k]).__name__})")


def check_manifest(m, what):
    check_fields(m, {k: v for k, v in MANIFEST_FIELDS.items() if k != "size"}, what)
    check(m["format"] == "ptpack.topology" and m["version"] == 1, f"{what}: format {m['format']!r} "
          f"version {m['version']!r}")
    check(m["source_format"] in ("torch_package", "torchscript"), f"{what}: source_format {m['source_format']!r}")
    for r in m["records"]:
        check_fields(r, MANIFEST_RECORD_FIELDS, f"{what}: record")
    for k in m["keys"]:
        check_fields(k, MANIFEST_KEY_FIELDS, f"{what}: key")
        check(k["kind"] in ("parameter", "buffer"), f"{what}: kind {k['kind']!r}")
    check(all(isinstance(n, str) for n in m["notes"]), f"{what}: notes {short(m['notes'])}")


def topology(src, topo, *opts, rc=0):
    """`ptpack topology --json`; validates the report (the manifest plus "size", docs/cli.md) and
    adds the brief's counts: keys, omitted_records, omitted_bytes (and key_list, the manifest's
    keys). On failure checks that TOPO was not written."""
    args = ["topology", "--json", src, "-o", topo, *opts]
    existed = os.path.exists(topo)
    p = run(*args)
    if p.returncode != rc:
        raise Failure(f"{cmdline(args)}: exit {p.returncode}, wanted {rc}\n{p.stderr.strip()}")
    if rc != 0:
        check(existed or not os.path.exists(topo), f"failed {cmdline(args)} wrote {topo}")
        return p
    report = json.loads(p.stdout)
    check_manifest(report, "topology --json")
    check_fields(report, {"size": is_int}, "topology --json")
    check(os.path.basename(report["source"]) == os.path.basename(src), f"source {report['source']!r}")
    check(report["size"] == os.path.getsize(topo), f"size {report['size']} != {os.path.getsize(topo)}")
    r = dict(report)
    r["key_list"] = report["keys"]
    r["keys"] = len(report["keys"])
    r["omitted_records"] = sum(1 for x in report["records"] if x["omitted"])
    r["omitted_bytes"] = sum(x["size"] for x in report["records"] if x["omitted"])
    return r


def dtype_name(dtype):
    return str(dtype).split(".", 1)[1]


def check_topology(src, topo, report, module_sd, source_format, pickle="model/model.pkl"):
    """The topology zip: the source's records in order, minus only storage records whose bytes
    are the state-dict storages, plus the manifest; kept records byte-identical; the manifest's
    keys are the module's state dict (dtype, shape, stride; tied keys one record)."""
    check(report["source_format"] == source_format, f"source_format {report['source_format']}")
    if source_format == "torch_package":
        check(report["pickle"] == pickle, f"pickle {report['pickle']!r}")
    check(report["keys"] == len(module_sd), f"keys {report['keys']} != state dict {len(module_sd)}")
    keys = report["key_list"]
    names = [k["key"] for k in keys]
    if source_format == "torch_package":
        check(names == list(module_sd), f"manifest keys {names[:4]}... not state_dict()'s {list(module_sd)[:4]}...")
    else:
        check(sorted(names) == sorted(module_sd), f"manifest keys {sorted(set(names) ^ set(module_sd))[:6]} differ")
    by_storage = {}
    for k in keys:
        t = module_sd[k["key"]]
        want = {"dtype": dtype_name(t.dtype), "shape": list(t.shape), "stride": list(t.stride()),
                "nbytes": t.numel() * t.element_size(), "byte_offset": t.storage_offset() * t.element_size()}
        got = {f: k[f] for f in want}
        check(got == want, f"manifest key {k['key']}: {got} != torch's {want}")
        first = by_storage.setdefault(t.storage().data_ptr(), k)
        check(first["record"] == k["record"], f"{k['key']} shares a storage with {first['key']} but names "
              f"record {k['record']} != {first['record']}")
    with zipfile.ZipFile(src) as zs, zipfile.ZipFile(topo) as zt:
        src_infos = zs.infolist()
        src_names = [i.filename for i in src_infos]
        root = src_names[0].split("/", 1)[0]
        check(report["root"] == root + "/", f"root {report['root']!r}")
        manifest = f"{root}/.ptpack/topology.json"
        topo_names = zt.namelist()
        check(manifest in topo_names, f"{topo}: no {manifest} in {topo_names[-4:]}")
        check(len(set(topo_names)) == len(topo_names), f"{topo}: duplicate records")
        kept = [n for n in topo_names if n != manifest]
        omitted = [n for n in src_names if n not in set(kept)]
        check([n for n in src_names if n in set(kept)] == kept,
              f"{topo}: records not in the source's order (or foreign records): {kept[:6]}")
        manifest_records = [(root + "/" + r["name"], r["size"], r["omitted"]) for r in report["records"]]
        want_records = [(i.filename, i.file_size, i.filename in set(omitted)) for i in src_infos]
        check(manifest_records == want_records, f"manifest records differ from the source's: "
              f"{[a for a, b in zip(manifest_records, want_records) if a != b][:4]}")
        storage = re.compile(r"[^/]+/\.data/\d+\.storage$" if source_format == "torch_package"
                             else r"[^/]+/data/\d+$")
        check(all(storage.match(n) for n in omitted), f"{topo}: omitted non-storage records "
              f"{[n for n in omitted if not storage.match(n)]}")
        for n in kept:
            check(zt.read(n) == zs.read(n), f"{topo}: record {n} differs from the source's")
        omitted_bytes = sum(i.file_size for i in src_infos if i.filename in set(omitted))
        want_bytes = omitted_storage_bytes(module_sd.values())
        check(report["omitted_records"] == len(omitted), f"omitted_records {report['omitted_records']} "
              f"!= {len(omitted)}")
        check(report["omitted_bytes"] == omitted_bytes == want_bytes, f"omitted_bytes "
              f"{report['omitted_bytes']}, records omitted {omitted_bytes}, state-dict storages {want_bytes}")
        meta = json.loads(zt.read(manifest))
        check_manifest(meta, manifest)
        stored = {k: v for k, v in report.items() if k in MANIFEST_FIELDS and k not in ("size", "keys")}
        check(all(meta.get(k) == v for k, v in stored.items()) and meta["keys"] == report["key_list"],
              f"{manifest} differs from what topology --json printed")
    size, src_size = os.path.getsize(topo), os.path.getsize(src)
    check(size < src_size - want_bytes + 64 * 1024 + 256 * len(module_sd),
          f"topology of {size} bytes, source {src_size} with {want_bytes} weight bytes")
    p = run("info", topo)
    check(p.returncode == 0, f"ptpack info {topo}: exit {p.returncode}: {p.stderr.strip()}")
    check("topology" in p.stdout.lower(), f"ptpack info {topo} does not say topology:\n{p.stdout[:600]}")
    for k in list(module_sd)[:3] + list(module_sd)[-2:]:
        check(k in p.stdout, f"ptpack info {topo} does not list the key {k}:\n{p.stdout[:600]}")
    p = run("info", "--json", topo)
    check(p.returncode == 0, f"ptpack info --json {topo}: exit {p.returncode}: {p.stderr.strip()}")
    info = json.loads(p.stdout)
    check(info.get("keys") == report["key_list"] and info.get("records") == report["records"],
          f"ptpack info --json {topo} does not show the manifest: {short(info)}")
    return size, src_size


def assemble(topo, ckpts, out_dir, *opts, rc=0, env=None):
    """`ptpack assemble --json`; validates the report's schema and statuses against the exit
    status and the files in OUT_DIR; returns (report, process)."""
    args = ["assemble", "--json", topo, *ckpts, "-o", out_dir, *opts]
    p = run(*args, env=env)
    if rc is not None and p.returncode != rc:
        raise Failure(f"{cmdline(args)}: exit {p.returncode}, wanted {rc}\nstderr: {p.stderr.strip()}"
                      f"\nstdout: {p.stdout.strip()[:2000]}")
    report = None
    if p.stdout.strip():
        report = json.loads(p.stdout)
        check_report(report, topo, ckpts, p.returncode)
    else:
        check(rc != 0, f"{cmdline(args)}: no JSON report")
    return report, p


def check_report(report, topo, ckpts, rc):
    check(list(report) == ["topology", "packages", "failed"] or set(report) == {"topology", "packages", "failed"},
          f"assemble report keys {list(report)}")
    check(report["topology"] == topo, f"report topology {report['topology']!r}")
    check(isinstance(report["packages"], list) and is_int(report["failed"]), f"report {report}")
    check(len(report["packages"]) == len(ckpts), f"{len(report['packages'])} packages for {len(ckpts)} checkpoints")
    check([x["checkpoint"] for x in report["packages"]] == list(ckpts),
          f"packages {[x.get('checkpoint') for x in report['packages']]} != checkpoints {ckpts}")
    failed = 0
    for x in report["packages"]:
        what = f"report for {x.get('checkpoint')}"
        check(x.get("status") in ("ok", "error"), f"{what}: status {x.get('status')!r}")
        if x["status"] == "ok":
            check_fields(x, PACKAGE_FIELDS, what)
            check("error" not in x, f"{what}: an error on an ok package")
            check(all(isinstance(k, str) for k in x["cast"] + x["extra_keys"]), f"{what}: cast/extra_keys")
            check(x["output"] == expected_output(x["checkpoint"], None, os.path.dirname(x["output"])),
                  f"{what}: output {x['output']}")
            check(os.path.isfile(x["output"]), f"{what}: {x['output']} does not exist")
            check(x["seconds"] >= 0 and x["data_bytes"] >= 0 and x["keys"] > 0, f"{what}: {x}")
            check(x["cloned_or_copied_bytes"] + x["gathered_bytes"] <= x["data_bytes"],
                  f"{what}: copied {x['cloned_or_copied_bytes']} + gathered {x['gathered_bytes']} "
                  f"> data_bytes {x['data_bytes']}")
            check(x["crc_reused_bytes"] <= x["cloned_or_copied_bytes"], f"{what}: crc_reused_bytes "
                  f"{x['crc_reused_bytes']} > cloned_or_copied_bytes {x['cloned_or_copied_bytes']}")
        else:
            failed += 1
            check_fields(x, {"checkpoint": str, "status": str, "error": str}, what)
            check_fields(x, PACKAGE_FIELDS, what, required=False)
            check(x["error"].strip() != "", f"{what}: empty error")
    check(report["failed"] == failed, f"failed {report['failed']} but {failed} packages have status error")
    check((rc == 0) == (failed == 0), f"exit {rc} with {failed} failed packages")


def expected_output(ckpt, out_dir, report_dir=None):
    """DIR/<stem>.pt: the file name minus '.index.json' and minus its last extension."""
    name = os.path.basename(ckpt)
    if name.endswith(".index.json"):
        name = name[: -len(".index.json")]
    stem = os.path.splitext(name)[0]
    return os.path.join(out_dir if out_dir is not None else report_dir, stem + ".pt")


def package_of(report, ckpt):
    for x in report["packages"]:
        if x["checkpoint"] == ckpt:
            return x
    raise Failure(f"no report for {ckpt}")


def data_offsets(path):
    """{record: (data offset, size, CRC-32)} read from the local headers; zipfile checks every CRC."""
    out = {}
    with zipfile.ZipFile(path) as z, open(path, "rb") as f:
        bad = z.testzip()
        check(bad is None, f"{path}: record {bad} fails its CRC-32")
        for i in z.infolist():
            f.seek(i.header_offset)
            header = f.read(30)
            check(header[:4] == b"PK\x03\x04", f"{path}: {i.filename}: no local header")
            name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
            out[i.filename] = (i.header_offset + 30 + name_len + extra_len, i.file_size, i.CRC)
    return out


def check_alignment(output, ckpt, what):
    """Every storage record of OUTPUT that is a whole record of CKPT (same size and CRC) starts at
    an offset congruent to it modulo 4096 (so reflink can share blocks), and a multiple of 64."""
    src = {(size, crc): off for off, size, crc in data_offsets(ckpt).values()}
    matched = 0
    for name, (off, size, crc) in data_offsets(output).items():
        if "/.data/" in name and name.endswith(".storage") or re.search(r"/data/\d+$", name):
            check(off % 64 == 0, f"{what}: {name} data at {off}, not 64-byte aligned")
            if (size, crc) in src and size >= 4096:
                check(off % 4096 == src[(size, crc)] % 4096, f"{what}: {name} data at {off} "
                      f"({off % 4096} mod 4096), in the checkpoint at {src[(size, crc)]}")
                matched += 1
    return matched


def listing(d):
    return sorted(os.listdir(d))


# ---------------------------------------------------------------- 1. torchvision package

@test
def torch_package_resnet18():
    """resnet18 in a torch.package, checkpoints after SGD steps, assembled -j 2, against the
    package built the Python way for each checkpoint."""
    d = fresh_dir("package")
    count = 2 if SANITIZED else 3
    base = resnet18(1)
    src = os.path.join(d, "resnet18.pt")
    export_package(copy.deepcopy(base), src)
    topo = os.path.join(d, "resnet18.topo")
    report = topology(src, topo)
    sd0 = base.state_dict()
    size, src_size = check_topology(src, topo, report, import_package(src).state_dict(), "torch_package")
    note(f"topology {size} bytes of a {src_size}-byte package ({report['omitted_records']} records, "
         f"{report['omitted_bytes']} bytes omitted, {report['keys']} keys)")
    ckpt_dir = os.path.join(d, "ckpts")
    os.makedirs(ckpt_dir)
    ckpts, _ = train_checkpoints(copy.deepcopy(base), image_batch(1000, 32), count, 2, 2, ckpt_dir)
    out = os.path.join(d, "out")
    os.makedirs(out)
    t0 = time.monotonic()
    r, _ = assemble(topo, ckpts, out, "-j", "2")
    elapsed = time.monotonic() - t0
    check(listing(out) == sorted(os.path.basename(c) for c in ckpts), f"{out} holds {listing(out)}")
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    for c in ckpts:
        pk = package_of(r, c)
        check(pk["status"] == "ok" and pk["prefix"] == "" and pk["keys"] == len(sd0) and not pk["cast"]
              and not pk["extra_keys"], f"{c}: {pk}")
        check(pk["data_bytes"] == report["omitted_bytes"], f"{c}: data_bytes {pk['data_bytes']} != "
              f"omitted {report['omitted_bytes']}")
        check(pk["gathered_bytes"] == 0 and pk["cloned_or_copied_bytes"] == pk["data_bytes"] ==
              pk["crc_reused_bytes"], f"{c}: a plain torch.save checkpoint should be copied whole, its CRCs "
              f"reused, nothing gathered: {short(pk, 1000)}")
        aligned = check_alignment(pk["output"], c, pk["output"])
        want = torch.load(c)
        got = import_package(pk["output"])
        python_way = copy.deepcopy(base)
        python_way.load_state_dict(want)
        ref_path = os.path.join(d, "python_way_" + os.path.basename(c))
        export_package(python_way, ref_path)
        ref = import_package(ref_path)
        check(type(got).__name__ == "ResNet", f"{c}: loaded a {type(got)}")
        assert_state_dict(got, want, pk["output"], layout_of=ref)
        assert_forward(forward(got, x), forward(ref, x), pk["output"])
    note(f"{count} resnet18 packages ({r['packages'][0]['data_bytes']} data bytes each) assembled "
         f"in {elapsed:.2f} s; forward equal bit for bit to the Python-way packages; {aligned} records "
         f"of 4 KiB or more at offsets congruent to the checkpoint's mod 4096, CRCs valid")
    shutil.rmtree(d, ignore_errors=True)  # 450 MB; kept when the test fails


# ---------------------------------------------------------------- 2. TorchScript

@test
def torchscript_scripted_and_traced():
    d = fresh_dir("torchscript")
    torch.manual_seed(4)
    if SANITIZED:
        scripted_base, classes, size = bnnet(5), 5, 16
    else:
        scripted_base, classes, size = resnet18(5), 1000, 32
    traced_base = bnnet(6, width=12)
    x_script = torch.randn(2, 3, 48, 48)
    x_trace = torch.randn(2, 3, 20, 20)
    cases = [
        ("scripted", scripted_base, lambda m: torch.jit.script(m), image_batch(classes, size), 2, x_script),
        ("traced", traced_base, lambda m: torch.jit.trace(m.eval(), x_trace), image_batch(5, 12), 1, x_trace),
    ]
    for name, base, compile_, batch, count, x in cases:
        src = os.path.join(d, name + ".pt")
        torch.jit.save(compile_(copy.deepcopy(base)), src)
        topo = os.path.join(d, name + ".topo")
        report = topology(src, topo)
        size_, src_size = check_topology(src, topo, report, torch.jit.load(src).state_dict(), "torchscript")
        ckpt_dir = os.path.join(d, name + "_ckpts")
        os.makedirs(ckpt_dir)
        ckpts, _ = train_checkpoints(copy.deepcopy(base), batch, count, 2, 7, ckpt_dir, prefix=name)
        out = os.path.join(d, name + "_out")
        os.makedirs(out)
        r, _ = assemble(topo, ckpts, out, "-j", "2")
        check(listing(out) == sorted(os.path.basename(c) for c in ckpts), f"{out} holds {listing(out)}")
        for c in ckpts:
            pk = package_of(r, c)
            check(pk["status"] == "ok" and pk["prefix"] == "", f"{c}: {pk}")
            want = torch.load(c)
            got = torch.jit.load(pk["output"])
            python_way = copy.deepcopy(base)
            python_way.load_state_dict(want)
            ref_path = os.path.join(d, "python_way_" + os.path.basename(c))
            torch.jit.save(compile_(python_way), ref_path)
            ref = torch.jit.load(ref_path)
            assert_state_dict(got, want, pk["output"], layout_of=ref)
            assert_forward(forward(got, x), forward(ref, x), pk["output"])
        note(f"{name}: topology {size_} of {src_size} bytes, {len(ckpts)} checkpoints assembled, "
             f"forward equal to torch.jit.{'script' if name == 'scripted' else 'trace'} of the loaded model")
    shutil.rmtree(d, ignore_errors=True)  # 300 MB; kept when the test fails


# ---------------------------------------------------------------- 3. tied weights, buffers, attributes

@test
def tied_weights_buffers_attributes():
    d = fresh_dir("tied")
    M = Env.models
    torch.manual_seed(8)
    x = torch.randn(5, 16)
    views = []
    for fmt in ("torch_package", "torchscript"):
        torch.manual_seed(9)
        base = M.TiedNet(scale_buffer=fmt == "torch_package")
        sd0 = base.state_dict()
        check("scale" not in sd0 and "prior" not in sd0 and "fc2.weight" in sd0, f"state dict {list(sd0)}")
        src = os.path.join(d, fmt + ".pt")
        # not a deepcopy: that would compact `part` into a storage of its own
        if fmt == "torch_package":
            export_package(base, src)
        else:
            torch.jit.save(torch.jit.script(base), src)
        topo = os.path.join(d, fmt + ".topo")
        report = topology(src, topo)
        loaded_sd = (import_package(src) if fmt == "torch_package" else torch.jit.load(src)).state_dict()
        check(loaded_sd["part"].storage_offset() == 3, "torch did not save part as a view")
        check_topology(src, topo, report, loaded_sd, fmt)
        check(report["omitted_bytes"] == omitted_storage_bytes(loaded_sd.values()) < sum(
            t.numel() * t.element_size() for t in loaded_sd.values()) - 16, "tied storage counted twice")
        check(any("kept" in n for n in report["notes"]), f"no note on part's kept record: {report['notes']}")
        ckpts, _ = train_checkpoints(copy.deepcopy(base), vector_batch(16), 2, 3, 10, d, prefix=fmt)
        out = os.path.join(d, fmt + "_out")
        os.makedirs(out)
        r, _ = assemble(topo, ckpts, out)
        key_bytes = sum({(t.storage().data_ptr(), t.storage_offset()): t.numel() * t.element_size()
                         for t in loaded_sd.values()}.values())
        for c in ckpts:
            pk = package_of(r, c)
            check(pk["cloned_or_copied_bytes"] + pk["gathered_bytes"] == key_bytes,
                  f"{c}: copied {pk['cloned_or_copied_bytes']} + gathered {pk['gathered_bytes']} != the "
                  f"{key_bytes} bytes of the distinct keys (data_bytes {pk['data_bytes']})")
            want = torch.load(c)
            check(want["fc1.weight"].data_ptr() == want["fc2.weight"].data_ptr(), "torch.save untied")
            out_path = package_of(r, c)["output"]
            python_way = copy.deepcopy(base)
            python_way.load_state_dict(want)
            ref_path = os.path.join(d, f"python_way_{os.path.basename(c)}")
            if fmt == "torch_package":
                got = import_package(out_path)
                export_package(python_way, ref_path)
                ref = import_package(ref_path)
            else:
                got = torch.jit.load(out_path)
                torch.jit.save(torch.jit.script(python_way), ref_path)
                ref = torch.jit.load(ref_path)
            # layouts as torch loads the source (the Python way's deepcopy compacts `part`)
            loaded = import_package(src) if fmt == "torch_package" else torch.jit.load(src)
            loaded.load_state_dict(want)
            assert_state_dict(got, want, out_path, layout_of=loaded)
            check(got.fc1.weight.storage().data_ptr() == got.fc2.weight.storage().data_ptr(),
                  f"{out_path}: fc1.weight and fc2.weight no longer share a storage")
            check(int(got.bn.num_batches_tracked) == int(want["bn.num_batches_tracked"]) > 0,
                  f"{out_path}: num_batches_tracked {int(got.bn.num_batches_tracked)}")
            check(not torch.equal(got.bn.running_mean, sd0["bn.running_mean"]), "running_mean never trained")
            check(torch.equal(got.scale, base.scale), f"{out_path}: scale (not in the state dict) changed")
            check(torch.equal(got.prior, base.prior), f"{out_path}: prior (plain attribute) changed")
            # bias_view, judged by torch: the source archive after load_state_dict (an in-place copy)
            shares = loaded.bias_view.storage().data_ptr() == loaded.fc2.bias.storage().data_ptr()
            check(torch.equal(got.bias_view, loaded.bias_view), f"{out_path}: bias_view (a view of fc2.bias "
                  f"in Python) is {got.bias_view.tolist()}, torch has {loaded.bias_view.tolist()}")
            check((got.bias_view.storage().data_ptr() == got.fc2.bias.storage().data_ptr()) == shares,
                  f"{out_path}: bias_view shares fc2.bias's storage: {not shares}, in torch's load: {shares}")
            # `part`: its record is kept whole, the key's region overwritten, the rest as torch keeps it
            check(got.part.storage_offset() == 3 and got.part.storage().size() == 10,
                  f"{out_path}: part lies at {got.part.storage_offset()} in {got.part.storage().size()} elements")
            check(got.part.storage().tolist() == loaded.part.storage().tolist(), f"{out_path}: part's storage "
                  f"{got.part.storage().tolist()} != torch's {loaded.part.storage().tolist()}")
            views.append(f"{fmt}: bias_view {'shares' if shares else 'does not share'} fc2.bias's storage")
            assert_forward(forward(got, x), forward(ref, x), out_path)
        note(f"{fmt}: tied storage of {report['omitted_bytes']} bytes omitted once; scale/prior kept; "
             f"{views[-1]}")


# ---------------------------------------------------------------- 4. checkpoint kinds

def small_setup(d, seed=11):
    """BNNet in a torch.package, its topology, a trained state dict and the Python-way forward."""
    base = bnnet(seed)
    src = os.path.join(d, "bnnet.pt")
    export_package(copy.deepcopy(base), src)
    topo = os.path.join(d, "bnnet.topo")
    report = topology(src, topo)
    model = copy.deepcopy(base)
    _, opt = train_checkpoints(model, image_batch(5, 12), 1, 3, seed + 1, d, prefix="trained")
    sd = torch.load(os.path.join(d, "trained_001.pt"))
    return base, topo, report, model, opt, sd


def python_way_forward(base, sd, x, d, name="python_way.pt"):
    m = copy.deepcopy(base)
    m.load_state_dict(sd)
    p = os.path.join(d, name)
    export_package(m, p)
    ref = import_package(p)
    return ref, forward(ref, x)


@test
def checkpoint_kinds():
    d = fresh_dir("kinds")
    base, topo, treport, model, opt, sd = small_setup(d)
    torch.manual_seed(12)
    x = torch.randn(3, 3, 10, 10)
    ref, want_out = python_way_forward(base, sd, x, d)
    ck = os.path.join(d, "ckpts")
    os.makedirs(ck)
    files = {}

    def save(name, obj, **kwargs):
        files[name] = os.path.join(ck, name)
        torch.save(obj, files[name], **kwargs)

    save("training.pt", {"epoch": 3, "model_state": model.state_dict(), "optimizer_state": opt.state_dict(),
                         "arch": "bnnet"})
    save("dataparallel.pt", nn.DataParallel(model).state_dict())
    nc = collections.OrderedDict((k, v.clone()) for k, v in sd.items())
    nc["fc.weight"] = sd["fc.weight"].t().contiguous().t()  # transposed layout, same values
    nc["conv2.weight"] = sd["conv2.weight"].contiguous(memory_format=torch.channels_last)
    big = torch.randn(200)
    big[40:40 + sd["bn1.bias"].numel()] = sd["bn1.bias"]
    nc["bn1.bias"] = big[40:40 + sd["bn1.bias"].numel()]  # a slice of a bigger storage
    strided = torch.zeros(2 * sd["bn2.running_var"].numel())
    strided[1::2] = sd["bn2.running_var"]
    nc["bn2.running_var"] = strided[1::2]  # a strided view with an offset
    check(not nc["fc.weight"].is_contiguous() and nc["bn1.bias"].storage_offset() == 40, "views")
    save("noncontiguous.pt", nc)
    save("legacy.pt", sd, _use_new_zipfile_serialization=False)
    save("legacy_views.pt", nc, _use_new_zipfile_serialization=False)
    # every float key a view into one flat storage (a flat parameter buffer), at odd offsets
    floats = [k for k, v in sd.items() if v.is_floating_point()]
    flat = torch.empty(3 + sum(sd[k].numel() + 1 for k in floats))
    packed, at = collections.OrderedDict(), 3
    for k, v in sd.items():
        if v.is_floating_point():
            flat[at:at + v.numel()] = v.reshape(-1)
            packed[k] = flat[at:at + v.numel()].view(v.shape)
            at += v.numel() + 1
        else:
            packed[k] = v
    save("packed.pt", packed)
    files["weights.safetensors"] = os.path.join(ck, "weights.safetensors")
    safetensors_writer.write_safetensors(files["weights.safetensors"],
                                         {k: v.contiguous() for k, v in sd.items()}, {"format": "pt"})
    keys = list(sd)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    for shard, names in shards.items():
        safetensors_writer.write_safetensors(os.path.join(ck, shard), {k: sd[k].contiguous() for k in names},
                                             {"format": "pt"})
    files["model.safetensors.index.json"] = os.path.join(ck, "model.safetensors.index.json")
    with open(files["model.safetensors.index.json"], "w") as f:
        json.dump({"metadata": {"total_size": storage_bytes(sd.values())},
                   "weight_map": {k: s for s, names in shards.items() for k in names}}, f)
    m = copy.deepcopy(base)
    m.load_state_dict(sd)
    files["as_package.pt"] = os.path.join(ck, "as_package.pt")
    export_package(m, files["as_package.pt"])
    files["as_torchscript.pt"] = os.path.join(ck, "as_torchscript.pt")
    torch.jit.save(torch.jit.script(m), files["as_torchscript.pt"])

    out = os.path.join(d, "out")
    os.makedirs(out)
    names = list(files)
    r, p = assemble(topo, [files[n] for n in names], out, "-j", "2")
    want_prefix = {"training.pt": "model_state.", "dataparallel.pt": "module."}
    summary = []
    for n in names:
        pk = package_of(r, files[n])
        check(pk["status"] == "ok", f"{n}: {pk}")
        check(pk["output"] == expected_output(n, out), f"{n}: output {pk['output']}")
        if n in want_prefix:
            check(pk["prefix"] == want_prefix[n], f"{n}: prefix {pk['prefix']!r}, wanted {want_prefix[n]!r}")
        if n == "noncontiguous.pt":
            check(pk["gathered_bytes"] > 0, f"{n}: transposed tensors cannot be copied whole: {pk}")
        got = import_package(pk["output"])
        data_offsets(pk["output"])  # CRCs
        assert_state_dict(got, sd, f"{n} -> {pk['output']}", layout_of=ref)
        assert_forward(forward(got, x), want_out, f"{n} -> {pk['output']}")
        summary.append(f"{n}: {pk['source_format']} prefix {pk['prefix']!r} copied "
                       f"{pk['cloned_or_copied_bytes']} gathered {pk['gathered_bytes']}")
    check(listing(out) == sorted(os.path.basename(expected_output(n, out)) for n in names),
          f"{out} holds {listing(out)}")
    for s in summary:
        note(s)

    # --select model_state, and an ambiguous prefix
    out2 = os.path.join(d, "out_select")
    os.makedirs(out2)
    r, _ = assemble(topo, [files["training.pt"]], out2, "--select", "model_state")
    check(r["packages"][0]["prefix"] in ("model_state.", "model_state"), f"--select: {r['packages'][0]}")
    assert_state_dict(import_package(r["packages"][0]["output"]), sd, "--select model_state", layout_of=ref)
    other = bnnet(13).state_dict()
    amb = os.path.join(ck, "ambiguous.pt")
    torch.save({"ema": other, "model": sd}, amb)
    r, p = assemble(topo, [amb], out2, rc=2)
    text = p.stderr + json.dumps(r)
    check("--select" in text, f"an ambiguous prefix should ask for --select: {p.stderr.strip()}")
    check(not os.path.exists(expected_output(amb, out2)), "ambiguous checkpoint written")
    r, _ = assemble(topo, [amb], out2, "--select", "model")
    got = import_package(r["packages"][0]["output"])
    assert_state_dict(got, sd, "--select model", layout_of=ref)
    assert_forward(forward(got, x), want_out, "--select model")
    note("ambiguous prefix refused, asking for --select; --select model picked the right one")


@test
def channels_last_topology():
    """The topology's conv weights are channels_last; a contiguous checkpoint must land in that
    layout with the right values."""
    d = fresh_dir("channels_last")
    base = bnnet(14).to(memory_format=torch.channels_last)
    check(base.conv1.weight.stride() != base.conv1.weight.contiguous().stride(), "not channels_last")
    src = os.path.join(d, "cl.pt")
    export_package(copy.deepcopy(base), src)
    topo = os.path.join(d, "cl.topo")
    report = topology(src, topo)
    check_topology(src, topo, report, import_package(src).state_dict(), "torch_package")
    trained = bnnet(14)  # contiguous
    trained.load_state_dict(base.state_dict())
    ckpts, _ = train_checkpoints(trained, image_batch(5, 12), 1, 2, 15, d, prefix="contiguous")
    sd = torch.load(ckpts[0])
    check(sd["conv1.weight"].is_contiguous(), "the checkpoint is channels_last")
    out = os.path.join(d, "out")
    os.makedirs(out)
    r, _ = assemble(topo, ckpts, out)
    got = import_package(r["packages"][0]["output"])
    torch.manual_seed(16)
    x = torch.randn(2, 3, 9, 9).contiguous(memory_format=torch.channels_last)
    ref, want_out = python_way_forward(base, sd, x, d)
    check(ref.conv1.weight.is_contiguous(memory_format=torch.channels_last), "Python way lost channels_last")
    assert_state_dict(got, sd, "channels_last", layout_of=ref)
    check(got.conv1.weight.is_contiguous(memory_format=torch.channels_last), "output not channels_last")
    assert_forward(forward(got, x), want_out, "channels_last")
    gathered = r["packages"][0]["gathered_bytes"]
    # the same in TorchScript, against the scripted Python model
    ts = os.path.join(d, "cl_ts.pt")
    torch.jit.save(torch.jit.script(base), ts)
    ts_topo = os.path.join(d, "cl_ts.topo")
    check_topology(ts, ts_topo, topology(ts, ts_topo), torch.jit.load(ts).state_dict(), "torchscript")
    ts_out = os.path.join(d, "out_ts")
    os.makedirs(ts_out)
    r, _ = assemble(ts_topo, ckpts, ts_out)
    got = torch.jit.load(r["packages"][0]["output"])
    python_way = copy.deepcopy(base)
    python_way.load_state_dict(sd)
    ref_path = os.path.join(d, "python_way_ts.pt")
    torch.jit.save(torch.jit.script(python_way), ref_path)
    ref = torch.jit.load(ref_path)
    assert_state_dict(got, sd, "TorchScript channels_last", layout_of=ref)
    check(got.conv2.weight.is_contiguous(memory_format=torch.channels_last), "TorchScript output not channels_last")
    assert_forward(forward(got, x), forward(ref, x), "TorchScript channels_last")
    note(f"channels_last conv weights (torch.package and TorchScript) filled from a contiguous checkpoint: "
         f"gathered {gathered} of {r['packages'][0]['data_bytes']} bytes")


# ---------------------------------------------------------------- 5. bad checkpoints

SHAPE_SEP = r"\s*[,x×]\s*"


def mentions_shape(text, shape):
    body = SHAPE_SEP.join(str(n) for n in shape)
    return re.search(r"(?<![\d.])" + body + r"(?![\d.])", text) is not None if shape else \
        ("[]" in text or "()" in text or "scalar" in text)


@test
def bad_checkpoints():
    d = fresh_dir("bad")
    base, topo, _, _, _, sd = small_setup(d, seed=17)
    ck = os.path.join(d, "ckpts")
    os.makedirs(ck)
    good = os.path.join(ck, "good.pt")
    torch.save(sd, good)

    def variant(name, **changes):
        v = collections.OrderedDict(sd)
        for k, t in changes.items():
            k = k.replace("__", ".")
            if t is None:
                del v[k]
            else:
                v[k] = t
        p = os.path.join(ck, name)
        torch.save(v, p)
        return p

    out = os.path.join(d, "out")
    os.makedirs(out)

    def failing(ckpt, *opts, words=()):
        """exit 2, the words in the message, nothing at DIR/<stem>.pt, no stray files."""
        before = listing(out)
        r, p = assemble(topo, [ckpt], out, *opts, rc=2)
        text = p.stderr + "\n" + (json.dumps(r) if r else "")
        for w in words:
            ok = w(text) if callable(w) else w in text
            check(ok, f"ptpack assemble {os.path.basename(ckpt)} {' '.join(opts)}: the message should "
                  f"mention {getattr(w, '__name__', w)}:\n{p.stderr.strip()}")
        check(listing(out) == before, f"failed assemble changed {out}: {before} -> {listing(out)}")
        return p

    missing = variant("missing.pt", bn1__running_var=None)
    failing(missing, words=["bn1.running_var"])
    bad_shape = variant("shape.pt", fc__weight=torch.randn(7, 16))
    with open(expected_output(bad_shape, out), "wb") as f:
        f.write(b"previous content")

    def both_shapes(text):
        return mentions_shape(text, [5, 16]) and mentions_shape(text, [7, 16])
    p = failing(bad_shape, words=["fc.weight", both_shapes])
    check(open(expected_output(bad_shape, out), "rb").read() == b"previous content", "old output replaced")
    os.unlink(expected_output(bad_shape, out))
    shape_message = p.stderr.strip()
    half = variant("half.pt", fc__weight=sd["fc.weight"].half())
    p = failing(half, words=["fc.weight", lambda t: re.search(r"float16|half|f16", t, re.I),
                             lambda t: re.search(r"float32|float\b|f32", t, re.I)])
    check("--allow-cast" in p.stderr, f"a dtype mismatch should point at --allow-cast: {p.stderr.strip()}")

    # --allow-cast: float64 values that float32 cannot hold exactly, cast as torch's .to() does
    torch.manual_seed(18)
    sd64 = collections.OrderedDict(
        (k, v.double() + torch.randn(v.shape, dtype=torch.float64) * 1e-9 if v.is_floating_point() else v)
        for k, v in sd.items())
    f64 = os.path.join(ck, "f64.pt")
    torch.save(sd64, f64)
    failing(f64, words=["conv1.weight", lambda t: re.search(r"float64|double|f64", t, re.I)])
    r, _ = assemble(topo, [f64], out, "--allow-cast")
    pk = r["packages"][0]
    float_keys = sorted(k for k, v in sd.items() if v.is_floating_point())
    check(sorted(pk["cast"]) == float_keys, f"cast {pk['cast']} != {float_keys}")
    want = collections.OrderedDict((k, v.to(torch.float32) if v.is_floating_point() else v)
                                   for k, v in sd64.items())
    assert_state_dict(import_package(pk["output"]), want, "--allow-cast float64")
    os.unlink(pk["output"])

    # extra keys: reported; --strict-extra refuses
    extra = variant("extra.pt", head__extra=torch.ones(3), fc__scale=torch.zeros(2))
    r, p = assemble(topo, [extra], out)
    pk = r["packages"][0]
    check(sorted(pk["extra_keys"]) == ["fc.scale", "head.extra"], f"extra_keys {pk['extra_keys']}")
    assert_state_dict(import_package(pk["output"]), sd, "extra keys")
    os.unlink(pk["output"])
    p = run("assemble", topo, extra, "-o", out)
    check(p.returncode == 0 and "head.extra" in p.stdout + p.stderr,
          f"extra keys should be reported in text mode (exit {p.returncode}):\n{p.stdout}{p.stderr}")
    os.unlink(expected_output(extra, out))
    failing(extra, "--strict-extra", words=["head.extra"])

    # a truncated checkpoint, a missing file
    with open(good, "rb") as f:
        data = f.read()
    truncated = os.path.join(ck, "truncated.pt")
    with open(truncated, "wb") as f:
        f.write(data[: len(data) * 3 // 5])
    failing(truncated, words=["truncated.pt"])
    failing(os.path.join(ck, "no_such.pt"), words=["no_such.pt"])
    failing(good, "--select", "nope", words=["nope"])
    truncated_st = os.path.join(ck, "truncated.safetensors")
    safetensors_writer.write_safetensors(truncated_st, {k: v.contiguous() for k, v in sd.items()})
    with open(truncated_st, "r+b") as f:
        f.truncate(os.path.getsize(truncated_st) - 100)
    failing(truncated_st)

    # DIR/<stem>.pt would be the checkpoint itself (or the topology): refused, both intact
    with open(good, "rb") as f:
        good_bytes = f.read()
    p = run("assemble", topo, good, "-o", ck)
    check(p.returncode == 2 and open(good, "rb").read() == good_bytes,
          f"assemble {good} -o {ck} (the output would replace the checkpoint): exit {p.returncode}")
    os.makedirs(os.path.join(d, "as_topo"))
    topo_copy = os.path.join(d, "as_topo", "good.pt")
    shutil.copy(topo, topo_copy)
    p = run("assemble", topo_copy, good, "-o", os.path.join(d, "as_topo"))
    check(p.returncode == 2 and filecmp.cmp(topo, topo_copy, shallow=False),
          f"an output replacing the topology: exit {p.returncode}")

    # one good, several bad, -j 2: the good one is written, exit 2
    for env in ({}, {"PTPACK_OUTPUT_NAMED": "1"}):
        for name in listing(out):
            os.unlink(os.path.join(out, name))
        r, _ = assemble(topo, [missing, good, truncated, bad_shape], out, "-j", "2", rc=2,
                        env=dict(os.environ, **env))
        check([x["status"] for x in r["packages"]] == ["error", "ok", "error", "error"] and r["failed"] == 3,
              f"statuses {[x['status'] for x in r['packages']]}")
        check(listing(out) == ["good.pt"], f"{out} holds {listing(out)} {env}")
        assert_state_dict(import_package(os.path.join(out, "good.pt")), sd, "good beside bad ones")
    note(f"shape message: {shape_message.splitlines()[-1] if shape_message else ''}")


def special_floats():
    """Values where rounding to bf16/fp16 is delicate (as the convert suite)."""
    return torch.tensor([1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-8), 2**-126, 2**-133,
                         2**-24, 2**-25, 3 * 2**-25, 65504, 65519.99, 65520, 1e5, 3.0e38, 3.4028234663852886e38,
                         1e-45, -1e-45, 0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1 / 3, -2 / 3],
                        dtype=torch.float32)


def double_rounding():
    """float64 values a direct rounding to 16 bits gets different from torch (via float32)."""
    return torch.tensor([1 + 2**-8 + 2**-40, 1 + 2**-11 + 2**-40, 1 - 2**-40, 65519.999999,
                         2**-25 + 2**-60, 1e300, -1e-300, float("nan"), 1 / 3], dtype=torch.float64)


def assert_cast_like_torch(got, want, what):
    """Bit for bit but NaN payloads (torch itself writes several)."""
    check(got.dtype == want.dtype and got.shape == want.shape, f"{what}: {got.dtype}{list(got.shape)} != "
          f"{want.dtype}{list(want.shape)}")
    if not want.is_floating_point():
        check(torch.equal(got, want), f"{what}: {got.tolist()} != {want.tolist()}")
        return
    nan_w, nan_g = torch.isnan(want), torch.isnan(got)
    check(torch.equal(nan_w, nan_g), f"{what}: NaN positions differ")
    bits = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}[want.dtype]
    wb, gb = want[~nan_w].contiguous().view(bits), got[~nan_g].contiguous().view(bits)
    if not torch.equal(wb, gb):
        i = int((wb != gb).nonzero()[0])
        raise Failure(f"{what}: differs from torch's .to({want.dtype}) at {i}: torch "
                      f"{want[~nan_w][i].item()!r}, ptpack {got[~nan_g][i].item()!r}")


@test
def allow_cast_like_torch():
    """--allow-cast rounds as torch's .to() does (ties to even, subnormals, overflow, float64 via
    float32), also into a transposed topology layout from a transposed checkpoint view; integer
    dtype changes stay refused."""
    d = fresh_dir("cast")
    torch.manual_seed(32)
    topo_tensors = collections.OrderedDict([
        ("sp_h", torch.zeros(25, dtype=torch.float16)), ("sp_b", torch.zeros(25, dtype=torch.bfloat16)),
        ("dr_h", torch.zeros(9, dtype=torch.float16)), ("dr_b", torch.zeros(9, dtype=torch.bfloat16)),
        ("rnd_h", torch.zeros(1000, dtype=torch.float16)), ("rnd_f", torch.zeros(1000)),
        ("tr_b", torch.zeros(30, 20, dtype=torch.bfloat16).t()),  # a transposed layout in the topology
        ("same", torch.zeros(7)), ("count", torch.zeros(3, dtype=torch.int64)), ("empty", torch.zeros(0)),
    ])
    base = Env.models.Flat(topo_tensors)
    src = os.path.join(d, "flat.pt")
    export_package(base, src)
    topo = os.path.join(d, "flat.topo")
    report = topology(src, topo)
    check_topology(src, topo, report, import_package(src).state_dict(), "torch_package")
    ck = collections.OrderedDict([
        ("sp_h", special_floats()), ("sp_b", special_floats()), ("dr_h", double_rounding()),
        ("dr_b", double_rounding()), ("rnd_h", torch.randn(1000, dtype=torch.float64) * 1e3),
        ("rnd_f", torch.randn(1000, dtype=torch.float64)), ("tr_b", torch.randn(30, 20).t().contiguous().t()),
        ("same", torch.randn(7)), ("count", torch.tensor([1, 2, 3])), ("empty", torch.zeros(0)),
    ])
    ck["tr_b"] = torch.randn(20, 30).t().contiguous().t()  # values [20, 30] in a transposed layout
    cpath = os.path.join(d, "ckpt.pt")
    torch.save(ck, cpath)
    out = os.path.join(d, "out")
    os.makedirs(out)
    r, _ = assemble(topo, [cpath], out, "--allow-cast")
    pk = r["packages"][0]
    want_cast = sorted(k for k in ck if ck[k].dtype != topo_tensors[k].dtype)
    check(sorted(pk["cast"]) == want_cast, f"cast {pk['cast']} != {want_cast}")
    got = import_package(pk["output"])
    loaded = import_package(src)
    for k, t in ck.items():
        g = getattr(got, k).detach()
        check(g.stride() == getattr(loaded, k).stride(), f"{k}: stride {g.stride()} != the topology's")
        assert_cast_like_torch(g, t.to(topo_tensors[k].dtype), k)
    # an integer dtype change is not a float cast
    ck["count"] = torch.tensor([1, 2, 3], dtype=torch.int32)
    torch.save(ck, cpath)
    os.unlink(pk["output"])
    r, p = assemble(topo, [cpath], out, "--allow-cast", rc=2)
    check("count" in p.stderr and listing(out) == [], f"int32 -> int64: {p.stderr.strip()[:300]}")
    note(f"{len(want_cast)} keys cast bit for bit as torch's .to() (gathered {pk['gathered_bytes']} bytes)")


@test
def tied_keys_that_disagree():
    """A checkpoint whose two tied keys hold different values (an untied fine-tune, a safetensors
    file): the topology has one storage for both. ptpack must not silently pick one that torch
    would not: either refuse (exit 2 naming the keys) or do what load_state_dict does (copies in
    key order: the last key wins)."""
    d = fresh_dir("tied_disagree")
    torch.manual_seed(33)
    base = Env.models.TiedNet()
    src = os.path.join(d, "tied.pt")
    export_package(base, src)
    topo = os.path.join(d, "tied.topo")
    topology(src, topo)
    sd = collections.OrderedDict((k, v.clone()) for k, v in base.state_dict().items())
    sd["fc2.weight"] = sd["fc2.weight"] + 1  # no longer the same tensor
    ck = os.path.join(d, "untied.pt")
    torch.save(sd, ck)
    out = os.path.join(d, "out")
    os.makedirs(out)
    r, p = assemble(topo, [ck], out, rc=None)
    if r["packages"][0]["status"] == "error":
        check("fc1.weight" in r["packages"][0]["error"] and "fc2.weight" in r["packages"][0]["error"],
              f"the refusal should name both tied keys: {r['packages'][0]['error']}")
        note("refused: tied keys with different values")
        return
    got = import_package(r["packages"][0]["output"])
    torch_way = import_package(src)
    torch_way.load_state_dict(sd)
    which = "fc1.weight (the first key)" if torch.equal(got.fc1.weight, sd["fc1.weight"]) else "?"
    check(torch.equal(got.fc1.weight, torch_way.fc1.weight), f"accepted silently (exit 0) and wrote {which}, "
          f"while load_state_dict ends with fc2.weight's values (the last copy): the assembled model "
          f"differs from the Python way")


@test
def mismatch_message_names_every_key():
    """The contract: a mismatch error names EACH key with both shapes/dtypes, in the text and the
    JSON report; a multi-line message prints as lines (not escaped)."""
    d = fresh_dir("every_key")
    base, topo, _, _, _, sd = small_setup(d, seed=30)
    wrong = collections.OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in sd.items())
    del wrong["bn2.bias"]
    wrong["fc.weight"] = torch.zeros(9, 16)
    ck = os.path.join(d, "wrong.pt")
    torch.save(wrong, ck)
    out = os.path.join(d, "out")
    os.makedirs(out)
    r, p = assemble(topo, [ck], out, rc=2)
    text = run("assemble", topo, ck, "-o", out).stderr
    error = r["packages"][0]["error"]
    mismatched = [k for k, v in sd.items() if v.is_floating_point()]  # bn2.bias and fc.weight among them
    unnamed = {where: [k for k in mismatched if k not in msg] for where, msg in (("stderr", text), ("json", error))}
    check(not unnamed["stderr"] and not unnamed["json"], f"of {len(mismatched)} mismatched keys, the message "
          f"does not name {unnamed['stderr']} (stderr, {len(text)} chars) / {unnamed['json']} (JSON error, {len(error)} "
          f"chars); it ends: {text.strip()[-160:]!r}")
    check(mentions_shape(text, [9, 16]) and mentions_shape(text, [5, 16]), f"fc.weight's shapes: {text[-400:]}")
    check("\\x0a" not in text, f"the message's line breaks print as \\x0a: {text[:300]!r}")
    note(f"{len(mismatched)} keys named, {text.count(chr(10))} lines")


@test
def topology_input_errors():
    d = fresh_dir("topology_errors")
    base = bnnet(19)
    sd_file = os.path.join(d, "state_dict.pt")
    torch.save(base.state_dict(), sd_file)
    topology(sd_file, os.path.join(d, "sd.topo"), rc=2)
    two = os.path.join(d, "two.pt")
    export_package(base, two, extra_pickles=[("other", "model.pkl", bnnet(20))])
    p = topology(two, os.path.join(d, "two.topo"), rc=2)
    check("--pickle" in p.stderr, f"several modules: the error should point at --pickle: {p.stderr.strip()}")
    # documented refusals: a key that is a view with gaps, two keys overlapping in one storage
    whole = torch.randn(20)
    for name, tensors, rule in (("gap", {"g": whole[::2]}, "topology.layout"),
                                ("overlap", {"a": whole[0:6], "b": whole[4:10]}, "topology.overlap")):
        f = os.path.join(d, name + ".pt")
        export_package(Env.models.Flat(tensors), f)
        p = topology(f, os.path.join(d, name + ".topo"), rc=2)
        check(f"[{rule}]" in p.stderr, f"{name}: wanted [{rule}]: {p.stderr.strip()}")
    topo = os.path.join(d, "two_other.topo")
    report = topology(two, topo, "--pickle", "other/model.pkl")
    check(report["pickle"] == "other/model.pkl", f"pickle {report['pickle']}")
    check(report["keys"] == len(base.state_dict()), f"keys {report['keys']}")
    topology(os.path.join(d, "missing.pt"), os.path.join(d, "m.topo"), rc=2)
    # assemble with something that is not a topology
    out = os.path.join(d, "out")
    os.makedirs(out)
    p = run("assemble", two, sd_file, "-o", out)
    check(p.returncode == 2 and listing(out) == [], f"assemble with a package as TOPO: exit {p.returncode}")
    # --pickle other/model.pkl: the output's model is `other`, filled from the checkpoint
    other_sd = bnnet(21).state_dict()
    ck = os.path.join(d, "other_ckpt.pt")
    torch.save(other_sd, ck)
    r, _ = assemble(topo, [ck], out)
    got = torch.package.PackageImporter(r["packages"][0]["output"]).load_pickle("other", "model.pkl")
    assert_state_dict(got, other_sd, "--pickle other/model.pkl")
    note("state dict refused as a topology source; --pickle required and honoured")


# ---------------------------------------------------------------- 6. --json

@test
def json_reports():
    d = fresh_dir("json")
    base, topo, treport, _, _, sd = small_setup(d, seed=22)
    again = os.path.join(d, "again.topo")
    raw = json.loads(run("topology", "--json", os.path.join(d, "bnnet.pt"), "-o", again).stdout)
    check(set(raw) == set(MANIFEST_FIELDS), f"topology --json fields {sorted(raw)} != the manifest's and size "
          f"{sorted(MANIFEST_FIELDS)}")
    check(filecmp.cmp(again, topo, shallow=False), "topology is not reproducible")
    ok = os.path.join(d, "ok.pt")
    torch.save(sd, ok)
    bad = os.path.join(d, "bad.pt")
    torch.save(collections.OrderedDict((k, v) for k, v in sd.items() if k != "fc.bias"), bad)
    out = os.path.join(d, "out")
    os.makedirs(out)
    r, p = assemble(topo, [ok, bad], out, rc=2)
    check(r is not None, "no JSON report when a checkpoint fails")
    g, b = r["packages"]
    check(set(g) == set(PACKAGE_FIELDS), f"ok package keys {sorted(g)} != {sorted(PACKAGE_FIELDS)}")
    check(g["source_format"].strip() != "", f"source_format {g['source_format']!r}")
    check(g["output"] == expected_output(ok, out) and b["output"] == expected_output(bad, out),
          f"outputs {g['output']} {b['output']}")
    check(b["status"] == "error" and "fc.bias" in b["error"], f"error package {b}")
    check(g["data_bytes"] == treport["omitted_bytes"], f"data_bytes {g['data_bytes']}")
    check(g["keys"] == len(sd), f"keys {g['keys']}")
    check(r["failed"] == 1, f"failed {r['failed']}")
    p = run("assemble", "--json", "-q", topo, "-o", out)
    check(p.returncode == 2, f"assemble without checkpoints: exit {p.returncode}")
    # two checkpoints with one stem (docs/cli.md: a usage error), nothing written
    os.makedirs(os.path.join(d, "other"))
    twin = os.path.join(d, "other", "ok.pt")
    shutil.copy(ok, twin)
    for name in listing(out):
        os.unlink(os.path.join(out, name))
    p = run("assemble", topo, ok, twin, "-o", out)
    check(p.returncode == 2 and listing(out) == [], f"two checkpoints with the stem 'ok': exit {p.returncode}, "
          f"{out} holds {listing(out)}")
    note(f"ok package fields: {', '.join(g)}")
    # key order as documented (docs/cli.md, the contract), as the convert suite checks its reports
    check(list(r) == ["topology", "packages", "failed"], f"report keys in the order {list(r)}, documented: "
          f"topology, packages, failed")
    check(list(g) == list(PACKAGE_FIELDS), f"package keys in the order {list(g)}, documented: {list(PACKAGE_FIELDS)}")
    check(list(b) == ["checkpoint", "output", "status", "error"], f"error package keys in the order {list(b)}")


# ---------------------------------------------------------------- 7. reflinks on XFS

def sh(*args, check_=True):
    p = subprocess.run(list(args), capture_output=True, text=True)
    if check_ and p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}")
    return p


def used_bytes(mnt):
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def shared_extent_bytes(f):
    """Bytes in extents filefrag -v flags `shared`, and the total extent bytes."""
    p = sh("filefrag", "-v", f)
    block = int(re.search(r"\((\d+) blocks? of (\d+) bytes\)", p.stdout).group(2))
    shared = total = 0
    for line in p.stdout.splitlines():
        m = re.match(r"\s*\d+:\s*\d+\.\.\s*\d+:\s*\d+\.\.\s*\d+:\s*(\d+):\s*(?:\d+:)?\s*(\S*)", line)
        if m:
            n = int(m.group(1)) * block
            total += n
            if "shared" in m.group(2).split(","):
                shared += n
    return shared, total, p.stdout


CHILD_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
import torch, torch.package
got = torch.package.PackageImporter(sys.argv[2]).load_pickle("model", "model.pkl").state_dict()
want = torch.load(sys.argv[3])
assert list(got) == list(want), (list(got), list(want))
for k, v in want.items():
    assert got[k].dtype == v.dtype and got[k].shape == v.shape and torch.equal(got[k], v), k
"""


@test
def reflink_on_xfs():
    def skip(why):
        note(f"SKIPPED: {why}")
    if os.geteuid() != 0:
        return skip("not root (loop mounts need it)")
    tools = {t: shutil.which(t) or (os.path.exists(f"/usr/sbin/{t}") and f"/usr/sbin/{t}")
             for t in ("mkfs.xfs", "losetup", "mount", "umount", "filefrag")}
    missing = [t for t, p in tools.items() if not p]
    if missing:
        return skip(f"{', '.join(missing)} not installed (xfsprogs, util-linux, e2fsprogs)")
    d = fresh_dir("reflink")
    count, numel = (3, 4 * 2**20) if SANITIZED else (3, 16 * 2**20)  # 3 x 16 MB / 3 x 64 MB
    weight_bytes = count * numel * 4
    if shutil.disk_usage(d).free < 4 * weight_bytes + 2**30:
        return skip(f"only {shutil.disk_usage(d).free / 2**30:.1f} GiB free")
    img = os.path.join(d, "xfs.img")
    with open(img, "wb") as f:
        f.truncate(2**30)
    p = sh(tools["mkfs.xfs"], "-q", "-f", "-m", "reflink=1", img, check_=False)
    if p.returncode != 0:
        os.unlink(img)
        return skip(f"mkfs.xfs -m reflink=1 failed: {p.stderr.strip()}")
    p = sh(tools["losetup"], "-f", "--show", img, check_=False)
    if p.returncode != 0:
        os.unlink(img)
        return skip(f"losetup failed: {p.stderr.strip()}")
    dev = p.stdout.strip()
    mnt = tempfile.mkdtemp(prefix="xfs-", dir=d)
    mounted = False
    try:
        p = sh(tools["mount"], dev, mnt, check_=False)
        if p.returncode != 0:
            return skip(f"mount {dev} failed: {p.stderr.strip()}")
        mounted = True
        base = Env.models.BigNet(count, numel)
        src = os.path.join(d, "big.pt")  # on the work dir's file system
        export_package(base, src)
        topo = os.path.join(mnt, "big.topo")
        report = topology(src, topo)
        check(report["omitted_bytes"] == weight_bytes, f"omitted_bytes {report['omitted_bytes']}")
        os.unlink(src)
        torch.manual_seed(23)
        sd = collections.OrderedDict((f"w{i}", torch.randn(numel)) for i in range(count))
        ckpt = os.path.join(mnt, "ckpt.pt")
        torch.save(sd, ckpt)
        out = os.path.join(mnt, "out")
        os.makedirs(out)
        os.sync()
        before = used_bytes(mnt)
        r, _ = assemble(topo, [ckpt], out)
        os.sync()
        growth = used_bytes(mnt) - before
        pk = r["packages"][0]
        # torch judges the output in a child process: PackageImporter keeps the file open, which
        # would keep the file system busy at umount
        child = subprocess.run([sys.executable, "-c", CHILD_CHECK, os.path.dirname(Env.models.__file__),
                                pk["output"], ckpt], capture_output=True, text=True)
        check(child.returncode == 0, f"reflinked output, judged by torch: {child.stdout}{child.stderr}")
        shared, total, text = shared_extent_bytes(pk["output"])
        note(f"XFS reflink: {weight_bytes >> 20} MiB of weights; the output's shared extents hold "
             f"{shared >> 20} MiB of {total >> 20} MiB, df grew {growth / 2**20:.1f} MiB; "
             f"copied {pk['cloned_or_copied_bytes']} gathered {pk['gathered_bytes']}")
        check(shared >= weight_bytes * 0.95, f"only {shared} of {weight_bytes} weight bytes in shared "
              f"extents:\n{text[:3000]}")
        check(growth < weight_bytes * 0.1, f"used space grew by {growth} bytes for {weight_bytes} weight bytes")
    finally:
        busy = mounted and sh(tools["umount"], mnt, check_=False).returncode != 0
        if busy:
            sh(tools["umount"], "-l", mnt, check_=False)
        sh(tools["losetup"], "-d", dev, check_=False)  # (already gone when umount auto-cleared it)
        shutil.rmtree(d, ignore_errors=True)
    check(not busy, f"umount {mnt} failed (lazily unmounted)")


# ---------------------------------------------------------------- 8. SIGKILL

def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@test
def sigkill_never_leaves_a_partial_package():
    """Killed at random moments, assemble leaves DIR/<stem>.pt absent, old or complete; hidden
    `.<name>.ptpack-<8 hex digits>` temporaries may stay only on the named-temporary path
    (PTPACK_OUTPUT_NAMED=1) and the next completed run removes them."""
    d = fresh_dir("kill")
    count, numel = (4, 2_500_000) if SANITIZED else (16, 4_000_000)  # 40 MB / 256 MB per checkpoint
    src = os.path.join(d, "big.pt")
    export_package(Env.models.BigNet(count, numel), src)
    topo = os.path.join(d, "big.topo")
    topology(src, topo)
    os.unlink(src)
    torch.manual_seed(24)
    sd = collections.OrderedDict((f"w{i}", torch.randn(numel)) for i in range(count))
    ckpts = [os.path.join(d, "a.pt"), os.path.join(d, "b.pt")]
    torch.save(sd, ckpts[0])
    torch.save(collections.OrderedDict((k, -v) for k, v in sd.items()), ckpts[1])
    ref_dir = os.path.join(d, "reference")
    os.makedirs(ref_dir)
    t0 = time.monotonic()
    assemble(topo, ckpts, ref_dir, "-j", "2")
    duration = time.monotonic() - t0
    want = {os.path.basename(c): sha256_file(os.path.join(ref_dir, os.path.basename(c))) for c in ckpts}
    for c in ckpts:  # the reference itself, judged by torch
        got = import_package(os.path.join(ref_dir, os.path.basename(c)))
        assert_state_dict(got, torch.load(c), f"reference {c}")
    del got
    complete_by_load = set()

    def complete(name, content_path):
        if sha256_file(content_path) == want[name]:
            return True
        # not byte-identical to the reference run: torch decides
        try:
            got = import_package(content_path)
            assert_state_dict(got, torch.load(os.path.join(d, name)), content_path)
        except Exception as e:  # noqa: BLE001
            raise Failure(f"SIGKILL left a partial or wrong {content_path} "
                          f"({os.path.getsize(content_path)} bytes): {e}")
        complete_by_load.add(name)
        return True

    out = os.path.join(d, "out")
    os.makedirs(out)
    rng = random.Random(26)
    killed = runs = leftovers = 0
    names = sorted(want)
    for named in (False, True):
        env = dict(os.environ, PTPACK_OUTPUT_NAMED="1" if named else "0")
        for name in listing(out):
            os.unlink(os.path.join(out, name))
        for attempt in range(6):
            runs += 1
            existed = attempt % 2 == 1  # every other run, DIR/a.pt holds old bytes first
            for name in names:
                if os.path.exists(os.path.join(out, name)):
                    os.unlink(os.path.join(out, name))
            if existed:
                with open(os.path.join(out, "a.pt"), "wb") as f:
                    f.write(b"old bytes")
            jobs = ["-j", "2"] if attempt % 3 else []
            proc = subprocess.Popen([Env.ptpack, "assemble", "-q", topo, *ckpts, "-o", out, *jobs], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            time.sleep(rng.uniform(0, duration * 1.2))
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            rc = proc.wait()
            killed += rc == -signal.SIGKILL
            visible = sorted(n for n in listing(out) if not re.fullmatch(r"\.(a|b)\.pt\.ptpack-.+", n))
            leftovers += len(listing(out)) - len(visible)
            check(set(visible) <= set(names), f"stray files after SIGKILL: {listing(out)}")
            check(named or rc == -signal.SIGKILL or visible == listing(out),
                  f"a run that was not killed left a temporary: {listing(out)}")
            check(rc == -signal.SIGKILL or rc == 0, f"assemble exited {rc}")
            check(rc != 0 or visible == names, f"a completed run left {listing(out)}")
            for name in names:
                p = os.path.join(out, name)
                if not os.path.exists(p):
                    check(rc != 0, f"{name} missing after a completed run")
                    continue
                with open(p, "rb") as f:
                    head = f.read(16)
                if head == b"old bytes":
                    check(existed and name == "a.pt" and rc != 0, "old bytes after a completed run")
                    continue
                complete(name, p)
        # the next completed run removes whatever killed runs left
        subprocess.run([Env.ptpack, "assemble", "-q", topo, *ckpts, "-o", out], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        check(listing(out) == names, f"killed runs' temporaries outlived the next run: {listing(out)}")
        for name in names:
            complete(name, os.path.join(out, name))
    note(f"{killed} of {runs} runs killed before they finished (a full run takes {duration:.2f} s), "
         f"{leftovers} hidden temporaries seen (removed by the next run)"
         + (f"; outputs not byte-identical to the reference run: {sorted(complete_by_load)}"
            if complete_by_load else ""))
    shutil.rmtree(d, ignore_errors=True)  # 1 GB the later suites may need
    check(killed > 0, "no run was killed before it finished; the test proved nothing")


# ---------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ptpack", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("-k", default="")
    args = parser.parse_args()
    Env.ptpack = os.path.abspath(args.ptpack)
    suite.set_work(args.work)
    load_models()
    torch.set_num_threads(1)  # forward passes bit for bit: the same kernels on both sides
    return suite.run(args.k)


if __name__ == "__main__":
    sys.exit(main())
