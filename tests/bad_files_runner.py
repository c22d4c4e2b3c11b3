"""Run many ``acd`` commands fast, each in a process of its own, and measure
each: exit code, output, wall and CPU time, peak memory.

Used by ``tests/test_bad_files.py``: ``python tests/bad_files_runner.py`` reads
a JSON list of runs (``{"args": [...], "cwd": "..."}``) on standard input and
writes a JSON object on standard output: ``{"import_s": ..., "results": [...]}``
with one result per run (``rc``, ``out``, ``err``, ``wall_s``, ``cpu_s``,
``rss_mb``).

A full ``acd`` process spends about 0.6 s importing before it reads anything,
which for hundreds of runs is most of the time.  So this process imports the
commands once (``import_s`` says how much CPU time that took: add it to a run's
for the time of a real ``acd`` process), then forks one child per run: the
child runs the click command exactly as the ``acd`` entry point does, with
its standard output and error in files, and anything that escapes it printed
as the interpreter would (a traceback, exit code 1).  ``os.wait4`` gives each
child's own CPU time and peak resident memory (which includes the imported
code it shares with this process: an upper bound).  A child running longer
than ``BAD_FILES_TIMEOUT`` seconds (default 30) is killed and reported with
``rc`` -9; each child's address space is capped at 2 GB so that a runaway
fails instead of taking the machine.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

#: the modules the commands import when they run (imported here once)
PRELOAD = ("acd.cli", "acd.runtime.serve", "acd.runtime.settings", "acd.loadsim.scenario",
           "acd.loadsim.virtual", "acd.loadsim.staffing", "acd.loadsim.demo",
           "acd.ivr.flowtest", "acd.ivr.dryrun", "acd.ivr.graph", "acd.ivr.interpreter",
           "acd.adapters.profiles_store")
MEMORY_CAP = 2 * 1024**3


def _child(run: dict[str, Any], out: str, err: str) -> None:
    code = 70
    try:
        for fd, path in ((1, out), (2, err)):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(f, fd)
            os.close(f)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.chdir(run["cwd"])
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        from acd.cli import main

        sys.argv = ["acd", *run["args"]]
        try:
            main.main(args=run["args"], prog_name="acd")
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:  # sys.exit("message"), as the interpreter does it
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:  # noqa: BLE001 - what escapes: printed as the interpreter would
            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main() -> None:
    runs: list[dict[str, Any]] = json.load(sys.stdin)
    jobs = int(os.environ.get("BAD_FILES_JOBS") or os.cpu_count() or 2)
    timeout = float(os.environ.get("BAD_FILES_TIMEOUT") or 30)
    started = time.process_time()
    for name in PRELOAD:
        importlib.import_module(name)
    import_s = time.process_time() - started  # CPU: what a busy machine changes least
    results: list[dict[str, Any] | None] = [None] * len(runs)
    todo = list(enumerate(runs))
    running: dict[int, tuple[int, float, str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="acd-bad-files-") as tmp:
        while todo or running:
            while todo and len(running) < jobs:
                i, run = todo.pop(0)
                out, err = f"{tmp}/{i}.out", f"{tmp}/{i}.err"
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(run, out, err)
                running[pid] = (i, time.perf_counter(), out, err)
            pid, status, usage = os.wait4(-1, os.WNOHANG)
            if pid == 0:
                now = time.perf_counter()
                for p, (_, since, _, _) in running.items():
                    if now - since > timeout:
                        os.kill(p, signal.SIGKILL)
                time.sleep(0.002)
                continue
            i, since, out, err = running.pop(pid)
            results[i] = {
                "rc": os.waitstatus_to_exitcode(status),
                "out": Path(out).read_text(encoding="utf-8", errors="replace"),
                "err": Path(err).read_text(encoding="utf-8", errors="replace"),
                "wall_s": time.perf_counter() - since,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "rss_mb": usage.ru_maxrss / 1024,
            }
    json.dump({"import_s": import_s, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
