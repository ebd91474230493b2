"""Steering section `ml:`: datasets, the LSTM peak classifier, the CNN cluster counter and
their training (docs/algorithms.md, "The two-step ML chain"). Each field's docstring is its
schema description."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, PositiveInt, model_validator

from ccframe.kernels.config import CandidateConfig, MatchConfig, TimeListConfig, WindowConfig
from ccframe.settings import RunFile, Section

MAX_UNITS = 8192
"""Largest LSTM, Dense or Conv1D width (a memory check against the machine comes on top)."""

Activation = Literal["relu", "selu", "elu", "gelu", "tanh", "sigmoid", "linear", "swish"]
Initializer = Literal["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_normal"]


class _MLSection(Section):
    model_config = ConfigDict(use_attribute_docstrings=True)


class DatasetConfig(_MLSection):
    """Windows + labels and time lists + true cluster counts, built with the kernels from the
    input. Waveforms (never single windows) are split into train / validation / test."""

    train_fraction: float = Field(0.7, gt=0.0, lt=1.0)
    """Share of waveforms for training."""
    validation_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    """Share of waveforms for validation (early stopping, threshold choice)."""
    max_events: PositiveInt | None = None
    """Use only the first waveforms of the input (all if unset)."""
    balance: Literal["class_weights", "undersample", "none"] = "class_weights"
    """Classifier class imbalance: weight the classes by n / (2 n_class) on the training
    split, drop noise (or signal) windows of the training split at random down to the
    smaller class, or nothing."""
    cache: bool = True
    """Keep the built dataset (a folder of memory-mappable arrays, keyed by a hash of the
    input files and every setting that shapes it) in `cache_dir`, so a second run reuses it;
    without the cache it is built in a temporary folder and deleted after the run."""
    cache_dir: str = "cache"
    """Folder for the cache, relative to the run folder's parent (e.g. runs/cache)."""
    candidates: CandidateConfig = CandidateConfig()
    window: WindowConfig = WindowConfig()
    match: MatchConfig = MatchConfig()
    time_list: TimeListConfig = TimeListConfig()

    @model_validator(mode="after")
    def _room_for_test(self) -> DatasetConfig:
        if self.train_fraction + self.validation_fraction >= 1.0:
            raise ValueError(
                "train_fraction + validation_fraction must be < 1 (the rest is the test split)"
            )
        return self


class OptimizerConfig(_MLSection):
    """Optimizer and learning-rate schedule; a schedule's step is one training batch."""

    name: Literal["sgd", "adam", "nadam", "rmsprop", "adagrad"] = "adam"
    """Keras optimizer."""
    learning_rate: float = Field(1e-3, gt=0.0, le=10.0)
    """Initial learning rate."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """Momentum (sgd, rmsprop)."""
    nesterov: bool = False
    """Nesterov momentum (sgd)."""
    schedule: Literal["constant", "step", "exponential", "cosine"] = "constant"
    """constant; step: times decay_rate every decay_steps (staircase); exponential:
    decay_rate ** (step / decay_steps); cosine: cosine decay to 0 over decay_steps."""
    decay_steps: PositiveInt = 1000
    """Batches per decay period (cosine: length of the decay)."""
    decay_rate: float = Field(0.5, gt=0.0, le=1.0)
    """Factor per period (step, exponential)."""
    clipnorm: float | None = Field(None, gt=0.0)
    """Clip each gradient to this norm."""


class TrainingConfig(_MLSection):
    """How a model is fitted: batches, epochs and early stopping on the validation loss."""

    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: int = Field(1024, gt=0, le=1_000_000)
    """Samples per gradient step."""
    epochs: int = Field(20, gt=0, le=100_000)
    """Largest number of passes over the training split."""
    patience: int = Field(5, gt=0, le=100_000)
    """Stop after this many epochs without a lower validation loss; the best weights are
    restored."""


class _ModelConfig(_MLSection):
    dense: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(default=[128, 1], max_length=16)
    """Hidden Dense layer sizes, in order, before the output Dense(1)."""
    dropout: list[float] = Field(default=[0.1, 0.1], max_length=16)
    """Dropout rate after each hidden Dense layer (0 = none); one per `dense`, or empty."""
    activation: Activation = "relu"
    """Activation of the hidden Dense layers."""
    kernel_initializer: Initializer = "glorot_uniform"
    """Initializer of the Dense (and convolution) kernels."""
    batch_norm: bool = False
    """Batch normalization after each hidden Dense layer."""
    l1: float = Field(0.0, ge=0.0)
    """L1 penalty on the Dense kernels."""
    l2: float = Field(0.0, ge=0.0)
    """L2 penalty on the Dense kernels."""
    training: TrainingConfig = TrainingConfig()

    @model_validator(mode="after")
    def _dropout_per_layer(self) -> _ModelConfig:
        if self.dropout and len(self.dropout) != len(self.dense):
            raise ValueError(
                f"dropout has {len(self.dropout)} rates for {len(self.dense)} dense layers; "
                "give one per layer (or an empty list)"
            )
        if any(not 0.0 <= r < 1.0 for r in self.dropout):
            raise ValueError("dropout rates must be in [0, 1)")
        return self


class ClassifierConfig(_ModelConfig):
    """Step 1, peak finding: an LSTM over each candidate's window says signal (an electron
    pulse) or noise. The seed's topology is lstm_units 96, dense [128, 1], dropout [0.1, 0.1]
    (50,179 parameters); lstm_units 32, dense [64, 1] gives 6,531."""

    lstm_units: int = Field(96, gt=0, le=MAX_UNITS)
    """Units of the LSTM layer (its last output feeds the Dense layers)."""
    unroll: bool = True
    """Unroll the LSTM over the window's samples (faster on CPU for short windows)."""
    output_activation: Literal["sigmoid"] = "sigmoid"
    """Activation of the output Dense(1): the signal score in [0, 1]."""
    loss: Literal["binary_crossentropy", "focal", "mse", "mae"] = "binary_crossentropy"
    """Training loss on the 0/1 label."""
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    """Focusing parameter of the focal loss."""
    threshold: Annotated[float, Field(ge=0.0, le=1.0)] | Literal["f1", "efficiency_purity"] = "f1"
    """Score above which a candidate is a peak: a number, or the validation threshold that
    maximises F1 or efficiency x purity."""


