"""Fuzz worker: run the CLI on damaged run files in one process under a memory limit.

``python tests/test_runfile/fuzz_worker.py CASES.json OUT.jsonl MEM_MB`` reads a list of
``[name, path, commands]`` and writes one JSON line per (case, command): exit code, output
lines, seconds and the peak of traced allocations (NumPy and Python objects). The address
space is limited to ``MEM_MB`` (``RLIMIT_AS``) so a file that makes the reader allocate
without bound fails here with MemoryError instead of taking the machine down. Each run is
a forked child with a 30 s limit, so a run that hangs or crashes the process (a signal) is
recorded as such and the next case still runs.

Commands: ``info``, ``info-json`` (``info --json``), ``load`` (the analysis stage of
``gradscope analyze``, ``report.build.analyze_run``, behind the CLI's error boundary:
everything analyze does before drawing) and ``analyze`` (the full command, figures
included; slow, used on a few cases).
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time
import tracemalloc
from pathlib import Path

import typer
from typer.testing import CliRunner


def _stage_app() -> typer.Typer:
    stage = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @stage.command()
    def load(path: Path) -> None:
        from gradscope.cli._errors import check_run_files, user_errors
        from gradscope.report.build import analyze_run

        with user_errors():  # what ``gradscope analyze`` does before drawing
            check_run_files([path])
            analyze_run(path)

    return stage


def _one(target, args) -> dict:
    """Run one command in this (child) process; the outcome as a dict."""
    runner = CliRunner()
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        res = runner.invoke(target, args, catch_exceptions=True)
        code, text, exc = res.exit_code, res.output, res.exception
    except BaseException as e:  # noqa: BLE001 - recorded as the case's outcome
        code, text, exc = -1, "", e
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    crashed = exc is not None and not isinstance(exc, SystemExit)
    return {
        "exit": code,
        "n_lines": len(lines),
        "blank_first": bool(text) and not text.splitlines()[0].strip(),
        "first": lines[0][:300] if lines else "",
        "exception": f"{type(exc).__name__}: {str(exc)[:200]}" if crashed else None,
        "seconds": round(seconds, 3),
        "peak_mb": round(peak / 2**20, 1),
    }


def _forked(target, args, mem: int, limit: float) -> dict:
    """``_one`` in a forked child under RLIMIT_AS, killed after ``limit`` seconds."""
    r, w = os.pipe()
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
            data = json.dumps(_one(target, args)).encode()
        except BaseException as e:  # noqa: BLE001
            data = json.dumps({"exit": -1, "exception": repr(e)[:200]}).encode()
        try:
            os.write(w, data)
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    status = None
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() - t0 > limit:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            status = None
            break
        time.sleep(0.005)
    os.set_blocking(r, False)
    try:
        while True:
            b = os.read(r, 1 << 16)
            if not b:
                break
            chunks.append(b)
    except BlockingIOError:
        pass
    os.close(r)
    seconds = round(time.perf_counter() - t0, 3)
    if status is None:
        return {"exit": None, "first": f"killed after {limit} s", "seconds": seconds}
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return {"exit": None, "first": f"died of signal {sig}", "seconds": seconds}
    try:
        return json.loads(b"".join(chunks))
    except ValueError:
        return {"exit": None, "first": "no result", "seconds": seconds}


def main() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2]).open("w")
    mem = int(sys.argv[3]) << 20
    limit = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    from gradscope.cli import app
    from gradscope.report import build  # noqa: F401 - import once, outside the timings

    stage = _stage_app()
    # warm up in this process (imports of rich, matplotlib, ...), so children fork warm
    first = cases[0][1]
    CliRunner().invoke(app, ["info", first])
    CliRunner().invoke(stage, [first])
    for name, path, commands in cases:
        for cmd in commands:
            if cmd == "load":
                target, args = stage, [path]
            elif cmd == "info-json":
                target, args = app, ["info", "--json", path]
            elif cmd == "analyze":
                target, args = app, ["analyze", path, "-o", f"{path}_report", "-f", "png"]
            else:
                target, args = app, [cmd, path]
            rec = {"case": name, "cmd": cmd, **_forked(target, args, mem, limit)}
            out.write(json.dumps(rec) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
