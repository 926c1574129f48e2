#!/usr/bin/env python3
"""Builds libFuzzer seed corpora from real artifacts: small whole files for the artifact and zip
targets, the pickles inside them for the pickle target, safetensors files for that target.
Usage: make_seeds.py ARTIFACT_DIR OUT_DIR"""
import os
import shutil
import sys
import zipfile

MAX_SEED = 256 * 1024


def main(src, out):
    for t in ("artifact", "zip", "pickle", "safetensors"):
        os.makedirs(os.path.join(out, t), exist_ok=True)
    for root, _, files in os.walk(src):
        for name in files:
            path = os.path.join(root, name)
            size = os.path.getsize(path)
            if name.endswith(".json") and "expected" in root:
                continue
            if size <= MAX_SEED:
                shutil.copy(path, os.path.join(out, "artifact", name))
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
    main(sys.argv[1], sys.argv[2])
