"""The verdict of `ccframe compare`: per quantity and per input against the reference, a
goodness-of-fit number, the means and their ratio, and a flag (docs/algorithms.md,
"Comparing inputs").

With thousands of waveforms every real difference is statistically significant, so a p-value
alone flags everything; with a hundred, a large difference can be chance. A quantity is
flagged MISMATCH only when the difference is both significant (KS p-value < ALPHA) and large
(KS distance D > KS_TOLERANCE, or the means differing by more than MEAN_TOLERANCE)."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from ccframe.signal.spectrum import NoiseSpectrum

ALPHA = 1e-3
"""Significance a difference needs before it can be flagged (KS p-value; for the spectrum the
equivalent two-sided z of a band's log-ratio)."""
KS_TOLERANCE = 0.05
"""Largest accepted KS distance: at most 5% of the entries on the other side of any cut."""
MEAN_TOLERANCE = 0.05
"""Largest accepted relative difference of the means."""
SPECTRUM_TOLERANCE = 0.20
"""Largest accepted relative difference of the noise power in any frequency band."""
SPECTRUM_BANDS = 12
"""Equal-width bands the common frequency range is cut into for the spectrum's verdict."""
MIN_ENTRIES = 20
"""Fewer entries in an input: no verdict (FEW ENTRIES)."""
OK, MISMATCH, FEW, REFUSED = "OK", "MISMATCH", "FEW ENTRIES", "REFUSED"
COLUMNS = [
    "quantity",
    "input",
    "reference",
    "n",
    "n_ref",
    "mean",
    "mean_ref",
    "ratio",
    "ratio_err",
    "chi2",
    "ndf",
    "ks_d",
    "ks_p",
    "max_dev",
    "verdict",
    "why",
]


@dataclass
class Row:
    """One line of the verdict: `input` against `reference` for one quantity."""

    quantity: str
    input: str
    reference: str
    n: int = 0
    n_ref: int = 0
    mean: float = math.nan
    mean_ref: float = math.nan
    ratio: float = math.nan
    ratio_err: float = math.nan
    chi2: float = math.nan
    ndf: int = 0
    ks_d: float = math.nan
    ks_p: float = math.nan
    max_dev: float = math.nan
    verdict: str = OK
    why: str = ""

    def as_dict(self) -> dict[str, object]:
        """JSON/CSV-ready: NaN becomes None."""
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in asdict(self).items()
        }


