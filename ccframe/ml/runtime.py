"""TensorFlow set-up: quiet logs, device, threads and seeds, before the first TF op."""

from __future__ import annotations

from typing import Any

from ccframe.errors import SteeringError

_configured: tuple[str, int] | None = None


def configure(device: str = "cpu", threads: int = 0, seed: int | None = None) -> Any:
    """Import and configure TensorFlow once per process; return the module.

    `device` cpu hides every GPU; gpu requires one. `threads` > 0 fixes the intra- and
    inter-op thread pools. With a seed, Python, NumPy and TF are seeded and TF ops are
    deterministic, so a CPU run repeats exactly."""
    global _configured
    import tensorflow as tf

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
        import keras

        keras.utils.set_random_seed(seed % 2**32)
    return tf
