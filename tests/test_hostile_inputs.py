"""Hostile and broken inputs end in one `ccframe: error:` line (exit code 2) and no output:
corrupt baskets, waveforms too short for the ML chain, a broken chain.json, file names with
glob characters, chunks too large for memory, and flipped bytes in uncompressed waveforms."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from conftest import REPO, tiny_steering
from samples import make_samples

from ccframe.cli import main
from ccframe.errors import InputError, ResourceError, SteeringError
from ccframe.io.config import DataConfig
from ccframe.io.reader import expand_files, iter_batches
from ccframe.kernels import checksum
from ccframe.metrics.counting import core_sigma, count_summary, json_ready
from ccframe.ml import evaluate
from ccframe.ml.chain import CHAIN_FILE, Chain, ChainSettings, read_settings
from ccframe.ml.config import DatasetConfig
from ccframe.ml.dataset import build, window_problem
from ccframe.ml.stage import format_ml
from ccframe.reco.config import TraditionalConfig
from ccframe.simulate.config import SimulateConfig
from ccframe.simulate.stage import simulate_to_root
from ccframe.steering.loader import validate

# ---- helpers ------------------------------------------------------------------------------


def cli(capsys, *args):
    """Run `ccframe ARGS` in this process: (exit code, stderr), progress (stdout) kept in
    `cli.out`."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    cli.out, err = capsys.readouterr()
    return info.value.code, err


