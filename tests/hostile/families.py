"""The hostile input families (test-only, standard library only).

Each `*_cases(ctx)` function returns the Cases of one group, deterministically:
every random choice comes from a `random.Random` seeded with a fixed string.
`ctx` carries the seed artifacts (real files written by stock torch through
tests/interop/generate.py), the work directory and the --quick flag.

1. truncate     real artifacts cut at every structural boundary +-1 and at
                random offsets (ZIP local headers, central directory, ZIP64
                records, end record; legacy pickle regions and storage records;
                safetensors header end and tensor boundaries)
2. bitflip      random single-bit flips anywhere in the real artifacts
3. metaflip     byte flips inside the metadata regions only (pickles, local
                headers, central directory, end records, safetensors header)
4. zip          crafted ZIP containers and torch.save archives
5. pickle       crafted pickles, each as a bare file and as data.pkl of a torch zip
6. safetensors  crafted safetensors files
7. index        crafted sharded-safetensors indexes (a directory per case)

Expected rules were chosen by reading src/ (the string literals passed to
throw_corrupt / throw_limit / throw_unsupported / Error).
"""

import collections
import io
import json
import os
import pickle
import pickletools
import random
import struct

import craft
from craft import (MARK, PROTO2, STOP, ZipRecord, build_zip, f32_entry, int_tuple, one_tensor_zip,
                   p_binget, p_binput, p_global, p_int, p_str, p_tuple, safetensors_bytes,
                   state_dict, storage_pid, tensor_v2, tensor_v3, torch_zip)
from harness import ANY, OK, Case, Expect, invalid

# Real artifacts mutated by families 1-3: manifest case name -> short label.
SEEDS = {
    "resnet18_zip": "zip",
    "resnet18_legacy": "legacy",
    "package": "package",
    "torchscript_scripted": "torchscript",
    "safetensors_basic": "safetensors",
}


class Seed:
    """A real artifact and its anatomy: structural boundaries and metadata regions.

    key_boundaries: the container's own records (end records, central directory start,
                    header end, pickle region ends); always cut at, even with --quick
    boundaries:     those plus one per record (each ZIP local header)
    extra:          further per-record offsets (central entries, record data start and
                    end, legacy storage records), sampled
    """

    def __init__(self, label, path, boundaries, key_boundaries, meta_regions, extra=()):
        self.label = label
        self.path = path
        self.size = os.path.getsize(path)
        self.boundaries = sorted(set(boundaries) | set(key_boundaries))
        self.key_boundaries = sorted(set(key_boundaries))
        self.extra = sorted(set(extra) - set(self.boundaries))
        self.meta_regions = meta_regions                   # [(start, end)] of non-tensor bytes


# ==========================================================================================
# Seed anatomy

def _u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def _u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def _u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def zip_anatomy(label, path):
    """Boundaries of a (valid) PyTorch zip, parsed here independently of ptpack."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        tail_len = min(size, 22 + 0xFFFF)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
        eocd = size - tail_len + tail.rfind(b"PK\x05\x06")
        cd_offset, cd_size = _u32(tail, eocd - (size - tail_len) + 16), _u32(tail, eocd - (size - tail_len) + 12)
        key = [0, eocd, size]
        z64_end = None
        f.seek(eocd - 20)
        locator = f.read(20)
        if locator[:4] == b"PK\x06\x07":
            z64_end = _u64(locator, 8)
            f.seek(z64_end)
            rec = f.read(56)
            cd_size, cd_offset = _u64(rec, 40), _u64(rec, 48)
            key += [z64_end, eocd - 20]
        key.append(cd_offset)
        f.seek(cd_offset)
        cd = f.read(cd_size)
        headers, extra, meta = [], [], [(cd_offset, size)]
        pos = 0
        while pos + 46 <= len(cd) and cd[pos:pos + 4] == b"PK\x01\x02":
            extra.append(cd_offset + pos)
            csize, name_len, extra_len, comment_len = (_u32(cd, pos + 20), _u16(cd, pos + 28),
                                                      _u16(cd, pos + 30), _u16(cd, pos + 32))
            header = _u32(cd, pos + 42)
            name = cd[pos + 46:pos + 46 + name_len].decode()
            f.seek(header)
            local = f.read(30)
            data = header + 30 + _u16(local, 26) + _u16(local, 28)
            end = data + csize
            headers.append(header)
            extra += [data, end]
            meta.append((header, data))
            if _u16(local, 6) & 0x8 and csize:
                meta.append((end, end + 16))
            if not _is_tensor_record(name):
                meta.append((data, end))
            pos += 46 + name_len + extra_len + comment_len
    return Seed(label, path, headers, key, meta, extra)


def _is_tensor_record(name):
    rel = name.split("/", 1)[-1]
    return rel.startswith(("data/", "constants/")) or rel.endswith(".storage")


STORAGE_ELEMENT_SIZE = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2,
    "LongStorage": 8, "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1,
    "BoolStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}


class _Inert:
    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _StorageLister(pickle.Unpickler):
    """Loads a torch pickle without importing anything: every global is an inert class,
    and persistent ids are collected."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.pids = []

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        return type(name, (_Inert,), {})

    def persistent_load(self, pid):
        self.pids.append(pid)
        return None


