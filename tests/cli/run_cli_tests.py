#!/usr/bin/env python3
"""CLI tests for ptpack: help texts (golden files), exit codes, JSON schemas, and two outputs
checked against Python's own tools on the same bytes:

* `ptpack ls` must print exactly what torch.package's `PackageImporter.file_structure()` prints;
* `ptpack dis` must list the same opcodes at the same offsets as `pickletools.dis`.

Usage: run_cli_tests.py --ptpack BIN --golden DIR [--update]   (needs /usr/bin/python3 with torch)
--update rewrites the golden help texts; review the diff before committing it.
Ends with the line "N passed, M failed".
"""
import argparse
import json
import os
import pickletools
import re
import subprocess
import sys
import tempfile
import zipfile

TORCH_PY = "/usr/bin/python3"

MAKE_ARTIFACTS = r'''
import sys, torch, collections
from torch.package import PackageExporter
out = sys.argv[1]
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2))
torch.save({"epoch": 3, "model_state": net.state_dict(), "lr": 0.5}, out + "/ckpt.pt")
with PackageExporter(out + "/pkg.pt") as e:
    e.extern("torch.**")
    e.save_pickle("model", "model.pkl", net)
    e.save_pickle("res", "sd.pkl", net.state_dict())
    e.save_text("res", "note.txt", "hello")
    e.save_binary("res/deep", "blob.bin", b"\x00\x01")
'''


class Runner:
    def __init__(self, ptpack):
        self.ptpack = ptpack
        self.passed = 0
        self.failed = 0

    def run(self, *args):
        p = subprocess.run([self.ptpack, *args], capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")


def check_help(r, golden_dir, update):
    for sub in ["", "info", "ls", "tensors", "dis", "verify", "scan", "convert", "diff", "topology", "assemble", "match"]:
        args = ([sub] if sub else []) + ["--help"]
        code, out, _ = r.run(*args)
        path = os.path.join(golden_dir, f"help-{sub or 'ptpack'}.txt")
        if update:
            with open(path, "w") as f:
                f.write(out)
        want = open(path).read() if os.path.exists(path) else None
        r.check(f"help {sub or 'ptpack'}", code == 0 and out == want,
                f"exit {code}; output differs from {path} (run with --update after review)")


def check_exit_codes(r, tmp):
    code, _, err = r.run()
    r.check("no subcommand exits 2", code == 2, f"exit {code}")
    code, _, err = r.run("frobnicate")
    r.check("unknown subcommand exits 2", code == 2, f"exit {code}")
    code, _, err = r.run("info", "/nonexistent/x.pt")
    r.check("missing file exits 2 naming it", code == 2 and "/nonexistent/x.pt" in err and err.startswith("ptpack: error:"), err)
    junk = os.path.join(tmp, "junk.bin")
    with open(junk, "wb") as f:
        f.write(b"\x01\x02\x03 not a model")
    code, _, err = r.run("tensors", junk)
    r.check("unknown format exits 2", code == 2 and "format.unknown" in err, err)


def check_verify(r, tmp):
    ckpt = os.path.join(tmp, "ckpt.pt")
    code, out, _ = r.run("verify", ckpt)
    r.check("verify ok", code == 0 and ": OK" in out, out)
    # Flip one byte inside a storage record: torch would load it silently; verify must not.
    with zipfile.ZipFile(ckpt) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 0)
    with open(ckpt, "rb") as f:
        data = bytearray(f.read())
    name_len, extra_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    data[info.header_offset + 30 + name_len + extra_len] ^= 0x40
    bad = os.path.join(tmp, "flipped.pt")
    with open(bad, "wb") as f:
        f.write(data)
    code, out, _ = r.run("verify", bad)
    r.check("verify finds a flipped byte (exit 1, zip.crc)", code == 1 and "zip.crc" in out and info.filename in out, out)


