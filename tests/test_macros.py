"""The ROOT macros in macros/ run in batch mode with real ROOT on ccframe's own outputs.

ROOT comes from the `root` extra (`pip install -e ".[test,root]"`), which CI installs.
"""

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest

MACROS = Path(__file__).resolve().parents[1] / "macros"
ROOT = shutil.which("root")
needs_root = pytest.mark.skipif(ROOT is None, reason="ROOT not installed (pip install root)")


def run_macro(call: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROOT, "-l", "-b", "-q", call], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@needs_root
def test_draw_sim_waveform_reads_simulated_tree(sim_file, tmp_path):
    png = tmp_path / "wave.png"
    macro = MACROS / "draw_sim_waveform.C"
    proc = run_macro(f'{macro}("{sim_file}", 2, "{png}")', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "2400 samples" in proc.stdout
    assert png.stat().st_size > 5000


@needs_root
def test_draw_sim_waveform_reports_bad_entry(sim_file, tmp_path):
    macro = MACROS / "draw_sim_waveform.C"
    proc = run_macro(f'{macro}("{sim_file}", 100000, "{tmp_path / "x.png"}")', tmp_path)
    assert "outside" in proc.stderr
    assert not (tmp_path / "x.png").exists()


# --- macros on predictions.root (the ML stage of `ccframe run`, and `ccframe infer`) ---------

TRUTH_BRANCHES = (
    "event_id",
    "momentum_gev",
    "pdg",
    "split",
    "n_clusters_true",
    "n_electrons_true",
    "n_clusters_traditional",
    "candidate_label",
)


@pytest.fixture(scope="module")
def predictions(trained, tmp_path_factory):
    """The tiny end-to-end ML run (conftest `trained`) and `ccframe infer` on its input
    without truth: (run folder, predictions.root, infer output)."""
    from ccframe.cli import main

    inferred = tmp_path_factory.mktemp("macros_ml") / "infer.root"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "infer",
                str(trained),
                str(trained / "sim.root"),
                "-o",
                str(inferred),
                "--set",
                "data.truth=none",
            ]
        )
    assert info.value.code == 0
    return trained, trained / "predictions.root", inferred


def parse_summary(stdout: str) -> dict[str, float]:
    """The `key: number` lines of summary_predictions.C."""
    out = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key.isidentifier():
            with contextlib.suppress(ValueError, IndexError):
                out[key] = float(value.split()[0])
    return out


def python_summary(path: Path, split: int) -> dict[str, float]:
    """The numbers summary_predictions.C prints, computed with uproot and numpy."""
    import awkward as ak
    import numpy as np
    import uproot

    t = uproot.open(path)["predictions"].arrays(library="ak")
    sel = t[t.split == split] if split >= 0 else t
    true = ak.to_numpy(sel.n_clusters_true).astype(np.float64)
    ml = ak.to_numpy(sel.n_clusters_ml).astype(np.float64)
    trad = ak.to_numpy(sel.n_clusters_traditional).astype(np.float64)
    ok = true > 0
    out = {
        "entries": len(t),
        "waveforms": len(sel),
        "mean_n_clusters_true": true.mean(),
        "mean_n_clusters_ml": ml.mean(),
        "mean_n_clusters_traditional": trad.mean(),
        "waveforms_with_true_clusters": ok.sum(),
        "candidates_per_waveform": ak.to_numpy(sel.n_candidates).mean(),
        "accepted_peaks_per_waveform": ak.to_numpy(sel.n_peaks).mean(),
    }
    for name, pred in (("ml", ml), ("traditional", trad)):
        out[f"{name}_relative_bias"] = pred[ok].sum() / true[ok].sum() - 1
        out[f"{name}_resolution_rms"] = ((pred[ok] - true[ok]) / true[ok]).std()
    accepted = ak.to_numpy(ak.flatten(sel.candidate_accepted))
    signal = ak.to_numpy(ak.flatten(sel.candidate_label)) > 0
    out["classifier_TP"] = np.sum(accepted & signal)
    out["classifier_FP"] = np.sum(accepted & ~signal)
    out["classifier_TN"] = np.sum(~accepted & ~signal)
    out["classifier_FN"] = np.sum(~accepted & signal)
    return out