def _pickle_end(data, start):
    """Offset just past the STOP of the pickle starting at `start`."""
    f = io.BytesIO(data)
    f.seek(start)
    for opcode, _, pos in pickletools.genops(f):
        if opcode.name == "STOP":
            return pos + 1
    raise ValueError("no STOP")


def legacy_anatomy(label, path):
    """Pickle regions, then each storage record (u64 count + data) of a legacy file."""
    with open(path, "rb") as f:
        data = f.read()
    ends = []
    pos = 0
    for _ in range(5):  # magic, protocol, sys_info, object, storage keys
        pos = _pickle_end(data, pos)
        ends.append(pos)
    lister = _StorageLister(data[ends[2]:ends[3]])
    lister.load()
    element = {str(pid[2]): STORAGE_ELEMENT_SIZE.get(getattr(pid[1], "__name__", ""), 1)
               for pid in lister.pids}
    keys = _StorageLister(data[ends[3]:ends[4]]).load()
    records = []
    meta = [(0, ends[4])]
    for k in keys:
        count = _u64(data, pos)
        records += [pos, pos + 8]
        meta.append((pos, pos + 8))
        pos += 8 + count * element[str(k)]
    return Seed(label, path, [], [0] + ends + [ends[4] + 8, pos], meta, records)


def safetensors_anatomy(label, path):
    with open(path, "rb") as f:
        data = f.read()
    n = _u64(data, 0)
    header = json.loads(data[8:8 + n])
    tensors = []
    for name, info in header.items():
        if name != "__metadata__":
            tensors += [8 + n + info["data_offsets"][0], 8 + n + info["data_offsets"][1]]
    return Seed(label, path, tensors, [0, 8, 8 + n, len(data)], [(0, 8 + n)])


def load_seeds(seed_dir):
    """The Seeds named in SEEDS, from generate.py's manifest in seed_dir."""
    with open(os.path.join(seed_dir, "manifest.json")) as f:
        manifest = {c["name"]: c for c in json.load(f)["cases"]}
    seeds = []
    for name, label in SEEDS.items():
        case = manifest[name]
        path = os.path.join(seed_dir, case["file"])
        anatomy = {"torch_save_legacy": legacy_anatomy, "safetensors": safetensors_anatomy}.get(
            case["format"], zip_anatomy)
        seeds.append(anatomy(label, path))
    return seeds


# ==========================================================================================
# Writing inputs

def copy_prefix(src, dst, length):
    """dst = the first `length` bytes of src (in-kernel copy)."""
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        left = length
        while left:
            n = os.copy_file_range(fi.fileno(), fo.fileno(), left)
            if n == 0:
                break
            left -= n


def _seed_copy(seed, case_dir):
    return os.path.join(case_dir, os.path.basename(seed.path))


def _xor_byte(path, at, value):
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)[0]
        f.seek(at)
        f.write(bytes([byte ^ value]))


def mutated(seed, xor_at, xor_value):
    """(write, restore) for seed with the byte at xor_at XORed with xor_value.  A chain
    shares one copy of the seed: restore XORs the byte back."""
    def write(case_dir):
        dst = _seed_copy(seed, case_dir)
        if not os.path.exists(dst) or os.path.getsize(dst) != seed.size:
            copy_prefix(seed.path, dst, seed.size)
        _xor_byte(dst, xor_at, xor_value)
        return dst

    def restore(path):
        _xor_byte(path, xor_at, xor_value)
    return write, restore


def truncated(seed, length):
    """A writer for the first `length` bytes of seed; in a chain of decreasing lengths it
    truncates the previous case's copy instead of copying again."""
    def write(case_dir):
        dst = _seed_copy(seed, case_dir)
        if os.path.exists(dst) and os.path.getsize(dst) >= length:
            os.truncate(dst, length)
        else:
            copy_prefix(seed.path, dst, length)
        return dst
    return write


