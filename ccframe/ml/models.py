"""Keras models built from steering sections: the LSTM peak classifier, the CNN counter on
time lists, and the one-step counter on whole waveforms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ccframe.errors import InputError
from ccframe.ml.config import (
    ClassifierConfig,
    CounterConfig,
    OptimizerConfig,
    PeakMapConfig,
    PeakSequenceConfig,
    WaveformCounterConfig,
    _ModelConfig,
)
from ccframe.ml.runtime import keras

layers = keras.layers


def load_saved(path: Path) -> keras.Model:
    """A model saved by ccframe (its custom layers registered here), without its training
    configuration; an `InputError` naming the file when it is missing, truncated or
    foreign."""
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # missing, truncated or foreign files
        raise InputError(f"{path}: cannot load the model ({exc})") from None


def _regularizer(cfg: _ModelConfig) -> Any:
    if cfg.l1 == 0.0 and cfg.l2 == 0.0:
        return None
    return keras.regularizers.L1L2(l1=cfg.l1, l2=cfg.l2)


def _dense_stack(x: Any, cfg: _ModelConfig) -> Any:
    """Hidden Dense layers, each followed by batch normalization and dropout if asked."""
    rates = cfg.dropout or [0.0] * len(cfg.dense)
    for i, (units, rate) in enumerate(zip(cfg.dense, rates, strict=True)):
        x = layers.Dense(
            units,
            activation=cfg.activation,
            kernel_initializer=cfg.kernel_initializer,
            kernel_regularizer=_regularizer(cfg),
            name=f"dense_{i}",
        )(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(name=f"batch_norm_{i}")(x)
        if rate > 0:
            x = layers.Dropout(rate, name=f"dropout_{i}")(x)
    return x


def build_classifier(cfg: ClassifierConfig, window: int) -> keras.Model:
    """LSTM(units) -> Flatten -> hidden Dense layers -> Dense(1, sigmoid) on (window, 1).

    The seed's topology (units 96, dense [128, 1], dropout [0.1, 0.1]) has 50,179
    parameters."""
    inputs = keras.Input((window, 1), name="window")
    x = layers.LSTM(cfg.lstm_units, unroll=cfg.unroll, name="lstm")(inputs)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_stack(x, cfg)
    outputs = layers.Dense(
        1,
        activation=cfg.output_activation,
        kernel_initializer=cfg.kernel_initializer,
        name="score",
    )(x)
    return keras.Model(inputs, outputs, name="peak_classifier")


def build_counter(cfg: CounterConfig, n_bins: int, count_scale: float) -> keras.Model:
    """Conv1D/MaxPool stack -> Flatten -> hidden Dense layers -> Dense(1) on the (n_bins, 1)
    time list. The output Dense(1) predicts count / count_scale (`count_scale`: the training
    split's mean count, fitted there only) and a Rescaling layer turns it into a count, so
    the saved model outputs clusters directly."""
    inputs = keras.Input((n_bins, 1), name="time_list")
    x = inputs
    for i, filters in enumerate(cfg.filters):
        x = layers.Conv1D(
            filters,
            cfg.kernel_size,
            padding="same",
            activation=cfg.activation,
            kernel_initializer=cfg.kernel_initializer,
            name=f"conv_{i}",
        )(x)
        if cfg.pool_size > 1 and x.shape[1] >= cfg.pool_size:
            x = layers.MaxPooling1D(cfg.pool_size, name=f"pool_{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = _dense_stack(x, cfg)
    x = layers.Dense(1, kernel_initializer=cfg.kernel_initializer, name="scaled_count")(x)
    outputs = layers.Rescaling(count_scale, name="count")(x)
    return keras.Model(inputs, outputs, name="cluster_counter")


@keras.saving.register_keras_serializable(package="ccframe")
class SignedLog(keras.layers.Layer):  # type: ignore[name-defined,misc]
    """sign(x) log(1 + |x|): compresses the samples, so that a pulse of a few hundred noise
    RMS does not outweigh the many small pulses that carry the count."""

    def call(self, x: Any) -> Any:
        ops = keras.ops
        return ops.sign(x) * ops.log1p(ops.abs(x))


def build_waveform_counter(
    cfg: WaveformCounterConfig, n_samples: int, count_scale: float
) -> keras.Model:
    """Conv1D stack (strided, dilated) [-> bidirectional GRU/LSTM] -> head on the normalized
    waveform, input (batch, n_samples). The density head is Conv1D(1, softplus): a
    non-negative density per position whose sum is count / count_scale (a zero kernel and a
    bias that start the sum at 1, i.e. every count at the training mean, whatever the
    input). The dense head is global average pooling -> hidden Dense -> Dense(1). A
    Rescaling layer turns count / count_scale into a count, as in `build_counter`."""
    inputs = keras.Input((n_samples,), name="waveform")
    n = len(cfg.filters)
    x = layers.Reshape((n_samples, 1), name="samples")(inputs)
    if cfg.input_compression == "signed_log":
        x = SignedLog(name="signed_log")(x)
    layout = zip(cfg.filters, cfg.strides or [1] * n, cfg.dilations or [1] * n, strict=True)
    for i, (filters, stride, rate) in enumerate(layout):
        x = layers.Conv1D(
            filters,
            cfg.kernel_size,
            strides=stride,
            dilation_rate=rate,
            padding="same",
            activation=cfg.activation,
            kernel_initializer=cfg.kernel_initializer,
            kernel_regularizer=_regularizer(cfg),
            name=f"conv_{i}",
        )(x)
        if cfg.batch_norm:
            x = layers.BatchNormalization(name=f"conv_batch_norm_{i}")(x)
        if cfg.spatial_dropout > 0:
            x = layers.SpatialDropout1D(cfg.spatial_dropout, name=f"spatial_dropout_{i}")(x)
    if cfg.recurrent != "none":
        kind = layers.GRU if cfg.recurrent == "gru" else layers.LSTM
        cell = kind(cfg.recurrent_units, return_sequences=True, name=cfg.recurrent)
        x = layers.Bidirectional(cell, name="bidirectional")(x)
    if cfg.head == "density":
        positions = int(x.shape[1])
        start = math.log(math.expm1(1.0 / positions))  # softplus(start) * positions = 1
        x = layers.Conv1D(
            1,
            1,
            activation="softplus",
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant(start),
            name="density",
        )(x)
        x = layers.GlobalAveragePooling1D(name="mean_density")(x)
        x = layers.Rescaling(float(positions), name="scaled_count")(x)
    else:
        x = layers.GlobalAveragePooling1D(name="pool")(x)
        x = _dense_stack(x, cfg)
        x = layers.Dense(1, kernel_initializer=cfg.kernel_initializer, name="scaled_count")(x)
    outputs = layers.Rescaling(count_scale, name="count")(x)
    return keras.Model(inputs, outputs, name="waveform_counter")


@keras.saving.register_keras_serializable(package="ccframe")
class PeakCount(keras.layers.Layer):  # type: ignore[name-defined,misc]
    """(batch, positions) map -> (batch, 1): the number of positions that are a maximum of
    their three-position neighbourhood and above `threshold`."""

    def __init__(self, threshold: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = float(threshold)

    def call(self, x: Any) -> Any:
        ops = keras.ops
        column = ops.expand_dims(x, -1)
        local = ops.squeeze(ops.max_pool(column, 3, strides=1, padding="same"), -1)
        peaks = ops.logical_and(ops.greater_equal(x, local), ops.greater(x, self.threshold))
        return ops.sum(ops.cast(peaks, x.dtype), axis=-1, keepdims=True)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "threshold": self.threshold}


@keras.saving.register_keras_serializable(package="ccframe")
class MapSum(keras.layers.Layer):  # type: ignore[name-defined,misc]
    """(batch, positions) map -> (batch, 1): its sum."""

    def call(self, x: Any) -> Any:
        return keras.ops.sum(x, axis=-1, keepdims=True)


def peak_map_length(cfg: PeakMapConfig, n_samples: int) -> tuple[int, int]:
    """(samples after padding to a multiple of the deepest level's stride, map positions)."""
    deepest = 2 ** (len(cfg.filters) - 1)
    padded = -(-n_samples // deepest) * deepest
    return padded, padded // cfg.output_stride


def build_peak_map(cfg: PeakMapConfig, n_samples: int, mean_count: float) -> keras.Model:
    """U-Net on the normalized waveform (batch, n_samples) -> (batch, positions): the
    expected clusters starting in each `output_stride` samples (softplus, its bias starting
    every position at mean_count / positions). The waveform is zero-padded at its end to a
    multiple of the deepest level's stride; encoder level i runs at stride 2 ** i."""
    padded, positions = peak_map_length(cfg, n_samples)
    inputs = keras.Input((n_samples,), name="waveform")
    x = layers.Reshape((n_samples, 1), name="samples")(inputs)
    if padded > n_samples:
        x = layers.ZeroPadding1D((0, padded - n_samples), name="pad")(x)
    if cfg.input_compression == "signed_log":
        x = SignedLog(name="signed_log")(x)

    def conv(x: Any, filters: int, name: str, **kw: Any) -> Any:
        kw.setdefault("kernel_size", cfg.kernel_size)
        return layers.Conv1D(filters, padding="same", activation=cfg.activation, name=name, **kw)(x)

    skips = []
    for level, filters in enumerate(cfg.filters):
        if level == 0:
            x = conv(x, filters, "encode_0", kernel_size=cfg.kernel_size + 2)
        else:
            x = conv(x, filters, f"encode_{level}", strides=2)
        skips.append(x)
    for i, rate in enumerate(cfg.bottleneck_dilations):
        x = conv(x, cfg.filters[-1], f"dilated_{i}", kernel_size=3, dilation_rate=rate)
    level = len(cfg.filters) - 1
    while 2**level > cfg.output_stride:
        level -= 1
        x = layers.UpSampling1D(2, name=f"upsample_{level}")(x)
        x = layers.Concatenate(name=f"skip_{level}")([x, skips[level]])
        x = conv(x, cfg.filters[level], f"decode_{level}")
    start = math.log(math.expm1(max(mean_count, 1e-3) / positions))
    x = layers.Conv1D(
        1,
        1,
        activation="softplus",
        bias_initializer=keras.initializers.Constant(start),
        name="density",
    )(x)
    outputs = layers.Reshape((positions,), name="map")(x)
    return keras.Model(inputs, outputs, name="peak_map")


def peak_map_counter(density: keras.Model, cfg: PeakMapConfig) -> keras.Model:
    """The map model with its readout: waveform -> (batch, 1) clusters."""
    if cfg.readout == "peaks":
        count = PeakCount(cfg.peak_threshold, name="peak_count")(density.output)
    else:
        count = MapSum(name="map_sum")(density.output)
    return keras.Model(density.input, count, name="peak_map_counter")


def build_peak_sequence(cfg: PeakSequenceConfig, length: int) -> keras.Model:
    """Bidirectional GRU/LSTM over (batch, length, features) candidate sequences -> per
    candidate Dense layers -> (batch, length, 1) probability that the candidate is the first
    found electron of a cluster (`ccframe.ml.sequence.FEATURES`)."""
    from ccframe.ml.sequence import FEATURES

    inputs = keras.Input((length, len(FEATURES)), name="candidates")
    kind = layers.GRU if cfg.recurrent == "gru" else layers.LSTM
    x = layers.Bidirectional(
        kind(cfg.units, return_sequences=True, name=cfg.recurrent), name="bidirectional"
    )(inputs)
    for i, units in enumerate(cfg.dense):
        x = layers.Dense(units, activation=cfg.activation, name=f"dense_{i}")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="first_of_cluster")(x)
    return keras.Model(inputs, outputs, name="peak_sequence")


@keras.saving.register_keras_serializable(package="ccframe")
class PresentSum(keras.layers.Layer):  # type: ignore[name-defined,misc]
    """(probabilities (batch, length, 1), candidates (batch, length, features)) -> (batch,
    1): the sum of the probabilities over the positions that hold a candidate (the last
    feature is 1 there, 0 for padding)."""

    def call(self, inputs: Any) -> Any:
        probability, candidates = inputs
        present = candidates[..., -1:]
        return keras.ops.sum(probability * present, axis=(1, 2))[:, None]


def sequence_counter(labeller: keras.Model) -> keras.Model:
    """The per-peak labeller with its count: candidates -> (batch, 1) clusters."""
    count = PresentSum(name="count")([labeller.output, labeller.input])
    return keras.Model(labeller.input, count, name="peak_sequence_counter")


def optimizer(cfg: OptimizerConfig) -> keras.optimizers.Optimizer:
    """The Keras optimizer with its learning-rate schedule."""
    lr: Any = cfg.learning_rate
    if cfg.schedule == "step":
        lr = keras.optimizers.schedules.ExponentialDecay(
            lr, cfg.decay_steps, cfg.decay_rate, staircase=True
        )
    elif cfg.schedule == "exponential":
        lr = keras.optimizers.schedules.ExponentialDecay(lr, cfg.decay_steps, cfg.decay_rate)
    elif cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(lr, cfg.decay_steps)
    common: dict[str, Any] = {"learning_rate": lr, "clipnorm": cfg.clipnorm}
    if cfg.name == "sgd":
        return keras.optimizers.SGD(momentum=cfg.momentum, nesterov=cfg.nesterov, **common)
    if cfg.name == "rmsprop":
        return keras.optimizers.RMSprop(momentum=cfg.momentum, **common)
    kinds = {
        "adam": keras.optimizers.Adam,
        "nadam": keras.optimizers.Nadam,
        "adagrad": keras.optimizers.Adagrad,
    }
    return kinds[cfg.name](**common)


def classifier_loss(cfg: ClassifierConfig) -> Any:
    if cfg.loss == "focal":
        return keras.losses.BinaryFocalCrossentropy(gamma=cfg.focal_gamma)
    return cfg.loss
