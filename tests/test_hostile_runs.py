"""Hostile or unlucky users: steering files that explode, settings beyond the machine, full
disks, killed runs, concurrent runs, user files in run folders. Each test reproduces a
defect that was seen, and checks the one-line error or the safe outcome."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import uproot
from conftest import REPO, small_steering
from test_cli import assert_one_line_error, cli, snapshot

from ccframe.resources import available_memory, free_disk
from ccframe.runfolder.rundir import LOCK_FILE, FolderLock, read_status

BOMB = """\
schema_version: 1
name: bomb
simulate: {}
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


# `ccframe ARGS` in a child that reports its own peak RSS (VmHWM) on exit: RUSAGE_CHILDREN
# would give the largest child this test process ever waited for, and a child's ru_maxrss
# starts at the size of the parent it was forked from.
_MEASURED = (
    "import atexit, re, sys; from pathlib import Path; from ccframe.cli import main; "
    "atexit.register(lambda: print('PEAK_KB', re.search(r'VmHWM:\\s+(\\d+)', "
    "Path('/proc/self/status').read_text()).group(1), file=sys.stderr)); main(sys.argv[1:])"
)


def ccframe(*args, cwd: Path, limit_file_bytes: int | None = None, timeout: float = 300):
    """`ccframe ARGS` in a child process: (exit code, stderr, its peak RSS in MB)."""

    def limits() -> None:
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    proc = subprocess.run(
        [sys.executable, "-c", _MEASURED, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        preexec_fn=limits,
    )
    lines = proc.stderr.splitlines()
    peak = [line for line in lines if line.startswith("PEAK_KB ")]
    err = "".join(line + "\n" for line in lines if not line.startswith("PEAK_KB "))
    return proc.returncode, err, int(peak[-1].split()[1]) / 1024 if peak else float("nan")


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def tiny(tmp_path: Path, **sections) -> Path:
    return small_steering(tmp_path, **sections)


# --- steering files that explode --------------------------------------------------------


def test_alias_bomb_is_refused_fast_and_small(tmp_path):
    path = write(tmp_path / "bomb.yaml", BOMB)
    start = time.perf_counter()
    code, err, _ = ccframe("validate", path, cwd=tmp_path, timeout=60)
    assert code == 2 and "expands to more than 100000 values" in err
    assert len(err.strip().splitlines()) == 1 and time.perf_counter() - start < 30


def test_alias_bomb_in_a_set_value_is_refused(capsys, tmp_path):
    bomb = "{" + ", ".join(f"{k}: &{k} [" + ", ".join([f"*{p}"] * 9) + "]" for k, p in
                           zip("bcdefghi", "abcdefgh", strict=True)) + "}"  # fmt: skip
    value = 'x=[&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"], ' + bomb + "]"
    code, _, err = cli(capsys, "validate", tiny(tmp_path), "--set", value)
    assert_one_line_error(code, err)
    assert "--set x: expands to more than 100000 values" in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("schema_version: 1\nname: r\nsimulate: {}\nx: &x [*x]\n", "a YAML alias refers to itself"),
        ("schema_version: 1\nname: d\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("schema_version: 1\nname: d\nx: " + "[" * 60 + "]" * 60 + "\n", "nested too deeply"),
    ],
)
def test_recursive_or_deep_yaml_is_one_line(capsys, tmp_path, text, expected):
    code, _, err = cli(capsys, "validate", write(tmp_path / "s.yaml", text))
    assert_one_line_error(code, err)
    assert expected in err


def test_python_tags_are_refused_in_one_line(capsys, tmp_path):
    tag = '!!python/object/apply:os.system ["touch pwned"]'
    path = write(tmp_path / "s.yaml", f"schema_version: 1\nname: t\nsimulate: {tag}\n")
    code, _, err = cli(capsys, "validate", path)
    assert_one_line_error(code, err)
    assert "s.yaml:3: YAML syntax error: could not determine a constructor" in err
    code, _, err = cli(capsys, "validate", tiny(tmp_path), "--set", f"simulate={tag}")
    assert_one_line_error(code, err)  # not YAML for the safe loader: taken as a string
    assert "--set simulate: simulate = '!!python" in err
    assert not (tmp_path / "pwned").exists()


def test_error_messages_do_not_repr_huge_values(capsys, tmp_path):
    big = "[" + ", ".join(["1.5"] * 50000) + "]"
    code, _, err = cli(capsys, "validate", tiny(tmp_path), "--set", f"simulate.n_waveforms={big}")
    assert_one_line_error(code, err)
    assert len(err) < 400 and "simulate.n_waveforms = [1.5, 1.5" in err


def test_validate_stays_small_on_every_shipped_steering_file(tmp_path):
    for path in sorted((REPO / "steering").glob("*.yaml")):
        code, err, peak_mb = ccframe("validate", path, cwd=REPO)
        assert code == 0, err
        assert peak_mb < 200, f"{path.name}: ccframe validate peaked at {peak_mb:.0f} MB"


