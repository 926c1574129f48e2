#!/usr/bin/env python3
"""Check ptpack against the artifacts and listings written by generate.py.

Usage: check.py --ptpack BIN --dir OUTDIR [--slow] [--case NAME ...] [--timeout S]

For every case in OUTDIR/manifest.json (slow cases only with --slow):

* `BIN tensors --json --digest FILE` must exit 0 and print
  {"format": ..., "tensors": [{"path", "dtype", "shape", "stride", "offset",
  "storage", "nbytes", "sha256"}]}; the format must be the case's format; the
  set of paths must equal the expected set; dtype, shape, stride, offset,
  nbytes and sha256 must match per path; and two tensors must share ptpack's
  `storage` string exactly when they share the expected `storage_group`.
* `BIN info --json FILE` must exit 0 and, for each expected value, list an
  entry {"path": P, "repr": R} in its "values" array.
* `BIN verify FILE` must exit 0.

Prints `ok NAME` or `FAIL NAME: <first differences>` per case, then the line
`N passed, M failed`; exits 1 if any case failed, 2 on bad usage or manifest.
A missing, crashing or misbehaving binary is a FAIL, never a traceback.
Standard library only; any Python 3.8+ runs it.
"""

import argparse
import json
import os
import subprocess
import sys

FIELDS = ("dtype", "shape", "stride", "offset", "nbytes", "sha256")
SHOWN_PROBLEMS = 6
SHOWN_ITEMS = 5
STDERR_TAIL = 400


class CommandFailed(Exception):
    """`cannot_start` marks failures that every later command would repeat."""

    def __init__(self, message, cannot_start=False):
        super().__init__(message)
        self.cannot_start = cannot_start


def tail(text, limit=STDERR_TAIL):
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


def run(cmd, timeout):
    """Run cmd; return stdout, or raise CommandFailed with a readable reason."""
    shown = " ".join(cmd[1:2])
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise CommandFailed(f"cannot run {cmd[0]}: not found", cannot_start=True)
    except PermissionError:
        raise CommandFailed(f"cannot run {cmd[0]}: permission denied", cannot_start=True)
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"`{shown}` timed out after {timeout} s")
    except OSError as e:
        raise CommandFailed(f"cannot run {cmd[0]}: {e}", cannot_start=True)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise CommandFailed(f"`{shown}` exited {proc.returncode}: {tail(stderr) or '(no stderr)'}")
    return proc.stdout.decode("utf-8", "replace")


def run_json(cmd, timeout):
    text = run(cmd, timeout)
    try:
        return json.loads(text)
    except ValueError as e:
        raise CommandFailed(f"`{cmd[1]}` printed invalid JSON ({e}): {tail(text, 200)!r}")


def few(items):
    items = sorted(items, key=str)
    shown = ", ".join(str(i) for i in items[:SHOWN_ITEMS])
    more = len(items) - SHOWN_ITEMS
    return shown + (f" (+{more} more)" if more > 0 else "")


def index_by_path(tensors, problems):
    """{path: entry} for ptpack's tensors, reporting malformed and duplicate entries."""
    by_path, duplicates = {}, set()
    if not isinstance(tensors, list):
        problems.append(f"\"tensors\" is not a list: {tail(repr(tensors), 100)}")
        return by_path
    for entry in tensors:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            problems.append(f"tensor entry without a path: {tail(repr(entry), 100)}")
            continue
        if entry["path"] in by_path:
            duplicates.add(entry["path"])
        by_path[entry["path"]] = entry
    if duplicates:
        problems.append(f"paths listed twice: {few(duplicates)}")
    return by_path


def compare_fields(want, got, problems):
    for path in sorted(set(want) & set(got)):
        for field in FIELDS:
            w, g = want[path][field], got[path].get(field)
            if field == "sha256" and isinstance(g, str):
                g = g.lower()
            if w != g:
                problems.append(f"{path}: {field} {g!r} != expected {w!r}")