def chi2_shapes(counts: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """chi2 and ndf of two unweighted histograms' normalised shapes (ROOT TH1::Chi2Test,
    "UU NORM"): sum over bins with entries of (N_r n_i - N n_r,i)^2 / (N N_r (n_i + n_r,i)),
    ndf = those bins - 1."""
    n, n_ref = float(counts.sum()), float(ref.sum())
    both = (counts + ref) > 0
    if n == 0 or n_ref == 0 or both.sum() < 2:
        return math.nan, 0
    diff = n_ref * counts[both] - n * ref[both]
    chi2 = float(np.sum(diff**2 / (counts[both] + ref[both])) / (n * n_ref))
    return chi2, int(both.sum()) - 1


def mean_ratio(a: np.ndarray, ref: np.ndarray, n: int, n_ref: int) -> tuple[float, float]:
    """mean(a) / mean(ref) and its statistical uncertainty (standard errors of the means, with
    n and n_ref independent samples)."""
    ma, mr = float(np.mean(a)), float(np.mean(ref))
    if mr == 0:
        return math.nan, math.nan
    ratio = ma / mr
    rel_a = float(np.std(a)) / math.sqrt(n) / ma if ma else 0.0
    rel_r = float(np.std(ref)) / math.sqrt(n_ref) / mr
    return ratio, abs(ratio) * math.hypot(rel_a, rel_r)


def effective_size(values: np.ndarray, counts: np.ndarray) -> int:
    """Independent samples worth of `values` that come in groups of `counts` (the candidates
    of each waveform): N / design effect, the design effect being the variance of the mean
    with the groups' sums as the independent units over that of N independent entries
    (Kish); between 1 and N."""
    n = values.size
    if n < 2 or counts.sum() != n:
        return n
    resid = values - values.mean()
    group = np.repeat(np.arange(counts.size), counts.astype(np.int64))
    clustered = float(np.sum(np.bincount(group, weights=resid, minlength=counts.size) ** 2))
    iid = float(np.sum(resid**2))
    if clustered <= 0 or iid <= 0:
        return n
    return int(np.clip(round(n * iid / clustered), 1, n))


def ks_test(a: np.ndarray, ref: np.ndarray, n: int, n_ref: int) -> tuple[float, float]:
    """KS distance of the entries and its p-value for n and n_ref independent samples: when
    there are more entries than that (candidates of one waveform are correlated), the
    asymptotic distribution with the effective size n n_ref / (n + n_ref)."""
    with warnings.catch_warnings():  # the exact method falls back to the asymptotic one
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful")
        ks = stats.ks_2samp(a, ref)
    d = float(ks.statistic)
    if (n, n_ref) == (a.size, ref.size):
        return d, float(ks.pvalue)
    return d, float(stats.kstwo.sf(d, max(1, round(n * n_ref / (n + n_ref)))))


def compare_distribution(
    key: str,
    name: str,
    ref_name: str,
    a: np.ndarray,
    ref: np.ndarray,
    counts: np.ndarray,
    ref_counts: np.ndarray,
    independent: tuple[int, int] | None = None,
    signed: bool = False,
) -> Row:
    """Row of one histogrammed quantity: chi2/ndf of the binned shapes, KS distance and
    p-value of the unbinned entries, means and their ratio (not for `signed` quantities).

    `independent`: the inputs' effective numbers of independent entries when fewer than their
    entries (candidates of one waveform are correlated, `effective_size`); the p-value and
    the ratio's uncertainty count those, so that they do not overstate. chi2 is ROOT's, of
    the entries (slightly above 1 per ndf for per-candidate quantities of equal samples)."""
    row = Row(key, name, ref_name, n=int(a.size), n_ref=int(ref.size))
    if a.size == 0 or ref.size == 0:
        row.verdict, row.why = FEW, "no entries"
        return row
    n, n_ref = independent or (a.size, ref.size)
    n, n_ref = min(n, a.size), min(n_ref, ref.size)
    row.mean, row.mean_ref = float(np.mean(a)), float(np.mean(ref))
    if not signed:
        row.ratio, row.ratio_err = mean_ratio(a, ref, n, n_ref)
    row.chi2, row.ndf = chi2_shapes(counts, ref_counts)  # ROOT's, of the entries
    row.ks_d, row.ks_p = ks_test(a, ref, n, n_ref)
    if min(n, n_ref) < MIN_ENTRIES:
        row.verdict, row.why = FEW, f"fewer than {MIN_ENTRIES} entries"
        return row
    reasons = []
    if row.ks_d > KS_TOLERANCE:
        reasons.append(f"D={row.ks_d:.3f}>{KS_TOLERANCE:g}")
    if math.isfinite(row.ratio) and abs(row.ratio - 1) > MEAN_TOLERANCE:
        reasons.append(f"mean {row.ratio - 1:+.0%}")
    if reasons and row.ks_p < ALPHA:
        row.verdict, row.why = MISMATCH, ", ".join(reasons)
    elif reasons:
        row.why = f"{', '.join(reasons)}: not significant"
    return row


def spectrum_bands(spec: NoiseSpectrum, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean PSD in each band and its relative uncertainty, sqrt(2 / (segments x bins)): a
    periodogram bin averaged over K segments scatters by 1/sqrt(K), and the Hann window
    correlates neighbouring bins (about two bins per independent estimate)."""
    f = spec.freq_mhz
    idx = np.digitize(f, edges) - 1
    inside = (f > 0) & (idx >= 0) & (idx < edges.size - 1)
    bins = np.bincount(idx[inside], minlength=edges.size - 1).astype(np.float64)
    power = np.bincount(idx[inside], weights=spec.power[inside], minlength=edges.size - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = power / bins
        rel = np.sqrt(2.0 / (max(spec.segments, 1) * bins))
    return mean, rel


def band_edges(spec: NoiseSpectrum, ref: NoiseSpectrum) -> np.ndarray:
    """SPECTRUM_BANDS equal bands over the frequencies both spectra cover (DC left out)."""
    lo = max(spec.df_mhz, ref.df_mhz) / 2
    hi = min(float(spec.freq_mhz[-1]), float(ref.freq_mhz[-1]))
    hi += min(spec.df_mhz, ref.df_mhz) / 2
    return np.linspace(lo, hi, SPECTRUM_BANDS + 1)


def compare_spectrum(
    key: str, name: str, ref_name: str, spec: NoiseSpectrum, ref: NoiseSpectrum
) -> Row:
    """Row of the noise spectrum: in SPECTRUM_BANDS bands over the common frequency range,
    chi2/ndf of the log power ratio, the largest relative band difference (max_dev), the
    integrated noise RMS (mean) and its ratio. MISMATCH when a band differs by more than
    SPECTRUM_TOLERANCE and by more than the z of ALPHA."""
    row = Row(key, name, ref_name, n=spec.segments, n_ref=ref.segments)
    if spec.segments == 0 or ref.segments == 0 or spec.freq_mhz.size < 2:
        row.verdict, row.why = FEW, "no pulse-free segments"
        return row
    row.mean, row.mean_ref = spec.rms_mv, ref.rms_mv
    row.ratio = row.mean / row.mean_ref if row.mean_ref else math.nan
    row.ratio_err = row.ratio * math.sqrt(0.5 / spec.segments + 0.5 / ref.segments)
    edges = band_edges(spec, ref)
    p, rel = spectrum_bands(spec, edges)
    p_ref, rel_ref = spectrum_bands(ref, edges)
    ok = np.isfinite(p) & np.isfinite(p_ref) & (p > 0) & (p_ref > 0)
    if not ok.any():
        row.verdict, row.why = FEW, "no common frequencies"
        return row
    log_r = np.log(p[ok] / p_ref[ok])
    sigma = np.hypot(rel[ok], rel_ref[ok])
    z = np.abs(log_r) / sigma
    row.chi2, row.ndf = float(np.sum(z**2)), int(ok.sum())
    dev = np.expm1(log_r)
    worst = int(np.argmax(np.abs(dev)))
    row.max_dev = float(dev[worst])
    if min(spec.segments, ref.segments) < MIN_ENTRIES:
        row.verdict, row.why = FEW, f"fewer than {MIN_ENTRIES} noise segments"
        return row
    bad = (np.abs(dev) > SPECTRUM_TOLERANCE) & (z > stats.norm.isf(ALPHA / 2))
    centres = ((edges[:-1] + edges[1:]) / 2)[ok]
    if bad.any():
        row.verdict = MISMATCH
        row.why = (
            f"{bad.sum()}/{ok.sum()} bands off, worst {dev[worst]:+.0%} at {centres[worst]:.0f} MHz"
        )
    elif np.any(np.abs(dev) > SPECTRUM_TOLERANCE):
        row.why = "band difference not significant"
    return row


def _num(value: float, fmt: str) -> str:
    return "-" if not math.isfinite(value) else format(value, fmt)


def _p(value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return "<1e-10" if value < 1e-10 else f"{value:.2g}"


def cells(row: Row) -> list[str]:
    """The row as the printed and drawn table shows it."""
    ratio = _num(row.ratio, ".3f")
    if math.isfinite(row.ratio_err):
        ratio += f"±{row.ratio_err:.3f}"
    chi2 = f"{row.chi2 / row.ndf:.3g}" if row.ndf and math.isfinite(row.chi2) else "-"
    dist = _num(row.ks_d, ".3f") if math.isfinite(row.ks_d) else _num(row.max_dev, "+.1%")
    return [
        row.quantity,
        row.input,
        str(row.n),
        _num(row.mean, ".4g"),
        _num(row.mean_ref, ".4g"),
        ratio,
        chi2,
        dist,
        _p(row.ks_p),
        row.verdict,
        row.why,
    ]


HEADER = [
    "quantity",
    "input",
    "n",
    "mean",
    "ref mean",
    "ratio",
    "chi2/ndf",
    "KS D|dev",
    "KS p",
    "verdict",
    "why",
]


def table(rows: list[Row]) -> str:
    """The verdict as a fixed-width text table (one line per row)."""
    body = [HEADER, *(cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADER))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body
    ]
    return "\n".join(lines)


def rule() -> str:
    """The flagging rule, in one line (printed and drawn with the table)."""
    return (
        f"MISMATCH: KS p < {ALPHA:g} and (KS D > {KS_TOLERANCE:g} or means differ by > "
        f"{MEAN_TOLERANCE:.0%}); spectrum: a band off by > {SPECTRUM_TOLERANCE:.0%} at "
        f"> {stats.norm.isf(ALPHA / 2):.1f} sigma; n: entries (noise_psd: segments); p and "
        "errors of per-candidate entries use their effective number"
    )