# --- values beyond the machine ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("simulate.noise.rms_mv=.inf", "simulate.noise.rms_mv = inf: Input should be a finite"),
        ("simulate.detector.window_ns=.nan", "simulate.detector.window_ns = nan: Input should be"),
        ("simulate.n_waveforms=1000000000000", "simulate.n_waveforms = 1000000000000"),
        ("simulate.chunk_size=1000000000", "simulate.chunk_size = 1000000000: Input should be"),
        ("simulate.detector.window_ns=1.0e+12", "less than or equal to 1000000"),
        ("simulate.detector.sampling_ghz=1.0e+9", "less than or equal to 100"),
        ("data.chunk_size=1000000000", "data.chunk_size = 1000000000: Input should be less"),
        ("ml.classifier.lstm_units=1000000000", "ml.classifier.lstm_units = 1000000000"),
        ('output="a\\nb"', "output = 'a\\nb': control character"),
        ("simulate.output=../x.root", "would write outside the run folder"),
        ("simulate.output=/tmp/x.root", "expected a file name inside the run folder"),
        ("traditional.output=run.json", "is the run folder's own file"),
    ],
)
def test_unbounded_or_hostile_values_are_refused_at_validation(
    capsys, tmp_path, override, expected
):
    code, _, err = cli(capsys, "validate", tiny(tmp_path, ml={}, traditional={}), "--set", override)
    assert_one_line_error(code, err)
    assert expected in err


def test_sweep_requirements_with_a_newline_is_refused_by_the_schema(capsys, tmp_path):
    sweep = {"parameters": {"seed": {"values": [1]}}, "requirements": "true\nexecutable = /bin/sh"}
    code, _, err = cli(capsys, "validate", tiny(tmp_path, sweep=sweep))
    assert_one_line_error(code, err)
    assert "sweep.requirements" in err and "control character" in err


def test_simulation_larger_than_the_disk_is_refused_before_writing(capsys, tmp_path):
    n = 10**9  # 9.6 TB of waveforms
    if n * 9600 < free_disk(tmp_path):
        pytest.skip("this disk could hold it")
    code, _, err = cli(capsys, "run", tiny(tmp_path), "--set", f"simulate.n_waveforms={n}")
    assert_one_line_error(code, err)
    assert "simulate.n_waveforms: 1000000000 waveforms of 2400 samples needs up to" in err
    assert not (tmp_path / "run").exists()
    code, _, err = cli(capsys, "simulate", "-o", tmp_path / "x.root", "-n", n)
    assert_one_line_error(code, err)
    assert "--n-waveforms: 1000000000 waveforms" in err and not (tmp_path / "x.root").exists()


def test_chunks_larger_than_memory_are_refused(capsys, tmp_path):
    chunk = 10**7  # 576 GB in flight
    if chunk * 2400 * 24 < 0.8 * available_memory():
        pytest.skip("this machine could hold it")
    steering = tiny(tmp_path)
    overrides = ("--set", f"simulate.chunk_size={chunk}", "--set", f"simulate.n_waveforms={chunk}")
    code, _, err = cli(capsys, "run", steering, *overrides)
    assert_one_line_error(code, err)
    assert "simulate.chunk_size: simulating chunks of 10000000 waveforms" in err
    assert "of memory" in err and not (tmp_path / "run").exists()


def test_networks_larger_than_memory_are_refused_before_the_run_starts(capsys, tmp_path):
    huge = ("ml.counter.filters=[8192, 8192]", "ml.counter.pool_size=1", "ml.counter.dense=[8192]")
    if 0.8 * available_memory() > 1024 * 8192 * 8192 * 16:
        pytest.skip("this machine could hold it")
    args = [a for o in huge for a in ("--set", o)] + ["--set", "ml.counter.dropout=[0.0]"]
    code, _, err = cli(capsys, "run", tiny(tmp_path, ml={}), *args)
    assert_one_line_error(code, err)
    assert "ml.counter: training this network (" in err and "of memory" in err
    assert not (tmp_path / "run").exists()


# --- full disks -------------------------------------------------------------------------


def test_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    code, err, _ = ccframe(
        "simulate", "-o", "big.root", "-n", 3000, cwd=tmp_path, limit_file_bytes=2_000_000
    )
    assert code == 2 and err.strip().endswith("big.root: cannot write (File too large); nothing "
                                              "was written")  # fmt: skip
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []

    steering = tiny(tmp_path)
    code, err, _ = ccframe(
        "run", steering, "--set", "simulate.n_waveforms=3000", cwd=tmp_path,
        limit_file_bytes=2_000_000,
    )  # fmt: skip
    assert code == 2 and "sim.root: cannot write (File too large)" in err
    assert "Traceback" not in err
    run = tmp_path / "run"
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, "run.json", "steering.yaml"]


# --- killed runs ------------------------------------------------------------------------


