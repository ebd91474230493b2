"""Peak memory of the commands that stream an input, against the number of its waveforms.

    python bench/memory.py [--sizes 20000,200000,1000000]
                           [--commands inspect,run,infer,compare,compare-all,robustness]
                           [--chain RUN_DIR] [--keep DIR] [--window-ns 2000]

Simulates one file of 20,000 waveforms (steering/quickstart.yaml's simulate: section; its
2000 ns window unless --window-ns) and builds every larger input as a list of hard links to
it (200k = 10 links, 1M = 50), so that nothing bigger is simulated. `inspect` reads one file,
so it gets one file of N entries instead (the 20k file's tree written N / 20k times, LZ4;
about 10 GB for 1M with the default window). Then, for each command and size, the real CLI
runs in a subprocess under /usr/bin/time -v (after an unmeasured warm-up on a few waveforms,
which fills numba's cache):

  inspect      ccframe inspect FILE -n N
  run          ccframe run on a steering file with data: (the links) and traditional: only
  infer        ccframe infer CHAIN LINKS... (a tiny chain trained here once, or --chain)
  compare      ccframe compare of the links against the 20k file, default --max-events 5000
  compare-all  the same with --max-events N (every waveform: unbinned KS tests need them all)
  robustness   ccframe robustness --max-events N --noise 1 --gain 1 --jitter-ns 0 on a copy of
               the chain's run folder whose input is the links, every waveform in the test split

and prints the peak RSS (/usr/bin/time's: with the file-backed pages of memory-mapped
inputs), the peak anonymous RSS (sampled every 50 ms, the command's own memory), each over
the smallest size's (target: <= 1.3), wall time and waveforms/s. Outputs go under --keep DIR
(kept; inputs there are reused), else a temporary folder removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BASE = 20_000
"""Waveforms of the one simulated file; every size is a multiple of it."""
TARGET = 1.3
"""Largest accepted ratio of a size's peak RSS to the smallest size's."""
COMMANDS = ("inspect", "run", "infer", "compare", "compare-all", "robustness")
COMPARE_CAP = 5000
"""`ccframe compare`'s default --max-events."""
SAMPLE_S = 0.05
"""Interval of the anonymous-memory samples."""
WARMUP = 1000
"""Waveforms of the unmeasured warm-up run of each command."""
TINY_ML = {
    "dataset": {"max_events": 3000},
    "classifier": {
        "lstm_units": 4,
        "dense": [8],
        "dropout": [0.0],
        "training": {"epochs": 2, "batch_size": 256},
    },
    "counter": {
        "filters": [4],
        "pool_size": 8,
        "dense": [8],
        "dropout": [0.0],
        "training": {"epochs": 2, "batch_size": 32},
    },
}
"""A chain trained in a minute (tests/conftest.py's TINY_ML, on 3000 waveforms)."""


@dataclass
class Measurement:
    command: str
    size: int
    processed: int
    rss_mb: float
    anon_mb: float
    wall_s: float


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def quickstart_simulate(window_ns: float | None) -> dict[str, Any]:
    """quickstart.yaml's simulate: section for BASE waveforms (and its seed)."""
    steering = yaml.safe_load((REPO / "steering" / "quickstart.yaml").read_text())
    sim = dict(steering["simulate"], n_waveforms=BASE)
    sim.pop("output", None)
    if window_ns is not None:
        sim.setdefault("detector", {})["window_ns"] = window_ns
    return {"seed": steering["seed"], "simulate": sim}


def simulate_base(work: Path, window_ns: float | None) -> Path:
    """work/sim.root: BASE simulated waveforms (kept when already there)."""
    from ccframe.simulate.config import SimulateConfig
    from ccframe.simulate.stage import simulate_to_root

    path = work / "sim.root"
    if not path.is_file():
        q = quickstart_simulate(window_ns)
        print(f"simulating {BASE} waveforms -> {path}", flush=True)
        simulate_to_root(SimulateConfig.model_validate(q["simulate"]), q["seed"], path)
    return path