@needs_root
@pytest.mark.parametrize("split", [-1, 2])
def test_summary_predictions_agrees_with_numpy(predictions, tmp_path, split):
    _, path, _ = predictions
    proc = run_macro(f'{MACROS / "summary_predictions.C"}("{path}", {split})', tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = parse_summary(proc.stdout)
    expected = python_summary(path, split)
    assert set(expected) <= set(got), proc.stdout
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert f"split: {'test' if split == 2 else 'all'}" in proc.stdout


@needs_root
def test_summary_predictions_matches_the_run_metrics(predictions, tmp_path):
    """The test-split numbers are those of metrics.json (same definitions)."""
    import json

    run, path, _ = predictions
    proc = run_macro(f'{MACROS / "summary_predictions.C"}("{path}", 2)', tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = parse_summary(proc.stdout)
    ml = json.loads((run / "metrics.json").read_text())["ml"]
    matrix = ml["classifier"]["test"]["confusion_matrix"]
    for key in ("tp", "fp", "tn", "fn"):
        assert got[f"classifier_{key.upper()}"] == matrix[key]
    for name in ("ml", "traditional"):
        overall = ml["count_test"][name]["overall"]
        assert got[f"{name}_relative_bias"] == pytest.approx(overall["relative_bias"], abs=2e-6)
        assert got[f"{name}_resolution_rms"] == pytest.approx(
            overall["relative_resolution_rms"], abs=2e-6
        )


@needs_root
def test_summary_predictions_without_truth(predictions, tmp_path):
    import uproot

    _, _, inferred = predictions
    keys = set(uproot.open(inferred)["predictions"].keys())
    assert "event_id" in keys  # the entry number when the input has none
    assert not (set(TRUTH_BRANCHES) - {"event_id", "n_clusters_traditional"}) & keys
    proc = run_macro(f'{MACROS / "summary_predictions.C"}("{inferred}", 2)', tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = parse_summary(proc.stdout)
    t = uproot.open(inferred)["predictions"].arrays(library="np")
    assert got["waveforms"] == 300
    assert got["mean_n_clusters_ml"] == pytest.approx(t["n_clusters_ml"].mean(), rel=1e-5)
    assert got["accepted_peaks_per_waveform"] == pytest.approx(t["n_peaks"].mean(), rel=1e-6)
    assert got["mean_n_clusters_traditional"] == pytest.approx(
        t["n_clusters_traditional"].mean(), rel=1e-6
    )
    assert "no truth" in proc.stdout and "classifier counts skipped" in proc.stdout
    assert "classifier_TP" not in got and "ml_resolution_rms" not in got


@needs_root
def test_summary_predictions_reports_missing_tree(predictions, tmp_path):
    run, _, _ = predictions
    proc = run_macro(f'{MACROS / "summary_predictions.C"}("{run / "sim.root"}")', tmp_path)
    assert proc.returncode != 0
    assert "no tree 'predictions'" in proc.stderr


@needs_root
@pytest.mark.parametrize("truth", [True, False])
def test_draw_counts(predictions, tmp_path, truth):
    _, path, inferred = predictions
    png = tmp_path / "counts.png"
    proc = run_macro(
        f'{MACROS / "draw_counts.C"}("{path if truth else inferred}", "{png}")', tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert png.stat().st_size > 5000
    if truth:
        assert "ML core sigma" in proc.stdout
    else:
        assert "no truth" in proc.stdout


@needs_root
def test_draw_counts_writes_pdf_and_both_without_extension(predictions, tmp_path):
    _, path, _ = predictions
    proc = run_macro(f'{MACROS / "draw_counts.C"}("{path}", "{tmp_path / "c"}", -1)', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c.png").stat().st_size > 5000
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"


@needs_root
def test_draw_counts_reports_errors_without_output(tmp_path):
    png = tmp_path / "x.png"
    proc = run_macro(
        f'{MACROS / "draw_counts.C"}("{tmp_path / "missing.root"}", "{png}")', tmp_path
    )
    assert proc.returncode != 0
    assert "cannot open" in proc.stderr
    assert not png.exists()


@needs_root
@pytest.mark.parametrize("with_sim", [False, True])
def test_draw_peaks(predictions, tmp_path, with_sim):
    run, path, _ = predictions
    png = tmp_path / "peaks.png"
    sim = run / "sim.root" if with_sim else ""
    proc = run_macro(f'{MACROS / "draw_peaks.C"}("{path}", 4, "{png}", "{sim}")', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert png.stat().st_size > 5000
    assert "entry 4 (input entry" in proc.stdout


@needs_root
def test_draw_peaks_reads_the_input_entry_of_the_waveform(predictions, tmp_path):
    """The sim.root entry is the predictions' `entry` branch: a rewritten file whose first
    waveform is input entry 7 draws and names input entry 7."""
    import awkward as ak
    import uproot

    from ccframe.io.rootwrite import write_tree

    run, path, _ = predictions
    t = uproot.open(path)["predictions"].arrays(library="ak")[7:]
    fields = [f for f in t.fields if f != "n_candidates"]
    candidate = ak.zip({f[len("candidate_") :]: t[f] for f in fields if f.startswith("candidate_")})
    chunk = {f: ak.to_numpy(t[f]) for f in fields if not f.startswith("candidate_")}
    shuffled = tmp_path / "shuffled.root"
    write_tree(shuffled, "predictions", [{**chunk, "candidate": candidate}])
    png = tmp_path / "p.png"
    proc = run_macro(
        f'{MACROS / "draw_peaks.C"}("{shuffled}", 0, "{png}", "{run / "sim.root"}")', tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "entry 0 (input entry 7)" in proc.stdout


@needs_root
def test_draw_peaks_without_truth(predictions, tmp_path):
    run, _, inferred = predictions
    png = tmp_path / "peaks.pdf"
    proc = run_macro(
        f'{MACROS / "draw_peaks.C"}("{inferred}", 2, "{png}", "{run / "sim.root"}")', tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:4] == b"%PDF"
    assert "no branch 'candidate_label'" in proc.stdout


@needs_root
@pytest.mark.parametrize("entry", [-1, 300])
def test_draw_peaks_reports_bad_entry(predictions, tmp_path, entry):
    _, path, _ = predictions
    png = tmp_path / "x.png"
    proc = run_macro(f'{MACROS / "draw_peaks.C"}("{path}", {entry}, "{png}")', tmp_path)
    assert proc.returncode != 0
    assert "outside [0, 300)" in proc.stderr
    assert not png.exists()


@needs_root
def test_draw_peaks_reports_missing_sim_file(predictions, tmp_path):
    _, path, _ = predictions
    png = tmp_path / "x.png"
    missing = tmp_path / "nosim.root"
    proc = run_macro(f'{MACROS / "draw_peaks.C"}("{path}", 0, "{png}", "{missing}")', tmp_path)
    assert proc.returncode != 0
    assert f"cannot open {missing}" in proc.stderr
    assert not png.exists()
