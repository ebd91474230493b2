"""Reading speed: ccframe's reader (read + conversion + checks + baseline) against uproot.

    python bench/reading.py [--n 20000] [--repeat 3] [--chunk-size N]

Simulates n waveforms with steering/quickstart.yaml's simulate section into a temporary ROOT
file (2400-sample float32 waveforms, LZ4, with checksums) and times, in one process, best of
--repeat, one thread each (the reader maps the file and runs its kernel on the calling
thread; uproot's default file source reads in one background thread besides):

- plain uproot: `tree[branch].array(library="np")`, with uproot's default file source and
  with the memory-mapped one the reader uses;
- ccframe `iter_batches` with `truth: none` (waveforms, checksums, conversion to mV, NaN/inf
  check, baseline and RMS) and with the steering's truth (`auto`: every truth branch);
- the reader before it was sped up (default source, awkward chunks, NumPy conversion and
  checks, separate checksum and baseline passes), re-implemented here for comparison.

Target: >= 50,000 waveforms/s per core for reading + baseline (`truth: none`).
"""

from __future__ import annotations

import timing  # noqa: F401  first: pins every library to one thread

# isort: split

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from ccframe.io.config import TRUTH_NAMES, DataConfig
from ccframe.io.reader import HANDLER, iter_batches
from ccframe.kernels.baseline import baseline_rms
from ccframe.kernels.checksum import row_checksums
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.loader import load_steering

REPO = Path(__file__).resolve().parents[1]
TARGET = 50_000


def plain(path: str, data: DataConfig, handler: type | None = None) -> np.ndarray:
    """The waveform branch as one NumPy array, uproot's way."""
    options = {} if handler is None else {"handler": handler}
    with uproot.open(path, **options) as file:
        return file[data.tree][data.waveform_branch].array(library="np")


def ccframe_read(path: str, data: DataConfig) -> int:
    """Waveforms read by `iter_batches` (every batch made, then dropped)."""
    return sum(len(batch) for batch in iter_batches(data, [path]))


def old_read(path: str, data: DataConfig, n_base: int) -> int:
    """The reader's work per chunk before it was sped up (sampling rate given)."""
    tree = uproot.open(path)[data.tree]
    truth = [n for n in TRUTH_NAMES if n in tree] if data.truth == "auto" else []
    names = [data.waveform_branch, f"{data.waveform_branch}_checksum", *truth]
    n = 0
    for chunk in tree.iterate(names, step_size=data.chunk_size, library="ak"):
        raw = ak.to_numpy(chunk[data.waveform_branch])
        stored = ak.to_numpy(chunk[names[1]]).astype(np.uint64, copy=False)
        assert np.array_equal(row_checksums(raw), stored)
        waves = raw.astype(np.float32)
        assert np.isfinite(waves).all(axis=1).all()
        baseline_rms(waves, n_base)
        if truth:
            ak.zip({name: chunk[name] for name in truth}, depth_limit=1)
        n += len(waves)
    return n


def best_rates(n: int, works: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Items per second of the fastest of `repeats` runs of each work (n items each), the
    works taken in turn in every round (so that a change of the machine's load hits all)."""
    best = dict.fromkeys(works, float("inf"))
    for _ in range(repeats):
        for name, work in works.items():
            t0 = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: n / t for name, t in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steering", default=str(REPO / "steering" / "quickstart.yaml"))
    parser.add_argument("--chunk-size", type=int, help="data.chunk_size (default: steering's)")
    args = parser.parse_args()
    steering = load_steering(args.steering)
    if steering.simulate is None:
        raise SystemExit(f"{args.steering}: needs a simulate: section")
    data = steering.input_data
    if args.chunk_size:
        data = data.model_copy(update={"chunk_size": args.chunk_size})
    bare = data.model_copy(update={"truth": "none"})
    n = args.n
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "sim.root")
        sim = steering.simulate.model_copy(update={"n_waveforms": n})
        simulate_to_root(sim, steering.seed, path)
        first = next(iter_batches(bare.model_copy(update={"max_events": 8}), [path]))
        n_base = max(1, round(data.baseline_window_ns * first.sampling_ghz))
        with uproot.open(path) as file:
            branch = file[data.tree][data.waveform_branch]
            interp = branch.interpretation
            stored = sum(branch.basket_compressed_bytes(i) for i in range(branch.num_baskets))
        works: dict[str, Callable[[], object]] = {
            "plain uproot, default source": lambda: plain(path, data),
            "plain uproot, memory-mapped": lambda: plain(path, data, HANDLER),
            "ccframe, truth: none": lambda: ccframe_read(path, bare),
            f"ccframe, truth: {data.truth}": lambda: ccframe_read(path, data),
            "old reader, truth: none": lambda: old_read(path, bare, n_base),
            f"old reader, truth: {data.truth}": lambda: old_read(path, data, n_base),
        }
        rates = best_rates(n, works, args.repeat)
    nbytes = first.n_samples * interp.from_dtype.base.itemsize
    print(f"{n:,} waveforms of {first.n_samples} samples ({interp}), {stored / 1e6:.0f} MB of "
          f"baskets ({n * nbytes / stored:.2f}x compression), chunk_size {data.chunk_size:,}; "
          f"best of {args.repeat}, one thread each:")  # fmt: skip
    plain_rate = rates["plain uproot, default source"]
    for name, rate in rates.items():
        print(f"  {name:<30s} {rate:>10,.0f} waveforms/s/core  {rate * nbytes / 1e6:>7,.0f} MB/s"
              f"  {rate / plain_rate:5.2f}x plain")  # fmt: skip
    rate = rates["ccframe, truth: none"]
    verdict = "met" if rate >= TARGET else "NOT met"
    old = rates["old reader, truth: none"]
    print(f"target: ccframe read + baseline >= {TARGET:,} waveforms/s per core: {verdict} "
          f"({rate:,.0f}; {rate / old:.1f}x the old reader)")  # fmt: skip


if __name__ == "__main__":
    main()
