"""Smearing a trained chain's test waveforms: each smearing on its own, and the command."""

from __future__ import annotations

import json
from dataclasses import replace

import awkward as ak
import numpy as np
import pytest
import uproot

from ccframe.cli import main
from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.kernels.jagged import to_jagged
from ccframe.kernels.matching import match_labelled
from ccframe.metrics.counting import count_metrics, json_ready
from ccframe.ml import evaluate, robustness
from ccframe.ml.dataset import TEST
from ccframe.ml.robustness import CACHE_BYTES, TestSplit, evaluate_setting, smear
from ccframe.reco.traditional import reconstruct, reference_peaks


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


@pytest.fixture(scope="module")
def batch(sim_file):
    return next(iter_batches(DataConfig(files=[str(sim_file)])))


def test_noise_scales_the_measured_rms(batch):
    out = smear(batch, "noise", 2.0, np.random.default_rng(1), 25.0)
    ratio = out.rms / batch.rms
    assert np.median(ratio) == pytest.approx(2.0, rel=0.06)
    assert out.truth is batch.truth and batch.waveforms is not out.waveforms


def test_gain_scales_the_signal_at_fixed_noise(batch):
    out = smear(batch, "gain", 0.5, np.random.default_rng(2), 25.0)
    assert np.median(out.rms / batch.rms) == pytest.approx(1.0, rel=0.06)
    peak_in = (batch.waveforms - batch.baseline[:, None]).max(axis=1)
    peak_out = (out.waveforms - out.baseline[:, None]).max(axis=1)
    big = peak_in > 30  # where the noise hardly moves the maximum
    assert np.median(peak_out[big] / peak_in[big]) == pytest.approx(0.5, rel=0.05)
    with pytest.raises(InputError, match=r"must be in \(0, 1\]"):
        smear(batch, "gain", 1.5, np.random.default_rng(2), 25.0)


def test_jitter_moves_waveform_and_truth_together(batch):
    out = smear(batch, "jitter_ns", 5.0, np.random.default_rng(3), 25.0)
    shift_ns = np.asarray(out.truth.pretrigger_ns - batch.truth.pretrigger_ns)
    shift = np.rint(shift_ns * batch.sampling_ghz).astype(int)
    assert shift.std() > 3  # about 5 ns x 1.2 GHz
    for i in range(0, len(batch), 37):
        assert np.array_equal(out.waveforms[i], np.roll(batch.waveforms[i], shift[i]))
    same = smear(replace(batch), "jitter_ns", 0.0, np.random.default_rng(3), 25.0)
    assert np.array_equal(same.waveforms, batch.waveforms)


