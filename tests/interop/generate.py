#!/usr/bin/python3
"""Write real PyTorch artifacts plus the listings ptpack must reproduce.

Usage: /usr/bin/python3 tests/interop/generate.py OUTDIR [--slow]
       (Debian's torch 1.13 / torchvision 0.14 only import under /usr/bin/python3.)

Writes the artifacts into OUTDIR and OUTDIR/manifest.json:

    {"cases": [{"name", "file", "format", "expected", "slow", "values"?}]}

`file` and `expected` are relative to OUTDIR; `format` is one of
torch_save_zip, torch_save_legacy, torch_package, torchscript, safetensors,
safetensors_index.  `values` maps a path to the Python repr() of a non-tensor
value ptpack must show.  Each expected file is {"tensors": [...]}, one record
per tensor as described in expected.py, computed from what torch itself loads
(torch.load, PackageImporter.load_pickle, torch.jit.load) and never from ptpack.
Only files torch 1.13 cannot load (big-endian, _rebuild_tensor_v3 dtypes,
safetensors) get their expectations from the values written.

Path rules beyond expected.py: torch.package paths are `<entry>:<objpath>`
with the pickle's archive path minus the root folder (`model/model.pkl:fc.bias`);
TorchScript paths are the module attribute paths (state_dict names, tied weights
under both names, plain tensor attributes by name) and tensor constants are
`constants.pkl:<index>`.  Storage groups follow the archive record a storage
was read from, so two pickles of one package that reference the same record
share a group even though PackageImporter materialises them twice.

--slow adds a >4 GiB ZIP64 file (peak RSS ~4.5 GiB, ~4.3 GB of disk, ~20 s).
Every case seeds torch itself, so the listings are deterministic.
"""

import argparse
import ctypes
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.package  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402

import crafted  # noqa: E402
import expected as E  # noqa: E402
import interop_models  # noqa: E402
import safetensors_writer  # noqa: E402
import torchzip  # noqa: E402

CASES = []


def case(slow=False):
    """Register a case builder; builders run in definition order."""
    def register(fn):
        CASES.append((fn, slow))
        return fn
    return register


class Output:
    """Collects manifest entries and writes the expected listings."""

    def __init__(self, outdir):
        self.dir = outdir
        self.cases = []

    def path(self, rel):
        full = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def add(self, name, file, fmt, records, values=None, slow=False):
        expected_rel = f"expected/{name}.json"
        E.write_expected(self.path(expected_rel), records)
        entry = {"name": name, "file": file, "format": fmt, "expected": expected_rel,
                 "slow": slow}
        if values:
            entry["values"] = values
        self.cases.append(entry)

    def write_manifest(self):
        with open(os.path.join(self.dir, "manifest.json"), "w") as f:
            json.dump({"cases": self.cases}, f, indent=1)
            f.write("\n")


# ---------------------------------------------------------------- helpers

def resolve(obj, path):
    """Follow a dotted value path through a loaded object (for self-checks)."""
    for part in path.split("."):
        if isinstance(obj, nn.Module):
            state = obj.__dict__
            for name in E.MODULE_TRANSPARENT:
                if part in state.get(name, {}):
                    obj = state[name][part]
                    break
            else:
                obj = state[part]
        elif isinstance(obj, dict):
            obj = next(v for k, v in obj.items() if str(k) == part)
        else:
            obj = obj[int(part)]
    return obj


def check_values(loaded, values, entry_of=None):
    """Assert that each expected value repr matches what torch loaded."""
    for path, want in (values or {}).items():
        target, objpath = loaded, path
        if entry_of is not None:
            entry, objpath = path.split(":", 1)
            target = entry_of[entry]
        got = repr(resolve(target, objpath))
        if got != want:
            raise AssertionError(f"value {path}: torch loaded {got}, manifest says {want}")


def save_case(out, name, obj, legacy=False, values=None, protocol=None):
    """torch.save `obj`, reload it with torch.load and record the expectations."""
    file = f"{name}.pt"
    kwargs = {"_use_new_zipfile_serialization": not legacy}
    if protocol is not None:
        kwargs["pickle_protocol"] = protocol
    torch.save(obj, out.path(file), **kwargs)
    loaded_case(out, name, file, "torch_save_legacy" if legacy else "torch_save_zip", values)


def loaded_case(out, name, file, fmt, values=None):
    loaded = torch.load(out.path(file))
    check_values(loaded, values)
    out.add(name, file, fmt, E.records_for(loaded), values)


