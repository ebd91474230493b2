"""Soak test: a local sweep killed with SIGKILL at random moments, resumed each time. Every
trial must finish exactly once, no trial may outlive its sweep, and no trial folder may
ever have two writers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import yaml

pytestmark = pytest.mark.slow

KILLS = 5


def _sweep_file(tmp_path: Path) -> Path:
    steering = {
        "schema_version": 1,
        "name": "soak",
        "output": str(tmp_path / "soak"),
        "simulate": {"n_waveforms": 60, "chunk_size": 60},
        "traditional": {},
        "sweep": {
            "parameters": {"seed": {"values": [1, 2, 3, 4]}},
            "parallel": 2,
            "metric": "traditional.relative_bias",
            "tie_breakers": [],
        },
    }
    path = tmp_path / "soak.yaml"
    path.write_text(yaml.safe_dump(steering, sort_keys=False))
    return path


def _trial_processes(trials: Path) -> list[psutil.Process]:
    """Live `ccframe run` processes working on a trial of this sweep."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if "run" in cmd and any(str(trials) in arg for arg in cmd):
            found.append(proc)
    return found


class _WriterWatch(threading.Thread):
    """Samples the process table; remembers the most processes seen on one trial at once."""

    def __init__(self, trials: Path) -> None:
        super().__init__(daemon=True)
        self.trials, self.most, self.done = trials, 0, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            per_trial = Counter()
            for proc in _trial_processes(self.trials):
                try:
                    steering = next(a for a in proc.cmdline() if a.endswith("steering.yaml"))
                except (psutil.Error, StopIteration):
                    continue
                per_trial[steering] += 1
            self.most = max([self.most, *per_trial.values()])
            time.sleep(0.05)


def _finished(trials: Path) -> dict[str, tuple[int, str]]:
    """Trial folder -> (pid, start time) of its finished run."""
    done = {}
    for status in trials.glob("*/run.json"):
        record = json.loads(status.read_text())
        if record["status"] == "done":
            done[status.parent.name] = (record["pid"], record["started"])
    return done


def _sweep(path: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "ccframe", "sweep", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def test_sweep_killed_five_times_finishes_every_trial_once(tmp_path: Path) -> None:
    path = _sweep_file(tmp_path)
    trials = tmp_path / "soak" / "trials"
    rng = random.Random(20261201)
    watch = _WriterWatch(trials)
    watch.start()
    seen: dict[str, tuple[int, str]] = {}
    try:
        for _ in range(KILLS):
            sweep = _sweep(path)
            time.sleep(rng.uniform(1.0, 9.0))
            os.kill(sweep.pid, signal.SIGKILL)
            sweep.wait()
            deadline = time.monotonic() + 30
            while _trial_processes(trials) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _trial_processes(trials) == [], "a trial outlived its killed sweep"
            now = _finished(trials)
            assert all(now[name] == run for name, run in seen.items()), "a done trial reran"
            seen = now
        final = _sweep(path)
        assert final.wait(timeout=300) == 0
    finally:
        watch.done.set()
        watch.join()
    finished = _finished(trials)
    assert sorted(finished) == ["0000", "0001", "0002", "0003"]
    assert all(finished[name] == run for name, run in seen.items()), "a done trial reran"
    assert watch.most <= 1, "two processes wrote one trial folder"
    assert not list(trials.glob("*/.*.tmp")), "temporary files left behind"