class CounterConfig(_ModelConfig):
    """Step 2, clusterization: a 1-D CNN on the time list of the accepted peaks regresses the
    number of primary clusters (the true count, not matched detections)."""

    filters: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(
        default=[16, 32, 32], min_length=1, max_length=16
    )
    """Filters of each Conv1D layer."""
    kernel_size: int = Field(5, gt=0, le=4096)
    """Length of every Conv1D kernel (bins)."""
    pool_size: int = Field(4, gt=0, le=4096)
    """Max pooling after each Conv1D layer (1 = none)."""
    dense: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(default=[64], max_length=16)
    """Hidden Dense layer sizes after the convolutions."""
    dropout: list[float] = Field(default=[0.1], max_length=16)
    """Dropout rate after each hidden Dense layer."""
    loss: Literal["mse", "mae"] = "mse"
    """Regression loss on the count (scaled by the training split's mean count)."""
    calibrate_response: bool = True
    """Fit the response (mean predicted count against the true count) on the validation
    split and fold its inverse into the saved model, so the count follows the truth with
    slope 1 instead of shrinking towards the training mean (docs/algorithms.md, "Response
    calibration")."""


class WaveformCounterConfig(_ModelConfig):
    """The one-step counter: a 1-D convolution stack (optionally followed by a bidirectional
    recurrent layer) on the whole waveform, baseline-subtracted and divided by its noise RMS
    (as the classifier's windows, `ml.dataset.window.normalization`), regresses the number of
    primary clusters directly, with no peak finding before it (docs/algorithms.md, "The
    one-step waveform counter"). Trained and evaluated beside the two-step chain, on the
    same waveforms, when this section is given."""

    input_compression: Literal["signed_log", "none"] = "signed_log"
    """signed_log: the network sees sign(x) log(1 + |x|) of each normalized sample x, so a
    pulse of a few hundred noise RMS does not outweigh the small pulses that carry most of
    the count; none: the samples as they are."""
    filters: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(
        default=[16, 32, 32, 32], min_length=1, max_length=16
    )
    """Filters of each Conv1D layer."""
    kernel_size: int = Field(7, gt=0, le=4096)
    """Length of every Conv1D kernel (samples of that layer's input)."""
    strides: list[Annotated[int, Field(gt=0, le=64)]] = Field(default=[4, 2, 1, 1], max_length=16)
    """Stride of each Conv1D layer (one per `filters`, or empty for 1): stride early, where
    the waveform is long, to keep the cost down."""
    dilations: list[Annotated[int, Field(gt=0, le=1024)]] = Field(
        default=[1, 1, 2, 4], max_length=16
    )
    """Dilation rate of each Conv1D layer (one per `filters`, or empty for 1): a temporal
    convolution stack sees further with each dilated layer. A layer with stride > 1 must
    have dilation 1."""
    recurrent: Literal["none", "gru", "lstm"] = "none"
    """A bidirectional recurrent layer after the convolutions (returning sequences)."""
    recurrent_units: int = Field(16, gt=0, le=MAX_UNITS)
    """Units per direction of the recurrent layer."""
    head: Literal["density", "dense"] = "density"
    """density: a non-negative cluster density per position (Conv1D(1) + softplus) summed
    over the waveform, so the count adds up local evidence and cannot shrink towards a
    global mean; dense: global average pooling, the hidden Dense layers, Dense(1)."""
    dense: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(default=[], max_length=16)
    """Hidden Dense layer sizes of the dense head (unused by the density head)."""
    dropout: list[float] = Field(default=[], max_length=16)
    """Dropout rate after each hidden Dense layer of the dense head."""
    spatial_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout of whole channels after each Conv1D layer (0 = none)."""
    loss: Literal["mse", "mae", "poisson"] = "mse"
    """Regression loss on the count (scaled by the training split's mean count)."""
    calibrate_response: bool = True
    """Fit the response on the validation split and fold its inverse into the saved model
    (as `ml.counter.calibrate_response`)."""
    training: TrainingConfig = TrainingConfig(batch_size=64, epochs=30, patience=5)

    @model_validator(mode="after")
    def _one_per_layer(self) -> WaveformCounterConfig:
        n = len(self.filters)
        for key in ("strides", "dilations"):
            values = getattr(self, key)
            if values and len(values) != n:
                raise ValueError(
                    f"{key} has {len(values)} values for {n} Conv1D layers; give one per "
                    "layer (or an empty list)"
                )
        for stride, rate in zip(self.strides or [1] * n, self.dilations or [1] * n, strict=True):
            if stride > 1 and rate > 1:
                raise ValueError("a Conv1D layer cannot have both a stride and a dilation > 1")
        return self


class PeakMapConfig(_MLSection):
    """The per-sample model: a fully convolutional network (U-Net) on the whole waveform,
    normalized as the classifier's windows, that gives for every `output_stride` samples the
    expected number of clusters whose first electron arrives there, trained against the
    truth's arrival samples (docs/algorithms.md, "The per-sample peak map"). Clusters are
    counted as the peaks of that map (or its sum), with no amplitude threshold before any
    network sees the waveform. Trained and evaluated beside the two-step chain, on the same
    waveforms, when this section is given."""

    input_compression: Literal["signed_log", "none"] = "signed_log"
    """As `ml.waveform_counter.input_compression`."""
    filters: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(
        default=[16, 24, 32], min_length=1, max_length=8
    )
    """Filters of each encoder level: level 0 at the full sampling rate, each next level at
    half the rate of the one before (a stride-2 Conv1D)."""
    kernel_size: int = Field(5, gt=0, le=1024)
    """Length of the encoder's and decoder's Conv1D kernels (the first layer's is 2 longer)."""
    bottleneck_dilations: list[Annotated[int, Field(gt=0, le=1024)]] = Field(
        default=[2, 4], max_length=16
    )
    """Dilation rates of the Conv1D layers (kernel 3) at the deepest level: they widen the
    view over neighbouring pulses cheaply."""
    output_stride: int = Field(2, gt=0, le=128)
    """Samples per position of the map: the decoder upsamples (x2, with the encoder level's
    skip connection) until this stride; a power of 2 up to 2 ** (levels - 1)."""
    activation: Activation = "relu"
    """Activation of the Conv1D layers."""
    readout: Literal["peaks", "sum"] = "peaks"
    """How the map becomes a count: peaks, the number of local maxima above `peak_threshold`
    (one per resolved cluster); sum, the map's integral (the expected number of clusters)."""
    peak_threshold: float = Field(0.25, gt=0.0, le=10.0)
    """[clusters per position] Height a local maximum of the map needs to count (readout
    peaks)."""
    calibrate_response: bool = True
    """Fit the count's response on the validation split and fold its inverse into the saved
    model (as `ml.counter.calibrate_response`)."""
    training: TrainingConfig = TrainingConfig(batch_size=64, epochs=15, patience=4)

    @model_validator(mode="after")
    def _stride_fits(self) -> PeakMapConfig:
        deepest = 2 ** (len(self.filters) - 1)
        stride = self.output_stride
        if stride & (stride - 1) or stride > deepest:
            raise ValueError(
                f"output_stride {stride} must be a power of 2 up to {deepest} (2 ** (levels - "
                f"1) with {len(self.filters)} filters)"
            )
        return self


class PeakSequenceConfig(_MLSection):
    """Per-peak clusterization: a bidirectional recurrent network over the sequence of one
    waveform's peak candidates (their classifier scores, amplitudes, times and gaps to the
    neighbours) gives each candidate the probability that it is the first found electron of
    a cluster; the count is the sum of those probabilities (docs/algorithms.md, "Per-peak
    clusterization"). Uses the two-step chain's candidates and classifier; trained beside it
    when this section is given."""

    max_candidates: int = Field(128, gt=0, le=4096)
    """Candidates per waveform the network sees, in time order (the later ones are left
    out)."""
    recurrent: Literal["gru", "lstm"] = "gru"
    """The bidirectional recurrent layer over the candidates."""
    units: int = Field(32, gt=0, le=MAX_UNITS)
    """Units per direction of the recurrent layer."""
    dense: list[Annotated[int, Field(gt=0, le=MAX_UNITS)]] = Field(default=[16], max_length=16)
    """Hidden Dense layers applied to every candidate after the recurrent layer."""
    activation: Activation = "relu"
    """Activation of the hidden Dense layers."""
    calibrate_response: bool = True
    """Fit the count's response on the validation split and fold its inverse into the saved
    model (as `ml.counter.calibrate_response`)."""
    training: TrainingConfig = TrainingConfig(batch_size=128, epochs=20, patience=4)


class MLConfig(_MLSection):
    """The two-step ML reconstruction, trained and evaluated on the input. The traditional
    algorithm (the `traditional:` section, tuned when a tune stage ran) is evaluated on the
    same test waveforms for comparison."""

    dataset: DatasetConfig = DatasetConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    counter: CounterConfig = CounterConfig()
    waveform_counter: WaveformCounterConfig | None = None
    """The one-step counter on whole waveforms, trained and evaluated beside the two-step
    chain when given (its count is `waveform` in the metrics, `n_clusters_waveform` in the
    predictions)."""
    peak_map: PeakMapConfig | None = None
    """The per-sample model (U-Net peak map), trained and evaluated beside the two-step chain
    when given (its count is `peak_map` in the metrics, `n_clusters_peak_map` in the
    predictions)."""
    peak_sequence: PeakSequenceConfig | None = None
    """Per-peak clusterization over the chain's candidates, trained and evaluated beside the
    two-step chain when given (its count is `peak_sequence` in the metrics,
    `n_clusters_peak_sequence` in the predictions)."""
    threads: int = Field(0, ge=0, le=256)
    """TensorFlow intra- and inter-op threads (0: TensorFlow's choice)."""
    device: Literal["cpu", "gpu"] = "cpu"
    """Where TensorFlow runs; gpu needs a TensorFlow build with GPU support."""
    inference_batch: int = Field(8192, gt=0, le=1_000_000)
    """Windows or time lists per inference call."""
    momentum_bins: int = Field(8, gt=0, le=1000)
    """Momentum bins of the metrics versus momentum."""
    output: RunFile = "predictions.root"
    """Per-waveform and per-peak predictions, in the run folder."""


class RobustnessConfig(_MLSection):
    """Smearings applied one at a time to the run's test-split waveforms: extra noise (total
    RMS = factor x the measured one, white Gaussian added); lower gas gain at fixed
    electronics noise (baseline-subtracted waveform x factor, then white noise added back to
    the original RMS: signal-to-noise x factor); time jitter (each waveform shifted by a
    Gaussian number of ns rounded to samples, circularly, so the quiet end of the window
    wraps to its start; the truth's times move with it)."""

    noise_factors: list[float] = Field(default=[1.0, 1.25, 1.5, 2.0], min_length=1)
    """Total noise RMS as a multiple of the input's (>= 1)."""
    gain_factors: list[float] = Field(default=[0.5, 0.7, 0.85, 1.0], min_length=1)
    """Gas gain relative to the input's, in (0, 1] (noise cannot be taken out of a waveform)."""
    jitter_ns: list[float] = Field(default=[0.0, 1.0, 2.0, 5.0], min_length=1)
    """[ns] Gaussian sigma of the per-waveform time shift (>= 0)."""
    max_events: PositiveInt = 3000
    """Test-split waveforms used."""
    seed: int = Field(7, ge=0)
    """Seed of the smearing."""

    @model_validator(mode="after")
    def _physical(self) -> RobustnessConfig:
        if any(v < 1 for v in self.noise_factors):
            raise ValueError("noise_factors must be >= 1 (noise is only added)")
        if any(not 0 < v <= 1 for v in self.gain_factors):
            raise ValueError("gain_factors must be in (0, 1]")
        if any(v < 0 for v in self.jitter_ns):
            raise ValueError("jitter_ns values must be >= 0")
        return self


class InferConfig(_MLSection):
    """Apply a trained chain (another run's folder) to this steering file's data: files, so
    that a sweep over `data.files` fans inference out, one job per file or group."""

    chain: str
    """Run folder of the trained chain (relative to the working directory)."""
    output: RunFile = "inferred.root"
    """Output file in the run folder (tree `predictions`, as `ccframe infer` writes)."""
    batch: int = Field(8192, gt=0, le=1_000_000)
    """Windows per classifier call."""
    backend: Literal["keras", "onnx", "mixed"] = "keras"
    """What runs the two networks: Keras; ONNX Runtime without TensorFlow; or `mixed`, the
    classifier with Keras and the counter with ONNX Runtime, the fastest on CPU. `onnx` and
    `mixed` need `ccframe export RUN_DIR` in the chain's run folder first."""