def both_formats(out, name, obj, values=None):
    save_case(out, f"{name}_zip", obj, values=values)
    save_case(out, f"{name}_legacy", obj, legacy=True, values=values)


# ---------------------------------------------------------------- 1. torchvision

@case()
def torchvision_state_dicts(out):
    torch.manual_seed(1)
    sd = torchvision.models.resnet18(weights=None).state_dict()
    save_case(out, "resnet18_zip", sd)
    save_case(out, "resnet18_legacy", sd, legacy=True)
    for protocol in (4, 5):
        save_case(out, f"resnet18_zip_p{protocol}", sd, protocol=protocol)
        save_case(out, f"resnet18_legacy_p{protocol}", sd, legacy=True, protocol=protocol)
    torch.manual_seed(2)
    save_case(out, "mobilenet_v3_small_zip",
              torchvision.models.mobilenet_v3_small(weights=None).state_dict())


# ---------------------------------------------------------------- 2. checkpoint

def train_steps(model, optimizer, steps=2):
    x = torch.randn(4, 3, 8, 8)
    y = torch.randint(0, 5, (4,))
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()


def training_checkpoint():
    torch.manual_seed(3)
    model = interop_models.SmallCNN()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(sgd, step_size=5, gamma=0.5)
    train_steps(model, sgd)
    scheduler.step()
    adam = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_steps(model, adam)
    return {
        "epoch": 10,
        "nb_epochs_finished": 10,
        "model_state": model.state_dict(),
        "optimizer_state": sgd.state_dict(),
        "adam_state": adam.state_dict(),
        "scheduler_state": scheduler.state_dict(),
        "hyper_parameters": {"lr": 0.1, "arch": "resnet18", "layers": [2, 2, 2, 2]},
    }


CHECKPOINT_VALUES = {
    "epoch": "10",
    "nb_epochs_finished": "10",
    "hyper_parameters.lr": "0.1",
    "hyper_parameters.arch": "'resnet18'",
    "hyper_parameters.layers": "[2, 2, 2, 2]",  # scalar sequences show whole
    "optimizer_state.param_groups.0.momentum": "0.9",
    "optimizer_state.param_groups.0.nesterov": "False",
    "scheduler_state.step_size": "5",
}


@case()
def checkpoint(out):
    both_formats(out, "checkpoint", training_checkpoint(), CHECKPOINT_VALUES)


# ---------------------------------------------------------------- 3. whole module

@case()
def whole_module(out):
    torch.manual_seed(4)
    both_formats(out, "whole_module", interop_models.InteropNet(), {"num_classes": "3"})


# ---------------------------------------------------------------- 4. dtypes

FLOATS = [0.0, -0.0, 1.5, -2.25, float("inf"), float("-inf"), float("nan"), 65504.0, 1e-3,
          3.14159]


def dtype_tensors():
    torch.manual_seed(5)
    base = torch.tensor(FLOATS)
    return {
        "float16": base.half(),
        "float32": base.clone(),
        "float64": base.double() / 3,
        "bfloat16": base.bfloat16().view(2, 5),
        "int8": torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8),
        "int16": torch.tensor([-32768, -2, 0, 3, 32767], dtype=torch.int16),
        "int32": torch.tensor([-2**31, -3, 0, 4, 2**31 - 1], dtype=torch.int32),
        "int64": torch.tensor([-2**63, -4, 0, 5, 2**63 - 1], dtype=torch.int64),
        "uint8": torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False, True], [False, False, True]]),
        "complex64": torch.complex(torch.randn(2, 3), torch.randn(2, 3)),
        "complex128": torch.complex(torch.randn(3, dtype=torch.float64),
                                    torch.randn(3, dtype=torch.float64)),
        "qint8": torch.quantize_per_tensor(torch.randn(2, 4), 0.05, 3, torch.qint8),
        "quint8": torch.quantize_per_tensor(torch.rand(6), 0.01, 128, torch.quint8),
        "qint32": torch.quantize_per_tensor(torch.randn(5), 0.001, -7, torch.qint32),
    }


def per_channel_tensors():
    torch.manual_seed(6)
    scales = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64)
    return {
        "qint8_axis0": torch.quantize_per_channel(
            torch.randn(3, 4), scales, torch.tensor([0, 1, -2]), 0, torch.qint8),
        "quint8_axis1": torch.quantize_per_channel(
            torch.rand(2, 3), scales, torch.tensor([10, 20, 30]), 1, torch.quint8),
    }


