"""The two-step ML chain: datasets, models, training discipline, the ml stage end to end and
`ccframe infer`, on tiny models and few waveforms."""

from __future__ import annotations

import json
import math

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from conftest import REPO, TINY_OVERRIDES, set_args, tiny_steering

from ccframe.cli import main
from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.io.reader import iter_batches
from ccframe.kernels.config import MatchConfig
from ccframe.kernels.matching import match_peaks
from ccframe.ml import evaluate
from ccframe.ml.config import ClassifierConfig, CounterConfig, DatasetConfig
from ccframe.ml.dataset import TEST, TRAIN, VALIDATION, Dataset, build, split_waveforms
from ccframe.ml.stage import training_samples
from ccframe.reco.config import TraditionalConfig


def run_cli(*args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code


def small_dataset(sim_file, **cfg):
    data = DataConfig(files=[str(sim_file)])
    return build(iter_batches(data), DatasetConfig(**cfg), TraditionalConfig(), seed=1)


def test_seed_topologies_have_the_published_parameter_counts():
    from ccframe.ml.models import build_classifier

    seed = ClassifierConfig(lstm_units=96, dense=[128, 1], dropout=[0.1, 0.1])
    small = ClassifierConfig(lstm_units=32, dense=[64, 1], dropout=[0.1, 0.1])
    assert build_classifier(seed, 15).count_params() == 50_179
    assert build_classifier(small, 15).count_params() == 6_531


def test_counter_outputs_counts_through_its_scale():
    from ccframe.ml.models import build_counter

    model = build_counter(CounterConfig(filters=[2], dense=[2], dropout=[0.0]), 64, 20.0)
    scaled = model.get_layer("scaled_count").output
    import keras

    inner = keras.Model(model.input, scaled)
    x = np.random.default_rng(0).poisson(0.3, (5, 64, 1)).astype(np.float32)
    np.testing.assert_allclose(model(x), 20.0 * np.asarray(inner(x)), rtol=1e-6)


def test_split_is_by_waveform_seeded_and_follows_the_fractions():
    cfg = DatasetConfig(train_fraction=0.6, validation_fraction=0.25)
    split = split_waveforms(1000, cfg, seed=9)
    assert np.array_equal(split, split_waveforms(1000, cfg, seed=9))
    assert not np.array_equal(split, split_waveforms(1000, cfg, seed=10))
    assert np.bincount(split).tolist() == [600, 250, 150]


def test_dataset_windows_labels_and_offsets(sim_file):
    ds = small_dataset(sim_file)
    assert ds.windows.shape == (ds.label.size, 15, 1) and ds.windows.dtype == np.float32
    assert ds.offsets[-1] == ds.label.size and ds.n_waveforms == 200
    assert set(np.unique(ds.label)) <= {0, 1, 2}
    # every waveform's candidates sit in one split: the per-candidate split repeats it
    per_candidate = ds.candidate_split
    for i in (0, 57, 199):
        assert set(per_candidate[ds.offsets[i] : ds.offsets[i + 1]]) <= {ds.split[i]}
    # a candidate's window holds its own sample at index `before`, in rms units
    batch = next(iter_batches(DataConfig(files=[str(sim_file)])))
    j = ds.offsets[3] + 2
    expected = (batch.waveforms[3, ds.position[j]] - batch.baseline[3]) / batch.rms[3]
    assert ds.windows[j, 5, 0] == pytest.approx(expected, rel=1e-5)
    assert 0.1 < ds.signal.mean() < 0.6
    assert (ds.n_traditional > 0).all() and (ds.n_clusters > 0).any()
    # a matched candidate carries its electron's cluster, inside its waveform's clusters
    assert np.array_equal(ds.cluster >= 0, ds.label > 0) and ds.cluster.dtype == np.int32
    row = np.repeat(np.arange(ds.n_waveforms), np.diff(ds.offsets))
    assert (ds.cluster < ds.n_clusters[row]).all()


def test_dataset_round_trips_through_an_array_folder(sim_file, tmp_path):
    ds = small_dataset(sim_file)
    assert isinstance(ds.windows, np.memmap)  # on disk, not in memory
    ds.save(tmp_path / "d")
    back = Dataset.load(tmp_path / "d")
    for name in ("windows", "label", "position", "offsets", "split", "n_traditional"):
        assert np.array_equal(getattr(back, name), getattr(ds, name))
    assert (back.files, back.sampling_ghz, back.n_samples) == (ds.files, ds.sampling_ghz, 2400)
    assert not list(tmp_path.glob(".*building"))  # written beside, then renamed
    (tmp_path / "d" / "windows.raw").write_bytes(b"short")
    with pytest.raises(InputError, match=r"windows\.raw has 5 bytes"):
        Dataset.load(tmp_path / "d")


def test_dataset_needs_truth(sim_file):
    data = DataConfig(files=[str(sim_file)], truth="none")
    with pytest.raises(InputError, match="trains on Monte Carlo truth"):
        build(iter_batches(data), DatasetConfig(), TraditionalConfig(), seed=1)


@pytest.mark.parametrize("balance", ["class_weights", "undersample", "none"])
def test_training_samples_balance(balance):
    y = np.array([1.0] * 30 + [0.0] * 70, dtype=np.float32)
    index, weights = training_samples(y, balance, seed=4)
    if balance == "class_weights":
        assert index.size == 100
        assert weights is not None
        w = np.where(y > 0.5, weights[1], weights[0])
        assert w[y > 0.5].sum() == pytest.approx(w[y < 0.5].sum())
        assert w.mean() == pytest.approx(1.0)
    elif balance == "undersample":
        assert weights is None
        assert (y[index] > 0.5).sum() == (y[index] < 0.5).sum() == 30
        assert np.all(np.diff(index) > 0)
    else:
        assert weights is None and index.size == 100


@pytest.mark.parametrize("rule", ["f1", "efficiency_purity"])
def test_threshold_maximises_the_figure_on_validation(rule):
    rng = np.random.default_rng(2)
    signal = rng.random(400) < 0.3
    scores = np.clip(rng.normal(0.35 + 0.3 * signal, 0.2), 0, 1).astype(np.float32)
    cut = evaluate.choose_threshold(scores, signal, rule)

    def figure(t):
        m = evaluate.classification(scores, signal, t)
        return m["f1"] if rule == "f1" else m["efficiency_x_purity"]

    best = max(figure(t) for t in np.unique(scores) - 1e-7)
    assert figure(cut) == pytest.approx(best)
    assert evaluate.choose_threshold(scores, signal, 0.25) == 0.25


def test_classification_metrics_by_hand():
    scores = np.array([0.9, 0.8, 0.4, 0.3, 0.2, 0.7])
    signal = np.array([1, 1, 1, 0, 0, 0])
    m = evaluate.classification(scores, signal, 0.5)
    assert m["confusion_matrix"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert m["precision"] == m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["efficiency_x_purity"] == pytest.approx(4 / 9)
    assert m["auc"] == pytest.approx(8 / 9)
    assert m["report"]["signal"]["support"] == 3


def test_expected_initial_loss():
    from ccframe.ml.train import expected_initial_loss

    assert expected_initial_loss("binary_crossentropy", np.array([0, 1])) == pytest.approx(
        -math.log(0.5)
    )
    assert expected_initial_loss("mse", np.array([0.0, 1.0])) == 0.25
    assert expected_initial_loss("mse", np.array([1.0, 3.0])) == pytest.approx(5.0)
    assert expected_initial_loss("mae", np.array([1.0, 3.0])) == pytest.approx(2.0)


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    from ccframe.ml.batches import ArrayBatches
    from ccframe.ml.config import TrainingConfig
    from ccframe.ml.models import build_counter
    from ccframe.ml.runtime import configure
    from ccframe.ml.train import TrainingError, fit

    configure(seed=1)
    model = build_counter(CounterConfig(filters=[2], dense=[2], dropout=[0.0]), 16, 1.0)
    x = np.ones((8, 16, 1), dtype=np.float32)
    y = np.full(8, np.nan, dtype=np.float32)
    cfg = TrainingConfig(epochs=3, batch_size=4)
    data = ArrayBatches(x, y, np.arange(8), 4)
    with pytest.raises(TrainingError, match="NaN or infinite in epoch 1"):
        fit(model, data, data, cfg, "mse", [], "counter", 1.0, tmp_path / "h.csv", print)
    assert (tmp_path / "h.csv").is_file()


def test_ml_steering_errors_name_the_setting(tmp_path, capsys):
    path = tiny_steering(tmp_path, classifier={"dense": [8, 1], "dropout": [0.1]})
    assert run_cli("validate", str(path)) == 2
    err = capsys.readouterr().err
    assert "ml.classifier" in err and "dropout has 1 rates for 2 dense layers" in err
    path = tiny_steering(tmp_path, dataset={"train_fraction": 0.9, "validation_fraction": 0.2})
    assert run_cli("validate", str(path)) == 2
    assert "the rest is the test split" in capsys.readouterr().err


def test_run_writes_models_histories_metrics_and_predictions(trained):
    run = trained
    for name in (
        "classifier.keras",
        "counter.keras",
        "chain.json",
        "history_classifier.csv",
        "history_counter.csv",
        "roc_test.csv",
        "predictions.root",
        "metrics.json",
        "steering.yaml",
    ):
        assert (run / name).is_file(), name
    history = (run / "history_classifier.csv").read_text().splitlines()
    header = history[0].split(",")
    for column in ("loss", "val_loss", "val_auc", "val_precision", "val_f1"):
        assert column in header
    assert "val_efficiency_x_purity" in header and len(history) == 3  # header + 2 epochs
    m = json.loads((run / "metrics.json").read_text())["ml"]
    assert m["dataset"]["waveforms"] == 300
    assert m["dataset"]["train"]["waveforms"] == 210
    test = m["classifier"]["test"]
    assert 0.0 <= test["auc"] <= 1.0 and sum(test["confusion_matrix"].values()) == test["samples"]
    assert m["classifier"]["training"]["expected_initial_loss"] == pytest.approx(math.log(2))
    counts = m["count_test"]
    assert counts["ml"]["overall"]["waveforms"] == counts["traditional"]["overall"]["waveforms"]
    assert "ml_gain_over_traditional" in counts
    tree = uproot.open(run / "predictions.root")["predictions"]
    arrays = tree.arrays()
    assert len(arrays) == 300
    assert set(np.unique(arrays["split"])) == {TRAIN, VALIDATION, TEST}
    assert np.array_equal(
        arrays["n_peaks"].to_numpy(), np.sum(arrays["candidate_accepted"], axis=1).to_numpy()
    )
    chain = json.loads((run / "chain.json").read_text())
    assert chain["schema"] == 1 and chain["sampling_ghz"] == 1.2


def test_clusters_found_and_the_count_limit_match_a_reference(trained):
    """The ml stage's cluster efficiency: true clusters of the test split with an accepted
    candidate matched to one of their electrons, recomputed waveform by waveform."""
    pf = json.loads((trained / "metrics.json").read_text())["ml"]["peak_finding_test"]
    pred = uproot.open(trained / "predictions.root")["predictions"].arrays()
    pred = pred[pred.split == TEST]
    truth = uproot.open(trained / "sim.root")["sim"].arrays()
    cfg = MatchConfig()
    found, total = [], []
    for entry, samples, accepted in zip(
        pred.entry.to_list(),
        pred.candidate_sample.to_list(),
        pred.candidate_accepted.to_list(),
        strict=True,
    ):
        t = truth[entry]
        expected = (np.asarray(t.electron_time_ns) + t.pretrigger_ns + cfg.delay_ns) * 1.2
        m = match_peaks(
            ak.Array([samples]), ak.Array([expected]), ak.Array([t.electron_primary]), cfg
        )
        clusters = {
            t.electron_cluster[k]
            for k, acc in zip(m.peak_electron[0].tolist(), accepted, strict=True)
            if acc and k >= 0
        }
        found.append(len(clusters))
        total.append(int(t.n_clusters))
    found, total = np.array(found), np.array(total)
    efficiency = found.sum() / total.sum()
    assert pf["clusters"] == total.sum()
    assert pf["cluster_efficiency"] == pytest.approx(efficiency, rel=1e-12)
    rel = (found / efficiency - total)[total > 0] / total[total > 0]
    assert pf["count_limit_resolution_rms"] == pytest.approx(rel.std(), rel=1e-9)


def test_clusters_found_by_hand():
    accept = np.array([True, True, False, True, True, True])
    cluster = np.array([0, 0, 1, -1, 2, 0])  # waveform 0: 3 candidates, 1: none, 2: 3
    assert evaluate.clusters_found(accept, cluster, np.array([3, 0, 3])).tolist() == [1, 0, 2]
    label = (cluster >= 0).astype(np.int8)
    pf = evaluate.end_to_end(accept, label, cluster, np.array([3, 0, 3]), 9, np.array([1, 0, 2]))
    assert pf["cluster_efficiency"] == 1.0 and pf["count_limit_resolution_rms"] == 0.0


def test_infer_reproduces_the_runs_predictions(trained, tmp_path, capsys):
    run = trained
    out = tmp_path / "out.root"
    code = run_cli("infer", str(run), str(run / "sim.root"), "-o", str(out))
    assert code == 0, capsys.readouterr().err
    got = uproot.open(out)["predictions"].arrays()
    want = uproot.open(run / "predictions.root")["predictions"].arrays()
    assert np.array_equal(got["event_id"].to_numpy(), want["event_id"].to_numpy())
    np.testing.assert_allclose(got["n_clusters_ml"], want["n_clusters_ml"], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(
        np.concatenate(got["candidate_score"]), np.concatenate(want["candidate_score"]),
        atol=1e-5,
    )  # fmt: skip
    # an existing output is not replaced without --force
    assert run_cli("infer", str(run), str(run / "sim.root"), "-o", str(out)) == 2
    assert "use --force" in capsys.readouterr().err


def test_infer_reads_other_tree_and_branch_names_given_with_set(trained, tmp_path, capsys):
    # the run simulated its input (tree 'sim'): --set data.tree must still win for new files
    source = uproot.open(trained / "sim.root")["sim"].arrays(["waveform", "sampling_ghz"])
    other = tmp_path / "other.root"
    branches = {
        "ch0": source["waveform"].to_numpy(),
        "sampling_ghz": source["sampling_ghz"].to_numpy(),
    }
    with uproot.recreate(other) as file:  # a TTree (file[name] = ... writes an RNTuple)
        file.mktree("tree", {k: (v.dtype, v.shape[1:]) for k, v in branches.items()})
        file["tree"].extend(branches)
    out = tmp_path / "out.root"
    overrides = ("--set", "data.tree=tree", "--set", "data.waveform_branch=ch0")
    code = run_cli("infer", str(trained), str(other), "-o", str(out), *overrides)
    assert code == 0, capsys.readouterr().err
    got = uproot.open(out)["predictions"].arrays(["n_clusters_ml"])
    want = uproot.open(trained / "predictions.root")["predictions"].arrays(["n_clusters_ml"])
    np.testing.assert_allclose(got["n_clusters_ml"], want["n_clusters_ml"], rtol=1e-4, atol=1e-3)


def test_infer_refuses_other_sampling_rates_and_missing_models(trained, tmp_path, capsys):
    run = trained
    sim = str(run / "sim.root")
    out = str(tmp_path / "x.root")
    assert run_cli("infer", str(run), sim, "-o", out, "--set", "data.sampling_ghz=2.0") == 2
    err = capsys.readouterr().err
    assert "sampled at 2.0 GHz, the chain was trained at 1.2 GHz" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "steering.yaml").write_text((run / "steering.yaml").read_text())
    assert run_cli("infer", str(empty), sim, "-o", out) == 2
    assert "no trained chain here" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    for name in ("steering.yaml", "classifier.keras", "counter.keras"):
        (other / name).write_bytes((run / name).read_bytes())
    chain = json.loads((run / "chain.json").read_text()) | {"schema": 99}
    (other / "chain.json").write_text(json.dumps(chain))
    assert run_cli("infer", str(other), sim, "-o", out) == 2
    assert "chain schema 99" in capsys.readouterr().err
    (other / "chain.json").write_text(json.dumps({"schema": 1, "threshold": 0.5}))
    assert run_cli("infer", str(other), sim, "-o", out) == 2
    assert "incomplete or invalid chain settings" in capsys.readouterr().err
    assert not (tmp_path / "x.root").exists()


@pytest.mark.slow
def test_second_run_reuses_the_cached_dataset_and_repeats_exactly(trained, tmp_path, capsys):
    path = tmp_path / "again.yaml"
    raw = yaml.safe_load((trained / "steering.yaml").read_text())
    raw.pop("simulate")
    raw["name"] = "again"
    raw["output"] = str(tmp_path / "again")
    raw["data"]["files"] = [str(trained / "sim.root")]
    raw["data"]["tree"] = "sim"
    raw["ml"]["dataset"]["cache_dir"] = str(tmp_path / "cache")
    path.write_text(yaml.safe_dump(raw))
    assert run_cli("run", str(path)) == 0
    assert "dataset from cache" not in capsys.readouterr().out
    first = uproot.open(tmp_path / "again" / "predictions.root")["predictions"].arrays()
    assert run_cli("run", str(path), "--force") == 0
    assert "dataset from cache" in capsys.readouterr().out
    second = uproot.open(tmp_path / "again" / "predictions.root")["predictions"].arrays()
    # same seed, same data, CPU: the same models to the last bit
    assert np.array_equal(first["n_clusters_ml"].to_numpy(), second["n_clusters_ml"].to_numpy())
    want = uproot.open(trained / "predictions.root")["predictions"].arrays()
    assert np.array_equal(first["n_clusters_ml"].to_numpy(), want["n_clusters_ml"].to_numpy())
    # a damaged cache is rebuilt, not trusted
    (cached,) = (tmp_path / "cache").glob("ml-dataset-*")
    windows = cached / "windows.raw"
    windows.write_bytes(windows.read_bytes()[:1000])
    assert run_cli("run", str(path), "--force") == 0
    assert "ignoring the cache" in capsys.readouterr().err
    assert (windows.stat().st_size > 1000) and not list((tmp_path / "cache").glob(".*"))


@pytest.mark.slow
def test_shipped_quickstart_runs_small(tmp_path, capsys):
    args = set_args(*TINY_OVERRIDES, f"output={tmp_path / 'qs'}")
    code = run_cli("run", str(REPO / "steering" / "quickstart.yaml"), *args)
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    assert {"traditional", "ml"} <= set(metrics)
    assert (tmp_path / "qs" / "predictions.root").is_file()