def check_json(r, tmp):
    ckpt = os.path.join(tmp, "ckpt.pt")
    code, out, err = r.run("tensors", "--json", ckpt)
    doc = json.loads(out) if code == 0 else {}
    keys = {"path", "dtype", "shape", "stride", "offset", "storage", "nbytes"}
    rows = doc.get("tensors", [])
    r.check("tensors --json schema", code == 0 and doc.get("format") == "torch_save_zip" and rows and
            all(keys <= set(t) for t in rows) and "sha256" not in rows[0], out[:300] + err)
    code, out, _ = r.run("tensors", "--json", "--digest", ckpt)
    rows = json.loads(out)["tensors"] if code == 0 else []
    r.check("tensors --digest adds sha256", rows and all(re.fullmatch(r"[0-9a-f]{64}", t["sha256"]) for t in rows), out[:300])
    code, out, _ = r.run("info", "--json", ckpt)
    doc = json.loads(out) if code == 0 else {}
    want = {"file", "format", "format_version", "byte_order", "file_bytes", "counts", "storage_bytes",
            "tensor_bytes", "dtypes", "metadata", "values", "notes"}
    values = {v["path"]: v["repr"] for v in doc.get("values", [])}
    r.check("info --json schema and values", want <= set(doc) and values.get("epoch") == "3" and values.get("lr") == "0.5",
            json.dumps(doc)[:400])


def torch_file_structure(path, include, exclude):
    code = ("import sys, json; from torch.package import PackageImporter; a = json.loads(sys.argv[2]);"
            "print(PackageImporter(sys.argv[1]).file_structure(include=a[0] or '**', exclude=a[1]), end='')")
    return subprocess.run([TORCH_PY, "-c", code, path, json.dumps([include, exclude])],
                          capture_output=True, text=True, check=True).stdout


def check_ls(r, tmp):
    pkg = os.path.join(tmp, "pkg.pt")
    for include, exclude in [([], []), (["model/**"], []), (["**/*.pkl"], ["res/**"]),
                             (["res/*"], []), (["**"], [".data/**"]), (["res/**", ".data/*"], ["**/*.storage"])]:
        args = ["ls", pkg]
        for p in include:
            args += ["--include", p]
        for p in exclude:
            args += ["--exclude", p]
        code, out, err = r.run(*args)
        want = torch_file_structure(pkg, include, exclude)
        r.check(f"ls == file_structure(include={include}, exclude={exclude})", code == 0 and out == want,
                f"\n--- ptpack\n{out}{err}--- torch\n{want}")


def pickletools_ops(data):
    ops = []
    for opcode, arg, pos in pickletools.genops(data):
        ops.append((pos, opcode.name))
        if opcode.name == "STOP":
            break
    return ops


def check_dis(r, tmp):
    ckpt = os.path.join(tmp, "ckpt.pt")
    with zipfile.ZipFile(ckpt) as z:
        data = z.read("ckpt/data.pkl")
    code, out, err = r.run("dis", ckpt + ":data.pkl")
    ours = [(int(m.group(1)), m.group(2)) for m in re.finditer(r"^\s*(\d+): \S+\s+([A-Z_0-9]+)", out, re.M)]
    r.check("dis lists pickletools' opcodes at the same offsets", code == 0 and ours == pickletools_ops(data),
            f"exit {code} {err}; first ours {ours[:5]} vs {pickletools_ops(data)[:5]}")
    code, _, err = r.run("dis", ckpt + ":nope.pkl")
    r.check("dis of a missing entry exits 2 listing the pickles", code == 2 and "data.pkl" in err, err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ptpack", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--update", action="store_true")
    args = ap.parse_args()
    r = Runner(args.ptpack)
    with tempfile.TemporaryDirectory(prefix="ptpack-cli-") as tmp:
        subprocess.run([TORCH_PY, "-c", MAKE_ARTIFACTS, tmp], check=True)
        check_help(r, args.golden, args.update)
        check_exit_codes(r, tmp)
        check_verify(r, tmp)
        check_json(r, tmp)
        check_ls(r, tmp)
        check_dis(r, tmp)
    print(f"{r.passed} passed, {r.failed} failed")
    return 1 if r.failed else 0


if __name__ == "__main__":
    sys.exit(main())