@pytest.mark.slow  # ~10-15 s, plus the session's `trained` run
def test_robustness_command_and_its_plots(trained_copy, capsys):
    run = trained_copy
    code = run_cli(
        "robustness", str(run), "--noise", "1", "--noise", "1.5", "--gain", "0.7",
        "--jitter-ns", "2", "--max-events", "40",
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = json.loads((run / "robustness.json").read_text())
    assert [(r["smearing"], r["value"]) for r in rows] == [
        ("noise", 1.0), ("noise", 1.5), ("gain", 0.7), ("jitter_ns", 2.0)
    ]  # fmt: skip
    assert all(r["waveforms"] == 40 for r in rows)
    assert rows[1]["auc"] < rows[0]["auc"] + 0.02  # more noise does not help
    assert (run / "robustness.csv").read_text().count("\n") == 5
    assert run_cli("plot", str(run), "--events", "0", "--format", "png") == 0
    names = {p.stem for p in (run / "plots").glob("robustness_*.png")}
    assert "robustness_noise_relative_resolution_core" in names


def test_robustness_refuses_bad_factors_and_writes_nothing(trained_copy, capsys):
    assert run_cli("robustness", str(trained_copy), "--noise", "0.5") == 2
    assert "noise_factors must be >= 1" in capsys.readouterr().err
    assert not list(trained_copy.glob("robustness.*"))


@pytest.fixture(scope="module")
def run_split(trained):
    """The `trained` run's artifacts, chain, traditional settings and test-split batches of
    at most 64 waveforms."""
    from ccframe.ml.chain import Chain
    from ccframe.reco.stage import traditional_of_run
    from ccframe.runfolder.artifacts import Artifacts

    artifacts = Artifacts.of_run(trained)
    artifacts.steering.data = artifacts.steering.data.model_copy(update={"chunk_size": 64})
    batches = list(robustness.test_split_batches(artifacts, 3000))
    return artifacts, Chain.load(trained), traditional_of_run(artifacts), batches


def in_memory_setting(chain, traditional, match, batches):
    """The metrics of one smearing value as robustness computed them before it streamed:
    every candidate's score, label and cluster concatenated."""
    scores, labels, clusters, accept, counts, n_ml, n_trad, n_true = ([] for _ in range(8))
    electrons = 0
    for batch in batches:
        out = chain.apply(batch)
        counts.append(np.diff(out["offsets"]))
        reference, reference_label = reference_peaks(batch, match)
        m = match_labelled(to_jagged(out["position"], counts[-1]), reference, reference_label,
                           match)  # fmt: skip
        labels.append(ak.to_numpy(ak.flatten(m.peak_label)))
        clusters.append(m.peak_cluster(batch.truth.electron_cluster))
        scores.append(out["score"])
        accept.append(out["accept"])
        electrons += int(ak.sum(reference_label > 0))
        n_ml.append(out["n_clusters_ml"])
        n_trad.append(reconstruct(batch, traditional.finder, traditional.clusterize).n_clusters)
        n_true.append(ak.to_numpy(batch.truth.n_clusters))
    s, lab, true = np.concatenate(scores), np.concatenate(labels), np.concatenate(n_true)
    peaks = evaluate.end_to_end(np.concatenate(accept), lab, np.concatenate(clusters),
                                np.concatenate(counts), electrons, true)  # fmt: skip
    return {
        "waveforms": int(true.size),
        "auc": evaluate.classification(s, lab > 0, chain.settings.threshold)["auc"],
        "peak_efficiency": peaks["efficiency"],
        "peak_purity": peaks["purity"],
        "cluster_efficiency": peaks["cluster_efficiency"],
        "ml": count_metrics(np.concatenate(n_ml), true),
        "traditional": count_metrics(np.concatenate(n_trad).astype(float), true),
    }


@pytest.mark.slow  # the session's `trained` run
def test_streamed_setting_metrics_equal_the_in_memory_ones(run_split):
    artifacts, chain, traditional, batches = run_split
    match = artifacts.steering.ml.dataset.match
    assert len(batches) > 1
    got = evaluate_setting(chain, traditional, match, iter(batches))
    want = in_memory_setting(chain, traditional, match, batches)
    assert got.pop("auc") == pytest.approx(want.pop("auc"), abs=1e-5)  # binned AUC
    assert json_ready(got) == json_ready(want)


@pytest.mark.slow  # the session's `trained` run
def test_test_split_is_the_runs_test_waveforms_kept_or_read_again(run_split):
    artifacts, _, _, batches = run_split
    split, entries = [], []
    pred = uproot.open(artifacts.predictions)["predictions"].arrays(library="np")
    test = pred["entry"][pred["split"] == TEST]
    assert np.array_equal(np.concatenate([b.entry for b in batches]), test)
    for cache_bytes in (CACHE_BYTES, 0):
        split = TestSplit(artifacts, 3000, cache_bytes)
        first, second = list(split), list(split)
        entries = [np.concatenate([b.entry for b in run]) for run in (first, second)]
        assert np.array_equal(entries[0], test) and np.array_equal(entries[1], test)
        kept = all(a is b for a, b in zip(first, second, strict=True))
        assert kept == (cache_bytes > 0)
    assert sum(len(b) for b in TestSplit(artifacts, 5)) == 5
