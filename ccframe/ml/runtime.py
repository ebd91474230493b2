"""TensorFlow set-up: a quiet import (`tf`, `keras` from here), device, threads and seeds
before the first TF op."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from ccframe.errors import SteeringError

_configured: tuple[str, int] | None = None


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """Silence file descriptor 2 (C++ code writes there directly) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_quietly() -> tuple[Any, Any]:
    """TensorFlow and Keras, imported without the banners that TF's C++ start-up prints
    before its log level applies (oneDNN notice, absl warning); import errors still raise.
    TF's own logging stays at level 3 (errors surface as Python exceptions) unless
    TF_CPP_MIN_LOG_LEVEL is set."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TF's best-fit-with-coalescing allocator for CPU tensors, which keeps its memory,
    # instead of fresh pages per op output: on this 2-core VM the default spent half the
    # training time in page faults; with it the classifier trains 2.2x faster and
    # validates 2x faster (docs/performance.md, "The CPU allocator").
    os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "1")
    if "tensorflow" in sys.modules:
        import keras as k
        import tensorflow as t
    else:
        with _stderr_to_devnull():
            import keras as k
            import tensorflow as t
    return t, k


tf, keras = _import_quietly()


def configure(device: str = "cpu", threads: int = 0, seed: int | None = None) -> Any:
    """Import and configure TensorFlow once per process; return the module.

    `device` cpu hides every GPU; gpu requires one. `threads` > 0 fixes the intra- and
    inter-op thread pools. With a seed, Python, NumPy and TF are seeded and TF ops are
    deterministic, so a CPU run repeats exactly."""
    global _configured

    if _configured is None:
        gpus = tf.config.list_physical_devices("GPU")
        if device == "cpu":
            tf.config.set_visible_devices([], "GPU")
        elif not gpus:
            raise SteeringError(
                "ml.device = 'gpu': TensorFlow sees no GPU here (install tensorflow[and-cuda] "
                "on a GPU machine, or set ml.device: cpu)"
            )
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.experimental.enable_op_determinism()
        _configured = (device, threads)
    if seed is not None:
        keras.utils.set_random_seed(seed % 2**32)
    return tf
