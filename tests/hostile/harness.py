"""Running ptpack on one input and judging the result (test-only, standard library only).

The case model
--------------
A `Case` is one input file (or, for sharded indexes, a directory whose main file
is passed) plus an `Expect`: the outcome each subcommand must have.  Outcomes:

* `ANY`     only the safety checks apply (mutated real files may still parse);
* `OK`      exit 0 (controls, and commands that legitimately do not touch the
            hostile part);
* `invalid(rule, ...)`  the input is definitely invalid: exit 2 with stderr
            starting `ptpack: error:`, the message naming the file and containing
            `[rule]` (any one of the given rules; no rule given = any rule).
            `verify` instead exits 1 and prints `FILE: FAILED` with the rule on
            stdout, except for rules whose error code verify re-throws
            (unsupported, not found, I/O: VERIFY_RETHROWN), which exit 2 as above.

Safety checks, applied to every run
-----------------------------------
* not killed by a signal, no sanitizer report on stderr, exit code 0, 1 or 2,
  and 1 only from `verify`; finished within TIMEOUT seconds (SANITIZER_SLOWDOWN
  times that for sanitized builds);
* peak RSS (wait4 rusage) at most the memory limit; a child that passes the
  limit by MEMORY_KILL_FACTOR is killed early so a runaway cannot take the machine;
* every exit 2 is a well-formed error: `ptpack: error: ` + the file + `[rule]`
  (not `internal error`, not `out of memory`);
* every verify exit 1 prints `FILE: FAILED`.
"""

import os
import re
import select
import signal
import time

TIMEOUT = 20.0            # seconds per run; scaled by SANITIZER_SLOWDOWN for sanitized builds
SANITIZER_SLOWDOWN = 3.0
MEMORY_KILL_FACTOR = 1.5
OUTPUT_HEAD = 64 * 1024  # bytes of stdout/stderr kept for judging

COMMANDS = {
    "info": ["info"],
    "tensors": ["tensors", "--json", "--digest"],
    "ls": ["ls"],
    "dis": ["dis"],
    "verify": ["verify"],
}

# Rules whose Error code is not kCorrupt/kLimitExceeded: `verify` re-throws them (exit 2).
VERIFY_RETHROWN = {
    "format.unknown", "format.zip-kind", "format.preview", "format.tar",
    "zip.method", "zip.encrypted", "zip.multi-disk",
    "pickle.protocol", "legacy.protocol", "storage.type", "tensor.dtype", "safetensors.dtype",
    "tensor.no-data", "tensor.sub-byte-view",
    "io", "dis.no-such-pickle", "storage.entry", "zlib", "openssl",
}

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


# ------------------------------------------------------------------------------------------
# Expectations

class Outcome:
    def __init__(self, kind, rules=()):
        self.kind = kind      # "any", "ok", "invalid"
        self.rules = tuple(rules)

    def __repr__(self):
        return self.kind if self.kind != "invalid" else f"invalid{self.rules or ''}"


ANY = Outcome("any")
OK = Outcome("ok")


def invalid(*rules):
    return Outcome("invalid", rules)


class Expect:
    """The outcome for each command: `default`, overridden per command by keyword."""

    def __init__(self, default, **per_command):
        unknown = set(per_command) - set(COMMANDS)
        if unknown:
            raise ValueError(f"unknown commands {unknown}")
        self.default = default
        self.per_command = per_command

    def of(self, command):
        return self.per_command.get(command, self.default)


class Case:
    """One hostile input.

    write(case_dir) creates the input inside `case_dir` and returns the path to pass
    to ptpack.  `recipe` says how to recreate a mutated seed (shown when a large
    failing input is not kept).

    Cases with the same `chain` run one after another in one shared directory, so a
    mutation of a large seed can reuse the previous case's copy (truncate it further,
    or flip another byte after `restore(path)` undid the last flip) instead of
    copying the seed again.  `slow` cases (long or possibly hanging runs) are queued
    before all others, so they overlap with the rest of the suite.
    """

    def __init__(self, group, name, write, expect, recipe="", chain=None, restore=None, slow=False):
        self.group = group
        self.name = name
        self.write = write
        self.expect = expect
        self.recipe = recipe
        self.chain = chain
        self.restore = restore
        self.slow = slow


# ------------------------------------------------------------------------------------------
# Running one command

class RunResult:
    def __init__(self):
        self.exit_code = None   # None when killed by a signal
        self.signal = None
        self.timed_out = False
        self.memory_killed = False
        self.max_rss_kb = 0
        self.seconds = 0.0
        self.stdout = ""
        self.stderr = ""
        self.spawn_error = ""   # the child could not be started


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _head(path):
    with open(path, "rb") as f:
        return f.read(OUTPUT_HEAD).decode("utf-8", "replace")


