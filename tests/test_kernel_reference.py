"""Every waveform kernel against a slow, obviously correct reference, through `.py_func`, and
with hypothesis on edge cases (empty, constant, noise, edge pulses, saturation, NaN)."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccframe.kernels import clusterize as clusterize_mod
from ccframe.kernels import matching, peaks, timelist, windows
from ccframe.kernels.baseline import baseline_rms
from ccframe.kernels.config import (
    CandidateConfig,
    ClusterizeConfig,
    D2Config,
    DerivConfig,
    MatchConfig,
    TimeListConfig,
    WindowConfig,
)
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.generator import Simulator


@pytest.fixture(scope="module")
def sim():
    batch = Simulator(SimulateConfig(), 21).generate(0, 60)
    base, rms = baseline_rms(batch.waveform, 30)
    return batch, base, rms


# ---- slow references -------------------------------------------------------------------


def candidates_ref(w, b, r, cfg):
    a = w.astype(np.float64) - b
    return [
        k
        for k in range(1, len(w) - 1)
        if a[k] > a[k - 1]
        and a[k] >= a[k + 1]
        and a[k] > cfg.min_amplitude_rms * r
        and a[k - 1] + a[k + 1] - 2 * a[k] <= -cfg.min_curvature_rms * r
    ]


def deriv_ref(w, b, r, dt, cfg):
    w = w.astype(np.float64)
    n = len(w)
    a = w - b
    d1 = np.zeros(n)
    d1[1:-1] = (w[2:] - w[:-2]) / (2 * dt)
    d2 = np.zeros(n)
    d2[2:-2] = (d1[3:-1] - d1[1:-3]) / (2 * dt)
    s1, s2 = r / (math.sqrt(2) * dt), r / (2 * dt * dt)
    ok = np.zeros(n, dtype=bool)
    k = np.arange(2, n - 2)
    ok[k] = (
        (a[k] > cfg.n1 * r)
        & (a[k] - (a[k - 1] + a[k + 1]) / 2 > cfg.n2 * r)
        & (
            (np.abs(d1[k]) < 2 * cfg.n3 * s1)
            | (d1[k - 1] > cfg.n3 * s1)
            | (d1[k + 1] < -cfg.n3 * s1)
        )
        & (d2[k] < -cfg.n4 * s2)
    )
    out, i = [], 0
    while i < n:  # runs of accepted samples -> one peak at the run's maximum
        if ok[i]:
            j = i
            while j + 1 < n and ok[j + 1]:
                j += 1
            out.append(i + int(np.argmax(a[i : j + 1])))
            i = j + 1
        else:
            i += 1
    return out


def d2_ref(w, b, r, cfg):
    w = w.astype(np.float64)
    a = w - b
    d1 = np.diff(w)
    d1 = np.where((d1 > 0) & (a[:-1] >= cfg.t1_rms * r), d1, 0.0)
    d2 = np.diff(d1)
    out, acc, emitted = [], 0.0, False
    for k, v in enumerate(d2):
        if v > 0:
            acc += v
            if acc > cfg.t2_rms * r and not emitted:
                emitted = True
                m = k + 1
                while m < len(w) - 1 and w[m + 1] > w[m]:
                    m += 1
                if not out or out[-1] != m:
                    out.append(m)
        else:
            acc, emitted = 0.0, False
    return out


def windows_ref(w, b, scale, pos, cfg):
    n = len(w)
    rows = []
    for p in pos:
        idx = np.arange(p - cfg.before, p + cfg.after + 1)
        vals = (w[np.clip(idx, 0, n - 1)] - b).astype(np.float64)
        if cfg.edge == "zero":
            vals[(idx < 0) | (idx >= n)] = 0.0
        rows.append(vals / scale)
    return np.array(rows).reshape(-1, cfg.before + cfg.after + 1, 1)


def match_ref(p, e, tol):
    pairs = sorted(
        (abs(pj - ek), j, k)
        for j, pj in enumerate(p)
        for k, ek in enumerate(e)
        if abs(pj - ek) <= tol
    )
    peak, used = [-1] * len(p), set()
    for _, j, k in pairs:
        if peak[j] < 0 and k not in used:
            peak[j] = k
            used.add(k)
    return peak, [k in used for k in range(len(e))]


def clusterize_ref(t, a, c):
    idx, n, th, ah = [], 0, 0.0, 0.0
    for tj, aj in zip(t, a, strict=True):
        if n and abs(tj - th) < c * math.sqrt(max(tj, 0.0)):
            if aj > ah:
                th, ah = tj, aj
        else:
            n, th, ah = n + 1, tj, aj
        idx.append(n - 1)
    return idx, n


# ---- against the references on simulated waveforms -------------------------------------

FINDERS = [
    (
        "candidates",
        lambda w, b, r: peaks.find_candidates(w, b, r, CandidateConfig()),
        lambda w, b, r: candidates_ref(w, b, r, CandidateConfig()),
    ),
    (
        "candidates-curv",
        lambda w, b, r: peaks.find_candidates(
            w, b, r, CandidateConfig(min_amplitude_rms=2, min_curvature_rms=1.5)
        ),
        lambda w, b, r: candidates_ref(
            w, b, r, CandidateConfig(min_amplitude_rms=2, min_curvature_rms=1.5)
        ),
    ),
    (
        "deriv",
        lambda w, b, r: peaks.find_deriv(w, b, r, 1.2, DerivConfig()),
        lambda w, b, r: deriv_ref(w, b, r, 1 / 1.2, DerivConfig()),
    ),
    (
        "deriv-data",
        lambda w, b, r: peaks.find_deriv(w, b, r, 1.2, DerivConfig(n1=8, n2=1.1, n3=0.1, n4=0.1)),
        lambda w, b, r: deriv_ref(w, b, r, 1 / 1.2, DerivConfig(n1=8, n2=1.1, n3=0.1, n4=0.1)),
    ),
    (
        "d2",
        lambda w, b, r: peaks.find_d2(w, b, r, D2Config()),
        lambda w, b, r: d2_ref(w, b, r, D2Config()),
    ),
]


@pytest.mark.parametrize(("name", "fast", "ref"), FINDERS, ids=[f[0] for f in FINDERS])
def test_peak_finders_match_reference(sim, name, fast, ref):
    batch, base, rms = sim
    found = fast(batch.waveform, base, rms)
    assert len(found) == len(batch)
    for i in range(len(batch)):
        expected = ref(batch.waveform[i], float(base[i]), float(rms[i]))
        assert found[i].tolist() == expected, (name, i)


def test_peak_kernels_py_func(sim):
    batch, base, rms = sim
    w = batch.waveform[:3]
    for kernel, params, wrapper in [
        (
            peaks._candidates,
            (3.0, 0.0),
            lambda: peaks.find_candidates(w, base, rms, CandidateConfig()),
        ),
        (
            peaks._deriv,
            (1 / 1.2, 3.0, 1.0, 0.5, 0.5),
            lambda: peaks.find_deriv(w, base, rms, 1.2, DerivConfig()),
        ),
        (peaks._d2, (3.0, 1.5), lambda: peaks.find_d2(w, base, rms, D2Config())),
    ]:
        out = np.empty(3 * 1201, dtype=np.int32)
        counts = np.zeros(3, dtype=np.int64)
        total = kernel.py_func(w, base[:3], rms[:3], *params, out, counts)
        assert ak.to_list(ak.unflatten(out[:total], counts)) == ak.to_list(wrapper()[:3])


@pytest.mark.parametrize(
    "cfg",
    [
        WindowConfig(),
        WindowConfig(normalization="fixed", edge="zero"),
        WindowConfig(before=0, after=3, normalization="none"),
    ],
)
def test_windows_match_reference(sim, cfg):
    batch, base, rms = sim
    n = batch.waveform.shape[1]
    pos = ak.Array([[0, 1, 500, n - 1], [], [7, n - 2]] + [[100]] * (len(batch) - 3))
    got = windows.slice_windows(batch.waveform, base, rms, pos, cfg)
    scale = {"rms": rms, "fixed": np.full(len(batch), cfg.scale_mv), "none": np.ones(len(batch))}[
        cfg.normalization
    ]
    ref = np.concatenate(
        [
            windows_ref(batch.waveform[i], base[i], scale[i], pos[i].tolist(), cfg)
            for i in range(len(batch))
        ]
    )
    assert got.shape == (len(ref), cfg.before + cfg.after + 1, 1) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    out = np.empty_like(got)
    content = ak.to_numpy(ak.flatten(pos)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(ak.to_numpy(ak.num(pos)))])
    windows._windows.py_func(
        batch.waveform,
        base,
        scale.astype(np.float32),
        content,
        offsets,
        cfg.before,
        cfg.after,
        cfg.edge == "replicate",
        out,
    )
    np.testing.assert_allclose(out, got)


def test_matching_matches_reference(sim):
    batch, base, rms = sim
    found = peaks.find_deriv(batch.waveform, base, rms, 1.2, DerivConfig())
    cfg = MatchConfig()
    el = ak.unflatten(batch.electron_time_ns, batch.n_electrons)
    prim = ak.unflatten(batch.electron_primary, batch.n_electrons)
    expected = (el + 50.0 + cfg.delay_ns) * 1.2
    m = matching.match_peaks(found, expected, prim, cfg)
    for i in range(len(batch)):
        peak_ref, found_ref = match_ref(found[i].tolist(), expected[i].tolist(), 3.0)
        assert m.peak_electron[i].tolist() == peak_ref
        assert m.electron_found[i].tolist() == found_ref
        labels = [0 if k < 0 else (1 if prim[i][k] else 2) for k in peak_ref]
        assert m.peak_label[i].tolist() == labels


@given(
    p=st.lists(st.integers(0, 60), max_size=8, unique=True).map(sorted),
    e=st.lists(st.floats(0, 60, allow_nan=False), max_size=8),
)
def test_matching_property(p, e):
    pk, ek = np.array(p, np.float64), np.array(e, np.float64)
    po, eo = np.array([0, len(p)]), np.array([0, len(e)])
    out, found = np.empty(len(p), np.int64), np.empty(len(e), np.bool_)
    matching._match.py_func(pk, po, ek, eo, 3.0, out, found)
    ref_peak, ref_found = match_ref(p, e, 3.0)
    assert out.tolist() == ref_peak
    assert found.tolist() == ref_found
    assert len({k for k in out if k >= 0}) == sum(found)  # one to one


def test_time_list_matches_reference():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 40, 50)
    times = rng.uniform(-10, 2010, counts.sum())
    cfg = TimeListConfig()
    got = timelist.encode_time_list(ak.unflatten(times, counts), 2000.0, cfg)
    ref = np.zeros((50, 1024, 1), np.float32)
    rows = np.repeat(np.arange(50), counts)
    np.add.at(ref, (rows, timelist.time_bin(times, 2000.0, 1024), 0), 1.0)
    np.testing.assert_array_equal(got, ref)
    assert got.sum() == counts.sum()
    again = timelist.encode_time_list(ak.unflatten(times, counts), 2000.0, cfg, out=got)
    assert again is got and np.array_equal(again, ref)  # a reused buffer is cleared first
    out = np.empty_like(ref)
    timelist._encode.py_func(times, np.concatenate([[0], np.cumsum(counts)]), 1024 / 2000.0, out)
    np.testing.assert_array_equal(out, ref)


def test_time_list_units_at_other_sampling_rates():
    # 1.5 GHz, 1024 samples: sample 1023 lies at 682 ns, the last bin.
    window = 1024 / 1.5
    t = ak.Array([[0.0, 1023 / 1.5, window / 2]])
    enc = timelist.encode_time_list(t, window, TimeListConfig())
    assert enc[0, 0, 0] == 1 and enc[0, 1023, 0] == 1 and enc[0, 512, 0] == 1


def test_clusterize_matches_reference():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 30, 40)
    t = np.sort(rng.uniform(-20, 1200, counts.sum()))
    a = rng.uniform(1, 30, counts.sum())
    jt, ja = ak.unflatten(t, counts), ak.unflatten(a, counts)
    jt = ak.sort(jt, axis=1)
    cfg = ClusterizeConfig(c_sqrt_ns=0.5)
    idx, n = clusterize_mod.clusterize(jt, ja, cfg)
    for i in range(40):
        ref_idx, ref_n = clusterize_ref(jt[i].tolist(), ja[i].tolist(), 0.5)
        assert idx[i].tolist() == ref_idx and n[i] == ref_n
    assert clusterize_mod.clusterize(jt, ja, ClusterizeConfig(c_sqrt_ns=0))[1].tolist() == list(
        counts
    )  # c = 0: every peak its own cluster


# ---- edge cases (hypothesis) -------------------------------------------------------------


@st.composite
def edge_waveforms(draw):
    n = draw(st.integers(3, 80))
    kind = draw(st.sampled_from(["constant", "noise", "edge-pulse", "saturated", "overlap", "nan"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = np.full(n, draw(st.floats(-5, 5)), dtype=np.float32)
    if kind != "constant":
        w += rng.normal(0, 1, n).astype(np.float32)
    if kind in ("edge-pulse", "saturated", "overlap", "nan"):
        for k in [0, n - 1, n // 2] + ([min(n // 2 + 2, n - 1)] if kind == "overlap" else []):
            w[k] += 30.0
    if kind == "saturated":
        w = np.minimum(w, np.float32(12.0))
    if kind == "nan":
        w[rng.integers(0, n)] = np.nan
    return w


@given(waves=st.lists(edge_waveforms(), min_size=0, max_size=4), data=st.data())
def test_finders_on_edge_cases(waves, data):
    n = data.draw(st.integers(3, 80)) if not waves else None
    shape = (len(waves), waves[0].size) if waves else (0, n)
    w = np.zeros(shape, np.float32)
    for i, row in enumerate(waves):
        w[i, : min(row.size, shape[1])] = row[: shape[1]]
    base = np.zeros(len(w), np.float32)
    rms = np.ones(len(w), np.float32)
    for name, fast, ref in FINDERS:
        found = fast(w, base, rms)
        assert len(found) == len(w)
        for i in range(len(w)):
            got = found[i].tolist()
            assert got == ref(w[i], 0.0, 1.0), name
            assert all(0 <= k < w.shape[1] and np.isfinite(w[i, k]) for k in got), name


def test_empty_inputs():
    empty = np.zeros((0, 100), np.float32)
    z = np.zeros(0, np.float32)
    assert len(peaks.find_deriv(empty, z, z, 1.2, DerivConfig())) == 0
    assert windows.slice_windows(empty, z, z, ak.Array([[]])[:0], WindowConfig()).shape == (
        0,
        15,
        1,
    )
    none = ak.Array([[], []])
    assert (
        timelist.encode_time_list(
            ak.values_astype(none, np.float64), 2000.0, TimeListConfig()
        ).sum()
        == 0
    )
    _, n = clusterize_mod.clusterize(
        ak.values_astype(none, np.float64), ak.values_astype(none, np.float64), ClusterizeConfig()
    )
    assert n.tolist() == [0, 0]
