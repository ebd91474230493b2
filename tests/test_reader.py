"""The uproot reader: chunking, conversions, truth, and a clear error for every bad input."""

from __future__ import annotations

import os

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import REPO, SAMPLES
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from samples import make_samples

from ccframe.errors import InputError
from ccframe.io.config import TRUTH_CLUSTER, TRUTH_ELECTRON, TRUTH_EVENT, DataConfig
from ccframe.io.reader import BasketRows, expand_files, iter_batches
from ccframe.kernels.baseline import _baseline_rms, baseline_rms
from ccframe.kernels.checksum import row_checksums
from ccframe.kernels.convert import Converted, convert_rows

N_SIM = 200  # entries of the session's sim_file


def read_all(**kwargs):
    return list(iter_batches(DataConfig(**kwargs)))


def joined(batches, name):
    return np.concatenate([getattr(b, name) for b in batches])


def test_test_environment_keeps_caches_out_of_the_source_tree():
    import numba
    from hypothesis.configuration import storage_directory

    numba_cache = os.path.realpath(numba.config.CACHE_DIR)
    assert numba_cache == os.path.realpath(os.environ["NUMBA_CACHE_DIR"])
    hypothesis_cache = os.path.realpath(storage_directory(intent_to_write=False).path)
    for cache in (numba_cache, hypothesis_cache):
        assert not cache.startswith(str(REPO) + os.sep), cache
    assert settings().database is None