def one_line_error(code, err, *texts):
    """Exit code 2, the last stderr line the only error line, no traceback, `texts` in it."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ccframe: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for text in texts:
        assert text in errors[0], errors[0]
    return errors[0]


def small_sim(path: Path, compression: str = "lz4", n: int = 8, **detector) -> Path:
    cfg = SimulateConfig(n_waveforms=n, chunk_size=n, compression=compression)
    if detector:
        cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update=detector)})
    simulate_to_root(cfg, seed=1, path=path)
    return path


def basket_payload(path: Path, branch: str) -> tuple[int, int, bool]:
    """(file offset of the first basket's data after its key, its stored bytes, compressed?)"""
    b = uproot.open(path)["sim"][branch]
    basket = b.basket(0)
    start = int(b.member("fBasketSeek")[0]) + basket.member("fKeylen")
    stored = basket.compressed_bytes - basket.member("fKeylen")
    return start, stored, basket.compressed_bytes < basket.uncompressed_bytes


def flip(path: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(data)


def corrupt(tmp_path: Path, branch: str, name: str = "bad.root") -> Path:
    """A small LZ4 file with one byte flipped inside the compressed basket of `branch`."""
    path = small_sim(tmp_path / name)
    start, stored, compressed = basket_payload(path, branch)
    assert compressed, f"{branch} must be stored compressed for this test"
    flip(path, start + min(20, stored - 1))
    return path


def write_steering(tmp_path: Path, data: dict, name: str = "read") -> Path:
    steering = {"schema_version": 1, "name": name, "seed": 1, "output": str(tmp_path / name)}
    steering["data"] = data
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(steering))
    return path


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    """A writable copy of the session's trained run folder."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


# ---- 1. corrupt compressed baskets ---------------------------------------------------------


def test_corrupt_sampling_basket_in_inspect(tmp_path, capsys):
    bad = corrupt(tmp_path, "sampling_ghz")
    code, err = cli(capsys, "inspect", bad)
    one_line_error(code, err, str(bad), "tree 'sim'", "branch 'sampling_ghz'", "checksum")


def test_corrupt_sampling_basket_in_run(tmp_path, capsys):
    bad = corrupt(tmp_path, "sampling_ghz")
    code, err = cli(capsys, "run", write_steering(tmp_path, {"files": [str(bad)]}))
    one_line_error(code, err, str(bad), "tree 'sim'", "branch 'sampling_ghz'")
    assert not (tmp_path / "read" / "summary.json").exists()


def test_corrupt_sampling_basket_in_infer(run_copy, tmp_path, capsys):
    bad = corrupt(tmp_path, "sampling_ghz")
    out = tmp_path / "out.root"
    code, err = cli(capsys, "infer", run_copy, bad, "-o", out)
    one_line_error(code, err, str(bad), "tree 'sim'", "branch 'sampling_ghz'")
    assert not out.exists()


@pytest.mark.parametrize("branch", ["cluster_size", "pretrigger_ns"])
def test_corrupt_truth_basket_names_the_branch(tmp_path, branch):
    bad = corrupt(tmp_path, branch)
    with pytest.raises(InputError) as info:
        list(iter_batches(DataConfig(files=[str(bad)])))
    message = str(info.value)
    assert message.startswith(f"{bad}: tree 'sim', branch '{branch}' (entries 0..7)"), message


@pytest.mark.parametrize(
    "rate", [np.full(6, np.nan), np.full(6, np.inf), np.zeros(6), np.ones((6, 2))]
)
def test_sampling_branch_must_hold_a_finite_positive_rate(tmp_path, rate):
    path = tmp_path / "rate.root"
    make_samples.tree(path, {"waveform": make_samples.waves(), "sampling_ghz": rate})
    with pytest.raises(InputError, match="does not hold one positive sampling rate"):
        list(iter_batches(DataConfig(files=[str(path)])))


# ---- 2. waveforms too short for the ML chain, metrics that are unavailable -------------------

SHORT = (
    "simulate.detector.window_ns=10",
    "simulate.detector.pretrigger_ns=2",
    "simulate.detector.sampling_ghz=1.2",
    "data.baseline_window_ns=2",
)


def sets(*overrides: str) -> list[str]:
    return [a for item in overrides for a in ("--set", item)]


def test_ml_on_waveforms_shorter_than_the_window_is_refused(tmp_path, capsys):
    steering = tiny_steering(tmp_path, n=60)
    code, err = cli(capsys, "run", steering, *sets(*SHORT))
    one_line_error(
        code, err, "12 samples per waveform", "window of 15 samples", "ml.dataset.window"
    )
    for name in ("chain.json", "classifier.keras", "predictions.root"):
        assert not (tmp_path / "tinyml" / name).exists(), name


def test_window_problem_names_the_setting():
    assert window_problem(15, DatasetConfig()) is None
    problem = window_problem(14, DatasetConfig())
    assert problem is not None and "ml.dataset.window: before 5 + 1 + after 9" in problem


def test_ml_on_short_waveforms_with_a_short_window_reports_unavailable_metrics(tmp_path, capsys):
    """12 samples, a 6-sample window, a fixed threshold: the run works; the traditional count
    is mostly 0, so its Gaussian core (and the ML's gain over it) is unavailable: null."""
    steering = tiny_steering(tmp_path, traditional={})
    window = ("ml.dataset.window.before=2", "ml.dataset.window.after=3")
    code, err = cli(capsys, "run", steering, *sets(*SHORT, *window, "ml.classifier.threshold=0.5"))
    assert code == 0, err
    assert "Traceback" not in err
    metrics = json.loads((tmp_path / "tinyml" / "metrics.json").read_text())["ml"]
    gain = metrics["count_test"]["ml_gain_over_traditional"]
    assert set(gain) == set(evaluate.GAINS)
    assert gain["relative_resolution_core"] is None
    assert metrics["count_test"]["traditional"]["overall"]["relative_resolution_core"] is None
    assert "n/a (core)" in cli.out

    def floats(obj):
        if isinstance(obj, dict):
            return [x for v in obj.values() for x in floats(v)]
        if isinstance(obj, list):
            return [x for v in obj for x in floats(v)]
        return [obj] if isinstance(obj, float) else []

    assert all(math.isfinite(x) for x in floats(metrics))  # unavailable is null, never NaN


def test_core_sigma_of_a_spike_is_unavailable_not_zero():
    spike = np.r_[np.full(30, -1.0), -0.95, -0.95, -0.9, -0.8, -0.5, -0.3]
    assert math.isnan(core_sigma(spike))
    assert core_sigma(np.full(10, 0.25)) == 0.0  # no spread at all: width 0
    rng = np.random.default_rng(3)
    assert core_sigma(rng.normal(0, 0.1, 5000)) == pytest.approx(0.1, rel=0.05)


def degenerate_metrics() -> dict:
    """Metrics as the ml stage builds them, on a test split where the traditional algorithm
    finds no cluster in most waveforms and the classifier sees no signal."""
    rng = np.random.default_rng(1)
    n_true = rng.integers(15, 25, 44)
    trad = np.where(np.arange(44) < 30, 0, n_true).astype(float)  # mostly 0, else exact
    ml = n_true * rng.normal(0.2, 0.02, 44)
    scores = rng.random(40).astype(np.float32)
    signal = np.zeros(40, np.float32)
    label = np.zeros(40, np.int8)
    return {
        "dataset": {"test": {"waveforms": 44}},
        "classifier": {"test": evaluate.classification(scores, signal, 0.5)},
        "peak_finding_test": evaluate.end_to_end(
            scores > 0.5, label, np.full(40, -1, np.int32), np.r_[np.full(40, 1), 0, 0, 0, 0],
            0, n_true,
        ),
        "count_test": evaluate.counting(
            {"ml": ml, "traditional": trad}, n_true, np.full(44, np.nan), 8
        ),
    }  # fmt: skip


def test_format_ml_with_unavailable_metrics():
    metrics = degenerate_metrics()
    gain = metrics["count_test"]["ml_gain_over_traditional"]
    assert gain["relative_resolution_core"] is None
    assert gain["relative_resolution_rms"] is not None
    for m in (metrics, json_ready(metrics)):
        text = format_ml(m, Path("predictions.root"))
        assert "AUC n/a" in text and "n/a (core)" in text
    cleaned = json_ready(metrics)
    json.dumps(cleaned, allow_nan=False)  # NaN became null
    assert count_summary({"waveforms": 0}) == "no waveforms with true clusters"


def test_threshold_needs_both_classes_and_stays_in_range():
    scores = np.linspace(0, 1, 20)
    with pytest.raises(InputError, match=r"ml\.classifier\.threshold: the validation split has 0"):
        evaluate.choose_threshold(scores, np.zeros(20), "f1")
    with pytest.raises(InputError, match="has 20 signal candidates of 20"):
        evaluate.choose_threshold(scores, np.ones(20), "efficiency_purity")
    signal = (scores < 1).astype(float)  # the best cut is at score 0: accept everything
    assert evaluate.choose_threshold(scores, signal, "f1") == 0.0
    roc = evaluate.roc_table(scores, np.zeros(20))  # no warning, no rows
    assert all(v.size == 0 for v in roc.values())


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_fixed_threshold_outside_the_score_range_is_refused(threshold):
    raw = {"schema_version": 1, "name": "t", "simulate": {}, "ml": {}}
    raw["ml"]["classifier"] = {"threshold": threshold}
    with pytest.raises(SteeringError, match=rf"ml\.classifier\.threshold = {threshold}: Input"):
        validate(raw)


# ---- 3. chain.json -------------------------------------------------------------------------


def good_chain() -> dict:
    return ChainSettings.from_json(
        {
            "schema": 1,
            "candidates": {},
            "window": {},
            "time_list": {},
            "threshold": 0.4,
            "sampling_ghz": 1.2,
            "n_samples": 2400,
            "baseline_window_ns": 25.0,
        }
    ).to_json()


DEEP = "[" * 100_000 + "]" * 100_000
BAD_CHAINS = {
    "deep": (DEEP, "nested too deeply"),
    "deep value": ('{"schema": 1, "window": ' + DEEP + "}", "nested too deeply"),
    "nan threshold": ({"threshold": float("nan")}, "key 'threshold' is NaN"),
    "inf threshold": ({"threshold": float("inf")}, "key 'threshold' is Infinity"),
    "negative threshold": ({"threshold": -0.5}, "expected a finite number in [0, 1]"),
    "threshold above 1": ({"threshold": 1.01}, "key 'threshold' is 1.01"),
    "string threshold": ({"threshold": "0.5"}, "key 'threshold' is \"0.5\""),
    "bool threshold": ({"threshold": True}, "key 'threshold' is true"),
    "zero rate": ({"sampling_ghz": 0}, "key 'sampling_ghz' is 0"),
    "float samples": ({"n_samples": 2400.0}, "key 'n_samples' is 2400.0; expected an integer"),
    "huge samples": ({"n_samples": 10**400}, "key 'n_samples' is 1000"),
    "huge rate": ({"sampling_ghz": 10**400}, "key 'sampling_ghz' is 1000"),
    "window too long": ({"n_samples": 10}, "key 'window': 15 samples, more than the 10"),
    "bad section": ({"window": {"before": -1}}, "key 'window.before'"),
    "section not object": ({"time_list": [1]}, "key 'time_list'"),
    "unknown key": ({"treshold": 0.5}, "unknown key 'treshold' (did you mean 'threshold'?)"),
    "missing key": ({"n_samples": None}, "key 'n_samples' is missing"),
    "schema": ({"schema": 2}, "chain schema 2"),
    "bool schema": ({"schema": True}, "chain schema true"),
    "not an object": ("[1, 2]", "expected a JSON object, got list"),
    "not json": ('{"schema": 1,', "not valid JSON"),
    "not utf-8": (b"\xff\xfe{}", "cannot read it"),
}


def write_chain(folder: Path, content) -> Path:
    path = folder / CHAIN_FILE
    if isinstance(content, dict):
        chain = {k: v for k, v in (good_chain() | content).items() if v is not None}
        path.write_text(json.dumps(chain))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize(("content", "expected"), BAD_CHAINS.values(), ids=BAD_CHAINS.keys())
def test_broken_chain_json_is_one_clear_error(tmp_path, content, expected):
    path = write_chain(tmp_path, content)
    with pytest.raises(InputError) as info:
        read_settings(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message and expected in message, message


def test_chain_json_round_trips():
    settings = ChainSettings.from_json(good_chain())
    assert ChainSettings.from_json(settings.to_json()) == settings


@pytest.mark.parametrize("content", [DEEP, {"threshold": float("nan")}], ids=["deep", "nan"])
def test_infer_with_a_broken_chain_json(run_copy, tmp_path, capsys, content):
    chain = write_chain(run_copy, content)
    out = tmp_path / "out.root"
    code, err = cli(capsys, "infer", run_copy, run_copy / "sim.root", "-o", out)
    one_line_error(code, err, str(chain))
    assert not out.exists()


LOAD_WITHOUT_TF = """
import sys
from pathlib import Path
from ccframe.errors import InputError
from ccframe.io.config import DataConfig
from ccframe.ml.chain import Chain
folder, sim = Path(sys.argv[1]), sys.argv[2]
try:
    Chain.load(folder, data=DataConfig(files=[sim], sampling_ghz=2.0), files=[sim])
except InputError as exc:
    print(exc)
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow imported"
"""


def test_chain_is_checked_against_the_input_before_tensorflow(run_copy, sim_file):
    """A chain.json that cannot be read, or inputs the chain was not trained on, fail before
    TensorFlow is imported (seconds, not the TensorFlow start-up)."""
    env_code = [sys.executable, "-c", LOAD_WITHOUT_TF, str(run_copy), str(sim_file)]
    proc = subprocess.run(env_code, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "sampled at 2.0 GHz, the chain was trained at 1.2 GHz" in proc.stdout
    write_chain(run_copy, {"threshold": float("nan")})
    proc = subprocess.run(env_code, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "key 'threshold' is NaN" in proc.stdout


def test_chain_load_refuses_other_waveform_lengths(run_copy, tmp_path):
    other = small_sim(tmp_path / "short.root", window_ns=1000.0)
    data = DataConfig(files=[str(other)])
    with pytest.raises(InputError, match="1200 samples per waveform, the chain was trained on"):
        Chain.load(run_copy, data=data, files=[str(other)])


# ---- 4. file names with glob characters -----------------------------------------------------


def test_existing_file_with_brackets_is_taken_literally(sim_file, tmp_path):
    literal = tmp_path / "run[1].root"
    shutil.copy(sim_file, literal)
    assert expand_files([str(literal)]) == [str(literal)]
    shutil.copy(sim_file, tmp_path / "run2.root")
    # not a file: a pattern, as before
    assert expand_files([str(tmp_path / "run[2].root")]) == [str(tmp_path / "run2.root")]
    with pytest.raises(InputError, match="no file matches this pattern"):
        expand_files([str(tmp_path / "run[3].root")])


def test_run_reads_a_file_with_brackets(sim_file, tmp_path, capsys):
    literal = tmp_path / "run[1].root"
    shutil.copy(sim_file, literal)
    code, err = cli(capsys, "run", write_steering(tmp_path, {"files": [str(literal)]}))
    assert code == 0, err
    summary = json.loads((tmp_path / "read" / "summary.json").read_text())
    assert summary["read"]["files"] == [str(literal)]
    assert summary["read"]["waveforms"] == 200


# ---- 5. chunks and datasets too large for memory ---------------------------------------------


@pytest.fixture
def little_memory(monkeypatch):
    """Pretend the machine has 1 MB of available memory."""
    monkeypatch.setattr("ccframe.resources.available_memory", lambda: 1_000_000)


def test_chunk_size_beyond_memory_is_refused(sim_file, tmp_path, capsys, little_memory):
    steering = write_steering(tmp_path, {"files": [str(sim_file)], "chunk_size": 10_000_000})
    code, err = cli(capsys, "run", steering)
    one_line_error(
        code, err, "data.chunk_size:", "a chunk of 200 waveforms of 2400 samples", "lower"
    )
    assert not (tmp_path / "read" / "summary.json").exists()


def test_small_chunks_fit(sim_file, little_memory):
    batches = list(iter_batches(DataConfig(files=[str(sim_file)], chunk_size=10)))
    assert sum(len(b) for b in batches) == 200


def test_jagged_chunk_memory_is_estimated(tmp_path, little_memory):
    path = tmp_path / "jagged.root"
    make_samples.jagged_ok(path)  # 6 entries of 100 samples: a few kB
    assert len(next(iter_batches(DataConfig(files=[str(path)], sampling_ghz=1.2)))) == 6
    big = tmp_path / "big.root"
    rows = np.zeros((100, 1000), np.float32)
    make_samples.tree(big, {"waveform": ak.Array(list(rows))})
    with pytest.raises(ResourceError, match="a chunk of 100 waveforms of 10"):
        list(iter_batches(DataConfig(files=[str(big)], sampling_ghz=1.2)))


def test_ml_dataset_beyond_disk_is_refused(sim_file, monkeypatch):
    batches = list(iter_batches(DataConfig(files=[str(sim_file)], max_events=50)))
    monkeypatch.setattr("ccframe.resources.free_disk", lambda path: 10_000)
    with pytest.raises(ResourceError, match=r"ml\.dataset\.max_events: writing 'windows'"):
        build(batches, DatasetConfig(), TraditionalConfig(), seed=1)


# ---- 6. per-waveform checksums ----------------------------------------------------------------


def checksum_ref(row: np.ndarray) -> int:
    """FNV-1a 64 over the row's little-endian 32-bit words, in plain Python integers."""
    h = 0xCBF29CE484222325
    raw = row.astype(row.dtype.newbyteorder("<")).tobytes()
    for k in range(0, len(raw), 4):
        h = ((h ^ int.from_bytes(raw[k : k + 4], "little")) * 0x100000001B3) % 2**64
    return h


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (1, 1), (7, 33)])
def test_checksum_kernel_matches_the_reference(shape):
    rows = np.random.default_rng(2).normal(0, 5, shape).astype(np.float32)
    if rows.size:
        rows.flat[0] = np.nan
        rows.flat[-1] = -0.0
    want = np.array([checksum_ref(r) for r in rows], dtype=np.uint64)
    assert np.array_equal(checksum.row_checksums(rows), want)
    words = checksum.row_words(rows)
    out = np.empty(len(rows), dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 scalars wrap around, as in the compiled kernel
        checksum._fnv1a_rows.py_func(words, out)
    assert np.array_equal(out, want)
    big_endian = rows.astype(">f4")
    assert np.array_equal(checksum.row_checksums(big_endian), want)


def test_checksum_sees_every_single_word_change():
    rows = np.random.default_rng(4).normal(0, 1, (1, 50)).astype(np.float32)
    base = checksum.row_checksums(rows)[0]
    words = rows.view(np.uint32)
    for k in range(50):
        for bit in (0, 13, 31):
            changed = words.copy()
            changed[0, k] ^= np.uint32(1 << bit)
            assert checksum.row_checksums(changed.view(np.float32))[0] != base
    with pytest.raises(ValueError, match="whole 32-bit words"):
        checksum.row_checksums(np.zeros((2, 3), np.int16))


def test_simulated_tree_has_the_checksum_of_each_waveform(sim_file):
    tree = uproot.open(sim_file)["sim"]
    waves = tree["waveform"].array(library="np")
    assert np.array_equal(
        tree["waveform_checksum"].array(library="np"), checksum.row_checksums(waves)
    )
    assert tree["waveform_checksum"].typename == "uint64_t"


def test_data_readme_lists_the_simulated_branches(sim_file):
    text = (REPO / "data" / "README.md").read_text()
    section = text.split("## Simulated waveforms")[1].split("\n## ")[0].split("\n### ")[0]
    listed = set(re.findall(r"^\| `(\w+)` \|", section, re.M))
    assert listed == set(uproot.open(sim_file)["sim"].keys())
    assert (REPO / "docs" / "data-integrity.md").is_file()


def test_flipped_byte_in_an_uncompressed_waveform_is_detected(tmp_path, capsys):
    path = small_sim(tmp_path / "plain.root", compression="none")
    start, stored, compressed = basket_payload(path, "waveform")
    assert not compressed and stored == 8 * 2400 * 4  # the samples, one entry after another
    code, err = cli(capsys, "inspect", path)
    assert code == 0, err  # intact: read as before
    row_bytes = 2400 * 4
    flip(path, start + 5 * row_bytes + 1001, mask=0x01)  # a low mantissa bit of entry 5
    code, err = cli(capsys, "inspect", path)
    one_line_error(
        code, err, str(path), "tree 'sim' entry 5", "branch 'waveform'", "'waveform_checksum'"
    )
    with pytest.raises(InputError, match="entry 5"):
        list(iter_batches(DataConfig(files=[str(path)], chunk_size=3)))


def test_checksum_branch_of_another_type_is_refused(tmp_path):
    path = tmp_path / "odd.root"
    w = make_samples.waves()
    make_samples.tree(
        path, {"waveform": w, "sampling_ghz": make_samples.rate(), "waveform_checksum": w[:, 0]}
    )
    with pytest.raises(InputError, match="branch 'waveform_checksum' has type float; expected"):
        list(iter_batches(DataConfig(files=[str(path)])))
