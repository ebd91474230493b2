"""Sweeps: the sweep: section, trial steering files, the local executor with resources, the
leaderboard and best trial, optuna resumption and the rendered HTCondor DAG."""

from __future__ import annotations

import csv
import json
import os

import pytest
import uproot
import yaml
from conftest import REPO, SAMPLES, TINY_ML, tiny_steering

from ccframe.cli import main
from ccframe.pipeline.stages import enabled
from ccframe.steering.loader import load_steering
from ccframe.sweep.config import SweepConfig


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def one_line_error(code, err):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1].startswith("ccframe: error:"), err
    assert sum(line.startswith("ccframe: error:") for line in lines) == 1
    assert "Traceback" not in err
    return lines[-1]


def tiny_ml(epochs=1):
    ml = json.loads(json.dumps(TINY_ML))
    for model in ("classifier", "counter"):
        ml[model]["training"]["epochs"] = epochs
    return ml


def write_sweep(tmp_path, sweep, name="sw", n=200, **extra):
    return tiny_steering(tmp_path, name, n, top={"sweep": sweep, **extra}, **tiny_ml())


GRID = {
    "method": "grid",
    "parameters": {
        "ml.classifier.lstm_units": {"values": [4, 6]},
        "ml.classifier.training.optimizer.name": {"values": ["adam", "rmsprop"]},
    },
}


def test_run_ignores_the_sweep_section(tmp_path):
    config = load_steering(write_sweep(tmp_path, GRID))
    assert isinstance(config.sweep, SweepConfig)
    assert [s.name for s in enabled(config)] == ["simulate", "read", "ml"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            {"ml.classifier.lstm_unit": {"values": [4]}},
            "sweep.parameters.ml.classifier.lstm_unit: unknown steering key "
            "'ml.classifier.lstm_unit' (did you mean 'lstm_units'?)",
        ),
        (
            {"ml.classifier.lstm_units.x": {"values": [4]}},
            "ml.classifier.lstm_units is a value, not a section",
        ),
        (
            {"ml.classifier.lstm_units": {"values": [4, 0]}},
            "sweep.parameters.ml.classifier.lstm_units: ml.classifier.lstm_units = 0",
        ),
        (
            {"ml.classifier.training.optimizer.name": {"values": ["adam", "adamw"]}},
            "sweep.parameters.ml.classifier.training.optimizer.name",
        ),
        ({"output": {"values": ["a"]}}, "'output' cannot be swept"),
    ],
)
def test_bad_parameters_are_one_line_errors(tmp_path, capsys, parameters, message):
    path = write_sweep(tmp_path, {"method": "grid", "parameters": parameters})
    line = one_line_error(*cli(capsys, "sweep", path, "--dry-run")[::2])
    assert message in line
    line = one_line_error(*cli(capsys, "validate", path)[::2])
    assert message in line


def test_grid_needs_values_and_trials_are_validated_together(tmp_path, capsys):
    ranged = {"method": "grid", "parameters": {"ml.classifier.lstm_units": {"min": 2, "max": 8}}}
    line = one_line_error(*cli(capsys, "sweep", write_sweep(tmp_path, ranged), "--dry-run")[::2])
    assert "sweep" in line and "method grid needs values" in line
    # each value is valid alone, but two dense layers need two dropout rates
    clash = {
        "method": "grid",
        "parameters": {
            "ml.classifier.dense": {"values": [[8], [8, 4]]},
            "ml.classifier.dropout": {"values": [[0.0]]},
        },
    }
    line = one_line_error(*cli(capsys, "sweep", write_sweep(tmp_path, clash), "--dry-run")[::2])
    assert "trial 0001 (ml.classifier.dense=[8, 4]" in line and "dropout has 1 rates" in line


