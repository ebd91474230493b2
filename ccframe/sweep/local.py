"""The local executor: trials as separate `ccframe run` processes, a few at a time, with
each child's wall time, CPU time and peak memory (from wait4) in resources.json."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ccframe.io.atomic import write_json
from ccframe.logs import Log
from ccframe.sweep.config import SweepConfig
from ccframe.sweep.trials import Trial

RESOURCES_FILE = "resources.json"
LOG_FILE = "trial.log"
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)

PR_SET_PDEATHSIG = 1
GRACE_S = 10.0
"""Seconds a stopped trial has to record its failure before it is killed."""


def default_parallel(sweep: SweepConfig, threads: int | None = None) -> int:
    """Cores // threads per trial (ml.threads, else request_cpus), at least 1."""
    return max(1, (os.cpu_count() or 1) // (threads or sweep.request_cpus))


def requested(sweep: SweepConfig) -> dict[str, Any]:
    return {
        "cpus": sweep.request_cpus,
        "memory_mb": sweep.request_memory_mb,
        "disk_mb": sweep.request_disk_mb,
        "max_runtime_s": sweep.max_runtime_s,
    }


@dataclass
class _Running:
    trial: Trial
    proc: subprocess.Popen[bytes]
    log: IO[bytes]
    start: float
    killed: bool = False
    result: dict[str, Any] = field(default_factory=dict)


def last_line(path: Path) -> str:
    """The last non-empty line of a log (the one-line error of a failed run)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip():
            return line.strip()
    return ""


def usage_record(
    trial: int | None,
    code: int,
    reason: str | None,
    wall: float,
    usage: Any,
    wanted: dict[str, Any],
    executor: str,
    command: list[str],
) -> dict[str, Any]:
    """resources.json: a child's wall and CPU time, cores used and peak RSS (from wait4),
    next to the resources requested."""
    cpu = usage.ru_utime + usage.ru_stime
    return {
        "trial": trial,
        "status": "done" if code == 0 else "failed",
        "exit_code": code,
        "reason": reason,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3),
        "cores_used": round(cpu / wall, 3) if wall > 0 else None,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: kB
        "requested": wanted,
        "executor": executor,
        "command": command,
    }


def _die_with(parent: int) -> Callable[[], None]:
    """A child's pre-exec hook: receive SIGTERM when the sweep process dies, however it
    dies (Linux `PR_SET_PDEATHSIG`), so no trial outlives its sweep."""

    libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
    sigterm = int(signal.SIGTERM)

    def hook() -> None:  # runs between fork and exec: no imports, no locks
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, sigterm)
        if os.getppid() != parent:  # the sweep died before the hook ran
            os._exit(1)

    return hook


def _start(trial: Trial, sweep: SweepConfig, threads: int) -> _Running:
    """Start `ccframe run` on the trial in its own process group (a terminal's Ctrl-C
    reaches the sweep, which stops its trials), bound to die with the sweep."""
    env = dict(os.environ)
    env.update({var: str(threads) for var in THREAD_VARS})
    log = (trial.folder / LOG_FILE).open("wb")
    command = [sys.executable, "-m", "ccframe", "run", str(trial.steering_file)]
    proc = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_die_with(os.getpid()),
    )
    return _Running(trial, proc, log, time.perf_counter())


def stop(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM to the trial's process group (the run records its failure), SIGKILL after
    `grace_s`."""
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _finish(job: _Running, status: int, usage: Any, sweep: SweepConfig) -> dict[str, Any]:
    wall = time.perf_counter() - job.start
    job.log.close()
    code = os.waitstatus_to_exitcode(status)
    job.proc.returncode = code
    state = job.trial.status()
    ok = code == 0 and state == "done"
    if job.killed:
        reason = f"stopped after max_runtime_s = {sweep.max_runtime_s}"
    elif ok:
        reason = None
    else:
        reason = last_line(job.trial.folder / LOG_FILE) or f"exit code {code}"
    record = usage_record(
        job.trial.number,
        code,
        reason,
        wall,
        usage,
        requested(sweep),
        "local",
        [str(a) for a in job.proc.args],  # type: ignore[union-attr]
    )
    record["status"] = "done" if ok else "failed"
    write_json(job.trial.folder / RESOURCES_FILE, record)
    return record


def run_local(
    trials: list[Trial], sweep: SweepConfig, log: Log, threads: int | None = None
) -> list[dict[str, Any]]:
    """Run the trials (those not done), `parallel` at a time; one line per finished trial.
    A failed trial is recorded and the others go on."""
    todo = [t for t in trials if t.status() != "done"]
    skipped = len(trials) - len(todo)
    if skipped:
        log(f"sweep: {skipped} trial(s) already done, skipped")
    threads = threads or sweep.request_cpus
    width = sweep.parallel or default_parallel(sweep, threads)
    running: list[_Running] = []
    records: list[dict[str, Any]] = []
    total = len(todo)
    queue = list(todo)
    try:
        while queue or running:
            while queue and len(running) < width:
                running.append(_start(queue.pop(0), sweep, threads))
            time.sleep(0.1)
            for job in list(running):
                pid, status, usage = os.wait4(job.proc.pid, os.WNOHANG)
                if pid == 0:
                    limit = sweep.max_runtime_s
                    if limit and not job.killed and time.perf_counter() - job.start > limit:
                        os.killpg(job.proc.pid, signal.SIGKILL)
                        job.killed = True
                    continue
                running.remove(job)
                record = _finish(job, status, usage, sweep)
                records.append(record)
                params = ", ".join(f"{k}={v}" for k, v in job.trial.params.items())
                tail = f": {record['reason']}" if record["reason"] else ""
                log(
                    f"[{len(records)}/{total}] trial {job.trial.number:04d} {record['status']} in "
                    f"{record['wall_s']:.1f} s ({record['cores_used']} cores, "
                    f"{record['peak_rss_mb']:.0f} MB) {params}{tail}"
                )
    finally:
        for job in running:  # interrupted: stop the children we started
            stop(job.proc)
            job.log.close()
    return records
