#!/usr/bin/env python3
"""Run ptpack's CLI on hostile inputs and check it fails safely.

Usage: python3 tests/hostile/run_hostile.py --ptpack BIN --work DIR [--quick]
                                            [--seeds DIR] [--jobs N] [--group NAME ...]

Contract
--------
Every input is run through `info`, `tensors --json --digest`, `ls`, `dis` and
`verify` (one *run* each).  Every run must:

* end within 20 s, not be killed by a signal, print no sanitizer report, exit 0,
  1 or 2 (1 only from verify);
* stay under 1 GiB peak RSS, measured with wait4's rusage; runaways are killed
  at 1.5x the limit.  With PTPACK_SANITIZED=1 (ASan/UBSan build) the limits are
  3 GiB and 60 s, and the quick set runs unless PTPACK_HOSTILE_FULL=1;
* when it exits 2, print `ptpack: error: FILE...[rule]` on stderr; when verify
  exits 1, print `FILE: FAILED` on stdout.

Definitely invalid inputs must moreover be refused: exit 2 (verify: exit 1 with
the rule on stdout, or exit 2 for rules verify re-throws), and crafted inputs
must name the rule chosen from the source.  Mutated real files may still parse;
then only the checks above apply.  harness.py defines the checks, families.py
the inputs (truncations and bit/byte flips of real torch artifacts; crafted
ZIPs, pickles, safetensors files and sharded indexes).

Seeds come from `/usr/bin/python3 tests/interop/generate.py DIR/seeds` (run once
and cached; --seeds reuses an existing output); the 1 GiB deflate stream is
cached in DIR/cache.  The binary is copied to DIR/bin first, so a rebuild during
the run cannot swap it midway.  Everything is deterministic.

Output: one line per group with counts, the details of every failing run (the
input is kept under DIR/failures/<group>/<case>/ with a problems.txt; a large
mutated seed beyond the keep budget is described by its recipe instead), then
`N passed, M failed` counting runs.  Exit 0 when nothing failed, 1 otherwise,
2 on bad usage.  Standard library only.
"""

import argparse
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import craft  # noqa: E402
import families  # noqa: E402
import harness  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
GENERATE = os.path.join(REPO, "tests", "interop", "generate.py")
TORCH_PYTHON = "/usr/bin/python3"
KEEP_BUDGET = 1 << 30         # bytes of failing inputs kept in total
BIG_INPUT = 16 << 20          # inputs above this count against the budget


class Context:
    """What the families and the runner share."""

    def __init__(self, args):
        self.binary = os.path.abspath(args.ptpack)
        self.work = os.path.abspath(args.work)
        sanitized = os.environ.get("PTPACK_SANITIZED") == "1"
        # Under ASan every run costs ~5x: the sanitizer pass takes the quick set (every crafted
        # case, fewer random truncations and flips) unless PTPACK_HOSTILE_FULL=1; the full set
        # runs in the plain build, and the fuzzers run under ASan too.
        self.quick = args.quick or (sanitized and os.environ.get("PTPACK_HOSTILE_FULL") != "1")
        self.jobs = args.jobs
        self.seed_dir = os.path.abspath(args.seeds) if args.seeds else os.path.join(self.work, "seeds")
        self.memory_limit_kb = (3 if sanitized else 1) << 20
        self.timeout = harness.TIMEOUT * (harness.SANITIZER_SLOWDOWN if sanitized else 1)
        self.seeds = []
        self._zeros = None
        self._zeros_lock = threading.Lock()
        self._kept_bytes = 0
        self._keep_lock = threading.Lock()

    def zeros_deflate(self):
        """(raw deflate stream of 1 GiB of zeros, CRC-32 of the zeros), cached on disk."""
        with self._zeros_lock:
            if self._zeros is None:
                path = os.path.join(self.work, "cache", "zeros-1GiB.deflate")
                crc_path = path + ".crc"
                if not (os.path.exists(path) and os.path.exists(crc_path)):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    crc = craft.deflate_zeros_to(path + ".tmp", 1 << 30)
                    with open(crc_path, "w") as f:
                        f.write(str(crc))
                    os.replace(path + ".tmp", path)
                with open(path, "rb") as f, open(crc_path) as c:
                    self._zeros = (f.read(), int(c.read()))
            return self._zeros

    def reserve_keep(self, nbytes):
        """True when a failing input of nbytes may be kept (large ones share a budget)."""
        if nbytes <= BIG_INPUT:
            return True
        with self._keep_lock:
            if self._kept_bytes + nbytes > KEEP_BUDGET:
                return False
            self._kept_bytes += nbytes
            return True


# ------------------------------------------------------------------------------------------
# Seeds