@pytest.mark.parametrize("chunk_size", [7, 64, 199])
def test_chunked_read_equals_one_chunk(sim_file, chunk_size):
    whole = read_all(files=[str(sim_file)], chunk_size=N_SIM)
    assert len(whole) == 1
    batches = read_all(files=[str(sim_file)], chunk_size=chunk_size)
    sizes = [len(b) for b in batches]
    assert sizes == [chunk_size] * (N_SIM // chunk_size) + [N_SIM % chunk_size]
    assert np.array_equal(joined(batches, "entry"), np.arange(N_SIM))
    for name in ("waveforms", "baseline", "rms"):
        assert np.array_equal(joined(batches, name), getattr(whole[0], name)), name
    ids = np.concatenate([ak.to_numpy(b.truth.event_id) for b in batches])
    assert np.array_equal(ids, np.arange(N_SIM))  # truth stays aligned with the entries


def test_waveforms_are_float32_rows(sim_file):
    batch = read_all(files=[str(sim_file)])[0]
    assert batch.waveforms.dtype == np.float32
    assert batch.waveforms.shape == (N_SIM, 2400) and batch.n_samples == 2400
    assert batch.waveforms.flags.c_contiguous
    assert batch.baseline.dtype == batch.rms.dtype == np.float32
    assert batch.entry.dtype == np.int64
    assert batch.sampling_ghz == pytest.approx(1.2)
    assert batch.file == str(sim_file)
    raw = uproot.open(sim_file)["sim"]["waveform"].array(library="np")
    assert np.array_equal(batch.waveforms, raw)  # scale 1, offset 0, positive: unchanged


def test_max_events_stops_across_chunks_and_files(sim_file, tmp_path):
    batches = read_all(files=[str(sim_file)], chunk_size=64, max_events=150)
    assert [len(b) for b in batches] == [64, 64, 22]
    assert np.array_equal(joined(batches, "entry"), np.arange(150))
    copy = tmp_path / "copy.root"
    copy.write_bytes(sim_file.read_bytes())
    both = read_all(files=[str(sim_file), str(copy)], chunk_size=64, max_events=250)
    assert [(b.file, len(b)) for b in both] == [
        *[(str(sim_file), n) for n in (64, 64, 64, 8)],
        (str(copy), 50),
    ]
    assert np.array_equal(both[-1].entry, np.arange(50))  # entries count from 0 in each file


@pytest.mark.parametrize(("window_ns", "n"), [(25.0, 30), (10.0, 12), (0.5, 1)])
def test_baseline_and_rms_match_numpy(sim_file, window_ns, n):
    batch = read_all(files=[str(sim_file)], baseline_window_ns=window_ns)[0]
    window = batch.waveforms[:, :n].astype(np.float64)
    np.testing.assert_allclose(batch.baseline, window.mean(axis=1), rtol=1e-6, atol=1e-5)
    expected = window.std(axis=1, ddof=1) if n > 1 else np.zeros(len(window))
    np.testing.assert_allclose(batch.rms, expected, rtol=1e-5, atol=1e-6)


def test_truth_auto_none_and_mapping(sim_file):
    auto = read_all(files=[str(sim_file)])[0].truth
    assert set(auto.fields) == set(TRUTH_EVENT + TRUTH_CLUSTER + TRUTH_ELECTRON)  # all simulated
    n_electrons, n_clusters = ak.to_numpy(auto.n_electrons), ak.to_numpy(auto.n_clusters)
    assert np.array_equal(ak.to_numpy(ak.num(auto.electron_time_ns)), n_electrons)
    assert np.array_equal(ak.to_numpy(ak.num(auto.cluster_size)), n_clusters)
    assert read_all(files=[str(sim_file)], truth="none")[0].truth is None
    # An explicit mapping reads the named branch under the logical name, and nothing else.
    mapped = read_all(files=[str(sim_file)], truth={"n_clusters": "n_electrons"})[0].truth
    assert mapped.fields == ["n_clusters"]
    assert np.array_equal(ak.to_numpy(mapped.n_clusters), n_electrons)


def test_jagged_reads_like_fixed():
    source = make_samples.waves()
    jagged = read_all(files=[str(SAMPLES / "jagged_ok.root")])[0]
    assert jagged.waveforms.dtype == np.float32
    assert np.array_equal(jagged.waveforms, source)
    fixed = read_all(files=[str(SAMPLES / "bad_nan.root")], on_bad_waveform="skip")[0]
    keep = [0, 1, 2, 4, 5]
    assert np.array_equal(fixed.waveforms, jagged.waveforms[keep])
    assert np.array_equal(fixed.baseline, jagged.baseline[keep])


BEAM = {
    "files": [str(SAMPLES / "beamtest_like.root")],
    "tree": "h",
    "waveform_branch": "ch0",
    "sampling_ghz": 1.2,
    "scale": 1000 / 65536,
    "offset_mv": -500.0,
    "truth": "none",
}


def test_beam_test_conventions():
    batch = read_all(**BEAM, polarity="negative")[0]
    adc = uproot.open(SAMPLES / "beamtest_like.root")["h"]["ch0"].array(library="np")
    assert adc.dtype == np.uint16 and adc.shape == (20, 1024)
    expected_mv = -(adc.astype(np.float64) * 1000 / 65536 - 500)
    np.testing.assert_allclose(batch.waveforms, expected_mv, atol=1e-3)
    assert batch.sampling_ghz == 1.2 and batch.truth is None
    assert np.abs(batch.baseline).max() < 1.0  # 1 mV noise over 30 samples: sigma 0.18 mV
    assert 0.7 < batch.rms.mean() < 1.3
    amplitude = batch.waveforms.max(axis=1) - batch.baseline
    assert np.all((amplitude > 25) & (amplitude < 36))  # 30 mV pulses, made positive
    assert set(np.argmax(batch.waveforms, axis=1)) <= set(range(300, 304))
    positive = read_all(**BEAM, polarity="positive")[0]
    assert np.all(positive.waveforms.min(axis=1) - positive.baseline < -25)


def test_glob_expansion_sorted_and_unique(sim_file, tmp_path):
    for name in ("b.root", "a.root"):
        (tmp_path / name).write_bytes(b"")
    pattern = str(tmp_path / "*.root")
    a, b = str(tmp_path / "a.root"), str(tmp_path / "b.root")
    assert expand_files([pattern, b, str(sim_file)]) == [a, b, str(sim_file)]


# (data overrides, texts the message must hold besides the file's name)
BAD = {
    "missing file": ({"files": [str(SAMPLES / "nowhere.root")]}, ["file not found"]),
    "glob without match": ({"files": [str(SAMPLES / "nomatch*.root")]}, ["no file matches"]),
    "not root": (
        {"files": [str(SAMPLES / "bad_not_root.root")]},
        ["not a readable ROOT file", "first four bytes"],
    ),
    "truncated": (
        {"files": [str(SAMPLES / "bad_truncated.root")]},
        ["truncated ROOT file", "of 97116 bytes"],
    ),
    "missing tree": (
        {"files": [str(SAMPLES / "bad_nan.root")], "tree": "sym"},
        ["no tree 'sym'", "did you mean 'sim'", "trees here: sim"],
    ),
    "missing branch": (
        {"files": [str(SAMPLES / "bad_missing_branch.root")]},
        ["no branch 'waveform'", "data.waveform_branch", "did you mean 'wavefrom'"],
    ),
    "branch typo": (
        {**BEAM, "waveform_branch": "cho"},
        ["tree 'h' has no branch 'cho'", "did you mean 'ch0'"],
    ),
    "string branch": (
        {"files": [str(SAMPLES / "bad_dtype_string.root")]},
        ["branch 'waveform' has type char*", "expected an array of numbers per entry"],
    ),
    "scalar per entry": (
        {"files": [str(SAMPLES / "bad_dtype.root")]},
        ["branch 'waveform' holds one float per entry", "expected an array of samples"],
    ),
    "shorter than baseline": (
        {"files": [str(SAMPLES / "short_waveform.root")]},
        ["10 samples per entry", "30 of the baseline window", "data.baseline_window_ns"],
    ),
    "jagged unequal": (
        {"files": [str(SAMPLES / "jagged_unequal.root")]},
        ["entry 4 has 90 samples", "entry 0 has 100", "equal length"],
    ),
    "empty tree": ({"files": [str(SAMPLES / "bad_empty.root")]}, ["tree 'sim' is empty"]),
    "nan": (
        {"files": [str(SAMPLES / "bad_nan.root")], "chunk_size": 2},
        ["entry 3 of tree 'sim'", "NaN", "on_bad_waveform: skip"],
    ),
    "no sampling rate": (
        {k: v for k, v in BEAM.items() if k != "sampling_ghz"},
        ["no branch 'sampling_ghz'", "sampling rate", "set data.sampling_ghz"],
    ),
    "truth branch missing": (
        {"files": [str(SAMPLES / "bad_nan.root")], "truth": {"n_clusters": "nclusters"}},
        ["no branch 'nclusters'", "truth 'n_clusters' in data.truth"],
    ),
}


@pytest.mark.parametrize(("data", "expected"), BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_clear_error(data, expected):
    with pytest.raises(InputError) as info:
        read_all(**data)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(data["files"][0] + ": "), message
    for text in expected:
        assert text in message, message


@pytest.mark.parametrize("chunk_size", [2, 100])
def test_nan_entries_skipped_when_asked(chunk_size):
    batches = read_all(
        files=[str(SAMPLES / "bad_nan.root")], on_bad_waveform="skip", chunk_size=chunk_size
    )
    keep = [0, 1, 2, 4, 5]
    assert list(joined(batches, "entry")) == keep
    assert np.array_equal(joined(batches, "waveforms"), make_samples.waves()[keep])


def test_inf_is_bad_and_skip_keeps_truth_aligned(tmp_path):
    w = make_samples.waves()
    w[1, 7] = np.inf
    w[2, 9] = -np.inf
    path = tmp_path / "inf.root"
    ids = np.arange(100, 106, dtype=np.int64)
    make_samples.tree(path, {"waveform": w, "sampling_ghz": make_samples.rate(), "event_id": ids})
    with pytest.raises(InputError, match=r"entry 1 of tree 'sim' has NaN or inf samples \(2 "):
        read_all(files=[str(path)])
    (batch,) = read_all(files=[str(path)], on_bad_waveform="skip")
    assert list(batch.entry) == [0, 3, 4, 5]
    assert list(batch.truth.event_id) == [100, 103, 104, 105]


def test_all_bad_entries_give_no_batch(tmp_path):
    path = tmp_path / "nan.root"
    make_samples.tree(path, {"waveform": np.full((3, 50), np.nan, np.float32)})
    assert read_all(files=[str(path)], sampling_ghz=1.0, on_bad_waveform="skip") == []


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    if x.dtype == object:
        return len(x) == len(y) and all(
            _same(np.asarray(a), np.asarray(b)) for a, b in zip(x, y, strict=True)
        )
    return np.array_equal(x, y, equal_nan=x.dtype.kind in "fc")


def test_samples_are_small_and_made_by_the_script(tmp_path):
    committed = sorted(p.name for p in SAMPLES.glob("*.root"))
    assert committed == sorted(make_samples.SAMPLES)
    for name in committed:
        assert (SAMPLES / name).stat().st_size < 50_000, name
    make_samples.make(tmp_path)
    for name in committed:
        new, old = tmp_path / name, SAMPLES / name
        if name in ("bad_truncated.root", "bad_not_root.root"):
            assert new.stat().st_size == old.stat().st_size, name
            assert new.read_bytes()[:4] == old.read_bytes()[:4], name
            continue
        a, b = uproot.open(new), uproot.open(old)
        assert a.keys() == b.keys(), name
        for tree in a.keys(cycle=False):
            assert a[tree].typenames() == b[tree].typenames(), name
            for branch in a[tree].keys(recursive=False):
                x, y = (f[tree][branch].array(library="np") for f in (a, b))
                assert _same(x, y), f"{name}: {tree}/{branch}"


@settings(max_examples=150)
@given(
    waves=arrays(
        np.float32,
        st.tuples(st.integers(0, 5), st.integers(1, 40)),
        elements=st.floats(-1e3, 1e3, width=32),
    ),
    data=st.data(),
)
def test_baseline_rms_property(waves, data):
    n = data.draw(st.integers(1, waves.shape[1]), label="window")
    base, rms = baseline_rms(waves, n)
    assert base.dtype == rms.dtype == np.float32 and base.shape == rms.shape == (len(waves),)
    window = waves[:, :n].astype(np.float64)
    np.testing.assert_allclose(base, window.mean(axis=1), rtol=1e-5, atol=1e-3)
    ref = window.std(axis=1, ddof=1) if n > 1 else np.zeros(len(waves))
    np.testing.assert_allclose(rms, ref, rtol=1e-4, atol=1e-2)
    assert np.all(rms >= 0)
    # The same body, interpreted (coverage sees it; no fastmath reassociation).
    b2, r2 = np.empty_like(base), np.empty_like(rms)
    _baseline_rms.py_func(waves, n, b2, r2)
    np.testing.assert_allclose(b2, window.mean(axis=1), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(r2, ref, rtol=1e-4, atol=1e-2)


def test_baseline_rms_constant_and_noncontiguous():
    waves = np.full((3, 20), 7.25, np.float32)
    base, rms = baseline_rms(waves, 20)
    assert np.array_equal(base, np.full(3, 7.25, np.float32)) and np.array_equal(rms, np.zeros(3))
    strided = np.arange(120, dtype=np.float64).reshape(3, 40)[:, ::2]  # float64, not contiguous
    base, _ = baseline_rms(strided, 4)
    np.testing.assert_allclose(base, strided[:, :4].mean(axis=1))


@pytest.mark.parametrize(
    ("shape", "n", "match"),
    [((2, 5), 6, "does not fit"), ((2, 5), 0, "does not fit"), ((5,), 2, "2D")],
)
def test_baseline_rms_rejects_bad_input(shape, n, match):
    with pytest.raises(ValueError, match=match):
        baseline_rms(np.zeros(shape, np.float32), n)


def test_length_change_between_chunks_is_refused(tmp_path):
    import awkward as ak
    import uproot

    rows = [np.zeros(100, np.float32)] * 4 + [np.zeros(90, np.float32)] * 4
    path = tmp_path / "drift.root"
    with uproot.recreate(path) as f:
        f.mktree("sim", {"waveform": ak.Array(rows).type, "sampling_ghz": np.float64})
        f["sim"].extend({"waveform": ak.Array(rows), "sampling_ghz": np.full(8, 1.2)})
    with pytest.raises(InputError, match="entry 4 has 90 samples, earlier entries 100"):
        read_all(files=[str(path)], chunk_size=4)


def test_several_arrays_per_entry_are_refused(tmp_path):
    import uproot

    path = tmp_path / "multi.root"
    with uproot.recreate(path) as f:
        f.mktree("sim", {"waveform": (np.float32, (3, 100)), "sampling_ghz": np.float64})
        f["sim"].extend(
            {"waveform": np.zeros((2, 3, 100), np.float32), "sampling_ghz": np.full(2, 1.2)}
        )
    with pytest.raises(InputError, match="several arrays per entry"):
        read_all(files=[str(path)])


def _numpy_conversion(raw, n, scale, offset, negative):
    """The reader's conversion done with NumPy, step by step (the reference)."""
    waves = raw.astype(np.float32)
    waves *= np.float32(scale)
    waves += np.float32(offset)
    if negative:
        np.negative(waves, out=waves)
    finite = np.isfinite(waves).all(axis=1)
    return waves, finite, *baseline_rms(np.nan_to_num(waves), n)


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<i2", ">i2", ">u2", "<f8", ">f8"])
@pytest.mark.parametrize(("scale", "offset", "negative"), [(1.0, 0.0, False), (0.3, -7.5, True)])
def test_convert_rows_matches_numpy(dtype, scale, offset, negative):
    rng = np.random.default_rng(3)
    raw = (rng.normal(0, 300, (11, 64)) + 1000).astype(dtype)  # 11: not whole groups of 4 rows
    if raw.dtype.kind == "f":
        raw[2, 40], raw[5, 0], raw[9, 63] = np.nan, np.inf, -np.inf
    native = raw.astype(raw.dtype.newbyteorder("="))
    out = convert_rows(raw, 20, scale, offset, negative, checksums=True)
    waves, finite, base, rms = _numpy_conversion(native, 20, scale, offset, negative)
    assert out.waves.dtype == np.float32 and out.waves.flags.c_contiguous
    assert np.array_equal(out.waves, waves, equal_nan=True)  # the same rounding
    assert np.array_equal(out.finite, finite)
    assert np.array_equal(out.checksums, row_checksums(native))  # of the raw (native) rows
    ok = finite if raw.dtype.kind == "f" else slice(None)
    assert raw.dtype.kind != "f" or list(np.flatnonzero(~finite)) == [2, 5, 9]
    np.testing.assert_allclose(out.baseline[ok], base[ok], rtol=1e-6)
    np.testing.assert_allclose(out.rms[ok], rms[ok], rtol=1e-5)


def test_convert_rows_outputs_and_refusals():
    raw = np.random.default_rng(4).normal(0, 1, (9, 30)).astype(np.float32)
    expected = convert_rows(raw.copy(), 10, 2.0, 1.0, checksums=True)
    out = Converted.empty(9, 30, checksums=True)
    convert_rows(raw[:5].astype(">f4"), 10, 2.0, 1.0, checksums=True, out=out.rows(0, 5))
    convert_rows(raw[5:], 10, 2.0, 1.0, checksums=True, out=out.rows(5, 9))
    for name in ("waves", "baseline", "rms", "finite", "checksums"):
        assert np.array_equal(getattr(out, name), getattr(expected, name)), name
    mine = raw.copy()
    assert convert_rows(mine, 10, 2.0, overwrite=True).waves is mine  # converted in place
    assert np.array_equal(mine, raw * np.float32(2.0))
    fixed = raw.copy()
    fixed.flags.writeable = False
    assert convert_rows(fixed, 10, overwrite=True).waves is not fixed
    assert np.array_equal(convert_rows(raw, 0).waves, raw)  # no baseline window
    with pytest.raises(ValueError, match="not whole 32-bit words"):
        convert_rows(np.zeros((2, 5), ">i2"), 3, checksums=True)
    for bad, n, match in [((2, 5), 6, "does not fit"), ((5,), 2, "2D")]:
        with pytest.raises(ValueError, match=match):
            convert_rows(np.zeros(bad, np.float32), n)


@pytest.mark.parametrize("compression", [None, uproot.ZLIB(1)], ids=["stored", "zlib"])
@pytest.mark.parametrize("chunk_size", [5, 13, 100])
def test_fixed_branch_read_basket_by_basket(tmp_path, compression, chunk_size):
    rng = np.random.default_rng(5)
    adc = (2000 + rng.normal(0, 3, (40, 96))).astype(np.int16)  # compresses
    adc[17, 50] = 3000
    path = tmp_path / "adc.root"
    with uproot.recreate(path, compression=compression) as f:
        f.mktree("h", {"ch0": (np.int16, (96,)), "event_id": np.int64})
        for lo in range(0, 40, 7):  # baskets of 7 entries: chunks straddle them
            f["h"].extend({"ch0": adc[lo : lo + 7], "event_id": np.arange(lo, min(lo + 7, 40))})
    tree = uproot.open(path)["h"]
    rows = BasketRows.of(tree, tree["ch0"], str(path))
    assert rows is not None and rows.offsets == [0, 7, 14, 21, 28, 35, 40]
    assert (rows._mapped(0, 7 * 96 * 2) is not None) == (compression is None)
    assert np.array_equal(np.concatenate(rows.rows(3, 30)), adc[3:30])
    options = {"tree": "h", "waveform_branch": "ch0", "sampling_ghz": 1.2, "scale": 0.5}
    batches = read_all(files=[str(path)], chunk_size=chunk_size, polarity="negative",
                       offset_mv=-1000.0, truth={"event_id": "event_id"}, **options)  # fmt: skip
    waves, _, base, rms = _numpy_conversion(adc, 30, 0.5, -1000.0, True)  # 25 ns at 1.2 GHz
    assert np.array_equal(joined(batches, "waveforms"), waves)
    np.testing.assert_allclose(joined(batches, "baseline"), base, rtol=1e-6)
    np.testing.assert_allclose(joined(batches, "rms"), rms, rtol=1e-5)
    ids = np.concatenate([ak.to_numpy(b.truth.event_id) for b in batches])
    assert np.array_equal(ids, np.arange(40)) and np.array_equal(joined(batches, "entry"), ids)
