"""Recreate the small, deliberately broken or unusual ROOT files used by the error tests.

    python tests/samples/make_samples.py                 # every file, here
    python tests/samples/make_samples.py bad_nan.root    # only the named ones
    python tests/samples/make_samples.py --out /tmp/x    # somewhere else

ROOT files embed a UUID and timestamps, so a rewritten file differs in a few bytes from the
committed one even when its contents are equal: rewrite only the files you change.
`tests/test_reader.py` checks that this script still makes what is committed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

HERE = Path(__file__).parent
RATE_GHZ = 1.2


def waves(n: int = 6, samples: int = 100, seed: int = 1) -> np.ndarray:
    """Unit Gaussian noise with a 20-unit spike in the middle."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, (n, samples)).astype(np.float32)
    w[:, samples // 2] += 20.0
    return w


def rate(n: int = 6) -> np.ndarray:
    return np.full(n, RATE_GHZ)


def tree(
    path: Path, branches: dict, types: dict | None = None, name: str = "sim", **options
) -> None:
    """A one-tree file; with `types` and no `branches`, a tree with 0 entries."""
    with uproot.recreate(path, **options) as f:
        f.mktree(name, types or {k: _type(v) for k, v in branches.items()})
        if branches:
            f[name].extend(branches)


def _type(value):
    if isinstance(value, ak.Array):
        return value.type
    return (value.dtype, value.shape[1:]) if value.ndim > 1 else value.dtype


def missing_branch(path: Path) -> None:
    tree(path, {"wavefrom": waves(), "sampling_ghz": rate()})


def scalar_per_entry(path: Path) -> None:
    tree(path, {"waveform": waves()[:, 0].copy(), "sampling_ghz": rate()})


def string_waveform(path: Path) -> None:
    text = ak.Array([" ".join(f"{x:.2f}" for x in row[:5]) for row in waves()])
    tree(path, {"waveform": text, "sampling_ghz": rate()})


def nan_in_entry_3(path: Path) -> None:
    w = waves()
    w[3, 40] = np.nan
    tree(path, {"waveform": w, "sampling_ghz": rate()})


def empty(path: Path) -> None:
    # mktree without extend: the tree and its branches exist, with 0 entries.
    tree(path, {}, {"waveform": (np.float32, (100,)), "sampling_ghz": np.float64})


def jagged_ok(path: Path) -> None:
    tree(path, {"waveform": ak.Array([list(row) for row in waves()]), "sampling_ghz": rate()})


def jagged_unequal(path: Path) -> None:
    rows = [list(row) for row in waves()]
    rows[4] = rows[4][:90]
    tree(path, {"waveform": ak.Array(rows), "sampling_ghz": rate()})


def short_waveform(path: Path) -> None:
    # 10 samples at 1.2 GHz: shorter than the 30-sample (25 ns) baseline window.
    tree(path, {"waveform": waves()[:, :10].copy(), "sampling_ghz": rate()})


def beamtest_like(path: Path) -> None:
    """DRS4-like: uint16 ADC codes, V = ADC/65536 - 0.5, 1 mV noise, 30 mV negative pulses at
    samples 300-303, tree 'h', branch 'ch0', no sampling-rate branch. LZMA keeps it < 50 kB."""
    rng = np.random.default_rng(2)
    volts = rng.normal(0.0, 0.001, (20, 1024))
    volts[:, 300:304] -= 0.030
    adc = np.round((volts + 0.5) * 65536).astype(np.uint16)
    tree(path, {"ch0": adc}, name="h", compression=uproot.LZMA(9))


def truncated(path: Path) -> None:
    """A valid file cut in half: its header and directory read, its baskets do not."""
    full = path.with_name(path.name + ".full.tmp")
    try:
        tree(full, {"waveform": waves(200, 100), "sampling_ghz": rate(200)})
        data = full.read_bytes()
    finally:
        full.unlink(missing_ok=True)
    path.write_bytes(data[: len(data) // 2])


def not_root(path: Path) -> None:
    path.write_text("this is a text file, not ROOT\n" * 4)


SAMPLES: dict[str, Callable[[Path], None]] = {
    "bad_missing_branch.root": missing_branch,
    "bad_dtype.root": scalar_per_entry,
    "bad_dtype_string.root": string_waveform,
    "bad_nan.root": nan_in_entry_3,
    "bad_empty.root": empty,
    "jagged_ok.root": jagged_ok,
    "jagged_unequal.root": jagged_unequal,
    "short_waveform.root": short_waveform,
    "beamtest_like.root": beamtest_like,
    "bad_truncated.root": truncated,
    "bad_not_root.root": not_root,
}


def make(out: Path = HERE, names: list[str] | None = None) -> list[Path]:
    """Write the named samples (default: all) into `out`; return their paths."""
    unknown = sorted(set(names or ()) - set(SAMPLES))
    if unknown:
        raise SystemExit(f"unknown sample(s) {', '.join(unknown)}; known: {', '.join(SAMPLES)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or SAMPLES:
        SAMPLES[name](out / name)
        written.append(out / name)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"samples to write (default: all of {HERE})")
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write into")
    args = parser.parse_args(argv)
    for path in make(args.out, args.names):
        print(f"{path}  {path.stat().st_size / 1024:.1f} kB")


if __name__ == "__main__":
    main()
