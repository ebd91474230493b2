"""The community's Garfield++ sample layout (public CEPC dataset, ml4cc's IDEA samples): files
written by real ROOT (PyROOT, std::vector<double> branches), read by ccframe, labels from
tagged peaks, the counter's target from ncls, and steering/garfield_layout.yaml end to end.

The fixture files hold a ccframe simulation in the two layouts: peak finding (`time`: the
sample of each ccframe candidate, `tag`: its label from matching to the true electrons) and
clusterization (`count_x`: the true electrons' peak times in ns and the unmatched
candidates' times, `id`: 1/2 and 0, `sampling_rate` in ns per sample)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import REPO, TINY_OVERRIDES, set_args

from ccframe.cli import main
from ccframe.errors import InputError, SteeringError
from ccframe.io.config import DataConfig
from ccframe.io.reader import WaveformBatch, iter_batches
from ccframe.kernels.config import MatchConfig
from ccframe.kernels.matching import match_labelled
from ccframe.ml.config import DatasetConfig
from ccframe.ml.dataset import DatasetBuilder, build
from ccframe.reco.config import TraditionalConfig
from ccframe.reco.traditional import (
    ELECTRONS,
    LABELLED_PEAKS,
    has_truth,
    peak_truth,
    reference_peaks,
)
from ccframe.steering.loader import load_steering

N = 300
SAMPLING_GHZ = 1.5  # CEPC: 3000 samples of 2 us
PEAK_FINDING = {
    "tree": "sim",
    "waveform_branch": "wf_i",
    "sampling_ghz": SAMPLING_GHZ,
    "truth": {
        "peak_sample": "time",
        "peak_label": "tag",
        "n_clusters": "ncls",
        "momentum_gev": "mom",
    },
}
CLUSTERIZATION = {
    "tree": "sim",
    "waveform_branch": "wf_i",
    "sampling_branch": "sampling_rate",
    "sampling_unit": "ns_per_sample",
    "truth": {"peak_time_ns": "count_x", "peak_label": "id", "n_clusters": "ncls"},
}

WRITER = r"""
import sys
import numpy as np

try:
    import ROOT
except ImportError as exc:
    sys.exit(f"SKIP: PyROOT not importable ({exc})")

a = np.load(sys.argv[1])


DTYPES = {"double": np.float64, "int": np.int32}


def fill(vec, kind, values):
    vec.resize(len(values))
    if len(values):
        np.frombuffer(vec.data(), dtype=DTYPES[kind], count=len(values))[:] = values


def write(path, jagged, scalars):
    out = ROOT.TFile(path, "RECREATE")
    tree = ROOT.TTree("sim", "Garfield++-like waveforms")
    keep = []
    vectors = {}
    for name, kind in [("wf_i", "double")] + [(n, k) for n, k, _, _ in jagged]:
        vectors[name] = ROOT.std.vector(kind)()
        tree.Branch(name, vectors[name])
    for name, code in scalars:
        buf = np.zeros(1, dtype=np.int32 if code == "I" else np.float64)
        keep.append((name, buf))
        tree.Branch(name, buf, f"{name}/{code}")
    for i in range(a["wf"].shape[0]):
        fill(vectors["wf_i"], "double", a["wf"][i])
        for name, kind, content, offsets in jagged:
            fill(vectors[name], kind, a[content][a[offsets][i]:a[offsets][i + 1]])
        for name, buf in keep:
            buf[0] = a[name][i]
        tree.Fill()
    tree.Write()
    out.Close()


write(sys.argv[2], [("time", "double", "time", "time_off"), ("tag", "double", "tag", "time_off")],
      [("ncls", "D"), ("mom", "D")])
write(sys.argv[3], [("count_x", "double", "count_x", "x_off"), ("id", "int", "id", "x_off")],
      [("ncls", "I"), ("mom", "D"), ("sampling_rate", "D")])
