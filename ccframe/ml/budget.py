"""Parameters and training memory of the two networks, counted from their steering sections
(without TensorFlow), and checked against the machine before a run starts."""

from __future__ import annotations

from ccframe.ml.config import ClassifierConfig, CounterConfig, MLConfig
from ccframe.resources import require_memory

FLOAT = 4
"""Bytes per float32."""
STATE_PER_WEIGHT = 4
"""Copies of each weight while training: the weight, its gradient and Adam's two moments."""
ACTIVATION_COPIES = 3
"""Forward activations kept for the backward pass, their gradients and temporaries."""


def _dense(inputs: int, cfg: ClassifierConfig | CounterConfig) -> tuple[int, int]:
    """(parameters, activations per sample) of the hidden Dense stack and the output."""
    params, acts = 0, 0
    for units in cfg.dense:
        params += inputs * units + units + (4 * units if cfg.batch_norm else 0)
        acts += units
        inputs = units
    return params + inputs + 1, acts + 1


def classifier_size(cfg: ClassifierConfig, window: int) -> tuple[int, int]:
    """(parameters, activations per window) of LSTM(units) -> Dense stack -> Dense(1) on a
    (window, 1) input; the LSTM's four gates are kept for every time step."""
    units = cfg.lstm_units
    params, acts = _dense(units, cfg)
    return 4 * units * (units + 2) + params, 5 * units * window + acts


def counter_size(cfg: CounterConfig, n_bins: int) -> tuple[int, int]:
    """(parameters, activations per time list) of the Conv1D/MaxPool stack -> Flatten ->
    Dense stack -> Dense(1) on an (n_bins, 1) input."""
    params, acts, length, channels = 0, 0, n_bins, 1
    for filters in cfg.filters:
        params += channels * cfg.kernel_size * filters + filters
        acts += length * filters
        if cfg.pool_size > 1 and length >= cfg.pool_size:
            length //= cfg.pool_size
        channels = filters
    dense_params, dense_acts = _dense(length * channels, cfg)
    return params + dense_params, acts + length * channels + dense_acts


def training_bytes(params: int, activations: int, batch_size: int) -> int:
    """Memory to train a network: weight state plus one batch's activations."""
    return FLOAT * (STATE_PER_WEIGHT * params + ACTIVATION_COPIES * activations * batch_size)


def check_model_budget(ml: MLConfig) -> None:
    """Refuse (`ResourceError` naming the section) networks whose training would not fit in
    memory, before TensorFlow allocates anything."""
    window = ml.dataset.window.width
    nets = (
        ("ml.classifier", ml.classifier, classifier_size(ml.classifier, window)),
        ("ml.counter", ml.counter, counter_size(ml.counter, ml.dataset.time_list.n_bins)),
    )
    for key, cfg, (params, acts) in nets:
        batch = cfg.training.batch_size
        require_memory(
            training_bytes(params, acts, batch),
            key,
            f"training this network ({params:,} parameters, batch_size {batch})",
        )
