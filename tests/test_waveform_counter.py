"""The one-step waveform counter (`ml.waveform_counter`): model, settings, training in the ml
stage beside the chain, and the same counts when applied to new reader batches."""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from conftest import tiny_steering

from ccframe.cli import main
from ccframe.ml.config import MLConfig, WaveformCounterConfig

TINY_WAVEFORM = {
    "filters": [4, 4],
    "kernel_size": 5,
    "strides": [8, 1],
    "dilations": [1, 2],
    "training": {"epochs": 2, "batch_size": 32},
}


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


@pytest.mark.parametrize(
    "settings",
    [{}, {"recurrent": "gru"}, {"head": "dense", "dense": [8], "dropout": [0.1]}],
)
def test_waveform_counter_starts_at_the_training_mean(settings):
    from ccframe.ml.models import build_waveform_counter
    from ccframe.ml.runtime import configure

    configure(seed=1)
    model = build_waveform_counter(WaveformCounterConfig(**settings), 240, 19.5)
    assert model.input_shape == (None, 240) and model.output_shape == (None, 1)
    out = np.asarray(model(np.zeros((3, 240), np.float32))).ravel()
    if settings.get("head", "density") == "density":
        # relu layers pass 0 through; the density's bias makes the sum the training mean
        np.testing.assert_allclose(out, 19.5, rtol=1e-5)
    else:
        assert np.all(np.isfinite(out))


def test_waveform_counter_settings_are_checked():
    with pytest.raises(ValueError, match="both a stride and a dilation"):
        WaveformCounterConfig(filters=[4], strides=[2], dilations=[2])
    with pytest.raises(ValueError, match="strides has 1 values for 2 Conv1D layers"):
        WaveformCounterConfig(filters=[4, 4], strides=[2], dilations=[])
    assert MLConfig().waveform_counter is None


@pytest.mark.slow
def test_ml_stage_trains_the_waveform_counter_beside_the_chain(tmp_path, capsys):
    path = tiny_steering(tmp_path, n=300, waveform_counter=TINY_WAVEFORM)
    assert run_cli("run", str(path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "waveform counter" in out and "count waveform" in out
    run = tmp_path / "tinyml"
    metrics = json.loads((run / "metrics.json").read_text())["ml"]
    assert metrics["waveform_counter"]["training"]["parameters"] > 0
    waveform = metrics["count_test"]["waveform"]
    assert waveform["overall"]["waveforms"] == metrics["count_test"]["ml"]["overall"]["waveforms"]
    assert np.isfinite(waveform["overall"]["response_slope"])
    assert set(waveform["response"]) == {"n_true", "waveforms", "mean_pred", "std_pred"}
    assert (run / "waveform_counter.keras").is_file()
    assert (run / "history_waveform_counter.csv").is_file()
    tree = uproot.open(run / "predictions.root")["predictions"].arrays(
        ["n_clusters_waveform", "entry"], library="np"
    )
    assert np.all(np.isfinite(tree["n_clusters_waveform"]))

    # applied to reader batches (pid, infer), the saved counter gives the stage's counts
    from ccframe.io.reader import iter_batches
    from ccframe.ml.chain import read_settings
    from ccframe.ml.waveform import WaveformCounter
    from ccframe.steering.loader import load_steering

    steering = load_steering(run / "steering.yaml")
    counter = WaveformCounter.load(run, read_settings(run).window)
    data = steering.input_data
    counts = np.concatenate([counter.count(b) for b in iter_batches(data, [str(run / "sim.root")])])
    order = np.argsort(tree["entry"])
    np.testing.assert_allclose(counts, tree["n_clusters_waveform"][order], rtol=1e-5, atol=1e-4)

    # ccframe infer applies it too
    out = tmp_path / "inferred.root"
    assert run_cli("infer", str(run), str(run / "sim.root"), "-o", str(out)) == 0
    tree = uproot.open(out)["predictions"]
    inferred = tree.arrays(["n_clusters_waveform", "entry"], library="np")
    np.testing.assert_allclose(
        inferred["n_clusters_waveform"][np.argsort(inferred["entry"])], counts, rtol=1e-5, atol=1e-4
    )