def chains(items, count, label):
    """Splits items into `count` contiguous chains named label-0, label-1..."""
    size = -(-len(items) // max(1, count))
    return [(f"{label}-{i // size}", item) for i, item in enumerate(items)]


def blob(data, filename="input.pt"):
    """A writer for literal bytes (or a zero-argument function returning them)."""
    def write(case_dir):
        dst = os.path.join(case_dir, filename)
        with open(dst, "wb") as f:
            f.write(data() if callable(data) else data)
        return dst
    return write


# ==========================================================================================
# 1. Truncation of real artifacts

def truncation_offsets(seed, rng, quick):
    """Cut points, all strictly shorter than the file, each boundary with its neighbours:
    full: every boundary, 20 sampled extra offsets and 10 random ones, topped up with random
          offsets to at least 60;
    quick: the key boundaries, 4 sampled boundaries and random offsets up to 16."""
    if quick:
        around = set(seed.key_boundaries) | set(rng.sample(seed.boundaries + seed.extra,
                                                           min(4, len(seed.boundaries + seed.extra))))
        randoms, target = 0, 16
    else:
        around = set(seed.boundaries) | set(rng.sample(seed.extra, min(20, len(seed.extra))))
        randoms, target = 10, 60
    offsets = {b + d for b in around for d in (-1, 0, 1)}
    offsets = {o for o in offsets if 0 <= o < seed.size}
    offsets |= {rng.randrange(seed.size) for _ in range(randoms)}
    while len(offsets) < min(target, seed.size):
        offsets.add(rng.randrange(seed.size))
    return sorted(offsets)


def truncate_cases(ctx):
    cases = []
    for seed in ctx.seeds:
        rng = random.Random(f"truncate-{seed.label}")
        lengths = sorted(truncation_offsets(seed, rng, ctx.quick), reverse=True)
        for chain, length in chains(lengths, ctx.jobs, f"{seed.label}-cuts"):
            cases.append(Case("truncate", f"{seed.label}-cut{length}", truncated(seed, length),
                              Expect(invalid()), recipe=f"head -c {length} {seed.path}", chain=chain))
    return cases


# ==========================================================================================
# 2. Random single-bit flips, 3. byte flips in metadata regions

def bitflip_cases(ctx):
    count = 30 if ctx.quick else 200
    cases = []
    for seed in ctx.seeds:
        rng = random.Random(f"bitflip-{seed.label}")
        bits = [rng.randrange(seed.size * 8) for _ in range(count)]
        for chain, bit in chains(bits, ctx.jobs, f"{seed.label}-bits"):
            at, mask = bit // 8, 1 << (bit % 8)
            write, restore = mutated(seed, at, mask)
            cases.append(Case("bitflip", f"{seed.label}-bit{bit}", write, Expect(ANY),
                              recipe=f"{seed.path} with byte {at} ^= {mask:#04x}", chain=chain, restore=restore))
    return cases


def metaflip_cases(ctx):
    count = 20 if ctx.quick else 100
    cases = []
    for seed in ctx.seeds:
        rng = random.Random(f"metaflip-{seed.label}")
        regions = [(a, b) for a, b in seed.meta_regions if b > a]
        weights = [b - a for a, b in regions]
        flips = []
        for _ in range(count):
            start, end = rng.choices(regions, weights)[0]
            flips.append((rng.randrange(start, end), rng.randrange(1, 256)))
        for chain, (at, value) in chains(flips, ctx.jobs, f"{seed.label}-bytes"):
            write, restore = mutated(seed, at, value)
            cases.append(Case("metaflip", f"{seed.label}-byte{at}x{value:02x}", write, Expect(ANY),
                              recipe=f"{seed.path} with byte {at} ^= {value:#04x}", chain=chain, restore=restore))
    return cases


# ==========================================================================================
# 4. Crafted zips

VALID_PKL = state_dict([("w", tensor_v2())])


def _records(**overrides):
    """The records of a valid one-tensor torch zip, by short name, with overrides applied."""
    recs = {
        "pkl": ZipRecord("archive/data.pkl", VALID_PKL),
        "data0": ZipRecord("archive/data/0", craft.FLOATS_1_TO_4),
        "version": ZipRecord("archive/version", b"3\n"),
        "byteorder": ZipRecord("archive/byteorder", b"little"),
    }
    recs.update(overrides)
    return [r for r in recs.values() if r is not None]


def _overlap_declared():
    """data.pkl declares 40 more bytes than it has: its range runs into data/0's header."""
    return build_zip(_records(pkl=ZipRecord("archive/data.pkl", VALID_PKL, size=len(VALID_PKL) + 40,
                                            csize=len(VALID_PKL) + 40)))


def _overlap_nested():
    """A record hidden inside data/1's bytes, listed in the central directory."""
    hidden = ZipRecord("archive/extra", b"hidden!!")
    pkl = ZipRecord("archive/data.pkl", VALID_PKL)
    outer = ZipRecord("archive/data/1", craft.local_header(hidden) + hidden.data)
    hidden.at = len(craft.local_header(pkl)) + len(pkl.data) + len(craft.local_header(outer))
    return build_zip([pkl, outer] + _records(pkl=None) + [hidden])


def _deflated_pkl(size, csize_bytes):
    """data.pkl as method 8 with `csize_bytes` of (junk) compressed data declaring `size`."""
    return build_zip(_records(pkl=ZipRecord("archive/data.pkl", csize_bytes, method=8, size=size, crc=0)))


def zeros_1gib_zip(ctx):
    """data.pkl = an honest deflate stream of 1 GiB of zeros (~1 MB compressed)."""
    def make():
        stream, crc = ctx.zeros_deflate()
        return build_zip(_records(pkl=ZipRecord("archive/data.pkl", stream, method=8, size=1 << 30, crc=crc)))
    return make


def _no_root():
    return build_zip([ZipRecord("data.pkl", VALID_PKL), ZipRecord("data/0", craft.FLOATS_1_TO_4),
                      ZipRecord("version", b"3\n")])


def zip_cases(ctx):
    valid_tensor_only = Expect(OK, tensors=ANY)
    specs = [
        # The slow ones first, so they overlap with the rest.
        # Honest and within the ratio cap: must be refused or inflated in bounded memory.
        ("deflate-zeros-1GiB-data-pkl", zeros_1gib_zip(ctx),
         Expect(invalid("pickle.unknown-opcode", "zip.record-too-large", "kMaxPickleBytes"))),
        # A broadcast view (zero strides) of 2^62 elements over 4 bytes: torch accepts it, ptpack
        # refuses sizes whose byte count could overflow 64 bits (more than 2^58 elements).
        ("tensor-zero-stride-2pow62-elements", one_tensor_zip(tensor_v2(size=int_tuple([1 << 31, 1 << 31]),
                                                                        stride=int_tuple([0, 0]))),
         Expect(invalid("tensor.numel-overflow"))),
        ("control-valid", build_zip(_records()), Expect(OK)),
        ("overlap-declared-size", _overlap_declared(), Expect(invalid("zip.record-overlap"))),
        ("overlap-nested-record", _overlap_nested(), Expect(invalid("zip.record-overlap"))),
        ("cd-offset-beyond-file", build_zip(_records(), cd_offset=1 << 40),
         Expect(invalid("zip.central-outside"))),
        ("cd-offset-beyond-file-classic", build_zip(_records(), zip64=False, cd_offset=0xFFFFFF00),
         Expect(invalid("zip.central-outside"))),
        ("entry-count-1000", build_zip(_records(), count=1000), Expect(invalid("zip.entry-count"))),
        ("entry-count-2pow40", build_zip(_records(), count=1 << 40), Expect(invalid("kMaxZipEntries"))),
        ("name-dotdot", build_zip(_records(evil=ZipRecord("archive/../evil", b"x"))),
         Expect(invalid("zip.unsafe-name"))),
        ("name-absolute", build_zip(_records(evil=ZipRecord("/etc/evil", b"x"))),
         Expect(invalid("zip.unsafe-name"))),
        ("name-backslash", build_zip(_records(evil=ZipRecord("archive\\..\\evil", b"x"))),
         Expect(invalid("zip.unsafe-name"))),
        ("duplicate-names", build_zip(_records(dup=ZipRecord("archive/data.pkl", VALID_PKL))),
         Expect(invalid("zip.duplicate-name"))),
        ("deflate-bomb-declared-1TiB", _deflated_pkl(1 << 40, bytes(1024)), Expect(invalid("zip.bomb"))),
        ("deflate-5GiB-at-ratio-1000", lambda: _deflated_pkl(5 << 30, bytes(5_500_000)),
         Expect(invalid("zip.record-too-large"))),
        ("zip64-locator-outside", build_zip(_records(), locator_offset=1 << 62),
         Expect(invalid("zip.zip64-end-outside"))),
        ("local-name-differs", build_zip(_records(data0=ZipRecord("archive/data/0", craft.FLOATS_1_TO_4,
                                                                  local_name="archive/data/X"))),
         Expect(invalid("zip.local-name-mismatch"))),
        ("encrypted-flag", build_zip(_records(pkl=ZipRecord("archive/data.pkl", VALID_PKL, flags=1))),
         Expect(invalid("zip.encrypted"))),
        ("unknown-method-data-pkl", build_zip(_records(pkl=ZipRecord("archive/data.pkl", VALID_PKL, method=12))),
         Expect(invalid("zip.method"))),
        ("no-root-folder", _no_root(), Expect(invalid("torch.no-root-folder"))),
        ("missing-storage-record", one_tensor_zip(key="1"), Expect(invalid("storage.missing-record"))),
        ("storage-size-mismatch", one_tensor_zip(storage=bytes(12)), Expect(invalid("storage.size-mismatch"))),
        ("tensor-size-beyond-storage", one_tensor_zip(tensor_v2(size=int_tuple([5]))),
         Expect(invalid("tensor.out-of-storage"))),
        ("tensor-stride-beyond-storage", one_tensor_zip(tensor_v2(size=int_tuple([2, 2]),
                                                                  stride=int_tuple([3, 1]))),
         Expect(invalid("tensor.out-of-storage"))),
        ("tensor-offset-beyond-storage", one_tensor_zip(tensor_v2(offset=p_int(4), size=int_tuple([1]))),
         Expect(invalid("tensor.out-of-storage"))),
        # numel = 2^64 wraps to 0 in an unchecked product (a regression: it was once accepted).
        ("tensor-numel-wraps-2pow64", one_tensor_zip(tensor_v2(size=int_tuple([1 << 32, 1 << 32]),
                                                               stride=int_tuple([1 << 32, 1]))),
         Expect(invalid("tensor.numel-overflow"))),
        ("tensor-negative-stride", one_tensor_zip(tensor_v2(stride=int_tuple([-1]))),
         Expect(invalid("tensor.negative-size"))),
        ("tensor-negative-size", one_tensor_zip(tensor_v2(size=int_tuple([-4]))),
         Expect(invalid("tensor.negative-size"))),
        ("tensor-negative-offset", one_tensor_zip(tensor_v2(offset=p_int(-1))),
         Expect(invalid("tensor.negative-offset"))),
        ("tensor-rank-65", one_tensor_zip(tensor_v2(size=int_tuple([1] * 65), stride=int_tuple([1] * 65))),
         Expect(invalid("kMaxTensorRank"))),
        # Lazily detected damage: only commands that read the record see it.
        ("deflated-storage-corrupt-stream",
         build_zip(_records(data0=ZipRecord("archive/data/0", b"\xff" * 16, method=8, size=16,
                                            crc=0x12345678))),
         Expect(OK, tensors=invalid("zip.inflate"), verify=invalid("zip.inflate"))),
        ("crc-mismatch", build_zip(_records(data0=ZipRecord("archive/data/0", craft.FLOATS_1_TO_4, crc=1))),
         Expect(OK, verify=invalid("zip.crc"))),
    ]
    slow = {"deflate-zeros-1GiB-data-pkl", "tensor-zero-stride-2pow62-elements"}
    return [Case("zip", name, blob(data), expect, slow=name in slow) for name, data, expect in specs]


# ==========================================================================================
# 5. Crafted pickles (bare file and data.pkl of a torch zip)

PARSE, WALK, TENSOR, BENIGN = "parse", "walk", "tensor", "benign"


def _deep_marks(n):
    return PROTO2 + MARK * n + b"l" * n + STOP


def _deep_appends(n):
    """{'w': [[[...]]]} n lists deep, built with EMPTY_LIST x n then APPEND x (n-1)."""
    return PROTO2 + b"}" + p_str("w") + b"]" * n + b"a" * (n - 1) + b"s" + STOP


def _memo_amplification(levels):
    """{'w': L[levels]} with L[0] = [] and L[i] = [L[i-1], L[i-1]]: 2^levels paths, tiny pickle."""
    body = b"]" + p_binput(0) + b"0"
    for i in range(1, levels + 1):
        body += b"]" + MARK + p_binget(i - 1) + p_binget(i - 1) + b"e" + p_binput(i) + b"0"
    return PROTO2 + b"}" + p_str("w") + body + p_binget(levels) + b"s" + STOP


def _length_opcode(opcode, length_bytes, proto=b"\x80\x04"):
    return proto + opcode + length_bytes + b"abc" + STOP


def pickle_specs():
    """(name, pickle bytes, kind, rule or tuple of acceptable rules).  kind says where ptpack
    must notice: while parsing, while walking the value tree, while building a tensor, or
    nowhere (a legal pickle)."""
    v2 = tensor_v2
    return [
        ("mark-nesting-100001", _deep_marks(100_001), PARSE, "kMaxPickleMarks"),
        ("mark-nesting-100000", _deep_marks(100_000), WALK, "kMaxNestingDepth"),
        ("list-append-nesting-1M", _deep_appends(1_000_000), WALK, "kMaxNestingDepth"),
        ("memo-amplification-2pow60", _memo_amplification(60), WALK, "kMaxWalkSteps"),
        ("cycle-list-contains-itself",
         PROTO2 + b"}" + p_str("w") + b"]" + p_binput(1) + p_binget(1) + b"a" + b"s" + STOP, BENIGN, None),
        ("cycle-dict-contains-itself",
         PROTO2 + b"}" + p_str("w") + b"}" + p_binput(1) + p_str("self") + p_binget(1) + b"s" + b"s" + STOP,
         BENIGN, None),
        # 20 MB of NONE POP: ten million values the arena keeps (Python needs a few bytes).
        ("value-arena-10M-values", PROTO2 + b"N0" * 10_000_000 + b"N" + STOP, BENIGN, None),
        ("long-binput-0xffffffff", PROTO2 + b"}" + b"r" + b"\xff\xff\xff\xff" + STOP, PARSE, "kMaxMemoIndex"),
        ("binget-never-put", PROTO2 + p_binget(7) + STOP, PARSE, "pickle.memo-missing"),
        # 2^31-1 bytes: past the end of the data, and past kMaxPickleBytes when that cap is lower.
        ("long4-length-2pow31-1", _length_opcode(b"\x8b", struct.pack("<I", 0x7FFFFFFF)), PARSE,
         ("pickle.truncated", "kMaxPickleBytes")),
        ("long4-length-negative", _length_opcode(b"\x8b", struct.pack("<I", 0xFFFFFFFF)), PARSE,
         "pickle.negative-length"),
        ("binunicode8-length-2pow62", _length_opcode(b"\x8d", struct.pack("<Q", 1 << 62)), PARSE,
         "kMaxPickleBytes"),
        ("binbytes8-length-2pow62", _length_opcode(b"\x8e", struct.pack("<Q", 1 << 62)), PARSE,
         "kMaxPickleBytes"),
        ("bytearray8-length-2pow64-1", _length_opcode(b"\x96", b"\xff" * 8, proto=b"\x80\x05"), PARSE,
         "kMaxPickleBytes"),
        ("frame-past-end", b"\x80\x04\x95" + struct.pack("<Q", 1 << 62) + b"}" + STOP, PARSE,
         "pickle.frame-past-end"),
        ("unknown-opcode-0xff", PROTO2 + b"\xff" + STOP, PARSE, "pickle.unknown-opcode"),
        ("stack-global-non-strings", b"\x80\x04" + p_int(1) + p_int(2) + b"\x93" + STOP, PARSE,
         "pickle.stack-global"),
        ("reduce-empty-stack", PROTO2 + b"R" + STOP, PARSE, "pickle.stack-underflow"),
        ("stop-empty-stack", PROTO2 + STOP, PARSE, "pickle.stack-underflow"),
        ("no-stop", PROTO2 + b"}" + p_str("w") + p_int(1) + b"s", PARSE, "pickle.truncated"),
        ("proto-6", b"\x80\x06}" + STOP, PARSE, "pickle.protocol"),
        ("rebuild-v2-size-not-tuple", state_dict([("w", v2(size=p_int(4)))]), TENSOR, "tensor.not-tuple"),
        ("rebuild-v2-storage-not-pid",
         state_dict([("w", v2(storage=p_tuple(p_str("storage"), p_global("torch", "FloatStorage"), p_str("0"),
                                               p_str("cpu"), p_int(4))))]), TENSOR, "tensor.storage"),
        ("rebuild-v2-pid-not-tuple", state_dict([("w", v2(storage=p_str("0") + b"Q"))]), TENSOR,
         "storage.persistent-id"),
        ("rebuild-v2-args-not-tuple",
         state_dict([("w", p_global("torch._utils", "_rebuild_tensor_v2") + p_int(5) + b"R")]), TENSOR,
         "tensor.args"),
        ("rebuild-v2-pid-unknown-storage-class",
         state_dict([("w", v2(storage=storage_pid(storage_type="os_system")))]), TENSOR, "storage.type"),
        ("rebuild-v3-dtype-torch-os_system", state_dict([("w", tensor_v3(p_global("torch", "os_system")))]),
         TENSOR, "tensor.dtype"),
    ]


def _rules(rule):
    return rule if isinstance(rule, tuple) else (rule,)


def _bare_expect(kind, rule):
    if kind == PARSE:
        # A bare file starting with PROTO is read as a pickle, so its own rule is reported.
        return Expect(invalid(*_rules(rule), "format.unknown"))
    if kind == WALK:
        return Expect(ANY, info=invalid(*_rules(rule)))  # only `info` walks a bare pickle's values
    return Expect(ANY)


def _zip_expect(kind, rule):
    return Expect(ANY) if kind == BENIGN else Expect(invalid(*_rules(rule)))


SLOW_PICKLES = {"mark-nesting-100000", "list-append-nesting-1M", "memo-amplification-2pow60",
                "value-arena-10M-values"}


def pickle_cases(ctx):
    cases = [Case("pickle", "control-valid-bare", blob(VALID_PKL, "input.pkl"), Expect(OK))]
    for name, data, kind, rule in pickle_specs():
        storages = {"0": craft.FLOATS_1_TO_4} if kind == TENSOR else {}
        slow = name in SLOW_PICKLES
        cases.append(Case("pickle", f"{name}-bare", blob(data, "input.pkl"), _bare_expect(kind, rule), slow=slow))
        cases.append(Case("pickle", f"{name}-in-zip", blob(torch_zip(data, storages)), _zip_expect(kind, rule),
                          slow=slow))
    return cases


# ==========================================================================================
# 6. Crafted safetensors

def _st(header, data=b"", length=None):
    return safetensors_bytes(header, data, length)


ST_DATA = craft.FLOATS_1_TO_4 * 2  # 32 bytes


def _sparse_safetensors(header_claim, total):
    """A header-length claim followed by a sparse file of `total` bytes."""
    def write(case_dir):
        dst = os.path.join(case_dir, "input.safetensors")
        with open(dst, "wb") as f:
            f.write(struct.pack("<Q", header_claim) + b'{"a":')
            f.truncate(total)
        return dst
    return write


def _deep_array(depth):
    return "[" * depth + "]" * depth


def _deep_json(depth):
    return '{"__metadata__":{"k":' + _deep_array(depth) + "}}"


# Formats without a pickle: `dis` has nothing to show and says so.
NO_PICKLE_OK = Expect(OK, dis=invalid("dis.no-such-pickle"))


def safetensors_cases(ctx):
    two = {"a": f32_entry(0, [4]), "b": f32_entry(16, [4])}
    specs = [
        ("control-valid", _st(two, ST_DATA), NO_PICKLE_OK),
        ("header-length-past-file", _st(two, ST_DATA, length=1000), Expect(invalid("safetensors.header-past-end"))),
        ("header-length-2pow63", _st(two, ST_DATA, length=1 << 63),
         Expect(invalid("kMaxSafetensorsHeaderBytes"))),
        ("header-length-100000001-small-file", _st(two, ST_DATA, length=100_000_001),
         Expect(invalid("kMaxSafetensorsHeaderBytes"))),
        ("header-not-json", _st('{"a": not json', ST_DATA), Expect(invalid("safetensors.json"))),
        ("header-duplicate-keys",
         _st('{"a":%s,"a":%s}' % (json.dumps(f32_entry(0, [4])), json.dumps(f32_entry(16, [4]))), ST_DATA),
         Expect(invalid("safetensors.duplicate-key"))),
        ("hole-between-tensors", _st({"a": f32_entry(0, [2]), "b": f32_entry(16, [4])}, ST_DATA),
         Expect(invalid("safetensors.hole"))),
        ("overlapping-tensors", _st({"a": f32_entry(0, [4]), "b": f32_entry(8, [4])}, ST_DATA[:24]),
         Expect(invalid("safetensors.overlap"))),
        ("offsets-not-matching-shape",
         _st({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 12]}, "b": f32_entry(12, [5])}, ST_DATA),
         Expect(invalid("safetensors.size-mismatch"))),
        ("offsets-end-before-begin",
         _st({"z": {"dtype": "F32", "shape": [0], "data_offsets": [32, 0]}, **two}, ST_DATA),
         Expect(invalid("safetensors.offsets"))),
        ("unknown-dtype", _st({"a": {"dtype": "F128", "shape": [2], "data_offsets": [0, 32]}}, ST_DATA),
         Expect(invalid("safetensors.dtype"))),
        ("trailing-bytes", _st(two, ST_DATA + b"trailing"), Expect(invalid("safetensors.buffer-size"))),
        ("shape-negative", _st({"a": {"dtype": "F32", "shape": [-8], "data_offsets": [0, 32]}}, ST_DATA),
         Expect(invalid("safetensors.bad-field"))),
        ("shape-product-overflows",
         _st({"a": {"dtype": "F32", "shape": [1 << 32, 1 << 32, 1 << 32], "data_offsets": [0, 32]}}, ST_DATA),
         Expect(invalid("size-overflow"))),
        ("metadata-nested-value", _st({"__metadata__": {"k": {"nested": "v"}}, **two}, ST_DATA),
         Expect(invalid("safetensors.metadata"))),
        ("metadata-nested-1M-deep", _st(_deep_json(1_000_000)), Expect(invalid("kMaxJsonDepth"))),
        # The deep value is followed by another key of the same object (the parser's insertion
        # of that key must not copy the deep value recursively).
        ("tensor-nested-1M-deep-then-key",
         _st('{"a":%s,"b":%s}' % (_deep_array(1_000_000), json.dumps(f32_entry(0, [0])))),
         Expect(invalid("kMaxJsonDepth"))),
    ]
    cases = [Case("safetensors", name, blob(data, "input.safetensors"), expect) for name, data, expect in specs]
    cases.append(Case("safetensors", "header-length-100000001-sparse-file",
                      _sparse_safetensors(100_000_001, 100_000_100), Expect(invalid("kMaxSafetensorsHeaderBytes"))))
    return cases