"""


@pytest.fixture(scope="session")
def garfield(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The simulation (`sim`) and its two Garfield++ layouts written by PyROOT (`peak`,
    `cluster`), in a subprocess: ROOT stays out of the test process (and TensorFlow)."""
    if importlib.util.find_spec("ROOT") is None:
        pytest.skip("PyROOT not importable (pip install -e '.[root]')")
    from ccframe.kernels.candidates import find_candidates
    from ccframe.kernels.jagged import flat
    from ccframe.reco.traditional import match_truth
    from ccframe.simulate.config import SimulateConfig
    from ccframe.simulate.stage import simulate_to_root

    folder = tmp_path_factory.mktemp("garfield")
    sim = folder / "sim.root"
    detector = {"sampling_ghz": SAMPLING_GHZ, "window_ns": 2000.0}
    simulate_to_root(SimulateConfig(n_waveforms=N, chunk_size=N, detector=detector), 3, sim)
    (batch,) = iter_batches(DataConfig(files=[str(sim)]))
    truth = batch.truth
    assert truth is not None
    candidates = find_candidates(
        batch.waveforms, batch.baseline, batch.rms, DatasetConfig().candidates
    )
    match = match_truth(batch, candidates, MatchConfig())
    time, time_off = flat(candidates, np.float64)
    tag, _ = flat(match.peak_label, np.float64)
    # clusterization layout: every true electron's peak time (ns) with 1/2, the unmatched
    # candidates' times with 0
    reference, labels = reference_peaks(batch, MatchConfig())
    noise = candidates[match.peak_label == 0]
    x = ak.concatenate([reference, ak.values_astype(noise, np.float64)], axis=1)
    ids = ak.concatenate([labels, ak.values_astype(noise * 0, np.int8)], axis=1)
    count_x, x_off = flat(x / SAMPLING_GHZ, np.float64)
    id_, _ = flat(ids, np.int32)
    with uproot.open(sim) as file:  # the simulated waveforms as written
        waves = file["sim"]["waveform"].array(library="np").astype(np.float64)
    arrays = folder / "arrays.npz"
    np.savez(
        arrays,
        wf=waves,
        time=time,
        tag=tag,
        time_off=time_off,
        count_x=count_x,
        id=id_,
        x_off=x_off,
        ncls=ak.to_numpy(truth.n_clusters),
        mom=ak.to_numpy(truth.momentum_gev),
        sampling_rate=np.full(N, 1.0 / SAMPLING_GHZ),
    )
    peak, cluster = folder / "peakfinding.root", folder / "clusterization.root"
    proc = subprocess.run(
        [sys.executable, "-c", WRITER, str(arrays), str(peak), str(cluster)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "SKIP: PyROOT not importable" in proc.stderr:
        pytest.skip(proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"sim": sim, "peak": peak, "cluster": cluster}


def read_one(path: Path, **data) -> WaveformBatch:
    (batch,) = iter_batches(DataConfig(files=[str(path)], **data))
    return batch


def test_files_have_the_garfield_layout(garfield):
    """Real ROOT wrote them: std::vector<double> waveforms and peak lists, plain scalars."""
    tree = uproot.open(garfield["peak"])["sim"]
    assert tree["wf_i"].typename == "std::vector<double>"
    assert tree["time"].typename == tree["tag"].typename == "std::vector<double>"
    assert tree["ncls"].typename == "double" and tree.num_entries == N
    tree = uproot.open(garfield["cluster"])["sim"]
    assert tree["id"].typename == "std::vector<int32_t>"
    assert tree["sampling_rate"].typename == "double"


def test_reader_reads_jagged_double_waveforms_and_the_mapped_truth(garfield):
    batch = read_one(garfield["peak"], **PEAK_FINDING)
    sim = read_one(garfield["sim"])
    assert batch.waveforms.shape == (N, 3000) and batch.sampling_ghz == SAMPLING_GHZ
    assert np.array_equal(batch.waveforms, sim.waveforms)
    assert batch.truth is not None and set(batch.truth.fields) == set(PEAK_FINDING["truth"])
    assert np.array_equal(ak.to_numpy(batch.truth.n_clusters), ak.to_numpy(sim.truth.n_clusters))
    assert peak_truth(batch.truth) == LABELLED_PEAKS and has_truth(batch)
    assert peak_truth(sim.truth) == ELECTRONS


def test_sampling_rate_in_ns_per_sample(garfield):
    batch = read_one(garfield["cluster"], **CLUSTERIZATION)
    assert batch.sampling_ghz == pytest.approx(SAMPLING_GHZ, rel=1e-12)
    with pytest.raises(InputError, match="no branch 'sampling_ghz' gives the sampling rate"):
        read_one(garfield["cluster"], **{**CLUSTERIZATION, "sampling_branch": "sampling_ghz"})


@pytest.mark.parametrize("layout", ["peak", "cluster"])
def test_labels_come_from_the_tags(garfield, layout):
    """ccframe's candidates take the tags of the labelled peaks: the same labels as matching
    them to the true electrons of the simulation the files came from. No cluster truth."""
    cfg, trad = DatasetConfig(), TraditionalConfig()
    data = DataConfig(
        files=[str(garfield[layout])], **(PEAK_FINDING if layout == "peak" else CLUSTERIZATION)
    )
    tagged = build(iter_batches(data), cfg, trad, seed=1)
    truth = build(iter_batches(DataConfig(files=[str(garfield["sim"])])), cfg, trad, seed=1)
    assert tagged.peak_truth == LABELLED_PEAKS and not tagged.clusters_known
    assert np.array_equal(tagged.position, truth.position)
    assert np.array_equal(tagged.label, truth.label)
    assert np.array_equal(tagged.n_clusters, truth.n_clusters)
    assert (tagged.cluster == -1).all() and 0.2 < tagged.signal.mean() < 0.9
    # the "electrons" of labelled peaks: the peaks tagged 1 or 2
    batch = read_one(garfield[layout], **data.model_dump(exclude={"files"}))
    _, labels = reference_peaks(batch, cfg.match)
    assert np.array_equal(tagged.n_electrons, ak.to_numpy(ak.sum(labels > 0, axis=1)))


def test_a_candidate_takes_the_nearest_labelled_peak_once():
    """Nearest within the tolerance wins; a labelled peak is used once; a candidate matching
    a noise-tagged peak or none is noise."""
    peaks = ak.Array([[10, 12, 30, 50]])
    reference = ak.Array([[11.5, 30.0, 60.0]])
    labels = ak.Array([[2, 0, 1]])
    m = match_labelled(peaks, reference, ak.values_astype(labels, np.int8), MatchConfig())
    assert m.peak_label.to_list() == [[0, 2, 0, 0]]
    assert m.peak_electron.to_list() == [[-1, 0, 1, -1]]
    assert m.electron_found.to_list() == [[True, True, False]]


def batch_with(truth: dict) -> WaveformBatch:
    n = len(next(iter(truth.values())))
    return WaveformBatch(
        np.zeros((n, 40), np.float32),
        np.zeros(n, np.float32),
        np.ones(n, np.float32),
        np.arange(n, dtype=np.int64),
        "g.root",
        1.5,
        ak.zip({k: ak.Array(v) for k, v in truth.items()}, depth_limit=1),
    )


@pytest.mark.parametrize(
    ("truth", "message"),
    [
        (
            {"peak_sample": [[1.0, 2.0]], "peak_label": [[1.0, 3.0]], "n_clusters": [1]},
            "g.root: entry 0: data.truth peak_label holds 3; expected 0 (noise), 1",
        ),
        (
            {
                "peak_sample": [[1.0], [1.0, 2.0]],
                "peak_label": [[1.0], [1.0]],
                "n_clusters": [1, 1],
            },
            "g.root: entry 1: data.truth peak_label has 1 labels for 2 peak positions",
        ),
    ],
)
def test_bad_labels_are_one_clear_line(truth, message):
    with pytest.raises(InputError) as info:
        reference_peaks(batch_with(truth), MatchConfig())
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_count_truth_alone_cannot_train_the_classifier():
    batch = batch_with({"n_clusters": [3, 4]})
    assert not has_truth(batch)
    builder = DatasetBuilder(DatasetConfig(), TraditionalConfig(), seed=1)
    with pytest.raises(
        InputError,
        match=r"g.root: the ML stage trains on .*peak_sample or peak_time_ns with peak_label",
    ):
        builder.add(batch)


@pytest.mark.parametrize(
    ("truth", "expected"),
    [
        ("{peak_label: tag}", "labelled peaks need both a position"),
        ("{peak_sample: time, peak_time_ns: count_x, peak_label: tag}", "map one of peak_sample"),
        ("{peak_tag: tag}", "unknown truth name 'peak_tag'"),
    ],
)
def test_truth_mapping_is_checked(tmp_path, truth, expected):
    path = REPO / "steering" / "garfield_layout.yaml"
    with pytest.raises(SteeringError, match=expected):
        load_steering(path, [f"data.truth={truth}"])


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


def test_traditional_stage_with_count_truth_only(garfield, tmp_path, capsys):
    """Only ncls mapped: the traditional stage reports the count metrics (with the ml4cc
    IQR/median) and no peak finding."""
    args = set_args(
        f"data.files=[{garfield['peak']}]",
        "data.truth={n_clusters: ncls}",
        f"output={tmp_path / 'trad'}",
        "tune.max_events=100",
        "tune.n1=[4.0]",
        "ml=null",
        "plots=null",
    )
    code = run_cli("run", str(REPO / "steering" / "garfield_layout.yaml"), *args)
    out, err = capsys.readouterr()
    assert code == 0, err
    metrics = json.loads((tmp_path / "trad" / "metrics.json").read_text())["traditional"]
    assert "peak_finding" not in metrics
    assert 0.9 * N < metrics["count"]["waveforms"] <= N  # waveforms with true clusters
    assert metrics["count"]["iqr_over_median"] > 0
    assert "IQR/median of N/N_true" in out


@pytest.mark.slow
def test_shipped_garfield_steering_trains_from_tags_and_ncls(garfield, tmp_path, capsys):
    """`ccframe run steering/garfield_layout.yaml` on the PyROOT files, with tiny models: the
    classifier learns the tags, the counter ncls; metrics say what needs electron truth."""
    args = set_args(
        f"data.files=[{garfield['peak']}]",
        f"output={tmp_path / 'g'}",
        *(o for o in TINY_OVERRIDES if not o.startswith("simulate.")),  # no simulate: here
        "ml.dataset.cache=false",
        "plots.event_displays=1",
    )
    code = run_cli("run", str(REPO / "steering" / "garfield_layout.yaml"), *args)
    out, err = capsys.readouterr()
    assert code == 0, err
    run = tmp_path / "g"
    metrics = json.loads((run / "metrics.json").read_text())
    ml = metrics["ml"]
    assert ml["dataset"]["waveforms"] == N and ml["dataset"]["n_samples"] == 3000
    assert 0.2 < ml["dataset"]["train"]["signal_fraction"] < 0.9
    assert ml["classifier"]["test"]["auc"] > 0.5
    pf = ml["peak_finding_test"]
    assert pf["truth"].startswith("labelled peaks") and pf["cluster_efficiency"] is None
    assert "electron truth" in pf["unavailable"] and "count_limit_resolution_core" not in pf
    assert 0 < pf["efficiency"] <= 1
    count = ml["count_test"]["ml"]["overall"]
    assert count["waveforms"] > 0 and {"median_ratio", "iqr_over_median"} <= set(count)
    assert count["mean_true"] == pytest.approx(
        np.mean(uproot.open(garfield["peak"])["sim"]["ncls"].array(library="np")), rel=0.3
    )
    trad = metrics["traditional"]
    assert trad["peak_finding"]["truth"].startswith("labelled peaks")
    assert 0.9 * N < trad["count"]["waveforms"] <= N
    assert "IQR/median of N/N_true" in out
    labels = uproot.open(run / "traditional.root")["traditional"]["peak_label"].array()
    assert set(np.unique(ak.to_numpy(ak.flatten(labels)))) <= {0, 1, 2}
    assert (run / "report.html").is_file()
    # robustness of a chain trained from tags: matched against the tags, jitter moves them
    code = run_cli("robustness", str(run), "--jitter-ns", "2", "--max-events", "50")
    out, err = capsys.readouterr()
    assert code == 0, err
    rows = json.loads((run / "robustness.json").read_text())
    jitter = [r for r in rows if r["smearing"] == "jitter_ns"]
    assert jitter and jitter[0]["cluster_efficiency"] is None
    assert 0 < jitter[0]["peak_efficiency"] <= 1