def _start_and_kill(args: list, cwd: Path, wait_for: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccframe", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not list(wait_for.glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_killed_simulation_leaves_a_temporary_the_next_one_removes(capsys, tmp_path):
    _start_and_kill(["simulate", "-o", "s.root", "-n", 200_000], tmp_path, tmp_path)
    left = list(tmp_path.glob(".s.root.*.tmp"))
    assert len(left) == 1 and not (tmp_path / "s.root").exists()
    code, _, err = cli(capsys, "simulate", "-o", tmp_path / "s.root", "-n", 20)
    assert code == 0, err
    assert f"ccframe: warning: removed {left[0]}" in err and "was killed while writing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.root"]


def test_killed_run_reads_interrupted_and_force_replaces_it(capsys, tmp_path):
    steering = tiny(tmp_path)
    run = tmp_path / "run"
    _start_and_kill(
        ["run", steering, "--set", "simulate.n_waveforms=200000"], tmp_path, wait_for=run
    )
    assert json.loads((run / "run.json").read_text())["status"] == "running"
    assert read_status(run)["status"] == "interrupted"
    code, _, err = cli(capsys, "run", steering)
    assert_one_line_error(code, err)
    assert "folder already holds a run (interrupted); use --force" in err
    assert "removed" in err  # the killed run's temporary file
    code, _, err = cli(capsys, "run", steering, "--force")
    assert code == 0, err
    assert read_status(run)["status"] == "done"
    assert not list(run.glob(".*.tmp"))


# --- concurrent runs and user files -----------------------------------------------------


def test_force_refuses_a_live_run(capsys, tmp_path):
    steering = tiny(tmp_path)
    assert cli(capsys, "run", steering)[0] == 0
    run = tmp_path / "run"
    finished = snapshot(run)
    lock = FolderLock(run)  # another process would hold it the same way
    assert lock.acquire()
    try:
        code, _, err = cli(capsys, "run", steering, "--force")
    finally:
        lock.release()
    assert_one_line_error(code, err)
    assert "a run is live in this folder" in err
    assert snapshot(run) == finished


def test_force_removes_only_what_ccframe_wrote(capsys, tmp_path):
    steering = tiny(tmp_path, traditional={})
    assert cli(capsys, "run", steering)[0] == 0
    run = tmp_path / "run"
    (run / "notes.txt").write_text("mine")
    (run / "mine").mkdir()
    (run / "mine" / "fit.C").write_text("// my macro")
    code, _, err = cli(capsys, "run", steering, "--force", "--set", "traditional=null")
    assert code == 0, err
    assert "kept 2 file(s) ccframe did not write: mine/fit.C, notes.txt" in err
    names = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert "traditional.root" not in names and "metrics.json" not in names  # the old run's
    assert {"notes.txt", "mine/fit.C", "sim.root", "summary.json"} <= set(names)
    assert (run / "notes.txt").read_text() == "mine"


def test_ccframe_never_overwrites_a_file_it_did_not_write(capsys, tmp_path):
    steering = tiny(tmp_path)
    assert cli(capsys, "run", steering)[0] == 0
    run = tmp_path / "run"
    (run / "metrics.json").write_text("my metrics")  # a name the next run writes
    code, _, err = cli(capsys, "run", steering, "--force", "--set", "traditional={}")
    assert_one_line_error(code, err)
    assert "metrics.json: exists and was not written by ccframe; refusing to overwrite" in err
    assert (run / "metrics.json").read_text() == "my metrics"


def test_users_steering_file_in_the_output_folder_is_not_overwritten(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "steering.yaml").write_text("# my own\n")
    for extra in ((), ("--force",)):
        code, _, err = cli(capsys, "run", tiny(tmp_path), *extra)
        assert_one_line_error(code, err)
        assert "holds files ccframe did not write (steering.yaml)" in err
    assert snapshot(tmp_path / "run") == {"steering.yaml": b"# my own\n"}


def test_force_through_a_symlinked_run_folder(capsys, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "run").symlink_to(real, target_is_directory=True)
    steering = tiny(tmp_path)
    assert cli(capsys, "run", steering)[0] == 0
    code, _, err = cli(capsys, "run", steering, "--force", "--set", "simulate.n_waveforms=20")
    assert code == 0, err
    assert (tmp_path / "run").is_symlink()
    assert uproot.open(real / "sim.root")["sim"].num_entries == 20


def test_force_on_a_run_folder_of_an_older_ccframe_is_refused(capsys, tmp_path):
    steering = tiny(tmp_path)
    assert cli(capsys, "run", steering)[0] == 0
    status = tmp_path / "run" / "run.json"
    record = json.loads(status.read_text())
    del record["outputs"]
    status.write_text(json.dumps(record))
    code, _, err = cli(capsys, "run", steering, "--force")
    assert_one_line_error(code, err)
    assert "does not list the run's outputs" in err
    assert (tmp_path / "run" / "sim.root").is_file()


def test_sigterm_records_the_failure(tmp_path):
    steering = tiny(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ccframe", "run", steering, "--set", "simulate.n_waveforms=200000"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    run = tmp_path / "run"
    deadline = time.monotonic() + 120
    while not list(run.glob(".*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and err.strip().endswith("ccframe: error: terminated (SIGTERM)")
    assert read_status(run)["status"] == "failed"
    assert not list(run.glob(".*.tmp")) and not (run / "sim.root").exists()