# ==========================================================================================
# 7. Crafted sharded indexes

SHARD = safetensors_bytes({"w": f32_entry(0, [4])}, craft.FLOATS_1_TO_4)
INDEX_NAME = "model.safetensors.index.json"


def index_dir(weight_map, shards=None, fifos=(), metadata_text='{"total_size": 16}'):
    """A writer for a directory holding the index, its shards and any named FIFOs."""
    def write(case_dir):
        for name, data in (shards if shards is not None else {"model-1.safetensors": SHARD}).items():
            with open(os.path.join(case_dir, name), "wb") as f:
                f.write(data)
        for name in fifos:
            os.mkfifo(os.path.join(case_dir, name))
        path = os.path.join(case_dir, INDEX_NAME)
        with open(path, "w") as f:
            f.write('{"metadata": %s, "weight_map": %s}' % (metadata_text, json.dumps(weight_map)))
        return path
    return write


def index_cases(ctx):
    deep = '{"k": %s, "total_size": 16}' % _deep_array(1_000_000)
    specs = [
        # A FIFO nobody writes to: opening it for reading blocks forever unless ptpack refuses it.
        ("shard-is-a-fifo", index_dir({"w": "model-1.safetensors"}, shards={}, fifos=["model-1.safetensors"]),
         Expect(invalid("index.missing-shard"))),
        ("control-valid", index_dir({"w": "model-1.safetensors"}), NO_PICKLE_OK),
        ("shard-name-dotdot", index_dir({"w": "../model-1.safetensors"}), Expect(invalid("index.shard-name"))),
        ("shard-name-absolute", index_dir({"w": "/etc/hostname"}), Expect(invalid("index.shard-name"))),
        ("shard-missing", index_dir({"w": "model-2.safetensors"}), Expect(invalid("index.missing-shard"))),
        ("tensor-missing-from-shard", index_dir({"w": "model-1.safetensors", "v": "model-1.safetensors"}),
         Expect(invalid("index.missing-tensor"))),
        ("index-names-itself-as-shard", index_dir({"w": INDEX_NAME}),
         Expect(invalid("kMaxSafetensorsHeaderBytes"))),
        ("metadata-nested-1M-deep", index_dir({"w": "model-1.safetensors"}, metadata_text=deep), Expect(ANY)),
    ]
    return [Case("index", name, write, expect, slow=name == "shard-is-a-fifo") for name, write, expect in specs]