def test_dry_run_writes_self_contained_trial_steering(tmp_path, capsys):
    sweep = {
        **GRID,
        "vary_seed": True,
        "parameters": {
            **GRID["parameters"],
            "ml.classifier": {"values": [{"dense": [6, 1], "dropout": [0.1, 0.1]}]},
        },
    }
    code, _, err = cli(capsys, "sweep", write_sweep(tmp_path, sweep), "--dry-run")
    assert code == 0, err
    run = tmp_path / "sw"
    folders = sorted((run / "trials").iterdir())
    assert [f.name for f in folders] == ["0000", "0001", "0002", "0003"]
    config = load_steering(folders[3] / "steering.yaml")
    assert config.sweep is None and config.output == str(folders[3].resolve())
    assert config.seed == 3 + 3
    clf = config.ml.classifier
    assert (clf.lstm_units, clf.training.optimizer.name) == (6, "rmsprop")
    assert clf.dense == [6, 1] and clf.dropout == [0.1, 0.1]  # partial mapping merged
    assert clf.training.epochs == 1 and config.ml.threads == 1  # threads = request_cpus
    assert not (folders[0] / "run.json").exists()  # nothing ran
    info = json.loads((folders[3] / "trial.json").read_text())
    assert info["parameters"]["ml.classifier.lstm_units"] == 6


def test_trial_steering_reads_relative_paths_from_the_sweep_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    steering = {
        "schema_version": 1,
        "name": "sw",
        "data": {"files": ["x.root"]},
        "traditional": {"thresholds": "~/t.yaml"},
        "infer": {"chain": "runs/q"},
        "sweep": {"method": "grid", "parameters": {"data.files": {"values": [["a"], ["b*"]]}}},
    }
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump(steering))
    code, _, err = cli(capsys, "sweep", "sw.yaml", "--dry-run")
    assert code == 0, err
    trials = [
        load_steering(tmp_path / "runs" / "sw" / "trials" / n / "steering.yaml")
        for n in ("0000", "0001")
    ]
    assert [t.data.files for t in trials] == [[str(tmp_path / "a")], [str(tmp_path / "b*")]]
    assert trials[0].infer.chain == str(tmp_path / "runs" / "q")
    assert trials[0].traditional.thresholds == os.path.expanduser("~/t.yaml")


def test_random_draws_are_seeded_and_in_range(tmp_path, capsys):
    sweep = {
        "method": "random",
        "trials": 6,
        "seed": 11,
        "parameters": {
            "ml.classifier.lstm_units": {"min": 2, "max": 9},
            "ml.classifier.training.optimizer.learning_rate": {
                "min": 1e-4,
                "max": 1e-2,
                "log": True,
            },
        },
    }
    draws = []
    for name in ("r1", "r2"):
        assert cli(capsys, "sweep", write_sweep(tmp_path, sweep, name=name), "--dry-run")[0] == 0
        draws.append(
            [
                json.loads(p.read_text())["parameters"]
                for p in sorted((tmp_path / name / "trials").glob("*/trial.json"))
            ]
        )
    assert draws[0] == draws[1] and len(draws[0]) == 6
    for params in draws[0]:
        assert isinstance(params["ml.classifier.lstm_units"], int)
        assert 2 <= params["ml.classifier.lstm_units"] <= 9
        assert 1e-4 <= params["ml.classifier.training.optimizer.learning_rate"] <= 1e-2


@pytest.mark.parametrize(
    ("example", "n_trials"),
    [("lstm_sweep", 27), ("cnn_sweep", 12), ("simulate_fanout", 4), ("infer_fanout", 4)],
)
def test_shipped_examples_dry_run(tmp_path, capsys, example, n_trials):
    path = REPO / "steering" / f"{example}.yaml"
    code, _, err = cli(capsys, "sweep", path, "--dry-run", "--set", f"output={tmp_path / 'x'}")
    assert code == 0, err
    trials = sorted((tmp_path / "x" / "trials").iterdir())
    assert len(trials) == n_trials
    if example == "lstm_sweep":
        clf = load_steering(trials[-1] / "steering.yaml").ml.classifier
        assert (clf.lstm_units, clf.dense, clf.activation) == (32, [64, 1], "sigmoid")
        assert clf.training.optimizer.name == "rmsprop" and clf.training.batch_size == 150