def run_ptpack(binary, args, scratch, memory_limit_kb, timeout=TIMEOUT):
    """Run `binary args` with stdout/stderr in files under `scratch`; never raises for the
    child's behaviour.  Kills it after `timeout` s or when its RSS passes the kill threshold."""
    out_path = os.path.join(scratch, "stdout")
    err_path = os.path.join(scratch, "stderr")
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
        (os.POSIX_SPAWN_OPEN, 2, err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
    ]
    result = RunResult()
    start = time.monotonic()
    try:
        pid = os.posix_spawn(binary, [binary] + args, os.environ, file_actions=actions)
    except OSError as e:
        result.spawn_error = f"cannot run {binary}: {e}"
        return result
    kill_kb = memory_limit_kb * MEMORY_KILL_FACTOR
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll(50):  # the child is still running
            if time.monotonic() - start > timeout:
                result.timed_out = True
            elif _rss_kb(pid) > kill_kb:
                result.memory_killed = True
            if result.timed_out or result.memory_killed:
                os.kill(pid, signal.SIGKILL)  # not yet reaped: the pid is still ours
                break
        _, status, rusage = os.wait4(pid, 0)
    finally:
        os.close(pidfd)
    result.seconds = time.monotonic() - start
    result.max_rss_kb = rusage.ru_maxrss
    if os.WIFSIGNALED(status):
        result.signal = os.WTERMSIG(status)
    else:
        result.exit_code = os.WEXITSTATUS(status)
    result.stdout = _head(out_path)
    result.stderr = _head(err_path)
    return result


# ------------------------------------------------------------------------------------------
# Judging one run

RULE_AT_END = re.compile(r"\[([A-Za-z0-9_.\-]+)\]\s*$")


def _first_line(text):
    return text.split("\n", 1)[0]


def error_rule(text):
    """The [rule] at the end of an error message, or None."""
    m = RULE_AT_END.search(text)
    return m.group(1) if m else None


def safety_problems(command, path, r, memory_limit_kb):
    """Problems any run may not have, whatever its input."""
    if r.spawn_error:
        return [r.spawn_error]
    problems = []
    if r.timed_out:
        problems.append(f"hang: killed after {r.seconds:.0f} s")
    if r.memory_killed:
        problems.append(f"memory: killed at RSS > {memory_limit_kb * MEMORY_KILL_FACTOR / 1024:.0f} MiB")
    elif r.max_rss_kb > memory_limit_kb:
        problems.append(f"memory: peak RSS {r.max_rss_kb / 1024:.0f} MiB > {memory_limit_kb / 1024:.0f} MiB")
    if r.signal is not None and not (r.timed_out or r.memory_killed):
        problems.append(f"crash: killed by signal {signal.Signals(r.signal).name}")
    for marker in SANITIZER_MARKERS:
        if marker in r.stderr:
            problems.append(f"sanitizer: '{marker}' on stderr")
    if r.exit_code is not None:
        if r.exit_code not in (0, 1, 2):
            problems.append(f"exit code {r.exit_code} (only 0, 1, 2 are allowed)")
        elif r.exit_code == 1 and command != "verify":
            problems.append("exit code 1 from a command other than verify")
        elif r.exit_code == 2:
            problems.extend(_error_format_problems(path, r.stderr))
        elif r.exit_code == 1 and not r.stdout.startswith(f"{path}: FAILED"):
            problems.append(f"verify exit 1 without '{path}: FAILED' on stdout")
    return problems


def _error_format_problems(path, stderr):
    line = _first_line(stderr)
    if line.startswith("ptpack: internal error:"):
        return ["internal error (a non-ptpack exception escaped)"]
    if line.startswith("ptpack: error: out of memory"):
        return ["memory: allocation failed (std::bad_alloc); caps should refuse first"]
    problems = []
    if not line.startswith("ptpack: error: "):
        problems.append("stderr does not start with 'ptpack: error: '")
    elif path not in line:
        problems.append("error message does not name the file")
    if error_rule(stderr) is None:
        problems.append("error message has no [rule]")
    if "\n" in stderr.rstrip("\n"):
        problems.append("error message is not one line (bytes from the file printed unescaped)")
    return problems


def expectation_problems(command, path, r, outcome):
    """Problems against the case's expected outcome (safety is judged separately)."""
    if outcome.kind == "any" or r.exit_code is None:
        return []
    got = _outcome_text(command, r)
    if outcome.kind == "ok":
        return [] if r.exit_code == 0 else [f"expected exit 0, got {got}"]
    rules = outcome.rules
    if command == "verify" and r.exit_code == 1:
        if rules and not any(f"[{rule}]" in r.stdout for rule in rules):
            return [f"expected rule {_rules_text(rules)}, got {got}"]
        if rules and all(rule in VERIFY_RETHROWN for rule in rules):
            return [f"expected exit 2 (verify re-throws {_rules_text(rules)}), got exit 1"]
        return []
    if r.exit_code != 2:
        want = "exit 1 or 2" if command == "verify" else "exit 2"
        return [f"expected {want} with rule {_rules_text(rules)}, got {got}"]
    rule = error_rule(r.stderr)
    if rules and rule not in rules:
        return [f"expected rule {_rules_text(rules)}, got {got}"]
    if command == "verify" and rule not in VERIFY_RETHROWN:
        return [f"verify exit 2 for [{rule}] (a finding: expected exit 1 and FAILED)"]
    return []


def _rules_text(rules):
    return "/".join(f"[{r}]" for r in rules) if rules else "[any]"


def _outcome_text(command, r):
    if r.exit_code == 0:
        return "exit 0"
    if command == "verify" and r.exit_code == 1:
        lines = r.stdout.split("\n")
        detail = lines[1].strip() if len(lines) > 1 else lines[0]
        return f"exit 1 ({detail[:200]})"
    rule = error_rule(r.stderr)
    return f"exit {r.exit_code} [{rule}]" if rule else f"exit {r.exit_code}"