# ==========================================================================================

# ==========================================================================================
# 8. Regressions from the code review of 2026-11-22 (each was a crash, a blow-up or a wrong accept)

def _stored_size_lies():
    """A stored record whose central directory declares 20 bytes but that holds 16: reading it
    must not run into the next record."""
    data = bytearray(one_tensor_zip())
    name = b"archive/data/0"
    at = data.rfind(b"PK\x01\x02", 0, data.rfind(name))  # its central directory entry
    struct.pack_into("<I", data, at + 24, 20)
    return bytes(data)


def regression_cases(ctx):
    big_key = b"X" + struct.pack("<I", 4 << 20) + b"k" * (4 << 20) + b"q\x00"
    path_key = b"X" + struct.pack("<I", 1 << 20) + b"p" * (1 << 20) + b"q\x00"
    specs = [
        ("from-type-v2-cycle", b"\x80\x02ctorch._tensor\n_rebuild_from_type_v2\nq\x00]q\x01(h\x00Nh\x01eR.",
         Expect(ANY, info=invalid("kMaxNestingDepth"))),
        ("memoised-4MiB-key-in-300-dicts",
         lambda: b"\x80\x02" + big_key + b"0]" + b"}h\x00Ns" * 300 + b".", Expect(ANY)),
        ("memoised-1MiB-key-50-levels",
         lambda: b"\x80\x02" + path_key + b"0" + b"}h\x00" * 50 + b"N" + b"s" * 50 + b".",
         Expect(ANY, info=invalid("kMaxPathBytes"))),
        ("json-number-1e400", safetensors_bytes('{"a":1e400}'), Expect(invalid("safetensors.json"))),
        ("stride-overflow", safetensors_bytes({"t": {"dtype": "F32", "shape": [0, 1 << 62, 4], "data_offsets": [0, 0]}}),
         Expect(invalid("size-overflow"))),
        ("stored-size-lies", _stored_size_lies, Expect(invalid("zip.stored-size"))),
    ]
    return [Case("regression", name, blob(data, "input.pt"), expect) for name, data, expect in specs]


GROUPS = [
    ("truncate", truncate_cases),
    ("bitflip", bitflip_cases),
    ("metaflip", metaflip_cases),
    ("zip", zip_cases),
    ("pickle", pickle_cases),
    ("safetensors", safetensors_cases),
    ("index", index_cases),
    ("regression", regression_cases),
]
SEEDED_GROUPS = {"truncate", "bitflip", "metaflip"}