def fake_trial(run, number, params, status, metrics):
    folder = run / "trials" / f"{number:04d}"
    folder.mkdir(parents=True)
    (folder / "trial.json").write_text(json.dumps({"number": number, "parameters": params}))
    (folder / "run.json").write_text(json.dumps({"status": status}))
    (folder / "metrics.json").write_text(json.dumps({"ml": {"classifier": {"test": metrics}}}))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_collect_ranks_by_metric_then_tie_breakers(tmp_path, capsys, direction):
    path = write_sweep(tmp_path, {**GRID, "direction": direction})
    run = tmp_path / "sw"
    run.mkdir()
    (run / "sweep.yaml").write_text(path.read_text())
    fake_trial(run, 0, {"a": 1}, "done", {"f1": 0.5, "auc": 0.9})
    fake_trial(run, 1, {"a": 2}, "done", {"f1": 0.7, "auc": 0.8})
    fake_trial(run, 2, {"a": 3}, "done", {"f1": 0.7, "auc": 0.85})
    fake_trial(run, 3, {"a": 4}, "failed", {})
    code, out, err = cli(capsys, "collect", run)
    assert code == 0, err
    rows = list(csv.DictReader((run / "leaderboard.csv").read_text().splitlines()))
    order = [r["trial"] for r in rows]
    assert order == (
        ["0002", "0001", "0000", "0003"]
        if direction == "maximize"
        else ["0000", "0001", "0002", "0003"]
    )
    best = json.loads((run / "best" / "trial.json").read_text())["number"]
    assert best == int(order[0])
    assert "rank" in out and "0003" in out and "failed" in out
    assert not [p for p in run.iterdir() if p.name.startswith(".best")]


def test_collect_refuses_a_folder_that_is_no_sweep(tmp_path, capsys):
    line = one_line_error(*cli(capsys, "collect", tmp_path)[::2])
    assert "not a ccframe sweep folder" in line


def test_condor_dry_run_renders_parsable_submit_files_and_the_dag(tmp_path, capsys):
    htcondor = pytest.importorskip("htcondor2")
    sweep = {
        **GRID,
        "executor": "condor",
        "request_cpus": 2,
        "request_memory_mb": 3000,
        "max_runtime_s": 3600,
        "requirements": '(OpSys == "LINUX")',
        "accounting_group": "group_ccframe",
        "retries": 2,
    }
    code, _, err = cli(capsys, "sweep", write_sweep(tmp_path, sweep), "--dry-run")
    assert code == 0, err
    run = (tmp_path / "sw").resolve()
    condor = run / "condor"
    subs = sorted(condor.glob("trial_*.sub"))
    assert len(subs) == 4
    for sub in subs:
        desc = htcondor.Submit(sub.read_text())
        assert desc["request_cpus"] == "2" and desc["request_memory"] == "3000"
        assert desc["accounting_group"] == "group_ccframe"
        assert desc["initialdir"] == str(run / "trials" / sub.stem.split("_")[1])
    htcondor.Submit((condor / "collect.sub").read_text())
    wrapper = (condor / "run_trial.sh").read_text()
    assert 'export "$var=2"' in wrapper and "NUMBA_CACHE_DIR" in wrapper
    assert "-m ccframe run steering.yaml" in wrapper and os.access(condor / "run_trial.sh", os.X_OK)
    dag = (condor / "sweep.dag").read_text().replace(str(run), "RUN")
    assert dag == (SAMPLES / "sweep.dag").read_text()
    assert not list((run / "trials").glob("*/run.json"))


def test_condor_without_a_schedd_is_a_one_line_error(tmp_path, capsys):
    pytest.importorskip("htcondor2")
    path = write_sweep(tmp_path, {**GRID, "executor": "condor"})
    line = one_line_error(*cli(capsys, "sweep", path)[::2])
    assert "cannot submit the DAG" in line


