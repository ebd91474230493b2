"""The ROOT macros in macros/ run in batch mode with real ROOT on ccframe's own outputs.

ROOT comes from the `root` extra (`pip install -e ".[test,root]"`), which CI installs.
"""

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
