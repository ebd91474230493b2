"""`ccframe export` and `ccframe infer --backend onnx`: the trained chain as ONNX, applied by
ONNX Runtime without TensorFlow, giving the Keras chain's scores, peaks and counts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from conftest import small_steering

from ccframe.cli import main
from ccframe.io.reader import iter_batches
from ccframe.kernels.candidates import find_candidates
from ccframe.kernels.jagged import flat
from ccframe.kernels.windows import slice_windows
from ccframe.ml.chain import Chain, time_lists
from ccframe.steering.loader import load_steering

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("tf2onnx")

EXPORTED = ("classifier.onnx", "counter.onnx", "onnx.json")


def run_cli(*args: str) -> int:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return int(info.value.code or 0)


@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the `trained` run folder (as `trained_copy`, shared by this module)
    with its chain exported."""
    run = Path(shutil.copytree(trained, tmp_path_factory.mktemp("onnx") / trained.name))
    assert run_cli("export", str(run)) == 0
    return run


def test_export_writes_named_networks_with_the_chain_settings(exported, capsys):
    run = exported
    meta = json.loads((run / "onnx.json").read_text())
    chain = json.loads((run / "chain.json").read_text())
    assert meta["chain"] == chain and meta["opset"] == 17 and meta["ccframe"]
    assert set(meta["sources"]) == {"classifier.keras", "counter.keras", "chain.json"}
    width = chain["window"]["before"] + 1 + chain["window"]["after"]
    shapes = {"classifier": ["batch", width, 1], "counter": ["batch", 1024, 1]}
    names = {"classifier": ("window", "score"), "counter": ("time_list", "count")}
    for key, (name, out) in names.items():
        net = meta["networks"][key]
        assert (net["input"], net["output"], net["input_shape"]) == (name, out, shapes[key])
        model = onnx.load(str(run / net["file"]))
        assert model.opset_import[0].version == 17
        assert [i.name for i in model.graph.input] == [name]
        assert [o.name for o in model.graph.output] == [out]
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_param or d.dim_value for d in dims] == shapes[key]
        props = {p.key: p.value for p in model.metadata_props}
        assert json.loads(props["chain"]) == chain and props["network"] == key
        assert meta["check"]["max_relative_difference"][key] < 1e-5
    # the unrolled LSTM is exported as one ONNX LSTM operator
    ops = {n.op_type for n in onnx.load(str(run / "classifier.onnx")).graph.node}
    assert "LSTM" in ops
    # listed as the run's outputs (so `ccframe run --force` removes them)
    outputs = json.loads((run / "run.json").read_text())["outputs"]
    assert set(EXPORTED) <= set(outputs)
    # an export is not replaced without --force
    capsys.readouterr()
    assert run_cli("export", str(run)) == 2
    err = capsys.readouterr().err
    assert "classifier.onnx: exists; use --force to replace it" in err
    assert err.count("\n") == 1


def _inputs(run: Path, chain: Chain) -> tuple[np.ndarray, np.ndarray]:
    """All candidate windows of the run's sample and the time lists of their accepted peaks
    (accepted by the Keras classifier)."""
    data = load_steering(run / "steering.yaml").input_data
    windows, lists = [], []
    s = chain.settings
    for batch in iter_batches(data, [str(run / "sim.root")]):
        cands = find_candidates(batch.waveforms, batch.baseline, batch.rms, s.candidates)
        w = slice_windows(batch.waveforms, batch.baseline, batch.rms, cands, s.window)
        position, offsets = flat(cands, np.int32)
        windows.append(w)
        lists.append(time_lists(position, offsets, chain.score(w) > s.threshold, s))
    return np.concatenate(windows), np.concatenate(lists)


def test_keras_and_onnx_networks_agree(exported):
    keras_chain = Chain.load(exported, batch=1000)
    onnx_chain = Chain.load(exported, batch=1000, backend="onnx")
    windows, lists = _inputs(exported, keras_chain)
    assert len(windows) > 1000 and len(lists) == 300  # several batches, a ragged last one
    want, got = keras_chain.score(windows), onnx_chain.score(windows)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.max(np.abs(got - want)) <= 1e-5
    want, got = keras_chain.count(lists), onnx_chain.count(lists)
    assert np.all(np.isfinite(want)) and np.std(want) > 0
    # counts in clusters; the calibration (count - a) / b can bring one close to 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    assert len(onnx_chain.score(windows[:0])) == 0
    mixed = Chain.load(exported, batch=1000, backend="mixed")  # Keras LSTM, ONNX counter
    np.testing.assert_array_equal(mixed.score(windows), keras_chain.score(windows))
    np.testing.assert_array_equal(mixed.count(lists), onnx_chain.count(lists))
    assert mixed.models is not None and onnx_chain.models is None


