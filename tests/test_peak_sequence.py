"""Per-peak clusterization (`ml.peak_sequence`): candidate features against a slow
reference, the first-of-cluster targets, the count readout over present candidates, and
training in the ml stage beside the chain with the same counts through pid and infer."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import uproot
from conftest import tiny_steering

from ccframe.cli import main
from ccframe.ml.dataset import Dataset
from ccframe.ml.sequence import FEATURES, first_of_cluster, sequence_features

TINY_SEQUENCE = {"units": 4, "dense": [4], "max_candidates": 64, "training": {"epochs": 2}}


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def features_ref(position, offsets, score, amplitude, row, fs, n, length):
    lo, hi = offsets[row], offsets[row + 1]
    out = np.zeros((length, len(FEATURES)))
    for k, j in enumerate(range(lo, min(hi, lo + length))):
        before = position[j - 1] if j > lo else 0
        after = position[j + 1] if j + 1 < hi else n
        a = amplitude[j]
        out[k] = [
            score[j],
            math.copysign(math.log1p(abs(a)), a),
            position[j] / n,
            math.log1p((position[j] - before) / fs),
            math.log1p((after - position[j]) / fs),
            1.0,
        ]
    return out


def test_features_match_a_slow_reference():
    rng = np.random.default_rng(5)
    counts = np.array([0, 3, 7, 1, 5])
    offsets = np.concatenate([[0], np.cumsum(counts)])
    position = np.concatenate([np.sort(rng.choice(2400, c, replace=False)) for c in counts])
    score = rng.uniform(0, 1, position.size).astype(np.float32)
    amplitude = rng.normal(0, 10, position.size).astype(np.float32)
    rows = np.array([4, 0, 2, 1])
    x, index = sequence_features(position, offsets, score, amplitude, rows, 1.2, 2400, 4)
    assert x.shape == (4, 4, len(FEATURES)) and index.shape == (4, 4)
    for k, row in enumerate(rows):
        want = features_ref(position, offsets, score, amplitude, row, 1.2, 2400, 4)
        np.testing.assert_allclose(x[k], want, rtol=1e-5, atol=1e-6)
        present = min(counts[row], 4)
        assert index[k, :present].tolist() == list(range(offsets[row], offsets[row] + present))
        assert (index[k, present:] == -1).all()


def test_the_first_candidate_of_each_cluster_is_the_target():
    label = np.array([0, 1, 2, 2, 0, 2, 1, 0], np.int8)
    cluster = np.array([-1, 0, 0, 1, -1, 1, 0, -1], np.int32)
    offsets = np.array([0, 5, 8])
    n = 2
    ds = Dataset(
        windows=np.zeros((8, 15, 1), np.float32), label=label, cluster=cluster,
        position=np.arange(8, dtype=np.int32), offsets=offsets, split=np.zeros(n, np.int8),
        n_clusters=np.array([2, 1]), n_electrons=np.array([3, 2]),
        n_traditional=np.zeros(n, np.int64), momentum_gev=np.zeros(n), pdg=np.zeros(n, np.int64),
        event_id=np.arange(n), entry=np.arange(n), file_index=np.zeros(n, np.int32), files=[],
        sampling_ghz=1.2, n_samples=100,
    )  # fmt: skip
    # waveform 0: cluster 0 first at 1, cluster 1 first at 3; waveform 1: cluster 1 at 5, 0 at 6
    assert first_of_cluster(ds).tolist() == [0, 1, 0, 1, 0, 1, 1, 0]
    ds.peak_truth = "labelled_peaks"  # no clusters: the primaries
    assert first_of_cluster(ds).tolist() == [0, 1, 0, 0, 0, 0, 1, 0]


def test_the_count_sums_the_probabilities_of_present_candidates():
    from ccframe.ml.config import PeakSequenceConfig
    from ccframe.ml.models import build_peak_sequence, sequence_counter
    from ccframe.ml.runtime import configure

    configure(seed=1)
    labeller = build_peak_sequence(PeakSequenceConfig(units=4, dense=[4]), 8)
    counter = sequence_counter(labeller)
    x = np.random.default_rng(1).uniform(0, 1, (3, 8, len(FEATURES))).astype(np.float32)
    x[..., -1] = 0.0
    x[0, :5, -1] = 1.0
    x[1, :1, -1] = 1.0
    p = np.asarray(labeller(x))[..., 0]
    want = (p * x[..., -1]).sum(axis=1)
    np.testing.assert_allclose(np.asarray(counter(x)).ravel(), want, rtol=1e-5)
    assert np.asarray(counter(x)).ravel()[2] == 0.0


@pytest.mark.slow
def test_ml_stage_trains_the_peak_sequence_and_infer_applies_it(tmp_path, capsys):
    path = tiny_steering(tmp_path, n=300, peak_sequence=TINY_SEQUENCE)
    assert run_cli("run", str(path)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "peak sequence" in out and "count peak_sequence" in out
    run = tmp_path / "tinyml"
    metrics = json.loads((run / "metrics.json").read_text())["ml"]
    assert 0 < metrics["peak_sequence"]["training"]["first_of_cluster_share"] < 1
    assert (run / "peak_sequence.keras").is_file()
    assert (run / "history_peak_sequence.csv").is_file()
    tree = uproot.open(run / "predictions.root")["predictions"]
    assert tree["n_clusters_peak_sequence"].typename == "float"
    want = tree.arrays(["n_clusters_peak_sequence", "entry"], library="np")
    out = tmp_path / "inferred.root"
    assert run_cli("infer", str(run), str(run / "sim.root"), "-o", str(out)) == 0
    got = uproot.open(out)["predictions"].arrays(
        ["n_clusters_peak_sequence", "entry"], library="np"
    )
    np.testing.assert_allclose(
        got["n_clusters_peak_sequence"][np.argsort(got["entry"])],
        want["n_clusters_peak_sequence"][np.argsort(want["entry"])],
        rtol=1e-5,
        atol=1e-4,
    )