def prepare_seeds(ctx):
    """Generate (once) and load the real artifacts; returns an error text or None."""
    manifest = os.path.join(ctx.seed_dir, "manifest.json")
    if not os.path.exists(manifest):
        os.makedirs(ctx.seed_dir, exist_ok=True)
        try:
            proc = subprocess.run([TORCH_PYTHON, GENERATE, ctx.seed_dir], capture_output=True, text=True,
                                  timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"cannot run {GENERATE}: {e}"
        if proc.returncode != 0:
            return f"{GENERATE} failed: {proc.stderr.strip()[-500:]}"
    try:
        ctx.seeds = families.load_seeds(ctx.seed_dir)
    except (OSError, KeyError, ValueError) as e:
        return f"cannot read the seeds in {ctx.seed_dir}: {e}"
    return None


# ------------------------------------------------------------------------------------------
# Running a case

class RunRecord:
    def __init__(self, command, result, problems):
        self.command = command
        self.result = result
        self.problems = problems


class CaseResult:
    def __init__(self, case):
        self.case = case
        self.runs = []
        self.kept = ""         # where the failing input was kept
        self.input_name = ""   # the file passed to ptpack, relative to its case directory
        self.error = ""        # the input could not be written

    @property
    def failed_runs(self):
        return [r for r in self.runs if r.problems]


def run_case(ctx, case, case_dir):
    """Writes the case's input into case_dir, runs every command on it, keeps it if any run
    failed, then lets the case undo its mutation (chains reuse the directory)."""
    scratch = os.path.join(case_dir, ".out")
    os.makedirs(scratch, exist_ok=True)
    outcome = CaseResult(case)
    try:
        path = case.write(case_dir)
        outcome.input_name = os.path.relpath(path, case_dir)
    except Exception as e:  # a bug in the harness: report it as a failure, keep going
        outcome.error = f"could not write the input: {type(e).__name__}: {e}"
        return outcome
    for command, args in harness.COMMANDS.items():
        r = harness.run_ptpack(ctx.binary, args + [path], scratch, ctx.memory_limit_kb, ctx.timeout)
        problems = harness.safety_problems(command, path, r, ctx.memory_limit_kb)
        problems += harness.expectation_problems(command, path, r, case.expect.of(command))
        outcome.runs.append(RunRecord(command, r, problems))
        if r.timed_out:
            break  # the other commands would likely hang too; the hang is already a failure
    if outcome.failed_runs:
        outcome.kept = keep_failure(ctx, outcome, case_dir)
    if case.restore:
        case.restore(path)
    return outcome


def run_chain(ctx, cases):
    """Runs cases one after another in one fresh directory (a chain, or a single case)."""
    first = cases[0]
    case_dir = os.path.join(ctx.work, "cases", first.group, first.chain or first.name)
    shutil.rmtree(case_dir, ignore_errors=True)
    os.makedirs(case_dir)
    try:
        return [run_case(ctx, case, case_dir) for case in cases]
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)


def _input_bytes(case_dir):
    total = 0
    for name in os.listdir(case_dir):
        st = os.lstat(os.path.join(case_dir, name))
        if stat.S_ISREG(st.st_mode):
            total += st.st_blocks * 512  # sparse files cost what they occupy
    return total


def keep_failure(ctx, outcome, case_dir):
    """Copies the input (FIFOs recreated, sparse files kept sparse) and writes problems.txt."""
    case = outcome.case
    dest = os.path.join(ctx.work, "failures", case.group, case.name)
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    if ctx.reserve_keep(_input_bytes(case_dir)):
        for name in os.listdir(case_dir):
            src = os.path.join(case_dir, name)
            st = os.lstat(src)
            if stat.S_ISFIFO(st.st_mode):
                os.mkfifo(os.path.join(dest, name))
            elif stat.S_ISREG(st.st_mode):
                subprocess.run(["cp", "--sparse=always", src, os.path.join(dest, name)], check=False)
    with open(os.path.join(dest, "problems.txt"), "w") as f:
        f.write(describe(outcome, dest) + "\n")
        for run in outcome.runs:
            f.write(f"\n--- {run.command}: exit {run.result.exit_code} signal {run.result.signal} "
                    f"rss {run.result.max_rss_kb // 1024} MiB {run.result.seconds:.2f} s\n")
            f.write(f"stderr:\n{run.result.stderr[:4000]}\nstdout (head):\n{run.result.stdout[:2000]}\n")
    return dest


# ------------------------------------------------------------------------------------------
# Reporting

def describe(outcome, kept=None):
    case = outcome.case
    lines = [f"FAIL {case.group}/{case.name}"]
    if outcome.error:
        lines.append(f"  {outcome.error}")
    for run in outcome.failed_runs:
        lines.append(f"  {run.command}: " + "; ".join(run.problems))
        first = run.result.stderr.split("\n", 1)[0].strip()
        if first:
            lines.append(f"    stderr: {first[:300]}")
    where = kept if kept is not None else outcome.kept
    if where:
        kept_input = os.path.join(where, outcome.input_name)
        if outcome.input_name and os.path.lexists(kept_input):
            lines.append(f"  input: {kept_input}")
        else:
            lines.append(f"  input not kept (keep budget): {case.recipe}")
    return "\n".join(lines)