def compare_storages(want, got, problems):
    """Expected storage_group <-> ptpack storage must be a one-to-one mapping."""
    storages_of_group, groups_of_storage = {}, {}
    for path in sorted(set(want) & set(got)):
        storage = got[path].get("storage")
        if not isinstance(storage, str):
            problems.append(f"{path}: storage {storage!r} is not a string")
            continue
        group = want[path]["storage_group"]
        storages_of_group.setdefault(group, {}).setdefault(storage, []).append(path)
        groups_of_storage.setdefault(storage, {}).setdefault(group, []).append(path)
    for group, storages in storages_of_group.items():
        if len(storages) > 1:
            split = "; ".join(f"{s!r}: {few(p)}" for s, p in sorted(storages.items()))
            problems.append(f"one torch storage split across ptpack storages ({split})")
    for storage, groups in groups_of_storage.items():
        if len(groups) > 1:
            merged = [f"[{few(paths)}]" for _, paths in sorted(groups.items())]
            problems.append(f"ptpack storage {storage!r} merges {len(groups)} distinct torch "
                            f"storages ({'; '.join(merged[:SHOWN_ITEMS])}"
                            f"{'; ...' if len(merged) > SHOWN_ITEMS else ''})")


def check_tensors(case, listing, expected, problems):
    if not isinstance(listing, dict):
        problems.append("tensors --json did not print an object")
        return
    if listing.get("format") != case["format"]:
        problems.append(f"format {listing.get('format')!r} != expected {case['format']!r}")
    got = index_by_path(listing.get("tensors"), problems)
    want = {t["path"]: t for t in expected["tensors"]}
    missing, extra = set(want) - set(got), set(got) - set(want)
    if missing:
        problems.append(f"missing paths: {few(missing)}")
    if extra:
        problems.append(f"unexpected paths: {few(extra)}")
    compare_fields(want, got, problems)
    compare_storages(want, got, problems)


def check_values(case, info, problems):
    values = info.get("values") if isinstance(info, dict) else None
    if not isinstance(values, list):
        problems.append("info --json has no \"values\" list")
        return
    shown = {}
    for entry in values:
        if isinstance(entry, dict):
            shown.setdefault(entry.get("path"), []).append(entry.get("repr"))
    for path, want in case.get("values", {}).items():
        if path not in shown:
            problems.append(f"value {path} missing from info")
        elif want not in shown[path]:
            problems.append(f"value {path}: info shows {few(map(repr, shown[path]))}, "
                            f"expected {want!r}")


def check_case(ptpack, outdir, case, timeout):
    """Return the list of differences for one case (empty when it passes)."""
    problems = []
    path = os.path.join(outdir, case["file"])
    if not os.path.exists(path):
        return [f"artifact {case['file']} does not exist (re-run generate.py)"]
    with open(os.path.join(outdir, case["expected"])) as f:
        expected = json.load(f)
    steps = [
        (["tensors", "--json", "--digest"],
         lambda out: check_tensors(case, out, expected, problems), True),
        (["info", "--json"], lambda out: check_values(case, out, problems), True),
        (["verify"], None, False),
    ]
    for args, check, as_json in steps:
        cmd = [ptpack] + args + [path]
        try:
            result = run_json(cmd, timeout) if as_json else run(cmd, timeout)
        except CommandFailed as e:
            problems.append(str(e))
            if e.cannot_start:
                break
            continue
        if check:
            check(result)
    return problems


def usage_error(message):
    print(f"check.py: {message}", file=sys.stderr)
    sys.exit(2)


def load_manifest(outdir):
    path = os.path.join(outdir, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f)["cases"]
    except (OSError, ValueError, KeyError) as e:
        usage_error(f"cannot read {path}: {e} (run generate.py first)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ptpack", required=True, help="path to the ptpack binary")
    parser.add_argument("--dir", required=True, help="directory written by generate.py")
    parser.add_argument("--slow", action="store_true", help="also run slow cases")
    parser.add_argument("--case", action="append", help="only this case (repeatable)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per command")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every difference")
    args = parser.parse_args(argv)

    cases = load_manifest(args.dir)
    if args.case:
        unknown = set(args.case) - {c["name"] for c in cases}
        if unknown:
            usage_error(f"no such case: {', '.join(sorted(unknown))}")
        cases = [c for c in cases if c["name"] in args.case]
    passed = failed = 0
    for case in cases:
        if case.get("slow") and not args.slow:
            print(f"skip {case['name']} (slow; pass --slow)")
            continue
        try:
            timeout = args.timeout * (10 if case.get("slow") else 1)
            problems = check_case(args.ptpack, args.dir, case, timeout)
        except Exception as e:  # a broken expected file must not hide the other cases
            problems = [f"checker error: {type(e).__name__}: {e}"]
        if problems:
            failed += 1
            shown = problems if args.verbose else problems[:SHOWN_PROBLEMS]
            more = len(problems) - len(shown)
            print(f"FAIL {case['name']}: " + "; ".join(shown) +
                  (f"; (+{more} more, -v shows all)" if more else ""))
        else:
            passed += 1
            print(f"ok {case['name']}")
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
