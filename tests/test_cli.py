"""The command line through its entry point: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import uproot
from conftest import SAMPLES

from ccframe.cli import main


def cli(capsys, *args):
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def assert_one_line_error(code, err):
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ccframe: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err  # progress lines may precede it
    assert "Traceback" not in err


def test_installed_entry_point_version_and_fast_help():
    exe = shutil.which("ccframe")
    assert exe is not None
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert "ccframe, version" in proc.stdout
    code = (
        "import sys; from ccframe.cli import main\ntry:\n    main(['--help'])\n"
        "except SystemExit: pass\nprint('tensorflow' in sys.modules, 'numba' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip().endswith("False False")


def test_module_entry_point_reports_errors(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ccframe", "inspect", str(tmp_path / "missing.root")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"ccframe: error: {tmp_path / 'missing.root'}: file not found"


def test_validate(capsys, steering_file):
    code, out, _ = cli(capsys, "validate", str(steering_file))
    assert code == 0 and "valid" in out and "stages: simulate, read" in out


def test_simulate_then_inspect(capsys, tmp_path):
    out_file = tmp_path / "x.root"
    code, _, err = cli(capsys, "simulate", "-o", str(out_file), "-n", "300", "--seed", "3")
    assert code == 0, err
    assert uproot.open(out_file)["sim"].num_entries == 300
    code, out, _ = cli(capsys, "inspect", str(out_file), "-n", "100")
    assert code == 0
    assert "tree 'sim': 300 entries" in out and "float[2400]" in out
    assert "noise RMS" in out and "clusters/cm" in out


def test_simulate_refuses_to_overwrite(capsys, tmp_path):
    out_file = tmp_path / "x.root"
    out_file.write_bytes(b"precious")
    code, _, err = cli(capsys, "simulate", "-o", str(out_file), "-n", "10")
    assert_one_line_error(code, err)
    assert "--force" in err and out_file.read_bytes() == b"precious"
    code, _, _ = cli(capsys, "simulate", "-o", str(out_file), "-n", "10", "--force")
    assert code == 0 and uproot.open(out_file)["sim"].num_entries == 10


def test_simulate_same_seed_same_waveforms(capsys, tmp_path):
    arrays = []
    for name in ("a.root", "b.root"):
        path = tmp_path / name
        code, _, _ = cli(
            capsys,
            "simulate",
            "-o",
            str(path),
            "-n",
            "50",
            "--seed",
            "11",
            "--set",
            "simulate.chunk_size=1",
        )
        assert code == 0
        arrays.append(uproot.open(path)["sim"].arrays(library="np"))
    for key in ("waveform", "electron_time_ns", "cluster_size"):
        a, b = arrays[0][key], arrays[1][key]
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), key


def test_run_writes_run_folder_and_never_overwrites(capsys, steering_file, tmp_path):
    code, _, err = cli(capsys, "run", str(steering_file))
    assert code == 0, err
    run = tmp_path / "run"
    status = json.loads((run / "run.json").read_text())
    assert status["status"] == "done" and status["seed"] == 5
    assert {"numpy", "numba", "uproot", "python"} <= set(status["versions"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["read"]["waveforms"] == 300
    assert "cluster_size_percent" in (run / "steering.yaml").read_text()
    assert uproot.open(run / "sim.root")["sim"].num_entries == 300
    before = (run / "sim.root").stat().st_mtime_ns

    code, _, err = cli(capsys, "run", str(steering_file))
    assert_one_line_error(code, err)
    assert "--force" in err
    assert (run / "sim.root").stat().st_mtime_ns == before

    code, _, _ = cli(
        capsys, "run", str(steering_file), "--force", "--set", "simulate.n_waveforms=20"
    )
    assert code == 0
    assert uproot.open(run / "sim.root")["sim"].num_entries == 20


def test_failed_run_is_recorded(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        f"schema_version: 1\nname: bad\noutput: {tmp_path / 'run'}\n"
        f"data:\n  files: [{SAMPLES / 'bad_nan.root'}]\n"
    )
    code, _, err = cli(capsys, "run", str(path))
    assert_one_line_error(code, err)
    assert "entry 3" in err
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "failed" and "entry 3" in status["error"]
    assert not (tmp_path / "run" / "summary.json").exists()


BAD_ARGS = [
    ("inspect", str(SAMPLES / "bad_not_root.root")),
    ("inspect", str(SAMPLES / "bad_truncated.root")),
    ("inspect", str(SAMPLES / "bad_missing_branch.root")),
    ("validate", "missing.yaml"),
    ("simulate", "-o", "{tmp}/x.root", "--set", "simulate.particle=pion"),
    ("simulate", "-o", "{tmp}/x.root", "--set", "simulate.momentum.min_gev=0.01"),
]


@pytest.mark.parametrize("args", BAD_ARGS, ids=["-".join(a[:2]) for a in BAD_ARGS])
def test_bad_input_exits_with_one_line(capsys, tmp_path, args):
    code, _, err = cli(capsys, *(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(code, err)
    assert not (tmp_path / "x.root").exists()


def test_inspect_beam_test_file(capsys):
    code, out, _ = cli(
        capsys,
        "inspect",
        str(SAMPLES / "beamtest_like.root"),
        "--tree",
        "h",
        "--branch",
        "ch0",
        "--sampling-ghz",
        "1.2",
        "--polarity",
        "negative",
        "--scale",
        str(1000 / 65536),
        "--offset-mv",
        "-500",
    )
    assert code == 0 and "uint16_t[1024]" in out
    assert re.search(r"waveforms\s+8\s+\(1024 samples, 1.2 GHz", out)


def test_no_traceback_on_usage_error(capsys):
    code, _, err = cli(capsys, "simulate")
    assert code == 2 and "Missing option" in err and "Traceback" not in err


@pytest.mark.skipif(os.name != "posix", reason="uses POSIX permissions")
def test_unwritable_output_is_clear(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.access(locked, os.W_OK):  # running as root: permissions do not bind
        locked = tmp_path / "file_not_dir"
        locked.write_text("x")
    code, _, err = cli(capsys, "simulate", "-o", str(locked / "x.root"), "-n", "5")
    assert_one_line_error(code, err)