@pytest.mark.slow
def test_local_grid_end_to_end_with_a_failing_trial(tmp_path, capsys):
    missing = str(tmp_path / "missing.root")
    sweep = {
        "method": "grid",
        "parameters": {
            "ml.classifier.lstm_units": {"values": [4, 6]},
            "data.files": {"values": [[], [missing]]},  # found missing only at run time
        },
        "parallel": 2,
    }
    path = write_sweep(tmp_path, sweep)
    code, out, err = cli(capsys, "sweep", path)
    assert code == 0, err
    run = tmp_path / "sw"
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 4
    rows = list(csv.DictReader((run / "leaderboard.csv").read_text().splitlines()))
    assert [r["status"] for r in rows] == ["done", "done", "failed", "failed"]
    assert {r["trial"] for r in rows[:2]} == {"0000", "0002"}
    assert all(missing in r["reason"] for r in rows[2:])
    f1 = [float(r["ml.classifier.test.f1"]) for r in rows[:2]]
    assert f1[0] >= f1[1]
    best = json.loads((run / "best" / "trial.json").read_text())["number"]
    assert f"{best:04d}" == rows[0]["trial"]
    assert (run / "best" / "metrics.json").is_file() and (
        run / "best" / "classifier.keras"
    ).is_file()
    plots = {p.stem for p in (run / "plots").glob("*.png")}
    assert "sweep_f1_vs_ml-classifier-lstm_units" in plots
    assert "sweep_f1_vs_data-files" in plots  # categorical values on an even axis
    for trial in ("0000", "0001"):
        res = json.loads((run / "trials" / trial / "resources.json").read_text())
        assert res["wall_s"] > 0 and res["cpu_s"] > 0 and res["peak_rss_mb"] > 50
        assert res["cores_used"] == pytest.approx(res["cpu_s"] / res["wall_s"], rel=0.01)
        assert res["requested"]["cpus"] == 1 and res["requested"]["memory_mb"] == 4096
    failed = json.loads((run / "trials" / "0001" / "resources.json").read_text())
    assert failed["status"] == "failed" and failed["reason"].startswith("ccframe: error:")
    # a trial reruns alone from its steering file, into its own folder
    assert cli(capsys, "run", run / "trials" / "0000" / "steering.yaml", "--force")[0] == 0
    # a second sweep skips the finished trials and retries the failed ones
    code, out, err = cli(capsys, "sweep", path)
    assert code == 0 and "2 trial(s) already done, skipped" in out
    assert len([line for line in out.splitlines() if line.startswith("[")]) == 2
    rows = list(csv.DictReader((run / "leaderboard.csv").read_text().splitlines()))
    assert [r["status"] for r in rows] == ["done", "done", "failed", "failed"]


@pytest.mark.slow
def test_bayes_sweep_resumes_from_its_study(tmp_path, capsys):
    pytest.importorskip("optuna")
    sweep = {
        "method": "bayes",
        "trials": 3,
        "seed": 4,
        "parallel": 2,
        "parameters": {
            "ml.classifier.lstm_units": {"min": 2, "max": 8},
            "ml.classifier.training.optimizer.learning_rate": {
                "min": 1e-4,
                "max": 1e-2,
                "log": True,
            },
            "ml.classifier": {"values": [{"dense": [8]}, {"dense": [6, 4], "dropout": [0, 0]}]},
        },
    }
    path = write_sweep(tmp_path, sweep)
    code, _, err = cli(capsys, "sweep", path)
    assert code == 0, err
    run = tmp_path / "sw"
    assert (run / "optuna.db").is_file()
    assert len(list((run / "trials").glob("*/trial.json"))) == 3
    code, out, err = cli(capsys, "sweep", path, "--set", "sweep.trials=4")
    assert code == 0, err
    finished = [line for line in out.splitlines() if line.startswith("[")]
    assert len(finished) == 1 and "trial 0003 done" in finished[0]
    params = [
        json.loads(p.read_text())["parameters"]
        for p in sorted((run / "trials").glob("*/trial.json"))
    ]
    assert len(params) == 4 and params[3] != params[0]  # resumed, not replayed
    rows = list(csv.DictReader((run / "leaderboard.csv").read_text().splitlines()))
    assert len(rows) == 4 and rows[0]["rank"] == "1"