@case()
def dtypes(out):
    both_formats(out, "dtypes", dtype_tensors())
    both_formats(out, "quantized_per_channel", per_channel_tensors())
    torch.manual_seed(7)
    save_case(out, "quantized_subbyte_zip", {
        "quint4x2": torch.quantize_per_tensor(torch.rand(8), 0.1, 0, torch.quint4x2),
        "quint2x4": torch.quantize_per_tensor(torch.rand(8), 0.2, 1, torch.quint2x4),
    })


# ---------------------------------------------------------------- 5. views and layout

LAYOUT_VALUES = {
    "meta.count": "3",
    "meta.name": "'layout'",
    "meta.flag": "True",
    "meta.nothing": "None",
    "meta.ratio": "0.25",
    "tuple.2": "3",
    "tuple.3": "'text'",
}


def layout_object():
    torch.manual_seed(8)
    base = torch.arange(10.0)
    matrix = torch.arange(12.0).view(3, 4)
    wide = torch.arange(18, dtype=torch.int32).view(3, 6)
    shared = torch.arange(6, dtype=torch.int16)
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 1, 1], [2, 0, 2]]),
                                     torch.tensor([3.0, 4.0, 5.0]), (2, 3))
    return {
        "base": base,
        "view": base[2:8:2],
        "alias_of_base": base,
        "matrix": matrix,
        "transposed": matrix.t(),
        "strided": wide[:, ::2],
        "row": wide[1],
        "expanded": torch.arange(3.0).expand(4, 3),
        "shared": {"a": shared, "b": shared[1:], "c": shared.view(2, 3)},
        "scalar": torch.tensor(3.5),
        "scalar_int": torch.tensor(7),
        "empty": torch.empty(0),
        "empty2d": torch.zeros(3, 0),
        "empty_f64": torch.zeros(0, 2, dtype=torch.float64),
        "nested": {0: [torch.ones(2), (torch.zeros(1), {1: torch.full((2, 2), 5.0)})],
                   -3: torch.tensor([9]),
                   "deep": {"x": [[torch.tensor([1, 2])]]}},
        "tuple": (torch.ones(1), None, 3, "text"),
        "sparse": sparse,
        "meta": {"count": 3, "name": "layout", "flag": True, "nothing": None, "ratio": 0.25},
    }


@case()
def layout(out):
    both_formats(out, "layout", layout_object(), LAYOUT_VALUES)


# ---------------------------------------------------------------- 6. torch.package

PACKAGE_MODEL_SOURCE = '''
import torch
from torch import nn

import interop_pkg_unused  # mocked in the package: imported here, never used


class PackagedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)
        self.prior = torch.tensor([0.25, 0.75])
        self.tag = "packaged"

    def forward(self, x):
        return self.fc(self.bn(self.conv1(x)).mean((2, 3))) + self.prior
'''

PACKAGE_UNUSED_SOURCE = "def helper():\n    return 42\n"

PACKAGE_VALUES = {
    "model/model.pkl:tag": "'packaged'",
    "res/meta.pkl:epoch": "3",
    "res/meta.pkl:tag": "'pkg'",
}


class RecordingReader:
    """Wraps PackageImporter's zip reader to learn which record backs a storage."""

    def __init__(self, reader):
        self._reader = reader
        self.record_of = {}

    def get_storage_from_record(self, name, numel, dtype):
        tensor = self._reader.get_storage_from_record(name, numel, dtype)
        self.record_of[tensor.storage()._storage._cdata] = name
        return tensor

    def __getattr__(self, attr):
        return getattr(self._reader, attr)


def export_package(path, srcdir):
    with open(os.path.join(srcdir, "interop_pkg_model.py"), "w") as f:
        f.write(PACKAGE_MODEL_SOURCE)
    with open(os.path.join(srcdir, "interop_pkg_unused.py"), "w") as f:
        f.write(PACKAGE_UNUSED_SOURCE)
    sys.path.insert(0, srcdir)
    try:
        import interop_pkg_model
        torch.manual_seed(9)
        model = interop_pkg_model.PackagedNet()
        with torch.package.PackageExporter(path) as exporter:
            exporter.intern("interop_pkg_model")
            exporter.extern(["torch.**"])
            exporter.mock("interop_pkg_unused")
            exporter.save_pickle("model", "model.pkl", model)
            exporter.save_pickle("res", "sd.pkl", model.state_dict())
            exporter.save_pickle("res", "meta.pkl", {"epoch": 3, "tag": "pkg"})
            exporter.save_text("res", "note.txt", "exported by tests/interop/generate.py\n")
            exporter.save_binary("res", "blob.bin", bytes(range(16)))
    finally:
        sys.path.remove(srcdir)
        for module in ("interop_pkg_model", "interop_pkg_unused"):
            sys.modules.pop(module, None)


