#!/usr/bin/env python3
"""Builds libFuzzer seed corpora from real artifacts: small whole files for the artifact and zip
targets, the pickles inside them for the pickle target, safetensors files for that target; each
per-format target (torch_save, legacy, torch_package, torchscript) gets the files of its format
(told apart by content, as ptpack does), and the scan target every small file plus the malicious
corpus of tests/scan when its directory is given.
Usage: make_seeds.py ARTIFACT_DIR OUT_DIR [SCAN_CORPUS_DIR]"""
import os
import shutil
import sys
import zipfile

MAX_SEED = 256 * 1024
LEGACY_MAGIC = bytes([0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19])


def format_target(path):
    """The per-format fuzz target a file seeds, from its content; None if none."""
    with open(path, "rb") as f:
        head = f.read(32)
    if LEGACY_MAGIC in head[:32]:
        return "legacy"
    if not zipfile.is_zipfile(path):
        return None
    try:
        names = zipfile.ZipFile(path).namelist()
    except zipfile.BadZipFile:
        return None
    if any(n.endswith("/constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("/.data/extern_modules") for n in names):
        return "torch_package"
    if any(n.endswith("/data.pkl") for n in names):
        return "torch_save"
    return None


def main(src, out, scan_corpus=None):
    for t in ("artifact", "zip", "pickle", "safetensors", "torch_save", "legacy", "torch_package",
              "torchscript", "scan"):
        os.makedirs(os.path.join(out, t), exist_ok=True)
    if scan_corpus:
        for name in os.listdir(scan_corpus):
            path = os.path.join(scan_corpus, name)
            if os.path.isfile(path) and os.path.getsize(path) <= MAX_SEED and not name.endswith(".json"):
                shutil.copy(path, os.path.join(out, "scan", name))
                target = format_target(path)
                if target:
                    shutil.copy(path, os.path.join(out, target, "evil-" + name))
    for root, _, files in os.walk(src):
        for name in files:
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            if name.endswith(".json") and "expected" in root:
                continue
            if size <= MAX_SEED:
                shutil.copy(path, os.path.join(out, "artifact", name))
                shutil.copy(path, os.path.join(out, "scan", name))
                target = format_target(path)
                if target:
                    shutil.copy(path, os.path.join(out, target, name))
            if zipfile.is_zipfile(path):
                if size <= MAX_SEED:
                    shutil.copy(path, os.path.join(out, "zip", name))
                with zipfile.ZipFile(path) as z:
                    for info in z.infolist():
                        if info.filename.endswith(".pkl") and info.file_size <= MAX_SEED:
                            seed = name + "-" + info.filename.replace("/", "_")
                            with open(os.path.join(out, "pickle", seed), "wb") as f:
                                f.write(z.read(info))
            elif name.endswith(".safetensors") and size <= MAX_SEED:
                shutil.copy(path, os.path.join(out, "safetensors", name))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
