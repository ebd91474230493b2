"""Recreate the small, deliberately broken or unusual ROOT files used by the error tests.

python tests/samples/make_samples.py
"""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import uproot

HERE = Path(__file__).parent


def waves(n: int = 6, samples: int = 100, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0, (n, samples)).astype(np.float32)
    w[:, samples // 2] += 20.0
    return w


def tree(path: Path, branches: dict, types: dict | None = None) -> None:
    with uproot.recreate(path) as f:
        f.mktree("sim", types or {k: _type(v) for k, v in branches.items()})
        if branches:
            f["sim"].extend(branches)


def _type(value):
    if isinstance(value, ak.Array):
        return value.type
    return (value.dtype, value.shape[1:]) if value.ndim > 1 else value.dtype


def main() -> None:
    w = waves()
    rate = np.full(len(w), 1.2)
    tree(HERE / "bad_missing_branch.root", {"wavefrom": w, "sampling_ghz": rate})
    tree(HERE / "bad_dtype.root", {"waveform": w[:, 0].copy(), "sampling_ghz": rate})
    nan = w.copy()
    nan[3, 40] = np.nan
    tree(HERE / "bad_nan.root", {"waveform": nan, "sampling_ghz": rate})
    tree(
        HERE / "bad_empty.root", {}, {"waveform": (np.float32, (100,)), "sampling_ghz": np.float64}
    )
    tree(HERE / "jagged_ok.root", {"waveform": ak.Array(list(w)), "sampling_ghz": rate})
    odd = [list(row) for row in w]
    odd[4] = odd[4][:90]
    tree(HERE / "jagged_unequal.root", {"waveform": ak.Array(odd), "sampling_ghz": rate})
    tree(HERE / "short_waveform.root", {"waveform": w[:, :10].copy(), "sampling_ghz": rate})
    # DRS4-like: uint16 ADC codes, V = ADC/65536 - 0.5, negative pulses, no sampling branch.
    rng = np.random.default_rng(2)
    volts = rng.normal(0.0, 0.001, (8, 1024))
    volts[:, 300:304] -= 0.030
    adc = np.round((volts + 0.5) * 65536).astype(np.uint16)
    with uproot.recreate(HERE / "beamtest_like.root") as f:
        f.mktree("h", {"ch0": (np.uint16, (1024,))})
        f["h"].extend({"ch0": adc})
    full = HERE / "full.tmp.root"
    tree(full, {"waveform": waves(200, 100), "sampling_ghz": np.full(200, 1.2)})
    data = full.read_bytes()
    (HERE / "bad_truncated.root").write_bytes(data[: len(data) // 2])
    full.unlink()
    (HERE / "bad_not_root.root").write_text("this is a text file, not ROOT\n" * 4)


if __name__ == "__main__":
    main()
