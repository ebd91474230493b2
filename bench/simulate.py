"""Simulator throughput on one core, against a NumPy reference run in the same process.

    python bench/simulate.py [--n 20480]

Prints waveforms/s (2400-sample waveforms by default) for generation alone (coloured and
white noise) and with writing ROOT (LZ4, uncompressed), and the ratio of each to drawing
the same number of float32 Gaussian samples with NumPy (the cost floor of the noise).
Target (issue 2): >= 10,000 waveforms/s generated per core.
"""

from __future__ import annotations

from timing import best_rate  # first: pins every library to one thread

# isort: split

import argparse
import tempfile
from pathlib import Path

import numpy as np

from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator
from ccframe.simulate.stage import simulate_to_root

TARGET = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20480, help="waveforms per measurement")
    args = parser.parse_args()
    n = args.n
    coloured = SimulateConfig(n_waveforms=n, chunk_size=4096)
    white = SimulateConfig(n_waveforms=n, chunk_size=4096, noise={"spectrum": "white"})
    n_samples = coloured.detector.n_samples
    Simulator(coloured, 0).generate(0, 300)  # compile / load the Numba kernels

    rng = np.random.default_rng(0)
    rows: list[tuple[str, float]] = [
        (
            "reference: numpy float32 normals",
            best_rate(
                n,
                lambda: [
                    rng.standard_normal((4096, n_samples), dtype=np.float32)
                    for _ in range(n // 4096 + 1)
                ],
            ),
        ),
        (
            "generate, coloured noise (default)",
            best_rate(n, lambda: [None for _ in Simulator(coloured, 1).iter_chunks(n, 4096)]),
        ),
        (
            "generate, white noise",
            best_rate(n, lambda: [None for _ in Simulator(white, 1).iter_chunks(n, 4096)]),
        ),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for compression in ("lz4", "none"):
            cfg = coloured.model_copy(update={"compression": compression})
            path = Path(tmp) / f"{compression}.root"
            rate = best_rate(n, lambda c=cfg, p=path: simulate_to_root(c, 1, p, force=True))
            size = path.stat().st_size / n / 1e3
            rows.append((f"generate + write ROOT ({compression}, {size:.1f} kB/waveform)", rate))

    reference = rows[0][1]
    print(f"ccframe simulator, {n} waveforms of {n_samples} samples, 1 Numba/BLAS thread")
    print(f"{'measurement':<52}{'waveforms/s':>12}{'x reference':>13}")
    for name, rate in rows:
        print(f"{name:<52}{rate:>12,.0f}{rate / reference:>13.2f}")
    generated = rows[1][1]
    verdict = "PASS" if generated >= TARGET else "MISS"
    print(f"target >= {TARGET:,} waveforms/s generated per core: {verdict} ({generated:,.0f})")
    print("note: writing uses a prefetch thread, so the ROOT rows may use a second core")


if __name__ == "__main__":
    main()
