"""The command line through its entry point: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
from conftest import REPO, SAMPLES

from ccframe import __version__
from ccframe.cli import main
from ccframe.steering.loader import load_steering

# Imported only by the commands that need them (ccframe/cli.py), never by --help.
HEAVY = (
    "tensorflow", "keras", "numba", "uproot", "awkward", "optuna", "htcondor2", "jinja2",
    "onnx", "onnxruntime", "tf2onnx",
)  # fmt: skip


def cli(capsys, *args):
    """Run `ccframe ARGS` in this process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line_error(code, err):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ccframe: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err  # progress lines may precede it
    assert "Traceback" not in err


def console_script():
    exe = shutil.which("ccframe")
    assert exe is not None, "the ccframe console script is not installed on PATH"
    return exe


def run_script(*args, cwd):
    return subprocess.run(
        [console_script(), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_version_through_console_script(tmp_path):
    for flag in ("--version", "-V"):
        proc = run_script(flag, cwd=tmp_path)
        assert proc.returncode == 0
        assert proc.stdout.strip() == f"ccframe, version {__version__}"


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["simulate"],
        ["inspect"],
        ["validate"],
        ["schema"],
        ["infer"],
        ["export"],
        ["plot"],
        ["robustness"],
        ["compare"],
        ["pid"],
        ["sweep"],
        ["collect"],
    ],
)
def test_help_is_lazy(tmp_path, command):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ccframe", *command, "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: ccframe")
    if not command:
        assert re.search(
            r"Commands:\n\s+calibrate.*\n\s+collect.*\n\s+compare.*\n\s+export.*\n\s+infer.*"
            r"\n\s+inspect.*"
            r"\n\s+pid.*\n\s+plot.*\n\s+robustness.*\n\s+run.*\n\s+schema.*\n\s+simulate.*\n\s+sweep.*"
            r"\n\s+validate",
            proc.stdout,
        )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    top_level = {name.split(".")[0] for name in imported}
    assert not top_level & set(HEAVY), sorted(top_level & set(HEAVY))


def test_module_entry_point_reports_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ccframe", "inspect", str(tmp_path / "missing.root")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"ccframe: error: {tmp_path / 'missing.root'}: file not found\n"