PACKAGE_PICKLES = [("model", "model.pkl"), ("res", "sd.pkl"), ("res", "meta.pkl")]


@case()
def package(out):
    file = "package_net.pt"
    with tempfile.TemporaryDirectory() as srcdir:
        export_package(out.path(file), srcdir)
    importer = torch.package.PackageImporter(out.path(file))
    reader = RecordingReader(importer.zip_reader)
    importer.zip_reader = reader
    groups = E.StorageGroups()
    records, loaded = [], {}

    def by_record(t):
        name = reader.record_of.get(t.storage()._storage._cdata)
        return ("record", name) if name else None

    for package_name, resource in PACKAGE_PICKLES:
        entry = f"{package_name}/{resource}"
        loaded[entry] = importer.load_pickle(package_name, resource)
        for record in E.records_for(loaded[entry], groups=groups, identity_of=by_record):
            record["path"] = f"{entry}:{record['path']}"
            records.append(record)
    check_values(None, PACKAGE_VALUES, entry_of=loaded)
    out.add("package", file, "torch_package", records, PACKAGE_VALUES)


# ---------------------------------------------------------------- 7. TorchScript

class ScriptSub(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x)


class ScriptNet(nn.Module):
    """BatchNorm, a submodule, a weight tied across two Linear layers, a tensor attribute."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(4)
        self.sub = ScriptSub()
        self.head = nn.Linear(4, 4, bias=False)
        self.head.weight = self.sub.lin.weight
        self.extra = torch.arange(3.0)

    def forward(self, x):
        return self.head(self.sub(self.bn(x))) + self.extra.sum()


TRACE_CONSTANT = torch.tensor([0.5, -1.0, 2.0, 4.0])


class TracedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        return self.lin(x) + TRACE_CONSTANT  # captured by tracing as a tensor constant


def tensor_constants(module):
    """Tensor constants of a loaded TorchScript module, in CONSTANTS.c<i> order."""
    _, constants = module.forward.code_with_constants
    return [constants[f"c{i}"] for i in range(len(constants))]


@case()
def torchscript(out):
    torch.manual_seed(10)
    model = ScriptNet()
    model.train()
    model(torch.randn(8, 4))  # updates running stats and num_batches_tracked
    torch.jit.save(torch.jit.script(model), out.path("torchscript_scripted.pt"))
    loaded = torch.jit.load(out.path("torchscript_scripted.pt"))
    listing = dict(loaded.state_dict())
    listing["extra"] = loaded.extra
    out.add("torchscript_scripted", "torchscript_scripted.pt", "torchscript",
            E.records_for(listing))

    torch.manual_seed(11)
    traced = torch.jit.trace(TracedNet(), torch.zeros(2, 4))
    torch.jit.save(traced, out.path("torchscript_traced_constant.pt"))
    loaded = torch.jit.load(out.path("torchscript_traced_constant.pt"))
    listing = dict(loaded.state_dict())
    for index, constant in enumerate(tensor_constants(loaded)):
        listing[f"constants.pkl:{index}"] = constant
    out.add("torchscript_traced_constant", "torchscript_traced_constant.pt", "torchscript",
            E.records_for(listing))


# ---------------------------------------------------------------- 8. crafted zips

def small_checkpoint():
    torch.manual_seed(12)
    sd = interop_models.SmallCNN().state_dict()
    window = torch.arange(20.0)
    return {"model": sd, "window": window, "window_view": window[5:15:3], "epoch": 7}


def assert_writer_matches_torch(obj):
    """torchzip.save_like_torch with default knobs == torch.save, byte for byte."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "a"))
        os.makedirs(os.path.join(tmp, "b"))
        torch.save(obj, os.path.join(tmp, "a", "same.pt"))
        torchzip.save_like_torch(obj, os.path.join(tmp, "b", "same.pt"))
        with open(os.path.join(tmp, "a", "same.pt"), "rb") as fa, \
                open(os.path.join(tmp, "b", "same.pt"), "rb") as fb:
            if fa.read() != fb.read():
                raise AssertionError("torchzip writer is not byte-identical to torch.save")