def links(work: Path, base: Path, size: int) -> list[str]:
    """size / BASE hard links to the base file (distinct names), made once."""
    folder = work / "inputs" / str(size)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"part_{i:03d}.root" for i in range(size // BASE)]
    for p in paths:
        if not p.exists():
            os.link(base, p)
    return [str(p) for p in paths]


def merged(work: Path, base: Path, size: int) -> Path:
    """One file whose tree holds the base file's entries size / BASE times (for inspect)."""
    if size == BASE:
        return base
    path = work / "inputs" / f"merged_{size}.root"
    if path.is_file():
        return path
    import uproot

    from ccframe.io.rootwrite import write_tree

    print(f"writing {size} waveforms into {path}", flush=True)
    with uproot.open(base) as f:
        tree = f["sim"]
        whole = tree.arrays(library="ak")
        arrays = {name: whole[name] for name in whole.fields}
        bounds = [int(b) for b in tree["waveform"].member("fBasketEntry")[1:]]
    bounds = [b for b in bounds if 0 < b <= BASE]
    pieces = list(zip([0, *bounds], bounds, strict=False))  # the base file's baskets
    chunks = ({k: v[lo:hi] for k, v in arrays.items()} for _ in range(size // BASE)
              for lo, hi in pieces)  # fmt: skip
    write_tree(path, "sim", chunks)
    return path


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def anon_mb(pid: int) -> float:
    """Anonymous resident memory of a process and its descendants (MB; 0 once gone)."""
    total = 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        total = int(re.search(r"RssAnon:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return total + sum(anon_mb(c) for c in children(pid))


def time_v(args: list[str], log: Path, cwd: Path) -> tuple[float, float, float]:
    """Run args under /usr/bin/time -v: peak RSS (MB, file-backed pages included), the peak
    of anonymous RSS sampled every SAMPLE_S (MB) and wall time (s). Exits on failure."""
    peak_anon = 0.0
    with log.open("w") as out:
        proc = subprocess.Popen(
            ["/usr/bin/time", "-v", *args], stdout=out, stderr=subprocess.STDOUT, cwd=cwd
        )
        while proc.poll() is None:
            peak_anon = max(peak_anon, anon_mb(proc.pid))
            time.sleep(SAMPLE_S)
    text = log.read_text()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])}: exit {proc.returncode}; see {log}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if rss is None or wall is None:
        raise SystemExit(f"no /usr/bin/time -v report in {log}")
    seconds = 0.0
    for part in wall.group(1).split(":"):
        seconds = seconds * 60 + float(part)
    return int(rss.group(1)) / 1024, peak_anon, seconds


def ccframe(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccframe", *args]


def data_steering(work: Path, name: str, files: list[str], **sections: Any) -> Path:
    """A steering file reading `files` (data:), with more sections."""
    content = {
        "schema_version": 1,
        "name": name,
        "seed": 2024,
        "output": str(work / "runs" / "{name}"),
        "data": {"files": files, "baseline_window_ns": 25.0},
        **sections,
    }
    return write_yaml(work / "steering" / f"{name}.yaml", content)


def train_chain(work: Path, base: Path) -> Path:
    """A tiny chain trained on the first 3000 waveforms of the base file (made once)."""
    run = work / "runs" / "chain"
    if (run / "chain.json").is_file():
        return run
    steering = data_steering(work, "chain", [str(base)], traditional={}, ml=TINY_ML)
    print(f"training a tiny chain -> {run}", flush=True)
    subprocess.run(ccframe("run", str(steering), "--force"), check=True, capture_output=True,
                   cwd=work)  # fmt: skip
    return run


def robustness_run(work: Path, chain: Path, files: list[str]) -> Path:
    """A copy of the chain's run folder whose input is `files`, every waveform in the test
    split (its predictions tree: file_index, entry, split only; robustness reads no more)."""
    import numpy as np
    import uproot

    from ccframe.ml.dataset import TEST

    run = work / "runs" / f"robustness_{len(files) * BASE}"
    if run.exists():
        shutil.rmtree(run)
    shutil.copytree(chain, run, ignore=shutil.ignore_patterns("*.root", "plots"))
    steering = yaml.safe_load((chain / "steering.yaml").read_text())
    steering["data"]["files"] = files
    steering["data"].pop("max_events", None)
    steering["output"] = str(run)
    write_yaml(run / "steering.yaml", steering)
    with uproot.recreate(run / "predictions.root") as f:
        f["predictions"] = {
            "file_index": np.repeat(np.arange(len(files), dtype=np.int32), BASE),
            "entry": np.tile(np.arange(BASE, dtype=np.int64), len(files)),
            "split": np.full(len(files) * BASE, TEST, dtype=np.int8),
        }
    return run


class Bench:
    """The inputs and the command line of every (command, size)."""

    def __init__(self, work: Path, base: Path, chain: Path | None) -> None:
        self.work, self.base, self._chain = work, base, chain
        (work / "logs").mkdir(parents=True, exist_ok=True)
        (work / "steering").mkdir(parents=True, exist_ok=True)

    @property
    def chain(self) -> Path:
        if self._chain is None:
            self._chain = train_chain(self.work, self.base)
        return self._chain

    def args(self, command: str, size: int, limit: int | None = None) -> tuple[list[str], int]:
        """The command line and the waveforms it processes; `limit`: a warm-up on fewer."""
        n = limit or size
        files = links(self.work, self.base, size)
        out = self.work / "out"
        out.mkdir(exist_ok=True)
        limited = ["--set", f"data.max_events={limit}"] if limit else []
        if command == "inspect":
            path = self.base if limit else merged(self.work, self.base, size)
            return ccframe("inspect", str(path), "-n", str(n)), n
        if command == "run":
            steering = data_steering(self.work, f"trad_{size}", files, traditional={})
            return ccframe("run", str(steering), "--force", *limited), n
        if command == "infer":
            target = out / f"infer_{size}.root"
            return ccframe("infer", str(self.chain), *files, "-o", str(target), "--force",
                           *limited), n  # fmt: skip
        if command in ("compare", "compare-all"):
            a = data_steering(self.work, f"links_{size}", files)
            b = data_steering(self.work, "base", [str(self.base)])
            cap = limit or (size if command == "compare-all" else COMPARE_CAP)
            target = out / f"{command}_{size}"
            shutil.rmtree(target, ignore_errors=True)
            args = ccframe("compare", str(a), str(b), "-o", str(target), "--max-events", str(cap),
                           "--format", "png")  # fmt: skip
            return args, min(cap, size) + min(cap, BASE)
        if command == "robustness":
            run = robustness_run(self.work, self.chain, files)
            grid = ["--noise", "1", "--gain", "1", "--jitter-ns", "0"]
            return ccframe("robustness", str(run), "--max-events", str(n), *grid), 3 * n
        raise ValueError(command)

    def measure(self, command: str, size: int) -> Measurement:
        warm, _ = self.args(command, size, limit=WARMUP)
        time_v(warm, self.work / "logs" / f"{command}_warmup.log", self.work)
        args, processed = self.args(command, size)
        log = self.work / "logs" / f"{command}_{size}.log"
        rss, anon, wall = time_v(args, log, self.work)
        m = Measurement(command, size, processed, rss, anon, wall)
        print(f"  {command} {size}: {rss:.0f} MB ({anon:.0f} MB anonymous), {wall:.1f} s",
              flush=True)  # fmt: skip
        return m


def table(results: list[Measurement]) -> str:
    """One row per (command, size): peak RSS and its ratio to the command's smallest size's,
    peak anonymous RSS and its ratio, wall time, waveforms processed per second."""
    head = (f"{'command':<12} {'waveforms':>9} {'peak RSS MB':>11} {'ratio':>6} {'anon MB':>8} "
            f"{'ratio':>6} {'wall s':>7} {'wf/s':>7}  target <= {TARGET}")  # fmt: skip
    lines = [head, "-" * len(head)]
    first: dict[str, Measurement] = {}
    for m in results:
        ref = first.setdefault(m.command, m)
        ratio, anon_ratio = m.rss_mb / ref.rss_mb, m.anon_mb / max(ref.anon_mb, 1.0)
        verdict = "" if m is ref else ("ok" if ratio <= TARGET else "FAIL")
        lines.append(
            f"{m.command:<12} {m.size:>9} {m.rss_mb:>11.0f} {ratio:>6.2f} {m.anon_mb:>8.0f} "
            f"{anon_ratio:>6.2f} {m.wall_s:>7.1f} {m.processed / m.wall_s:>7.0f}  {verdict}"
        )
    return "\n".join(lines)


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(float(s)) for s in text.split(",") if s.strip()})
    bad = [s for s in sizes if s <= 0 or s % BASE]
    if bad:
        raise SystemExit(f"--sizes: {bad}: every size must be a positive multiple of {BASE}")
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="20000,200000,1000000", help="waveforms per input")
    parser.add_argument("--commands", default=",".join(COMMANDS), help=", ".join(COMMANDS))
    parser.add_argument("--chain", help="run folder of a trained chain (default: a tiny one)")
    parser.add_argument("--keep", help="work folder, kept (its inputs are reused)")
    parser.add_argument("--window-ns", type=float, help="simulated window (default 2000 ns)")
    args = parser.parse_args()
    sizes = parse_sizes(args.sizes)
    commands = [c.strip() for c in args.commands.split(",") if c.strip()]
    unknown = set(commands) - set(COMMANDS)
    if unknown:
        raise SystemExit(f"--commands: unknown {sorted(unknown)}; expected {', '.join(COMMANDS)}")
    work = Path(args.keep or tempfile.mkdtemp(prefix="ccframe-memory-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        base = simulate_base(work, args.window_ns)
        chain = Path(args.chain).resolve() if args.chain else None
        bench = Bench(work, base, chain)
        results = [bench.measure(c, s) for c in commands for s in sizes]
        print()
        print(table(results))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