def test_validate_through_console_script(tmp_path):
    quickstart = REPO / "steering" / "quickstart.yaml"
    proc = run_script("validate", quickstart, "--print", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    resolved, _, verdict = proc.stdout.rstrip("\n").rpartition("\n")
    assert verdict == (
        f"{quickstart}: valid (schema 1, name 'quickstart', "
        "stages: simulate, tune, read, traditional, ml, plots, output runs/quickstart)"
    )
    (tmp_path / "resolved.yaml").write_text(resolved + "\n")
    assert load_steering(tmp_path / "resolved.yaml") == load_steering(quickstart)
    assert not (tmp_path / "runs").exists()  # validate runs nothing


def test_validate(capsys, steering_file):
    code, out, err = cli(capsys, "validate", steering_file, "--set", "simulate.n_waveforms=9")
    assert code == 0 and err == ""
    assert out.startswith(f"{steering_file}: valid (schema 1, name 'tiny', stages: simulate, read")


def test_simulate_then_inspect(capsys, tmp_path):
    out_file = tmp_path / "x.root"
    code, out, err = cli(capsys, "simulate", "-o", out_file, "-n", "300", "--seed", "3")
    assert code == 0, err
    assert "seed 3" in out and f"wrote 300 waveforms to {out_file}:sim" in out  # progress
    assert err == ""
    assert uproot.open(out_file)["sim"].num_entries == 300
    code, out, err = cli(capsys, "inspect", out_file, "-n", "100")
    assert code == 0 and err == ""
    assert "tree 'sim': 300 entries" in out
    assert re.search(r"\n\s+waveform\s+float\[2400\]\n", out)
    assert re.search(r"\n\s+electron_time_ns\s+double\[\]\n", out)
    assert "waveform statistics of 'sim/waveform' (at most 100 entries)" in out
    assert re.search(r"waveforms\s+100\s+\(2400 samples, 1.2 GHz, 2000 ns\)", out)
    for label in ("baseline", "noise RMS", "amplitude", "clusters/cm", "electrons/cluster"):
        assert label in out


def test_simulate_refuses_to_overwrite(capsys, tmp_path):
    out_file = tmp_path / "x.root"
    assert cli(capsys, "simulate", "-o", out_file, "-n", "10")[0] == 0
    before = out_file.read_bytes()
    code, _, err = cli(capsys, "simulate", "-o", out_file, "-n", "20", "--seed", "1")
    assert_one_line_error(code, err)
    assert f"{out_file}: file exists; use --force" in err
    assert out_file.read_bytes() == before
    code, _, _ = cli(capsys, "simulate", "-o", out_file, "-n", "20", "--force")
    assert code == 0 and uproot.open(out_file)["sim"].num_entries == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.root"]  # no temporary files left


def test_simulate_same_seed_same_waveforms(capsys, tmp_path):
    """Same seed, same arrays, whatever the chunking. (The files' bytes differ: ROOT files
    carry a UUID, timestamps and the name of the temporary file they were written as.)"""
    arrays = []
    for name, chunk in (("a.root", 50), ("b.root", 7)):
        path = tmp_path / name
        args = ("-o", path, "-n", "50", "--seed", "11", "--set", f"simulate.chunk_size={chunk}")
        assert cli(capsys, "simulate", *args)[0] == 0
        arrays.append(uproot.open(path)["sim"].arrays(library="np"))
    a, b = arrays
    assert set(a) == set(b) and {"waveform", "electron_time_ns", "cluster_size"} <= set(a)
    for key in a:
        if a[key].dtype == object:  # jagged
            assert all(np.array_equal(x, y) for x, y in zip(a[key], b[key], strict=True)), key
        else:
            assert a[key].tobytes() == b[key].tobytes(), key
    other = tmp_path / "c.root"
    assert cli(capsys, "simulate", "-o", other, "-n", "5", "--seed", "12")[0] == 0
    waveform = uproot.open(other)["sim"]["waveform"].array(library="np")
    assert not np.array_equal(waveform, a["waveform"][:5])


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_run_writes_run_folder_and_never_overwrites(capsys, steering_file, tmp_path):
    overrides = ("--set", "simulate.n_waveforms=300")
    code, _, err = cli(capsys, "run", steering_file, *overrides)
    assert code == 0, err
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        ".ccframe.lock",
        "run.json",
        "sim.root",
        "steering.yaml",
        "summary.json",
    ]
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "done" and status["seed"] == 5 and status["name"] == "tiny"
    assert status["versions"]["ccframe"] == __version__
    assert {"python", "numpy", "numba", "uproot", "awkward", "pydantic"} <= set(status["versions"])
    assert status["wall_s"] >= 0 and "git" in status and "started" in status
    # The resolved steering file reproduces the run, overrides included.
    expected = load_steering(steering_file, ["simulate.n_waveforms=300"])
    assert load_steering(run / "steering.yaml") == expected
    summary = json.loads((run / "summary.json").read_text())
    assert summary["simulate"]["entries"] == 300 and summary["simulate"]["seed"] == 5
    assert summary["read"]["waveforms"] == 300
    assert summary["read"]["files"] == [str(run / "sim.root")]
    assert uproot.open(run / "sim.root")["sim"].num_entries == 300
    finished = snapshot(run)

    code, _, err = cli(capsys, "run", steering_file, *overrides)
    assert_one_line_error(code, err)
    assert f"{run}: folder already holds a run (done); use --force" in err
    assert snapshot(run) == finished

    code, _, err = cli(capsys, "run", steering_file, "--force", "--set", "simulate.n_waveforms=20")
    assert code == 0, err
    assert json.loads((run / "run.json").read_text())["status"] == "done"
    assert uproot.open(run / "sim.root")["sim"].num_entries == 20
    assert load_steering(run / "steering.yaml").simulate.n_waveforms == 20


