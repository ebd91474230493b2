"""`SimBatch`: simulated waveforms with their Monte Carlo truth, as flat arrays plus counts."""

from __future__ import annotations

from dataclasses import dataclass, fields

import awkward as ak
import numpy as np

from ccframe.io.config import TRUTH_CLUSTER, TRUTH_ELECTRON, TRUTH_EVENT
from ccframe.kernels.checksum import checksum_branch, row_checksums

# The simulated tree's branches are the reader's truth names (one definition, in io.config).
EVENT_FIELDS = (*TRUTH_EVENT, "sampling_ghz")
CLUSTER_FIELDS = tuple(name.removeprefix("cluster_") for name in TRUTH_CLUSTER)
ELECTRON_FIELDS = tuple(name.removeprefix("electron_") for name in TRUTH_ELECTRON)


@dataclass
class SimBatch:
    """One block of simulated waveforms. Times are ns after the track crossing (t0 = 0);
    sample index = (time_ns + pretrigger_ns) * sampling_ghz."""

    event_id: np.ndarray
    pdg: np.ndarray
    momentum_gev: np.ndarray
    beta_gamma: np.ndarray
    impact_cm: np.ndarray
    chord_cm: np.ndarray
    n_clusters: np.ndarray
    n_electrons: np.ndarray
    sampling_ghz: np.ndarray
    pretrigger_ns: np.ndarray
    cluster_time_ns: np.ndarray
    cluster_size: np.ndarray
    cluster_position_cm: np.ndarray
    cluster_radius_cm: np.ndarray
    electron_time_ns: np.ndarray
    electron_cluster: np.ndarray
    electron_primary: np.ndarray
    electron_charge: np.ndarray
    waveform: np.ndarray

    def __len__(self) -> int:
        return len(self.event_id)

    def cluster_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_clusters, dtype=np.int64)])

    def electron_offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.n_electrons, dtype=np.int64)])

    def slice(self, start: int, stop: int) -> SimBatch:
        """Waveforms [start, stop) of this batch."""
        co, eo = self.cluster_offsets(), self.electron_offsets()
        parts = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("cluster_"):
                parts[f.name] = value[co[start] : co[stop]]
            elif f.name.startswith("electron_"):
                parts[f.name] = value[eo[start] : eo[stop]]
            else:
                parts[f.name] = value[start:stop]
        return SimBatch(**parts)

    @staticmethod
    def concatenate(batches: list[SimBatch]) -> SimBatch:
        if len(batches) == 1:
            return batches[0]
        return SimBatch(
            **{
                f.name: np.concatenate([getattr(b, f.name) for b in batches])
                for f in fields(SimBatch)
            }
        )

    def tree_arrays(self) -> dict[str, object]:
        """Branches for an uproot tree: scalars, `cluster` and `electron` records, waveform
        and its per-entry checksum (verified by the reader)."""
        # n_clusters / n_electrons become the counter branches of the jagged records.
        counters = ("n_clusters", "n_electrons")
        out: dict[str, object] = {
            name: getattr(self, name) for name in EVENT_FIELDS if name not in counters
        }
        out["cluster"] = ak.zip(
            {
                name: ak.unflatten(getattr(self, f"cluster_{name}"), self.n_clusters)
                for name in CLUSTER_FIELDS
            }
        )
        out["electron"] = ak.zip(
            {
                name: ak.unflatten(getattr(self, f"electron_{name}"), self.n_electrons)
                for name in ELECTRON_FIELDS
            }
        )
        out["waveform"] = self.waveform
        out[checksum_branch("waveform")] = row_checksums(self.waveform)
        return out
