"""The waveform kernels three ways: against slow, obviously correct references on simulated
waveforms (identical outputs), through `.py_func` (so coverage sees the kernel bodies), and
with hypothesis on edge cases (empty, zero-length lists, constant, noise, pulses at the
first/last sample, saturated and overlapping pulses, NaN)."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ccframe.kernels import candidates, clusterize, d2, deriv, jagged, matching, timelist, windows
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

FS = 1.2  # GHz, the simulator's default
FEW = settings(max_examples=40, deadline=None, database=None)


@pytest.fixture(scope="module")
def sim():
    batch = Simulator(SimulateConfig(), 21).generate(0, 40)
    base, rms = baseline_rms(batch.waveform, 30)
    return batch, base, rms


def offsets_of(counts) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


# ---- slow references, written straight from the definitions ------------------------------


def candidates_ref(w, b, r, cfg: CandidateConfig) -> list[int]:
    x = [float(v) for v in w]  # raw samples as float64
    n = len(x)
    out = []
    for i in range(1, n - 1):
        a = x[i] - float(b)
        x_m2, x_p2 = x[max(i - 2, 0)], x[min(i + 2, n - 1)]  # edge-replicated
        d2s = (x_m2 - 2.0 * x[i] + x_p2) / 4.0
        if (
            x[i] > x[i - 1]
            and x[i] >= x[i + 1]
            and a > cfg.min_amplitude_rms * float(r)
            and -d2s > cfg.min_curvature_rms * float(r)
        ):
            out.append(i)
    return out


def deriv_ref(w, b, r, dt, cfg: DerivConfig) -> list[int]:
    a = w.astype(np.float64) - np.float64(b)
    r = float(r)
    n = a.size
    d1 = np.full(n, np.nan)
    d1[1:-1] = (a[2:] - a[:-2]) / (2 * dt)
    d2 = np.full(n, np.nan)
    d2[2:-2] = (d1[3:-1] - d1[1:-3]) / (2 * dt)
    s1, s2 = r / (math.sqrt(2) * dt), r / (2 * dt * dt)
    accepted = np.zeros(n, dtype=bool)
    for i in range(2, n - 2):
        accepted[i] = (
            a[i] > cfg.n1 * r
            and a[i] - (a[i - 1] + a[i + 1]) / 2 > cfg.n2 * r
            and (
                abs(d1[i]) < 2 * cfg.n3 * s1 or d1[i - 1] > cfg.n3 * s1 or d1[i + 1] < -cfg.n3 * s1
            )
            and d2[i] < -cfg.n4 * s2
        )
    out, i = [], 0
    while i < n:  # a run of accepted samples -> one peak at the run's first maximum
        if accepted[i]:
            j = i
            while j + 1 < n and accepted[j + 1]:
                j += 1
            out.append(i + int(np.argmax(a[i : j + 1])))
            i = j + 1
        else:
            i += 1
    return out


def d2_ref(w, b, r, cfg: D2Config) -> list[int]:
    a = w.astype(np.float64) - np.float64(b)
    diff = np.diff(a)
    d1 = np.where((diff > 0) & (a[:-1] >= cfg.t1_rms * float(r)), diff, 0.0)
    d2v = np.diff(d1)
    out, acc, emitted = [], 0.0, False
    for k, v in enumerate(d2v):
        if v > 0:
            acc += v
            if acc > cfg.t2_rms * float(r) and not emitted:
                emitted = True
                m = k + 1
                while m < a.size - 1 and a[m + 1] > a[m]:
                    m += 1
                if not out or out[-1] != m:
                    out.append(m)
        else:
            acc, emitted = 0.0, False
    return out


def windows_ref(w, b, scale, pos, cfg: WindowConfig) -> np.ndarray:
    n = len(w)
    rows = []
    for p in pos:
        vals = []
        for k in range(p - cfg.before, p + cfg.after + 1):
            if cfg.edge == "zero" and not 0 <= k < n:
                vals.append(0.0)
            else:
                v = float(w[min(max(k, 0), n - 1)])  # edge-replicated
                vals.append((v - float(b)) / float(scale))
        rows.append(vals)
    return np.array(rows, dtype=np.float32).reshape(-1, cfg.before + cfg.after + 1, 1)


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


def clusterize_ref(t, a, c, power=0.0, floor=0.0):
    idx, n, th, ah = [], 0, 0.0, 0.0
    for tj, aj in zip(t, a, strict=True):
        window = c * math.sqrt(max(tj, 0.0)) if not math.isnan(tj) else 0.0
        if power and aj > 0 and ah > 0:
            window *= (ah / aj) ** power
        if math.isnan(tj):
            idx.append(-1)
        elif n and abs(tj - th) < max(window, floor):
            if aj > ah:
                th, ah = tj, aj
            idx.append(n - 1)
        else:
            n, th, ah = n + 1, tj, aj
            idx.append(n - 1)
    return idx, n


def time_list_ref(times, counts, window, n_bins):
    out = np.zeros((len(counts), n_bins, 1), np.float32)
    pos = 0
    for i, c in enumerate(counts):
        for t in times[pos : pos + c]:
            if math.isnan(t):
                continue
            x = math.floor(t * (n_bins / window)) if math.isfinite(t) else t
            out[i, int(min(max(x, 0), n_bins - 1)), 0] += 1
        pos += c
    return out


# ---- the peak finders against the references ---------------------------------------------

CAND_CFGS = [
    CandidateConfig(),
    CandidateConfig(min_amplitude_rms=1.0),
    CandidateConfig(min_amplitude_rms=2.0, min_curvature_rms=1.0),
]
DERIV_CFGS = [
    DerivConfig(),
    DerivConfig(n1=8, n2=1.1, n3=0.1, n4=0.1),
    DerivConfig(n1=10, n2=1.2, n3=0, n4=0),
]
D2_CFGS = [D2Config(), D2Config(t1_rms=2.0, t2_rms=0.3), D2Config(t1_rms=4.0, t2_rms=3.0)]

FINDERS = (
    [
        (
            f"candidates-{i}",
            lambda w, b, r, c=c: candidates.find_candidates(w, b, r, c),
            lambda w, b, r, c=c: candidates_ref(w, b, r, c),
        )
        for i, c in enumerate(CAND_CFGS)
    ]
    + [
        (
            f"deriv-{i}",
            lambda w, b, r, c=c: deriv.find_deriv(w, b, r, FS, c),
            lambda w, b, r, c=c: deriv_ref(w, b, r, 1 / FS, c),
        )
        for i, c in enumerate(DERIV_CFGS)
    ]
    + [
        (
            f"d2-{i}",
            lambda w, b, r, c=c: d2.find_d2(w, b, r, c),
            lambda w, b, r, c=c: d2_ref(w, b, r, c),
        )
        for i, c in enumerate(D2_CFGS)
    ]
)


@pytest.mark.parametrize(("name", "fast", "ref"), FINDERS, ids=[f[0] for f in FINDERS])
def test_peak_finders_match_reference(sim, name, fast, ref):
    batch, base, rms = sim
    found = fast(batch.waveform, base, rms)
    assert len(found) == len(batch)
    assert str(found.type.content) == "var * int32"
    assert sum(len(x) for x in found.tolist()) > 0, name
    for i in range(len(batch)):
        assert found[i].tolist() == ref(batch.waveform[i], base[i], rms[i]), (name, i)


def run_kernel(kernel, w, b, r, params):
    out = np.empty(w.shape[0] * (w.shape[1] // 2 + 1) + 1, dtype=np.int32)
    counts = np.zeros(w.shape[0], dtype=np.int64)
    total = kernel(w, b, r, *params, out, counts)
    assert total == counts.sum()
    return ak.to_list(jagged.to_jagged(out[:total], counts))


@pytest.mark.parametrize(
    ("kernel", "params"),
    [
        (candidates._candidates, (2.5, 0.0)),
        (candidates._candidates, (1.0, 0.5)),
        (deriv._deriv, (1 / FS, 3.0, 1.0, 0.5, 0.5)),
        (deriv._deriv, (1 / FS, 2.0, 0.0, 0.0, 0.0)),
        (d2._d2, (3.0, 0.85)),
        (d2._d2, (1.0, 0.2)),
    ],
)
def test_peak_kernels_py_func(sim, kernel, params):
    batch, base, rms = sim
    w, b, r = batch.waveform[:3], base[:3], rms[:3]
    assert run_kernel(kernel.py_func, w, b, r, params) == run_kernel(kernel, w, b, r, params)


def test_chunked_scan_equals_one_pass(sim):
    batch, base, rms = sim
    params = (2.0, 0.0)
    one = jagged.scan_rows(candidates._candidates, batch.waveform, base, rms, params, 1201)
    many = jagged.scan_rows(
        candidates._candidates, batch.waveform, base, rms, params, 1201, chunk_rows=7
    )
    assert one.tolist() == many.tolist()


def test_finders_reject_bad_shapes():
    w = np.zeros((3, 50), np.float32)
    with pytest.raises(ValueError, match="baseline must have shape"):
        candidates.find_candidates(w, np.zeros(2), np.ones(3), CandidateConfig())
    with pytest.raises(ValueError, match="waveforms, samples"):
        deriv.find_deriv(np.zeros(50), np.zeros(1), np.ones(1), FS, DerivConfig())
    with pytest.raises(ValueError, match="sampling_ghz"):
        deriv.find_deriv(w, np.zeros(3), np.ones(3), 0.0, DerivConfig())


# ---- windows, matching, time list, clusterization against the references -----------------


@pytest.mark.parametrize(
    "cfg",
    [
        WindowConfig(),
        WindowConfig(normalization="fixed", edge="zero"),
        WindowConfig(before=0, after=3, normalization="none"),
        WindowConfig(before=12, after=0, normalization="fixed", scale_mv=3.0),
    ],
)
def test_windows_match_reference(sim, cfg):
    batch, base, rms = sim
    n = batch.waveform.shape[1]
    # positions at and beyond both edges, an empty list, and the candidates
    cand = candidates.find_candidates(batch.waveform, base, rms, CandidateConfig()).tolist()
    pos = [[0, 1, 500, n - 1], [], [-3, 7, n - 2, n + 4], *cand[3:]]
    got = windows.slice_windows(batch.waveform, base, rms, ak.Array(pos), cfg)
    scale = windows.window_scale(rms, cfg)
    ref = np.concatenate(
        [windows_ref(batch.waveform[i], base[i], scale[i], pos[i], cfg) for i in range(len(pos))]
    )
    assert got.shape == (len(ref), cfg.before + cfg.after + 1, 1) and got.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    # the kernel's Python body, and a reused output buffer
    content, offsets = jagged.flat(ak.Array(pos), np.int64)
    out = np.full_like(got, np.nan)
    windows._windows.py_func(
        batch.waveform[: len(pos)], base, scale, content, offsets,
        cfg.before, cfg.after, cfg.edge == "replicate", out,
    )  # fmt: skip
    np.testing.assert_array_equal(out, got)
    again = windows.slice_windows(batch.waveform, base, rms, ak.Array(pos), cfg, out=out)
    assert again is out and np.array_equal(again, got)


def test_windows_normalization_and_errors():
    w = np.array([[1.0, 3.0, 5.0, 9.0]], np.float32)
    b, r = np.array([1.0], np.float32), np.array([2.0], np.float32)
    pos = ak.Array([[0]])
    rms_norm = windows.slice_windows(w, b, r, pos, WindowConfig(before=1, after=4))
    assert rms_norm[0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 4.0, 4.0]  # edge-replicated
    zero = windows.slice_windows(w, b, r, pos, WindowConfig(before=1, after=4, edge="zero"))
    assert zero[0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 4.0, 0.0]
    flat_rms = windows.slice_windows(w, b, np.zeros(1, np.float32), pos, WindowConfig(after=1))
    assert flat_rms[0, -2:, 0].tolist() == [0.0, 2.0]  # rms 0 -> not divided
    with pytest.raises(ValueError, match="position lists"):
        windows.slice_windows(w, b, r, ak.Array([[0], [1]]), WindowConfig())
    with pytest.raises(ValueError, match="out must be"):
        windows.slice_windows(w, b, r, pos, WindowConfig(), out=np.empty((1, 14, 1), np.float32))
    with pytest.raises(ValueError, match="0 samples"):
        windows.slice_windows(np.zeros((1, 0), np.float32), b, r, pos, WindowConfig())


def truth_lists(batch, cfg: MatchConfig):
    el = ak.unflatten(batch.electron_time_ns, batch.n_electrons)
    prim = ak.unflatten(batch.electron_primary, batch.n_electrons)
    truth = ak.zip({"electron_time_ns": el, "pretrigger_ns": batch.pretrigger_ns}, depth_limit=1)
    return matching.expected_samples(truth, FS, cfg), prim


def test_matching_matches_reference(sim):
    batch, base, rms = sim
    cfg = MatchConfig()
    peaks = candidates.find_candidates(batch.waveform, base, rms, CandidateConfig())
    expected, prim = truth_lists(batch, cfg)
    assert np.allclose(
        ak.to_numpy(ak.flatten(expected)),
        (batch.electron_time_ns + np.repeat(batch.pretrigger_ns, batch.n_electrons) + 2.0) * FS,
    )
    m = matching.match_peaks(peaks, expected, prim, cfg)
    n_matched = 0
    for i in range(len(batch)):
        peak_ref, found_ref = match_ref(peaks[i].tolist(), expected[i].tolist(), 3.0)
        assert m.peak_electron[i].tolist() == peak_ref
        assert m.electron_found[i].tolist() == found_ref
        labels = [0 if k < 0 else (1 if prim[i][k] else 2) for k in peak_ref]
        assert m.peak_label[i].tolist() == labels
        n_matched += sum(k >= 0 for k in peak_ref)
    assert n_matched > 0
    # per peak: the cluster of its matched electron
    electron_cluster = ak.unflatten(batch.electron_cluster, batch.n_electrons)
    peak_cluster = m.peak_cluster(electron_cluster)
    ref = [
        -1 if k < 0 else electron_cluster[i][k]
        for i in range(len(batch))
        for k in m.peak_electron[i].tolist()
    ]
    assert peak_cluster.dtype == np.int32 and peak_cluster.tolist() == ref
    # per cluster: found if any of its electrons is
    cl = m.cluster_found(electron_cluster, batch.n_clusters)
    for i in range(3):
        ref = [False] * int(batch.n_clusters[i])
        for k, f in zip(
            ak.unflatten(batch.electron_cluster, batch.n_electrons)[i].tolist(),
            m.electron_found[i].tolist(),
            strict=True,
        ):
            ref[k] |= f
        assert cl[i].tolist() == ref


def test_matching_py_func_and_errors(sim):
    batch, base, rms = sim
    peaks = deriv.find_deriv(batch.waveform[:4], base[:4], rms[:4], FS, DerivConfig())
    expected, _ = truth_lists(batch, MatchConfig())
    p, po = jagged.flat(peaks, np.float64)
    e, eo = jagged.flat(expected[:4], np.float64)
    fast = np.empty(p.size, np.int64), np.empty(e.size, np.bool_)
    slow = np.empty(p.size, np.int64), np.empty(e.size, np.bool_)
    matching._match(p, po, e, eo, 3.0, *fast)
    matching._match.py_func(p, po, e, eo, 3.0, *slow)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    with pytest.raises(ValueError, match="peak lists"):
        matching.match_peaks(peaks, expected, expected, MatchConfig())
    with pytest.raises(ValueError, match="one flag per"):
        matching.match_peaks(peaks, expected[:4], ak.Array([[True]] * 4), MatchConfig())


positions = st.floats(-5, 65, allow_nan=False) | st.integers(-5, 65).map(float)


@FEW
@given(
    rows=st.lists(
        st.tuples(
            st.lists(positions | st.just(float("nan")), max_size=10),
            st.lists(positions | st.just(float("nan")), max_size=10),
        ),
        max_size=4,
    ),
    tol=st.sampled_from([0.5, 1.0, 3.0, 10.0]) | st.floats(1e-9, 20),
)
def test_matching_property(rows, tol):
    p = np.array([x for r in rows for x in r[0]], np.float64)
    e = np.array([x for r in rows for x in r[1]], np.float64)
    po, eo = offsets_of([len(r[0]) for r in rows]), offsets_of([len(r[1]) for r in rows])
    out, found = np.empty(p.size, np.int64), np.empty(e.size, np.bool_)
    matching._match(p, po, e, eo, tol, out, found)
    for i, (pr, er) in enumerate(rows):
        ref_peak, ref_found = match_ref(pr, er, tol)
        assert out[po[i] : po[i + 1]].tolist() == ref_peak
        assert found[eo[i] : eo[i + 1]].tolist() == ref_found
        matched = [k for k in ref_peak if k >= 0]
        assert len(set(matched)) == len(matched) == sum(ref_found)  # one to one
        assert all(abs(pr[j] - er[k]) <= tol for j, k in enumerate(ref_peak) if k >= 0)


@pytest.mark.parametrize("kernel", [matching._sort_index, matching._sort_index.py_func])
def test_sort_index_is_a_lexicographic_sort(kernel):
    rng = np.random.default_rng(8)
    k1 = rng.integers(0, 4, 300).astype(np.float64)
    k2 = rng.integers(0, 3, 300)
    k3 = rng.integers(0, 2, 300)
    for n in (0, 1, 2, 7, 300):
        idx = rng.permutation(300)[:n].astype(np.int64)
        want = sorted(idx.tolist(), key=lambda x: (k1[x], k2[x], k3[x], x))
        kernel(idx, n, k1, k2, k3, np.empty(n, np.int64))
        assert idx.tolist() == want
    grown = matching._grow.py_func(np.arange(3.0), 2, 5)
    assert grown.shape == (5,) and grown[:2].tolist() == [0.0, 1.0]


def test_matching_many_pairs_grows_buffers():
    # 300 peaks x 300 electrons all within tolerance: 90k pairs, far past the first buffer
    p = np.arange(300, dtype=np.float64) * 0.01
    e = p[::-1].copy()
    out, found = np.empty(300, np.int64), np.empty(300, np.bool_)
    matching._match(p, offsets_of([300]), e, offsets_of([300]), 5.0, out, found)
    ref_peak, ref_found = match_ref(p.tolist(), e.tolist(), 5.0)
    assert out.tolist() == ref_peak and found.tolist() == ref_found
    assert sorted(out.tolist()) == list(range(300)) and found.all()


@pytest.mark.parametrize(("window", "n_bins"), [(2000.0, 1024), (1024 / 1.5, 1024), (100.0, 7)])
def test_time_list_matches_reference(window, n_bins):
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 40, 50)
    counts[5] = 0
    times = rng.uniform(-10, window + 10, counts.sum())
    times[:3] = [np.nan, np.inf, -np.inf]
    cfg = TimeListConfig(n_bins=n_bins)
    got = timelist.encode_time_list(ak.unflatten(times, counts), window, cfg)
    ref = time_list_ref(times, counts, window, n_bins)
    np.testing.assert_array_equal(got, ref)
    assert got.sum() == counts.sum() - 1  # NaN not counted
    rows = np.repeat(np.arange(50), counts)
    ok = ~np.isnan(times)
    ref2 = np.zeros_like(ref)
    np.add.at(ref2, (rows[ok], timelist.time_bin(times, window, n_bins)[ok], 0), 1.0)
    np.testing.assert_array_equal(got, ref2)
    assert timelist.time_bin(times[:1], window, n_bins).tolist() == [-1]
    again = timelist.encode_time_list(ak.unflatten(times, counts), window, cfg, out=got)
    assert again is got and np.array_equal(again, ref)  # a reused buffer is cleared first
    out = np.full_like(ref, 7.0)
    timelist._encode.py_func(times, offsets_of(counts), n_bins / window, out)
    np.testing.assert_array_equal(out, ref)


def test_time_list_units_and_errors():
    window = 1024 / 1.5  # 1.5 GHz, 1024 samples: sample 1023 lies in the last bin
    t = ak.Array([[0.0, 1023 / 1.5, window / 2, window]])
    enc = timelist.encode_time_list(t, window, TimeListConfig())
    assert enc[0, 0, 0] == 1 and enc[0, 1023, 0] == 2 and enc[0, 512, 0] == 1
    with pytest.raises(ValueError, match="out must be"):
        timelist.encode_time_list(t, window, TimeListConfig(), out=np.empty((2, 1024, 1)))
    with pytest.raises(ValueError, match="window_ns"):
        timelist.encode_time_list(t, 0.0, TimeListConfig())


def test_clusterize_matches_reference():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 30, 40)
    counts[3] = 0
    t = rng.uniform(-20, 1200, counts.sum())
    a = rng.uniform(1, 30, counts.sum())
    jt = ak.sort(ak.unflatten(t, counts), axis=1)
    ja = ak.unflatten(a, counts)
    for c in (0.0, 0.23, 0.5, 2.0):
        idx, n = clusterize.clusterize(jt, ja, ClusterizeConfig(c_sqrt_ns=c))
        assert n.dtype == np.int64 and str(idx.type.content) == "var * int32"
        for i in range(40):
            ref_idx, ref_n = clusterize_ref(jt[i].tolist(), ja[i].tolist(), c)
            assert idx[i].tolist() == ref_idx and n[i] == ref_n
        if c == 0:
            assert n.tolist() == counts.tolist()  # c = 0: every peak its own cluster
    tf, off = jagged.flat(jt, np.float64)
    af, _ = jagged.flat(ja, np.float64)
    cl, cnt = np.empty(tf.size, np.int32), np.empty(40, np.int64)
    assert clusterize._clusterize.py_func(tf, af, off, 0.5, 0.7, 3.0, cl, cnt) == -1
    adaptive = ClusterizeConfig(c_sqrt_ns=0.5, amplitude_power=0.7, min_window_ns=3.0)
    _, n_adaptive = clusterize.clusterize(jt, ja, adaptive)
    assert cnt.tolist() == n_adaptive.tolist()
    for i in range(40):
        assert n_adaptive[i] == clusterize_ref(jt[i].tolist(), ja[i].tolist(), 0.5, 0.7, 3.0)[1]
    assert adaptive.adaptive and not ClusterizeConfig().adaptive


def test_adaptive_clusterization_merges_small_satellites_and_close_peaks():
    # at 100 ns the fixed window is 0.23 * 10 = 2.3 ns
    t = ak.Array([[100.0, 104.0, 200.0, 201.0]])
    a = ak.Array([[16.0, 1.0, 5.0, 5.0]])
    fixed = ClusterizeConfig()
    assert clusterize.clusterize(t, a, fixed)[1].tolist() == [3]
    # a peak 16x smaller gets a window 2.3 * 16 ** 0.5 = 9.2 ns: it joins
    satellites = fixed.model_copy(update={"amplitude_power": 0.5})
    assert clusterize.clusterize(t, a, satellites)[1].tolist() == [2]
    # near the wire c sqrt(t) is tiny: a floor of 1.5 ns merges the pair at 0.5 ns
    near = ak.Array([[0.5, 1.0]])
    ones = ak.Array([[1.0, 1.0]])
    assert clusterize.clusterize(near, ones, fixed)[1].tolist() == [2]
    floor = fixed.model_copy(update={"min_window_ns": 1.5})
    assert clusterize.clusterize(near, ones, floor)[1].tolist() == [1]


def test_clusterize_highest_peak_and_errors():
    # 100 ns: window c*sqrt(t) = 2.3 ns. The highest peak of the first cluster moves to 102,
    # so 103.5 joins (1.5 ns from 102) although it is 3.5 ns from the first peak.
    t = ak.Array([[100.0, 102.0, 103.5, 110.0, float("nan"), 111.0]])
    a = ak.Array([[1.0, 5.0, 1.0, 2.0, 9.0, 1.0]])
    idx, n = clusterize.clusterize(t, a, ClusterizeConfig())
    assert idx.tolist() == [[0, 0, 0, 1, -1, 1]] and n.tolist() == [2]
    with pytest.raises(ValueError, match=r"increasing order.*waveform 1"):
        clusterize.clusterize(ak.Array([[1.0], [5.0, 2.0]]), ak.Array([[1.0], [1.0, 1.0]]),
                              ClusterizeConfig())  # fmt: skip
    with pytest.raises(ValueError, match="same list lengths"):
        clusterize.clusterize(ak.Array([[1.0]]), ak.Array([[1.0, 2.0]]), ClusterizeConfig())


@FEW
@given(
    rows=st.lists(
        st.tuples(
            st.lists(st.floats(-50, 2000, allow_nan=False), max_size=12).map(sorted),
            st.lists(st.integers(0, 12), max_size=3),
        ),
        max_size=5,
    ),
    c=st.floats(0, 3),
    power=st.sampled_from([0.0, 0.5, 2.0]),
    floor=st.sampled_from([0.0, 2.0]),
)
def test_clusterize_property(rows, c, power, floor):
    lists = []
    for times, nan_at in rows:  # time-ordered peaks with NaN times put in between
        row = list(times)
        for k in nan_at:
            row.insert(min(k, len(row)), float("nan"))
        lists.append(row)
    counts = np.array([len(r) for r in lists], np.int64)
    t = np.array([x for r in lists for x in r], np.float64)
    a = np.arange(t.size, dtype=np.float64) % 3
    cfg = ClusterizeConfig(c_sqrt_ns=c, amplitude_power=power, min_window_ns=floor)
    idx, n = clusterize.clusterize(jagged.to_jagged(t, counts), jagged.to_jagged(a, counts), cfg)
    assert len(idx) == len(n) == len(lists)
    off = offsets_of(counts)
    for i, row in enumerate(lists):
        ref_idx, ref_n = clusterize_ref(row, a[off[i] : off[i + 1]].tolist(), c, power, floor)
        assert idx[i].tolist() == ref_idx and n[i] == ref_n
        finite = [k for k in ref_idx if k >= 0]
        assert finite == sorted(finite) and (not finite or finite[-1] == ref_n - 1)


# ---- jagged helpers -----------------------------------------------------------------------


def test_jagged_round_trip():
    content = np.arange(6, dtype=np.int32)
    arr = jagged.to_jagged(content, np.array([2, 0, 4]))
    assert arr.tolist() == [[0, 1], [], [2, 3, 4, 5]]
    back, off = jagged.flat(arr)
    assert back.tolist() == content.tolist() and off.tolist() == [0, 2, 2, 6]
    same = jagged.from_offsets(content, off)
    assert same.tolist() == arr.tolist()
    sliced_content, sliced_off = jagged.flat(arr[1:], np.float64)  # offsets not from 0
    assert sliced_content.tolist() == [2, 3, 4, 5] and sliced_off.tolist() == [0, 0, 4]
    empty, eoff = jagged.flat(ak.Array([[], []]), np.int64)
    assert empty.dtype == np.int64 and empty.size == 0 and eoff.tolist() == [0, 0, 0]
    none, noff = jagged.flat(ak.Array([[1.0]])[:0])
    assert none.size == 0 and noff.tolist() == [0]
    assert jagged.offsets_from_counts(np.zeros(0)).tolist() == [0]


# ---- edge cases (hypothesis) -------------------------------------------------------------


def pulse(n_after: int) -> np.ndarray:
    """The default single-electron shape (1 ns rise, 5 ns fall) at 1.2 GHz, peak 1."""
    t = np.arange(n_after) / FS
    s = np.exp(-t / 5.0) - np.exp(-t / 1.0)
    return s / s.max()


@st.composite
def edge_waveform(draw, n: int) -> np.ndarray:
    kind = draw(
        st.sampled_from(["constant", "noise", "edges", "saturated", "overlap", "nan", "spikes"])
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = np.full(n, draw(st.floats(-5, 5, width=32)), dtype=np.float64)
    if kind != "constant":
        w += rng.normal(0, 1, n)
    if kind in ("edges", "saturated", "overlap", "nan"):
        starts = [0, n - 1, n - 2, n // 2, -2]  # -2: a pulse whose maximum is at sample 0
        if kind == "overlap":
            starts += [n // 2 + 1, n // 2 + 3]
        for s in starts:
            shape = 30.0 * pulse(n + 4)
            lo = min(max(s, 0), n)
            w[lo:] += shape[lo - s : lo - s + n - lo]
    if kind == "saturated":
        w = np.minimum(w, 12.0)
    if kind == "spikes":
        w[rng.integers(0, n, 3)] += 25.0
        w[0] += 25.0
        w[-1] += 25.0
    if kind == "nan":
        w[rng.integers(0, n, draw(st.integers(1, 3)))] = np.nan
    return w.astype(np.float32)


@st.composite
def edge_batches(draw):
    n = draw(st.integers(0, 40))
    rows = draw(st.integers(0, 4))
    w = np.zeros((rows, n), np.float32)
    for i in range(rows):
        w[i] = draw(edge_waveform(n)) if n else w[i]
    return w


def nan_near(w, k, reach):
    return bool(np.isnan(w[max(k - reach, 0) : k + reach + 1]).any())


@FEW
@given(w=edge_batches())
def test_finders_on_edge_cases(w):
    base = np.zeros(len(w), np.float32)
    rms = np.ones(len(w), np.float32)
    for name, fast, ref in FINDERS:
        found = fast(w, base, rms)
        assert len(found) == len(w)
        for i in range(len(w)):
            got = found[i].tolist()
            assert got == ref(w[i], base[i], rms[i]), name
            assert got == sorted(set(got)), name
            assert all(0 <= k < w.shape[1] and not np.isnan(w[i, k]) for k in got), name
            if name.startswith(("candidates", "deriv")):
                assert not any(nan_near(w[i], k, 2) for k in got), name  # NaN never a peak
                assert all(b - a > 1 for a, b in itertools.pairwise(got)), name
            if name.startswith("deriv"):
                assert all(2 <= k <= w.shape[1] - 3 for k in got), name


def test_finders_on_simple_shapes():
    n = 60
    const = np.full((1, n), 3.0, np.float32)
    z, one = np.zeros(1, np.float32), np.ones(1, np.float32)
    for _, fast, _ in FINDERS:
        assert fast(const, z, one).tolist() == [[]]  # constant: nothing
        assert len(fast(np.zeros((0, n), np.float32), z[:0], one[:0])) == 0  # no waveforms
        assert fast(np.zeros((2, 0), np.float32), np.zeros(2), np.ones(2)).tolist() == [[], []]
    flat_top = np.zeros((1, n), np.float32)
    flat_top[0, 20:] = 14.0 * pulse(n - 20)
    flat_top[0] = np.minimum(flat_top[0], 12.0)  # saturated: a plateau of equal samples
    top = int(np.argmax(flat_top[0]))
    assert flat_top[0, top + 1] == flat_top[0, top] == 12.0
    assert candidates.find_candidates(flat_top, z, one, CandidateConfig()).tolist() == [[top]]
    assert d2.find_d2(flat_top, z, one, D2Config()).tolist() == [[top]]  # first plateau sample
    # D2 counts a rise only from samples at or above T1: a one-step jump from 0 is invisible
    step = np.zeros((1, n), np.float32)
    step[0, 20:30] = 12.0
    assert d2.find_d2(step, z, one, D2Config()).tolist() == [[]]
    # first and last samples: never DERIV peaks; candidates only from sample 1 to n-2
    edge = np.zeros((2, n), np.float32)
    edge[0, [0, n - 1]] = 20.0  # maxima on the first and last samples
    edge[1, [0, 1, n - 2, n - 1]] = [5.0, 20.0, 20.0, 5.0]  # on the second and last but one
    z2, one2 = np.zeros(2, np.float32), np.ones(2, np.float32)
    assert deriv.find_deriv(edge, z2, one2, FS, DerivConfig()).tolist() == [[], []]
    found = candidates.find_candidates(edge, z2, one2, CandidateConfig()).tolist()
    assert found == [[], [1, n - 2]]
    # NaN baseline or rms: no peaks
    noisy = np.random.default_rng(0).normal(0, 3, (1, n)).astype(np.float32)
    nan = np.full(1, np.nan, np.float32)
    for _, fast, _ in FINDERS:
        assert fast(noisy, nan, one).tolist() == [[]]
        assert fast(noisy, z, nan).tolist() == [[]]


def test_two_pulses_resolved_by_candidates_and_d2():
    n = 80
    w = np.zeros((1, n), np.float32)
    for s in (10, 40):
        w[0, s:] += 10.0 * pulse(n - s)
    z, one = np.zeros(1, np.float32), np.ones(1, np.float32)
    peaks = [s + int(np.argmax(pulse(20))) for s in (10, 40)]
    assert candidates.find_candidates(w, z, one, CandidateConfig()).tolist() == [peaks]
    assert d2.find_d2(w, z, one, D2Config()).tolist() == [peaks]
    assert deriv.find_deriv(w, z, one, FS, DerivConfig()).tolist() == [peaks]


@FEW
@given(w=edge_batches(), cfg=st.sampled_from([WindowConfig(), WindowConfig(edge="zero")]))
def test_windows_on_edge_cases(w, cfg):
    n_rows, n = w.shape
    base = np.zeros(n_rows, np.float32)
    rms = np.full(n_rows, 2.0, np.float32)
    pos = [[0, n - 1, n // 2] if n else [] for _ in range(n_rows)]
    counts = np.array([len(p) for p in pos], np.int64)
    flat_pos = np.array([k for p in pos for k in p], np.int64)
    got = windows.slice_windows(w, base, rms, jagged.to_jagged(flat_pos, counts), cfg)
    parts = [windows_ref(w[i], 0.0, 2.0, pos[i], cfg) for i in range(n_rows)]
    width = cfg.before + cfg.after + 1
    ref = np.concatenate(parts) if parts else np.zeros((0, width, 1), np.float32)
    np.testing.assert_array_equal(got, ref)  # NaN samples come through as NaN


# ---- configs --------------------------------------------------------------------------------


def test_config_defaults_and_checks():
    assert DerivConfig().model_dump() == {"n1": 3.0, "n2": 1.0, "n3": 0.5, "n4": 0.5}
    assert WindowConfig().before + 1 + WindowConfig().after == 15
    assert TimeListConfig().n_bins == 1024 and MatchConfig().tolerance_samples == 3.0
    assert ClusterizeConfig().c_sqrt_ns == 0.23
    assert DerivConfig.model_fields["n1"].description  # every field is documented
    for cls in (CandidateConfig, DerivConfig, D2Config, WindowConfig, MatchConfig,
                ClusterizeConfig, TimeListConfig):  # fmt: skip
        assert all(f.description for f in cls.model_fields.values()), cls
    for bad in (
        lambda: DerivConfig(n1=-1.0),
        lambda: DerivConfig(n5=1.0),
        lambda: CandidateConfig(min_amplitude_rms="3"),
        lambda: WindowConfig(edge="reflect"),
        lambda: WindowConfig(scale_mv=0.0),
        lambda: MatchConfig(tolerance_samples=0.0),
        lambda: TimeListConfig(n_bins=0),
        lambda: ClusterizeConfig(c_sqrt_ns=-0.1),
    ):
        with pytest.raises(ValidationError):
            bad()


def suppress_ref(wave: np.ndarray, positions: list[int], radius: int) -> list[int]:
    """A candidate stays if no other within radius is higher, nor equal and earlier."""
    kept = []
    for j, p in enumerate(positions):
        rivals = [
            (k, q) for k, q in enumerate(positions) if k != j and abs(q - p) <= radius
        ]  # fmt: skip
        if all(wave[q] < wave[p] or (wave[q] == wave[p] and k > j) for k, q in rivals):
            kept.append(p)
    return kept


@pytest.mark.parametrize("radius", [1, 2, 4])
def test_non_maximum_suppression_against_reference(sim, radius):
    batch, b, r = sim
    w = batch.waveform
    loose = candidates.find_candidates(w, b, r, CandidateConfig())
    cfg = CandidateConfig(min_separation_samples=radius)
    got = candidates.find_candidates(w, b, r, cfg)
    # candidates are never adjacent, so radius 1 keeps them all
    n_got, n_loose = ak.sum(ak.num(got)), ak.sum(ak.num(loose))
    assert n_got == n_loose if radius == 1 else n_got < n_loose
    for i in range(0, len(w), 7):
        assert got[i].to_list() == suppress_ref(w[i], loose[i].to_list(), radius)
    # through .py_func too, and radius 0 keeps everything
    positions, offsets = jagged.flat(loose[:20], np.int64)
    keep = np.ones(positions.size, dtype=bool)
    candidates._suppress.py_func(w[:20], positions, offsets, radius, keep)
    assert positions[keep].tolist() == ak.flatten(got[:20]).to_list()
    same = candidates.find_candidates(w, b, r, CandidateConfig(min_separation_samples=0))
    assert ak.to_list(same) == ak.to_list(loose)


def test_non_maximum_suppression_ties_keep_the_earlier():
    wave = np.array([[0, 5, 0, 5, 0, 3, 0, 9, 0]], dtype=np.float32)
    found = ak.Array([[1, 3, 5, 7]])
    assert candidates.suppress_non_maxima(wave, found, 2).to_list() == [[1, 7]]
    assert candidates.suppress_non_maxima(wave, found, 1).to_list() == [[1, 3, 5, 7]]