def test_force_never_replaces_a_folder_that_is_not_a_run(capsys, steering_file, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    code, _, err = cli(capsys, "run", steering_file, "--force")
    assert_one_line_error(code, err)
    assert "holds files ccframe did not write (notes.txt) and is not a ccframe run" in err
    assert snapshot(tmp_path / "run") == {"notes.txt": b"mine"}


def test_failed_run_is_recorded(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"schema_version: 1\nname: bad\noutput: {json.dumps(str(tmp_path / 'run'))}\n"
        f"data:\n  files: [{json.dumps(str(SAMPLES / 'bad_nan.root'))}]\n"
    )
    code, _, err = cli(capsys, "run", path)
    assert_one_line_error(code, err)
    assert code == 2 and "bad_nan.root: entry 3 of tree 'sim'" in err
    run = tmp_path / "run"
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "failed" and "entry 3" in status["error"]
    assert (run / "steering.yaml").is_file()
    assert not (run / "summary.json").exists()
    # A failed run is kept for inspection: a rerun needs --force as well.
    code, _, err = cli(capsys, "run", path)
    assert_one_line_error(code, err)
    assert "folder already holds a run (failed)" in err


BAD_STEERING = "schema_version: 1\nname: t\nsimulate:\n  n_wavefroms: 5\n"

# Arguments ({tmp}: the test's tmp_path, holding bad.yaml) and a text the error must hold.
BAD_ARGS = {
    "inspect missing": (["inspect", "{tmp}/none.root"], "none.root: file not found"),
    "inspect not root": (["inspect", SAMPLES / "bad_not_root.root"], "not a readable ROOT file"),
    "inspect truncated": (["inspect", SAMPLES / "bad_truncated.root"], "bad_truncated.root"),
    "inspect scalar": (["inspect", SAMPLES / "bad_dtype.root"], "one float per entry"),
    "inspect string": (["inspect", SAMPLES / "bad_dtype_string.root"], "has type char*"),
    "inspect nan": (["inspect", SAMPLES / "bad_nan.root"], "entry 3"),
    "inspect empty": (["inspect", SAMPLES / "bad_empty.root"], "is empty"),
    "inspect short": (["inspect", SAMPLES / "short_waveform.root"], "baseline window"),
    "inspect no rate": (
        ["inspect", SAMPLES / "beamtest_like.root", "--tree", "h", "--branch", "ch0"],
        "--sampling-ghz",
    ),
    "validate missing": (["validate", "{tmp}/none.yaml"], "none.yaml: steering file not found"),
    "validate unknown key": (["validate", "{tmp}/bad.yaml"], "bad.yaml:4: unknown key"),
    "validate bad set": (
        ["validate", REPO / "steering" / "quickstart.yaml", "--set", "seed"],
        "--set 'seed': expected dotted.key=value",
    ),
    "run unknown key": (["run", "{tmp}/bad.yaml"], "did you mean 'n_waveforms'"),
    "run bad set": (
        ["run", REPO / "steering" / "quickstart.yaml", "--set", "simulate.particle=pion"],
        "--set simulate.particle",
    ),
    "simulate bad particle": (
        ["simulate", "-o", "{tmp}/x.root", "--set", "simulate.particle=pion"],
        "simulate.particle = 'pion'",
    ),
    "simulate below fit": (
        ["simulate", "-o", "{tmp}/x.root", "--set", "simulate.momentum.min_gev=0.01"],
        "beta*gamma",
    ),
    "simulate steering missing": (
        ["simulate", "-o", "{tmp}/x.root", "--steering", "{tmp}/none.yaml"],
        "steering file not found",
    ),
    "simulate under a file": (
        ["simulate", "-o", "{tmp}/bad.yaml/x.root", "-n", "5"],
        "cannot write here",
    ),
}


@pytest.mark.parametrize(("args", "expected"), BAD_ARGS.values(), ids=BAD_ARGS.keys())
def test_bad_input_exits_with_one_line(capsys, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)  # a run that wrongly started would write here, not in the repo
    (tmp_path / "bad.yaml").write_text(BAD_STEERING)
    code, out, err = cli(capsys, *(str(a).format(tmp=tmp_path) for a in args))
    assert_one_line_error(code, err)
    assert expected in err and "error" not in out  # out: progress before the failure, if any
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written


def test_usage_errors_are_clicks_not_tracebacks(capsys):
    code, out, err = cli(capsys, "simulate", "-n", "0", "-o", "x.root")
    assert code == 2 and out == ""
    assert err == (
        "ccframe: error: Invalid value for '-n' / '--n-waveforms': 0 is not in the range "
        "1<=x<=1000000000. (see ccframe simulate --help)\n"
    )
    assert "Traceback" not in err
    code, _, err = cli(capsys, "simulate")
    assert code == 2 and "Missing option '-o'" in err
    code, _, err = cli(capsys, "frobnicate")
    assert code == 2 and "No such command 'frobnicate'" in err


def test_inspect_lists_a_file_without_the_waveform_branch(capsys):
    code, out, err = cli(capsys, "inspect", SAMPLES / "bad_missing_branch.root")
    assert code == 0 and err == ""
    assert re.search(r"\n\s+wavefrom\s+float\[100\]\n", out)
    assert "no tree 'sim' with a 'waveform' branch: use --tree/--branch" in out
    assert "statistics of" not in out


def test_inspect_beam_test_file(capsys):
    args = ["inspect", SAMPLES / "beamtest_like.root", "--tree", "h", "--branch", "ch0"]
    conventions = ["--polarity", "negative", "--scale", 1000 / 65536, "--offset-mv", "-500"]
    code, out, err = cli(capsys, *args, "--sampling-ghz", "1.2", *conventions)
    assert code == 0, err
    assert "tree 'h': 20 entries" in out and re.search(r"ch0\s+uint16_t\[1024\]", out)
    assert re.search(r"waveforms\s+20\s+\(1024 samples, 1.2 GHz, 853.333 ns\)", out)
    baseline = float(re.search(r"baseline\s+(-?[\d.]+) mV", out).group(1))
    amplitude = float(re.search(r"median (-?[\d.]+) mV", out).group(1))
    assert abs(baseline) < 0.5 and 25 < amplitude < 36


def test_inspect_rejects_bad_option_value_without_traceback(capsys):
    code, _, err = cli(capsys, "inspect", SAMPLES / "bad_nan.root", "--scale", "0")
    assert code == 2
    assert "--scale" in err and "must not be 0" in err and "Traceback" not in err


def test_run_folder_under_a_file_is_one_line(capsys, steering_file, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, _, err = cli(capsys, "run", steering_file, "--set", f"output={blocker / 'run'}")
    assert_one_line_error(code, err)
    assert "cannot create the run folder" in err


def test_run_records_its_own_arguments(capsys, steering_file, tmp_path):
    code, _, _ = cli(capsys, "run", steering_file, "--set", "simulate.n_waveforms=10")
    assert code == 0
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["command"] == [
        "ccframe",
        "run",
        str(steering_file),
        "--set",
        "simulate.n_waveforms=10",
    ]


def test_simulated_file_records_its_final_name(capsys, tmp_path):
    path = tmp_path / "named.root"
    code, _, _ = cli(capsys, "simulate", "-o", path, "-n", "5")
    assert code == 0
    assert b"named.root" in path.read_bytes()[:400]
    assert b".tmp" not in path.read_bytes()[:400]
    assert [p.name for p in tmp_path.iterdir()] == ["named.root"]  # no temporary left
