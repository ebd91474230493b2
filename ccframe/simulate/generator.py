"""The waveform simulator: a fast, seeded stand-in for Garfield++ plus digitization.

Events are generated in fixed blocks of `BLOCK` waveforms, each with its own random stream
keyed by (seed, block index), so the output for a seed does not depend on how the events
are later chunked, written or split across jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ccframe.simulate import physics
from ccframe.simulate.batch import SimBatch
from ccframe.simulate.config import Noise, SimulateConfig
from ccframe.simulate.synthesis import add_pulses

BLOCK = 256


@dataclass(frozen=True)
class _Prepared:
    """Per-configuration tables computed once."""

    masses: np.ndarray
    pdgs: np.ndarray
    size_cdf: np.ndarray
    drift: physics.DriftTable
    noise_filter: np.ndarray | None
    main_scale: float
    tail_scale: float


def shaping_filter(n_samples: int, sampling_ghz: float, noise: Noise) -> np.ndarray | None:
    """The noise's amplitude filter on the rfft bins, None for white noise."""
    if noise.spectrum == "coloured":
        return physics.noise_filter(
            n_samples,
            sampling_ghz,
            noise.band_power,
            noise.band_width_mhz,
            noise.low_frequency_excess,
            noise.low_frequency_cut_mhz,
        )
    if noise.spectrum == "measured":
        return physics.measured_noise_filter(
            n_samples, sampling_ghz, noise.measured_mhz, noise.measured_power
        )
    return None


