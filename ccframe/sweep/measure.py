"""`python -m ccframe.sweep.measure --output resources.json [...] -- COMMAND...`: run a trial's
command and record its resources like the local executor does (the HTCondor wrapper uses
it). The exit code is the command's."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ccframe.io.atomic import write_json
from ccframe.sweep.local import usage_record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccframe.sweep.measure")
    parser.add_argument("--output", required=True, help="resources.json to write")
    parser.add_argument("--run-dir", default=".", help="the run folder (for run.json)")
    parser.add_argument("--cpus", type=int)
    parser.add_argument("--memory-mb", type=int)
    parser.add_argument("--disk-mb", type=int)
    parser.add_argument("--max-runtime-s", type=int)
    parser.add_argument("--executor", default="condor")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run (give it after --)")
    trial = None
    if Path("trial.json").is_file():
        trial = json.loads(Path("trial.json").read_text()).get("number")
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    reason = None
    if code != 0:
        try:
            run = json.loads((Path(args.run_dir) / "run.json").read_text())
        except (OSError, ValueError):
            run = {}
        reason = run.get("error") or f"exit code {code}"
    wanted = {
        "cpus": args.cpus,
        "memory_mb": args.memory_mb,
        "disk_mb": args.disk_mb,
        "max_runtime_s": args.max_runtime_s,
    }
    write_json(
        args.output,
        usage_record(trial, code, reason, wall, usage, wanted, args.executor, command),
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
