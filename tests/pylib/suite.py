"""The harness shared by the real-torch Python suites (tests/convert, match, assemble, bridge).

Standard library only. Each suite keeps its own argument parsing, its Env fields and its setup
(generating models, artifacts), imports this module by putting tests/pylib first on sys.path, and
ends with `sys.exit(suite.run(args.k, ...))`.

Contract:

* `@test` registers a function taking no arguments; tests run in the order they were defined.
* A test passes when it returns and fails when it raises. `check(cond, message)` raises
  `Failure` (an AssertionError) whose message is the whole explanation; any other exception is
  unexpected (a bug in the suite or a crash) and its traceback is printed.
* `set_work(directory)` creates the work directory and makes it the one `path()` and
  `fresh_dir()` resolve under (absolute); call it before anything uses them or `run`.
* `note(text)` prints an indented remark under the running test.
* `run(k, ...)` runs every registered test whose name contains `k` (all when empty), reporting
  on stderr, one line per test, `ok   NAME (1.2 s)` or `FAIL NAME (1.2 s)`, then
  `N failed: [NAMES]` or `all passed`. It returns the exit status: 1 when a test failed, else 0.
  A failure never stops the run. Options (each suite keeps the report it always had):
    full_tracebacks=False  a failure prints the traceback of an unexpected exception and then
                           the indented message, before the FAIL line;
                    True   the FAIL line is followed by the traceback, whatever the exception.
    total="summary"        the elapsed time of the whole run ends the line: `all passed (12 s)`;
          "line"           it is printed alone (`12.3 s`) before the summary, pass or fail;
          None             not printed.
    cleanup=False          the work directory is left as it is;
            True           after a passing run every entry in it is deleted except those named
                           in `keep` (caches); after a failure everything is kept to look at.
"""

import os
import shutil
import sys
import time
import traceback

TESTS = []
WORK = None


def test(fn):
    TESTS.append(fn)
    return fn


class Failure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def note(text):
    print(f"    {text}", file=sys.stderr)


def set_work(directory):
    """Creates DIRECTORY if needed and makes it the work directory; returns its absolute path."""
    global WORK
    WORK = os.path.abspath(directory)
    os.makedirs(WORK, exist_ok=True)
    return WORK


def path(*parts):
    return os.path.join(WORK, *parts)


def fresh_dir(name):
    d = path(name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def run(k="", *, full_tracebacks=False, total="summary", cleanup=False, keep=()):
    failed = []
    started = time.monotonic()
    for fn in TESTS:
        if k not in fn.__name__:
            continue
        t0 = time.monotonic()
        report = ""
        try:
            fn()
            status = "ok"
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed.append(fn.__name__)
            status = "FAIL"
            if full_tracebacks:
                report = "\n" + traceback.format_exc()
            else:
                if not isinstance(e, Failure):
                    traceback.print_exc()
                print(f"    {e}", file=sys.stderr)
        print(f"{status:4} {fn.__name__} ({time.monotonic() - t0:.1f} s){report}", file=sys.stderr)
    if total == "line":
        print(f"{time.monotonic() - started:.1f} s", file=sys.stderr)
    if failed:
        print(f"{len(failed)} failed: {failed}", file=sys.stderr)
        return 1
    if cleanup:
        # Outputs are kept only when something failed (to look at); KEEP (caches) always stays.
        for name in os.listdir(WORK):
            if name not in keep:
                p = path(name)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    print(f"all passed ({time.monotonic() - started:.0f} s)" if total == "summary" else "all passed",
          file=sys.stderr)
    return 0