class Simulator:
    """Generates `SimBatch`es for event ranges of one configuration and seed."""

    def __init__(self, config: SimulateConfig, seed: int) -> None:
        self.config = config
        self.seed = int(seed)
        det, pulse, noise = config.detector, config.pulse, config.noise
        self.n_samples = det.n_samples
        self.dt_ns = 1.0 / det.sampling_ghz
        peak = physics.pulse_peak_value(
            pulse.rise_ns,
            pulse.fall_ns,
            pulse.ion_tail_fraction,
            pulse.ion_tail_t0_ns,
            pulse.ion_tail_cut_ns,
        )
        norm = pulse.amplitude_mv / peak
        tail_integral = np.log(
            (pulse.ion_tail_cut_ns + pulse.ion_tail_t0_ns) / pulse.ion_tail_t0_ns
        )
        self._prep = _Prepared(
            masses=np.array([physics.MASS_GEV[p] for p in config.particles]),
            pdgs=np.array([physics.PDG_ID[p] for p in config.particles], dtype=np.int32),
            size_cdf=physics.cluster_size_cdf(config.ionization.cluster_size_percent),
            drift=physics.DriftTable(
                config.drift.radius_cm,
                config.drift.time_ns,
                config.drift.sigma_ns,
                r_max_cm=det.tube_radius_cm,
            ),
            noise_filter=shaping_filter(self.n_samples, det.sampling_ghz, noise),
            main_scale=norm * (1.0 - pulse.ion_tail_fraction) / (pulse.fall_ns - pulse.rise_ns),
            tail_scale=norm * pulse.ion_tail_fraction / tail_integral,
        )

    def generate(self, start: int, stop: int) -> SimBatch:
        """Events with ids [start, stop), identical whatever range they are asked for in."""
        if stop <= start:
            raise ValueError(f"empty event range [{start}, {stop})")
        wave = np.empty((stop - start, self.n_samples), dtype=np.float32)
        truths = []
        for block in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            lo, hi = max(start, block * BLOCK), min(stop, (block + 1) * BLOCK)
            if hi - lo == BLOCK:  # whole block: synthesise straight into the output
                truths.append(self._block(block, wave[lo - start : hi - start]))
            else:
                tmp = np.empty((BLOCK, self.n_samples), dtype=np.float32)
                truth = self._block(block, tmp).slice(lo - block * BLOCK, hi - block * BLOCK)
                wave[lo - start : hi - start] = tmp[lo - block * BLOCK : hi - block * BLOCK]
                truths.append(truth)
        merged = SimBatch.concatenate(truths)
        merged.waveform = wave
        return merged

    def iter_chunks(self, n_events: int, chunk_size: int, start: int = 0) -> Iterator[SimBatch]:
        """Consecutive batches of at most `chunk_size` events covering [start, start + n)."""
        chunk = max(BLOCK, (chunk_size // BLOCK) * BLOCK)
        pos, stop = start, start + n_events
        while pos < stop:
            end = min(stop, (pos // chunk + 1) * chunk)
            yield self.generate(pos, end)
            pos = end

    def _block(self, block: int, wave: np.ndarray) -> SimBatch:
        """Simulate block `block` into `wave` (BLOCK, n_samples); return its truth."""
        cfg, prep = self.config, self._prep
        det = cfg.detector
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, block])))
        n = BLOCK
        event_id = np.arange(block * n, (block + 1) * n, dtype=np.int64)

        # Event level: species, momentum, impact parameter, chord, number of clusters.
        species = rng.integers(0, prep.masses.size, n) if prep.masses.size > 1 else np.zeros(n, int)
        mom = cfg.momentum
        if mom.distribution == "fixed":
            momentum = np.full(n, mom.min_gev)
        elif mom.distribution == "uniform":
            momentum = rng.uniform(mom.min_gev, mom.max_gev, n)
        else:
            momentum = np.exp(rng.uniform(np.log(mom.min_gev), np.log(mom.max_gev), n))
        bg = momentum / prep.masses[species]
        radius = det.tube_radius_cm
        impact = radius * rng.uniform(det.impact_min_fraction, det.impact_max_fraction, n)
        chord = 2.0 * np.sqrt(np.maximum(radius**2 - impact**2, 0.0))
        density = cfg.ionization.density_scale * physics.cluster_density(
            bg, cfg.ionization.density_fit
        )
        n_clusters = rng.poisson(density * chord).astype(np.int32)

        # Cluster level: position along the chord, size.
        n_cl_total = int(n_clusters.sum())
        cl_event = np.repeat(np.arange(n), n_clusters)
        position = (rng.random(n_cl_total) - 0.5) * chord[cl_event]
        cl_radius = np.sqrt(impact[cl_event] ** 2 + position**2)
        size = (np.searchsorted(prep.size_cdf, rng.random(n_cl_total), side="right") + 1).astype(
            np.int32
        )
        size = np.minimum(size, prep.size_cdf.size).astype(np.int32)

        # Electron level: drift time with diffusion, Polya gain.
        el_cluster_global = np.repeat(np.arange(n_cl_total), size)
        el_radius = cl_radius[el_cluster_global]
        t_el = prep.drift.time(el_radius)
        if cfg.drift.diffusion:
            t_el = t_el + prep.drift.sigma(el_radius) * rng.standard_normal(t_el.size)
        t_el = np.maximum(t_el, 0.0)
        theta = cfg.gain.polya_theta
        charge = rng.gamma(1.0 + theta, cfg.gain.mean / (1.0 + theta), t_el.size)

        # Order clusters in time by their primary electron; primary = first electron.
        cl_first = (np.cumsum(size, dtype=np.int64) - size).astype(np.int64)
        cl_time = t_el[cl_first]
        order = np.lexsort((cl_time, cl_event))
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        sorted_size = size[order]
        sorted_start = np.cumsum(sorted_size) - sorted_size
        el_order = np.repeat(cl_first[order] - sorted_start, sorted_size) + np.arange(t_el.size)
        cl_start_event = np.concatenate([[0], np.cumsum(n_clusters)[:-1]])
        el_local_cluster = rank[el_cluster_global] - cl_start_event[cl_event[el_cluster_global]]
        primary = np.zeros(t_el.size, dtype=bool)
        primary[cl_first] = True
        n_electrons = np.bincount(cl_event, weights=size, minlength=n).astype(np.int32)

        # Waveform: pulses, then noise, polarity, baseline and ADC.
        offsets = np.concatenate([[0], np.cumsum(n_electrons, dtype=np.int64)])
        el_t = t_el[el_order]
        el_q = charge[el_order]
        self._noise(rng, wave)
        pulse = cfg.pulse
        add_pulses(
            wave,
            offsets,
            el_t + det.pretrigger_ns,
            el_q,
            self.dt_ns,
            pulse.rise_ns,
            pulse.fall_ns,
            prep.main_scale,
            prep.tail_scale,
            pulse.ion_tail_t0_ns,
            pulse.ion_tail_cut_ns,
        )
        if pulse.polarity == "negative":
            np.negative(wave, out=wave)
        dig = cfg.digitization
        wave += np.float32(dig.baseline_mv)
        if dig.adc_bits is not None:
            half = 2 ** (dig.adc_bits - 1)
            codes = np.clip(np.rint(wave / np.float32(dig.adc_lsb_mv)), -half, half - 1)
            np.multiply(codes, np.float32(dig.adc_lsb_mv), out=wave)

        return SimBatch(
            event_id=event_id,
            pdg=prep.pdgs[species],
            momentum_gev=momentum,
            beta_gamma=bg,
            impact_cm=impact,
            chord_cm=chord,
            n_clusters=n_clusters,
            n_electrons=n_electrons,
            sampling_ghz=np.full(n, det.sampling_ghz),
            pretrigger_ns=np.full(n, det.pretrigger_ns),
            cluster_time_ns=cl_time[order],
            cluster_size=sorted_size,
            cluster_position_cm=position[order],
            cluster_radius_cm=cl_radius[order],
            electron_time_ns=el_t,
            electron_cluster=el_local_cluster[el_order].astype(np.int32),
            electron_primary=primary[el_order],
            electron_charge=el_q.astype(np.float32),
            waveform=np.empty((0, self.n_samples), dtype=np.float32),
        )

    def _noise(self, rng: np.random.Generator, out: np.ndarray) -> None:
        """Fill `out` (n, n_samples) with noise of the configured RMS and spectrum."""
        rms = self.config.noise.rms_mv
        n, ns = out.shape
        h = self._prep.noise_filter
        if rms == 0:
            out[:] = 0.0
        elif h is None:
            rng.standard_normal(out=out, dtype=np.float32)
            out *= np.float32(rms)
        else:
            # The rfft of unit white noise drawn directly: Re, Im ~ N(0, ns/2), shaped by h.
            z = rng.standard_normal((n, h.size, 2), dtype=np.float32)
            spec = z.view(np.complex64)[..., 0]
            spec *= (h * rms * np.sqrt(ns / 2.0)).astype(np.float32)
            spec[:, 0] = 0.0  # the filter has no DC; Nyquist is real
            if ns % 2 == 0:
                spec[:, -1] = spec[:, -1].real * np.float32(np.sqrt(2.0))
            np.fft.irfft(spec, n=ns, axis=1, out=out)
