"""The uproot reader: chunking, conversions, truth, and a clear error for every bad input."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SAMPLES
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import expand_files, iter_batches
from ccframe.kernels.baseline import _baseline_rms, baseline_rms


def read_all(**kwargs):
    return list(iter_batches(DataConfig(**kwargs)))


def test_chunks_cover_entries_in_order(sim_file):
    batches = read_all(files=[str(sim_file)], chunk_size=70)
    assert [len(b) for b in batches] == [70, 70, 60]
    entries = np.concatenate([b.entry for b in batches])
    assert np.array_equal(entries, np.arange(200))
    ids = np.concatenate([np.asarray(b.truth.event_id) for b in batches])
    assert np.array_equal(ids, np.arange(200))
    assert all(b.waveforms.dtype == np.float32 and b.waveforms.shape[1] == 2400 for b in batches)
    assert batches[0].sampling_ghz == pytest.approx(1.2)


def test_max_events_stops_across_chunks_and_files(sim_file, tmp_path):
    batches = read_all(files=[str(sim_file)], chunk_size=64, max_events=150)
    assert [len(b) for b in batches] == [64, 64, 22]
    copy = tmp_path / "copy.root"
    copy.write_bytes(sim_file.read_bytes())
    both = read_all(files=[str(sim_file), str(copy), str(sim_file)], max_events=250)
    assert [(b.file, len(b)) for b in both] == [(str(sim_file), 200), (str(copy), 50)]


def test_baseline_and_rms_match_numpy(sim_file):
    batch = read_all(files=[str(sim_file)], baseline_window_ns=25.0)[0]
    window = batch.waveforms[:, :30].astype(np.float64)
    np.testing.assert_allclose(batch.baseline, window.mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(batch.rms, window.std(axis=1, ddof=1), rtol=1e-5)


def test_truth_auto_none_and_mapping(sim_file):
    auto = read_all(files=[str(sim_file)])[0].truth
    assert {"n_clusters", "electron_time_ns", "cluster_size", "momentum_gev"} <= set(auto.fields)
    assert read_all(files=[str(sim_file)], truth="none")[0].truth is None
    mapped = read_all(files=[str(sim_file)], truth={"n_clusters": "n_clusters"})[0].truth
    assert mapped.fields == ["n_clusters"]


def test_jagged_equals_fixed():
    fixed = read_all(files=[str(SAMPLES / "bad_nan.root")], on_bad_waveform="skip")[0]
    jagged = read_all(files=[str(SAMPLES / "jagged_ok.root")])[0]
    assert jagged.waveforms.shape == (6, 100)
    keep = [0, 1, 2, 4, 5]
    np.testing.assert_array_equal(jagged.waveforms[keep], fixed.waveforms)


def test_beam_test_conventions():
    data = dict(
        files=[str(SAMPLES / "beamtest_like.root")],
        tree="h",
        waveform_branch="ch0",
        sampling_ghz=1.2,
        scale=1000 / 65536,
        offset_mv=-500.0,
        truth="none",
    )
    negative = read_all(**data, polarity="negative")[0]
    assert np.abs(negative.baseline).max() < 1.0  # 1 mV noise over 30 samples: sigma 0.18
    amplitude = negative.waveforms.max(axis=1) - negative.baseline
    assert np.all(amplitude > 25) and np.all(amplitude < 35)
    assert np.argmax(negative.waveforms[0]) in range(300, 304)
    assert 0.5 < negative.rms.mean() < 1.5
    positive = read_all(**data, polarity="positive")[0]
    assert (positive.waveforms.min(axis=1) - positive.baseline < -25).all()


def test_glob_expansion(sim_file):
    assert expand_files([str(sim_file.parent / "*.root")]) == [str(sim_file)]


BAD = [
    ({"files": ["nowhere.root"]}, ["nowhere.root", "file not found"]),
    ({"files": ["/tmp/none*/x*.root"]}, ["no file matches"]),
    ({"files": [str(SAMPLES / "bad_not_root.root")]}, ["bad_not_root.root", "not a readable ROOT"]),
    ({"files": [str(SAMPLES / "bad_truncated.root")]}, ["bad_truncated.root"]),
    ({"files": [str(SAMPLES / "bad_nan.root")], "tree": "sym"}, ["no tree 'sym'", "'sim'"]),
    ({"files": [str(SAMPLES / "bad_missing_branch.root")]}, ["no branch 'waveform'", "wavefrom"]),
    ({"files": [str(SAMPLES / "bad_dtype.root")]}, ["one float per entry", "array of samples"]),
    ({"files": [str(SAMPLES / "bad_empty.root")]}, ["bad_empty.root", "empty"]),
    ({"files": [str(SAMPLES / "bad_nan.root")]}, ["entry 3", "NaN", "on_bad_waveform"]),
    ({"files": [str(SAMPLES / "jagged_unequal.root")]}, ["entry 4", "90 samples"]),
    ({"files": [str(SAMPLES / "short_waveform.root")]}, ["10 samples", "baseline window"]),
    (
        {"files": [str(SAMPLES / "beamtest_like.root")], "tree": "h", "waveform_branch": "ch0"},
        ["sampling rate", "data.sampling_ghz"],
    ),
    (
        {"files": [str(SAMPLES / "bad_nan.root")], "truth": {"n_clusters": "nclusters"}},
        ["no branch 'nclusters'", "data.truth"],
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[e[0] for _, e in BAD])
def test_bad_input_is_one_clear_error(data, expected):
    with pytest.raises(InputError) as info:
        read_all(**data)
    message = str(info.value)
    assert "\n" not in message
    for text in expected:
        assert text in message


def test_nan_entries_skipped_when_asked():
    batch = read_all(files=[str(SAMPLES / "bad_nan.root")], on_bad_waveform="skip")[0]
    assert list(batch.entry) == [0, 1, 2, 4, 5]
    assert np.isfinite(batch.waveforms).all()


@given(
    waves=arrays(
        np.float32,
        st.tuples(st.integers(0, 5), st.integers(1, 40)),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    data=st.data(),
)
def test_baseline_rms_property(waves, data):
    n = data.draw(st.integers(1, waves.shape[1]))
    base, rms = baseline_rms(waves, n)
    window = waves[:, :n].astype(np.float64)
    np.testing.assert_allclose(base, window.mean(axis=1), rtol=1e-5, atol=1e-3)
    ref = window.std(axis=1, ddof=1) if n > 1 else np.zeros(len(waves))
    np.testing.assert_allclose(rms, ref, rtol=1e-4, atol=1e-2)
    b2, r2 = np.empty_like(base), np.empty_like(rms)
    _baseline_rms.py_func(waves, n, b2, r2)
    np.testing.assert_allclose(b2, base, rtol=1e-5, atol=1e-3)


def test_baseline_rms_rejects_bad_window():
    with pytest.raises(ValueError, match="does not fit"):
        baseline_rms(np.zeros((2, 5), np.float32), 6)