NO_TF = """
import sys
from ccframe.cli import main
try:
    main({args!r})
except SystemExit as exc:
    code = exc.code
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"tensorflow", "keras", "tf2onnx"}})
print("RESULT", code, heavy)
"""


def test_infer_with_onnx_gives_the_keras_counts_without_tensorflow(exported, tmp_path, capsys):
    sim = str(exported / "sim.root")
    onnx_out, keras_out = tmp_path / "onnx.root", tmp_path / "keras.root"
    args = ["infer", str(exported), sim, "-o", str(onnx_out), "--backend", "onnx"]
    script = textwrap.dedent(NO_TF.format(args=args))
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert "RESULT 0 []" in proc.stdout, proc.stdout + proc.stderr  # TF never imported
    assert "keras" not in proc.stderr.lower()
    assert run_cli("infer", str(exported), sim, "-o", str(keras_out)) == 0
    got = uproot.open(onnx_out)["predictions"].arrays()
    want = uproot.open(keras_out)["predictions"].arrays()
    assert got.fields == want.fields
    np.testing.assert_allclose(got["n_clusters_ml"], want["n_clusters_ml"], rtol=0, atol=1e-4)
    for key in ("event_id", "n_peaks", "n_candidates", "n_clusters_traditional"):
        assert np.array_equal(got[key].to_numpy(), want[key].to_numpy()), key
    assert ak.all(got["candidate_accepted"] == want["candidate_accepted"])
    assert ak.all(got["candidate_sample"] == want["candidate_sample"])
    score = ak.flatten(got["candidate_score"]) - ak.flatten(want["candidate_score"])
    assert np.max(np.abs(score)) <= 1e-5


def test_onnx_backend_without_an_export_or_with_a_stale_one_says_what_to_run(
    trained, exported, tmp_path, capsys
):
    sim = str(trained / "sim.root")
    out = tmp_path / "x.root"
    assert run_cli("infer", str(trained), sim, "-o", str(out), "--backend", "onnx") == 2
    err = capsys.readouterr().err
    missing = "no ONNX export of the chain (classifier.onnx missing)"
    assert f"{missing}; run `ccframe export {trained}` first" in err
    assert err.count("\n") == 1 and not out.exists()
    # a chain changed after its export is refused, not half applied
    stale = Path(shutil.copytree(exported, tmp_path / "stale"))
    chain = json.loads((stale / "chain.json").read_text())
    (stale / "chain.json").write_text(json.dumps({**chain, "threshold": 0.9}))
    assert run_cli("infer", str(stale), sim, "-o", str(out), "--backend", "onnx") == 2
    err = capsys.readouterr().err
    assert "exported from another chain.json" in err and "ccframe export" in err
    assert "--force" in err and err.count("\n") == 1
    # --force exports again, and the chain runs
    assert run_cli("export", str(stale), "--force") == 0
    assert run_cli("infer", str(stale), sim, "-o", str(out), "--backend", "onnx") == 0
    # a copy holding only chain.json and the export (for another machine) is enough
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for name in ("chain.json", *EXPORTED):
        shutil.copy(stale / name, shipped / name)
    chain_obj = Chain.load(shipped, backend="onnx")
    assert chain_obj.settings.threshold == 0.9


def test_export_refuses_a_live_run_and_a_folder_without_a_chain(exported, tmp_path, capsys):
    from ccframe.runfolder.rundir import FolderLock

    live = Path(shutil.copytree(exported, tmp_path / "live"))
    for name in EXPORTED:
        (live / name).unlink()
    lock = FolderLock(live)
    assert lock.acquire()
    try:
        assert run_cli("export", str(live)) == 2
    finally:
        lock.release()
    assert "a run is live in this folder" in capsys.readouterr().err
    assert not (live / "classifier.onnx").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_cli("export", str(empty)) == 2
    assert "no trained chain here" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["onnx", "mixed"])
def test_infer_stage_runs_an_onnx_backend_from_the_steering_file(
    exported, tmp_path, capsys, backend
):
    path = small_steering(tmp_path, n=40, infer={"chain": str(exported), "backend": backend})
    assert run_cli("run", str(path)) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["infer"]["backend"] == backend and summary["infer"]["waveforms"] == 40
    counts = uproot.open(tmp_path / "run" / "inferred.root")["predictions"]["n_clusters_ml"]
    assert counts.num_entries == 40


def test_the_saved_networks_are_run_outputs(trained):
    """classifier.keras and counter.keras are written atomically and listed in run.json, so
    that `run --force` removes them and nothing overwrites them unnoticed."""
    outputs = json.loads((trained / "run.json").read_text())["outputs"]
    assert {"classifier.keras", "counter.keras", "chain.json"} <= set(outputs)