def group_tasks(cases):
    """A group's tasks: each chain is one task, every other case its own."""
    tasks = {}
    for case in cases:
        tasks.setdefault(case.chain or ("single", case.name), []).append(case)
    return list(tasks.values())


def submit_all(ctx, groups, pool):
    """Queues every group's tasks, slow ones first; returns [(group, number of cases, futures)]."""
    queued, tasks = [], []
    for name, make_cases in groups:
        cases = make_cases(ctx)
        futures = []
        queued.append((name, len(cases), futures))
        tasks += [(any(c.slow for c in t), t, futures) for t in group_tasks(cases)]
    for slow in (True, False):
        for is_slow, task, futures in tasks:
            if is_slow == slow:
                futures.append(pool.submit(run_chain, ctx, task))
    return queued


def collect_group(name, n_cases, futures, start):
    """Waits for a group and prints its line."""
    results = [r for f in futures for r in f.result()]
    runs = sum(len(r.runs) for r in results)
    bad_runs = sum(len(r.failed_runs) for r in results)
    failed = bad_runs + sum(1 for r in results if r.error)
    slowest = max(((run.result.seconds, f"{r.case.name} {run.command}") for r in results for run in r.runs),
                  default=(0.0, "-"))
    print(f"{name:<12} {n_cases:5d} inputs {runs:6d} runs {runs - bad_runs:6d} passed {failed:4d} failed"
          f"  (done at {time.monotonic() - start:5.1f} s; slowest run {slowest[0]:.1f} s: {slowest[1]})",
          flush=True)
    return results


def snapshot_binary(binary, bin_dir):
    """A private copy of the binary, so a rebuild during the run cannot swap it midway."""
    os.makedirs(bin_dir)
    copy = os.path.join(bin_dir, os.path.basename(binary))
    shutil.copy2(binary, copy)
    return copy


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ptpack", required=True, help="the ptpack binary")
    p.add_argument("--work", required=True, help="work directory (seeds, inputs, failures)")
    p.add_argument("--quick", action="store_true", help="fewer truncations and flips (~1 min)")
    p.add_argument("--seeds", help="an existing generate.py output to use as seeds")
    p.add_argument("--jobs", type=int, default=max(2, os.cpu_count() or 2), help="parallel inputs")
    p.add_argument("--group", action="append", choices=[g for g, _ in families.GROUPS],
                   help="run only these groups (repeatable)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not os.access(args.ptpack, os.X_OK):
        print(f"run_hostile: {args.ptpack} is not an executable", file=sys.stderr)
        return 2
    ctx = Context(args)
    os.makedirs(ctx.work, exist_ok=True)
    for sub in ("cases", "failures", "bin"):
        shutil.rmtree(os.path.join(ctx.work, sub), ignore_errors=True)
    ctx.binary = snapshot_binary(ctx.binary, os.path.join(ctx.work, "bin"))
    start = time.monotonic()
    print(f"ptpack hostile inputs: {args.ptpack} ({'quick' if ctx.quick else 'full'}, work {ctx.work}, "
          f"memory limit {ctx.memory_limit_kb >> 10} MiB, timeout {ctx.timeout:.0f} s)", flush=True)
    groups = [(g, fn) for g, fn in families.GROUPS if not args.group or g in args.group]
    passed = failed = 0
    failures = []
    seed_error = prepare_seeds(ctx) if any(g in families.SEEDED_GROUPS for g, _ in groups) else None
    if seed_error:
        print(f"seeds unavailable: {seed_error}")
        failures.append(f"FAIL seeds: {seed_error}")
        failed += 1
    if seed_error:
        groups = [(g, fn) for g, fn in groups if g not in families.SEEDED_GROUPS]
    with ThreadPoolExecutor(max_workers=ctx.jobs) as pool:
        for name, n_cases, futures in submit_all(ctx, groups, pool):
            for r in collect_group(name, n_cases, futures, start):
                bad = len(r.failed_runs) + (1 if r.error else 0)
                failed += bad
                passed += len(r.runs) - len(r.failed_runs)
                if bad:
                    failures.append(describe(r))
    shutil.rmtree(os.path.join(ctx.work, "cases"), ignore_errors=True)
    report = "\n".join(failures)
    with open(os.path.join(ctx.work, "report.txt"), "w") as f:
        f.write(report + ("\n" if report else ""))
    if failures:
        print(f"\n{len(failures)} failing inputs (also in {os.path.join(ctx.work, 'report.txt')}):")
        print(report)
    print(f"\ntotal {time.monotonic() - start:.1f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
