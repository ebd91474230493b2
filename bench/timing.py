"""Shared by the benchmark scripts: one thread everywhere, best-of-N timing.

Import this before NumPy: it pins Numba, OpenMP and BLAS to one thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"


def best_rate(n: int, work: Callable[[], object], repeats: int = 3) -> float:
    """Items per second of the fastest of `repeats` runs of `work` (which handles n items)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return n / best