def rezip_deflated(src, dst):
    """Copy every entry of `src` into `dst`, deflate-compressed, no alignment."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            zout.writestr(fixed, zin.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)


def zip_names(path):
    with zipfile.ZipFile(path) as z:
        return [n.split("/", 1)[1] for n in z.namelist()]


def many_storages():
    """More than 10 storages, so numeric and lexicographic key orders differ."""
    obj = small_checkpoint()
    obj["extra"] = [torch.full((i + 1,), float(i)) for i in range(4)]
    return obj


def big_endian_object():
    torch.manual_seed(13)
    shared = torch.arange(8, dtype=torch.int32) * 65537
    return {
        "f32": torch.randn(2, 3),
        "f64": torch.randn(3, dtype=torch.float64),
        "f16": torch.randn(4).half(),
        "bf16": torch.randn(4).bfloat16(),
        "i16": torch.tensor([1, -2, 258, -32768], dtype=torch.int16),
        "i32": shared,
        "i32_view": shared[3:7:2],
        "i64": torch.tensor([1, -1, 2**40 + 3], dtype=torch.int64),
        "u8": torch.tensor([1, 2, 255], dtype=torch.uint8),
        "i8": torch.tensor([-1, 5], dtype=torch.int8),
        "bool": torch.tensor([True, False]),
        "c64": torch.complex(torch.randn(3), torch.randn(3)),
        "c128": torch.complex(torch.randn(2, dtype=torch.float64),
                              torch.randn(2, dtype=torch.float64)),
        "scalar": torch.tensor(1.25, dtype=torch.float64),
    }


def unswap_in_place(tensors):
    """Byte-swap, in place, every distinct storage behind `tensors` (once each)."""
    done = set()
    for t in tensors:
        impl = t.storage()._storage
        if impl._cdata in done or impl.nbytes() == 0:
            continue
        done.add(impl._cdata)
        unit = t.element_size() // (2 if t.dtype.is_complex else 1)
        raw = ctypes.string_at(impl.data_ptr(), impl.nbytes())
        ctypes.memmove(impl.data_ptr(), torchzip.swap_bytes(raw, unit), len(raw))


def pointer_key(index):
    """A storage key like the `str(storage._cdata)` keys of 1.6-1.9 zip files."""
    return str(94311234567 + 1360 * index)


@case()
def crafted_zips(out):
    obj = small_checkpoint()
    assert_writer_matches_torch(obj)
    values = {"epoch": "7"}

    with tempfile.TemporaryDirectory() as tmp:
        torch.save(obj, os.path.join(tmp, "crafted_deflate.pt"))
        rezip_deflated(os.path.join(tmp, "crafted_deflate.pt"), out.path("crafted_deflate.pt"))
    loaded_case(out, "crafted_deflate", "crafted_deflate.pt", "torch_save_zip", values)

    torchzip.save_like_torch(obj, out.path("crafted_pointer_keys.pt"), key_for_index=pointer_key)
    assert "data/94311234567" in zip_names(out.path("crafted_pointer_keys.pt"))
    loaded_case(out, "crafted_pointer_keys", "crafted_pointer_keys.pt", "torch_save_zip", values)

    torchzip.save_like_torch(many_storages(), out.path("crafted_v27_layout.pt"), layout="2.7")
    names = zip_names(out.path("crafted_v27_layout.pt"))
    assert names[:5] == ["data.pkl", ".format_version", ".storage_alignment", "byteorder",
                         "data/0"] and names.index("data/2") < names.index("data/10"), names
    loaded_case(out, "crafted_v27_layout", "crafted_v27_layout.pt", "torch_save_zip", values)

    crafted_big_endian(out)

    records = crafted.write_v3_dtypes(out.path("crafted_v3_dtypes.pt"))
    out.add("crafted_v3_dtypes", "crafted_v3_dtypes.pt", "torch_save_zip", records)

    torch.manual_seed(14)
    params = nn.Linear(3, 2).state_dict(keep_vars=True)
    params["frozen"] = nn.Parameter(torch.ones(2, 2), requires_grad=False)
    save_case(out, "parameters_keep_vars", params)


def crafted_big_endian(out):
    """byteorder=big; torch 1.13 ignores the record, so undo the swap after loading."""
    original = big_endian_object()
    file = "crafted_big_endian.pt"
    torchzip.save_like_torch(original, out.path(file), layout="2.1", big_endian=True)
    loaded = torch.load(out.path(file))
    unswap_in_place([t for _, t in E.walk(loaded)])
    records = E.records_for(loaded)
    if records != E.records_for(original):
        raise AssertionError("big-endian file does not round-trip to the original tensors")
    out.add("crafted_big_endian", file, "torch_save_zip", records)


# ---------------------------------------------------------------- 9. safetensors

def contiguous_records(tensors):
    """Expected records for safetensors: each tensor contiguous in its own storage."""
    records = []
    for index, (name, t) in enumerate(tensors.items()):
        record = E.tensor_record(name, t.contiguous(), index)
        record["offset"] = 0
        records.append(record)
    return records


def read_back_safetensors(path):
    """Parse a safetensors file with the standard library and torch.frombuffer."""
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    dtypes = {v: k for k, v in safetensors_writer.SAFETENSORS_DTYPES.items()}
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        dtype = dtypes[info["dtype"]]
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(info["shape"])
    return tensors


def check_safetensors(path, tensors):
    back = read_back_safetensors(path)
    for name, t in tensors.items():
        same = back[name].dtype == t.dtype and back[name].shape == t.shape and \
            E.sha256_of(back[name]) == E.sha256_of(t)
        if not same:
            raise AssertionError(f"{path}: {name} does not read back")


def safetensors_tensors():
    torch.manual_seed(15)
    return {
        "f32": torch.randn(3, 4),
        "f16": torch.randn(5).half(),
        "bf16": torch.randn(2, 3).bfloat16(),
        "i64": torch.arange(-3, 3),
        "u8": torch.tensor([0, 127, 255], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


@case()
def safetensors(out):
    tensors = safetensors_tensors()
    file = "safetensors_basic.safetensors"
    safetensors_writer.write_safetensors(out.path(file), tensors, {"format": "pt"})
    check_safetensors(out.path(file), tensors)
    out.add("safetensors_basic", file, "safetensors", contiguous_records(tensors))

    torch.manual_seed(16)
    shards = [
        {"embed.weight": torch.randn(6, 4), "layers.0.weight": torch.randn(4, 4).half()},
        {"layers.0.bias": torch.randn(4).bfloat16(), "head.weight": torch.randn(2, 4),
         "head.steps": torch.tensor(12)},
    ]
    weight_map, all_tensors = {}, {}
    for index, shard in enumerate(shards, start=1):
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        path = out.path(f"sharded/{name}")
        safetensors_writer.write_safetensors(path, shard, {"format": "pt"})
        check_safetensors(path, shard)
        weight_map.update({key: name for key in shard})
        all_tensors.update(shard)
    total = sum(t.numel() * t.element_size() for t in all_tensors.values())
    index_file = "sharded/model.safetensors.index.json"
    with open(out.path(index_file), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    out.add("safetensors_sharded", index_file, "safetensors_index",
            contiguous_records(all_tensors))


# ---------------------------------------------------------------- 10. slow: ZIP64

BIG_NUMEL = 2**32 + 64


@case(slow=True)
def big_zip64(out):
    big = torch.zeros(BIG_NUMEL, dtype=torch.uint8)
    big[-5:] = torch.tensor([1, 2, 3, 4, 5], dtype=torch.uint8)
    big[2**32 - 3] = 7
    file = "big_zip64.pt"
    torch.save({"big": big, "after": torch.arange(10)}, out.path(file))
    # The file is almost all zeros: give the zero blocks back to the filesystem (content is
    # unchanged) so that the suites' copies of it cost no disk space. CI disks can be small.
    subprocess.run(["fallocate", "--dig-holes", out.path(file)], check=False)
    del big  # free 4 GiB before torch.load allocates its own copy
    loaded = torch.load(out.path(file))
    out.add("big_zip64", file, "torch_save_zip", E.records_for(loaded), slow=True)


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("outdir")
    parser.add_argument("--slow", action="store_true", help="also write the >4 GiB case")
    args = parser.parse_args(argv)
    os.makedirs(args.outdir, exist_ok=True)
    shutil.rmtree(os.path.join(args.outdir, "expected"), ignore_errors=True)
    out = Output(args.outdir)
    started = time.monotonic()
    for builder, slow in CASES:
        if slow and not args.slow:
            continue
        t0 = time.monotonic()
        builder(out)
        print(f"{builder.__name__}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
    out.write_manifest()
    print(f"{len(out.cases)} cases in {args.outdir} ({time.monotonic() - started:.1f} s)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