def test_a_changed_sweep_does_not_mix_with_finished_trials(tmp_path, capsys):
    assert cli(capsys, "sweep", write_sweep(tmp_path, GRID), "--dry-run")[0] == 0
    (tmp_path / "sw" / "trials" / "0000" / "run.json").write_text('{"status": "done"}')
    changed = {**GRID, "parameters": {"ml.classifier.lstm_units": {"values": [5]}}}
    line = one_line_error(*cli(capsys, "sweep", write_sweep(tmp_path, changed), "--dry-run")[::2])
    assert "trial 0000 already ran with other parameters" in line


@pytest.mark.slow
def test_rendered_wrapper_runs_a_trial_as_a_shared_filesystem_job(tmp_path, capsys):
    import subprocess

    path = write_sweep(tmp_path, {**GRID, "executor": "condor", "transfer": "shared"})
    assert cli(capsys, "sweep", path, "--dry-run")[0] == 0
    run = (tmp_path / "sw").resolve()
    folder = run / "trials" / "0000"
    env = {**os.environ, "_CONDOR_SCRATCH_DIR": str(tmp_path)}
    with (folder / "trial.out").open("w") as out, (folder / "trial.err").open("w") as err:
        proc = subprocess.run(
            ["bash", str(run / "condor" / "run_trial.sh")],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=err,
            timeout=300,
            check=False,
        )
    assert proc.returncode == 0, (folder / "trial.err").read_text()[-2000:]
    res = json.loads((folder / "resources.json").read_text())
    assert res["trial"] == 0 and res["status"] == "done" and res["executor"] == "condor"
    assert res["requested"]["cpus"] == 1 and res["cpu_s"] > 0
    code, out, _ = cli(capsys, "collect", run)
    assert code == 0 and "0000" in out and "pending" in out
    assert (run / "best" / "run.json").is_file()


def test_condor_templates_ship_with_the_package():
    from ccframe.sweep.condor import TEMPLATES, template_dir

    folder = template_dir()
    assert folder.name == "templates" and folder.resolve() == (REPO / "condor").resolve()
    assert all((folder / name).is_file() for name in TEMPLATES)
    assert "sweep/templates/*.j2" in (REPO / "pyproject.toml").read_text()


@pytest.mark.slow
def test_infer_fans_out_over_files(trained, tmp_path, capsys):
    sim = str(trained / "sim.root")
    other = tmp_path / "other.root"
    other.write_bytes((trained / "sim.root").read_bytes())
    steering = {
        "schema_version": 1,
        "name": "fan",
        "output": str(tmp_path / "fan"),
        "data": {"files": [sim]},
        "infer": {"chain": str(trained), "batch": 1024},
        "sweep": {
            "method": "grid",
            "parameters": {"data.files": {"values": [[sim], [str(other)]]}},
            "parallel": 2,
        },
    }
    path = tmp_path / "fan.yaml"
    path.write_text(yaml.safe_dump(steering))
    code, _, err = cli(capsys, "sweep", path)
    assert code == 0, err
    for trial in ("0000", "0001"):
        tree = uproot.open(tmp_path / "fan" / "trials" / trial / "inferred.root")["predictions"]
        assert tree.num_entries == 300 and "n_clusters_ml" in tree
        res = json.loads((tmp_path / "fan" / "trials" / trial / "resources.json").read_text())
        assert res["status"] == "done"


@pytest.mark.slow
def test_a_local_trial_past_max_runtime_is_stopped_and_recorded(tmp_path, capsys):
    sweep = {"method": "grid", "parameters": {"seed": {"values": [1]}}, "max_runtime_s": 1}
    code, out, err = cli(capsys, "sweep", write_sweep(tmp_path, sweep, n=5000))  # runs ~20 s
    assert "trial 0000 failed" in out and "stopped after max_runtime_s = 1" in out
    line = one_line_error(code, err)  # every trial failed: the sweep failed
    assert "every trial failed" in line and "leaderboard.csv" in line
    res = json.loads((tmp_path / "sw" / "trials" / "0000" / "resources.json").read_text())
    assert res["status"] == "failed" and res["exit_code"] == -9
    assert 1.0 <= res["wall_s"] < 5.0 and res["requested"]["max_runtime_s"] == 1
    assert not (tmp_path / "sw" / "trials" / "0000" / "sim.root").exists()
