"""Read waveforms and truth from ROOT trees with uproot, chunk by chunk, into typed batches.

A tree is a TTree or an RNTuple (`ccframe.io.ntuple.Ntuple`, which gives an RNTuple and its
fields the TTree interface the reader uses; "branch" below means an RNTuple field as well).
Every problem with an input (missing or corrupt file, missing tree or branch, a basket or
page that fails to decompress or whose checksum does not match, wrong dtype or shape, empty
tree, NaN/inf samples, a waveform that does not match its `<branch>_checksum`) is an
`InputError` naming the file, tree, branch or entry and what was expected. An implausible
conversion to mV (data.scale, offset_mv, polarity) is a warning (`ccframe.io.sanity`).
"""

from __future__ import annotations

import glob
import itertools
import mmap
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from ccframe.errors import CcframeError, InputError, closest, reason
from ccframe.io.config import TRUTH_NAMES, DataConfig
from ccframe.io.ntuple import Ntuple, NtupleField, kind_of, part_of, unreadable
from ccframe.io.sanity import warn_if_implausible
from ccframe.kernels.checksum import checksum_branch, row_checksums, row_words
from ccframe.kernels.convert import Converted, convert_rows
from ccframe.kernels.tail import cancel_tails
from ccframe.resources import require_memory

READ_COPIES = 2
"""Copies of a chunk's raw samples alive while it is read, at most: uproot's decompressed
baskets and the array it fills from them (jagged branches, RNTuples; their float32 samples are
converted in that array). A fixed-size TTree branch needs less: its baskets are read one at a
time, those stored uncompressed not at all (a view of the memory-mapped file)."""

HANDLER = uproot.MemmapSource
"""How uproot reads local files: memory-mapped, without the default source's thread and
copies (about twice as fast for uncompressed baskets)."""


@dataclass
class WaveformBatch:
    """A chunk of waveforms from one file: mV, positive pulses, baseline not subtracted."""

    waveforms: np.ndarray  # (n, n_samples) float32
    baseline: np.ndarray  # (n,) float32, mean of the baseline window
    rms: np.ndarray  # (n,) float32, noise RMS in the baseline window
    entry: np.ndarray  # (n,) int64, entry numbers in the file's tree
    file: str
    sampling_ghz: float
    truth: ak.Array | None  # records with logical truth names (see io.config.TRUTH_NAMES)
    pretrigger_ns: float = 0.0  # data.pretrigger_ns: the track's window time without truth

    def __len__(self) -> int:
        return len(self.entry)

    @property
    def n_samples(self) -> int:
        return int(self.waveforms.shape[1])

    def rows(self, keep: np.ndarray | slice) -> WaveformBatch:
        """The batch restricted to some waveforms (a boolean mask, indices or a slice)."""
        return replace(
            self,
            waveforms=self.waveforms[keep],
            baseline=self.baseline[keep],
            rms=self.rms[keep],
            entry=self.entry[keep],
            truth=self.truth[keep] if self.truth is not None else None,
        )


def expand_files(patterns: list[str]) -> list[str]:
    """Paths and globs -> existing files, in order, each once. A path naming an existing file
    is taken literally (`run[1].root`); only otherwise is it a glob pattern."""
    files: list[str] = []
    for pattern in patterns:
        path = os.path.expanduser(pattern)
        if Path(path).is_file():
            matches = [path]
        elif glob.has_magic(pattern):
            matches = sorted(glob.glob(path))
            if not matches:
                raise InputError(f"{pattern}: no file matches this pattern")
        else:
            raise InputError(f"{pattern}: file not found")
        files.extend(m for m in matches if m not in files)
    return files


def open_file(path: str) -> tuple[Any, dict[str, str]]:
    """Open a ROOT file with uproot; return it and its TTrees and RNTuples (name -> "tree" or
    "RNTuple")."""
    if not Path(path).is_file():
        raise InputError(f"{path}: file not found")
    try:
        file = uproot.open(path, handler=HANDLER)
    except Exception as exc:  # uproot raises several types for corrupt/truncated files
        raise InputError(f"{path}: not a readable ROOT file ({reason(exc)})") from None
    declared = getattr(getattr(file, "file", None), "fEND", None)
    size = os.path.getsize(path)
    if isinstance(declared, int) and declared > size:
        raise InputError(f"{path}: truncated ROOT file ({size} of {declared} bytes)")
    try:
        classes = file.classnames()
    except Exception as exc:
        raise InputError(f"{path}: corrupt ROOT file ({reason(exc)})") from None
    tables: dict[str, str] = {}
    for key, cls in classes.items():
        if cls.startswith("TTree") or cls.endswith("RNTuple"):
            tables.setdefault(key.split(";")[0], "tree" if cls.startswith("TTree") else "RNTuple")
    return file, tables


def open_tree(path: str, tree: str) -> Any:
    """Open `path` and return its TTree `tree`, or its RNTuple `tree` as an `Ntuple`, with a
    clear error for every failure."""
    file, tables = open_file(path)
    if tree not in tables:
        listed = ", ".join(n if k == "tree" else f"{n} ({k})" for n, k in tables.items())
        raise InputError(
            f"{path}: no tree '{tree}'{closest(tree, tables)}; trees here: {listed or 'none'}"
        )
    try:
        return Ntuple(file[tree], path) if tables[tree] == "RNTuple" else file[tree]
    except Exception as exc:
        raise InputError(f"{path}: cannot read {tables[tree]} '{tree}' ({reason(exc)})") from None


def read_branch(tree: Any, name: str, path: str, **options: Any) -> Any:
    """`tree[name].array(**options)`; any failure to read it is an `InputError` naming the
    file, tree and branch."""
    try:
        return tree[name].array(**options)
    except Exception as exc:  # decompression and checksum errors, truncated baskets, ...
        raise InputError(unreadable(path, tree, name, exc)) from None


def failing_branch(tree: Any, names: list[str], start: int, stop: int) -> str | None:
    """The first of `names` whose entries [start, stop) cannot be read, if any."""
    for name in names:
        try:
            tree[name].array(entry_start=start, entry_stop=stop, library="np")
        except Exception:
            return name
    return None


def require_branch(tree: Any, name: str, path: str, what: str) -> Any:
    if name not in tree:
        raise InputError(
            f"{path}: {kind_of(tree)} '{tree.name}' has no {part_of(tree)} '{name}' ({what})"
            f"{closest(name, tree.keys())}"
        )
    return tree[name]


def check_waveform_branch(branch: Any, path: str) -> None:
    """The waveform branch (or RNTuple field) must hold a numeric array (fixed-size or jagged)
    per entry."""
    where = f"{path}: {part_of(branch)} '{branch.name}'"
    try:
        interp = branch.interpretation
    except Exception as exc:
        raise InputError(f"{where}: cannot interpret its type ({reason(exc)})") from None
    several = (
        f"{where} has type {branch.typename}, several arrays per entry; expected one array of "
        "samples per entry (one channel per branch)"
    )
    if getattr(interp, "nested", False):  # an RNTuple's std::vector<std::vector<float>>, ...
        raise InputError(several)
    inner = getattr(interp, "content", interp)  # AsJagged -> its content
    dtype = getattr(inner, "to_dtype", None)
    if dtype is None or dtype.base.kind not in "iuf":
        raise InputError(
            f"{where} has type {branch.typename}; expected an array of numbers per entry"
        )
    if len(dtype.shape) > 1:
        raise InputError(several)
    fixed = dtype.shape != ()
    jagged = type(interp).__name__ == "AsJagged"
    if not (fixed or jagged):
        raise InputError(
            f"{where} holds one {branch.typename} per entry; expected an array of samples"
        )


def resolve_truth(tree: Any, data: DataConfig, path: str) -> dict[str, str]:
    """Logical truth name -> branch name for this tree."""
    if data.truth == "none":
        return {}
    if data.truth == "auto":
        return {name: name for name in TRUTH_NAMES if name in tree}
    for name, branch in data.truth.items():
        require_branch(tree, branch, path, f"truth '{name}' in data.truth")
    return dict(data.truth)


def sampling_of(tree: Any, data: DataConfig, path: str) -> float:
    """The sampling rate (GHz): data.sampling_ghz, else the file's sampling branch, whose
    values are in data.sampling_unit (GHz, or ns per sample as the Garfield++ samples'
    `sampling_rate`)."""
    if data.sampling_ghz is not None:
        return float(data.sampling_ghz)
    if data.sampling_branch not in tree:
        raise InputError(
            f"{path}: no branch '{data.sampling_branch}' gives the sampling rate; "
            "set data.sampling_ghz (inspect: --sampling-ghz)"
        )
    values = np.asarray(
        read_branch(tree, data.sampling_branch, path, library="np", entry_stop=1000)
    )
    if (
        values.dtype.kind not in "iuf"
        or values.ndim != 1
        or values.size == 0
        or not np.all(values == values[0])
        or not (np.isfinite(values[0]) and values[0] > 0)
    ):
        raise InputError(
            f"{path}: branch '{data.sampling_branch}' does not hold one positive sampling rate; "
            "set data.sampling_ghz (inspect: --sampling-ghz)"
        )
    if data.sampling_unit == "ns_per_sample":
        return 1.0 / float(values[0])
    return float(values[0])


def sample_layout(branch: Any, entries: int) -> tuple[int, int]:
    """(samples per entry, bytes per sample) of a checked waveform branch; for a jagged branch
    the samples are estimated from its uncompressed size (no basket is read)."""
    interp = branch.interpretation
    inner = getattr(interp, "content", interp)
    dtype = inner.to_dtype
    if dtype.shape != ():
        return int(np.prod(dtype.shape)), int(dtype.base.itemsize)
    if isinstance(branch, NtupleField):
        total = branch.n_values() * dtype.itemsize
    else:
        total = branch.member("fTotBytes", none_if_missing=True) or 0
    return max(1, int(total) // max(entries, 1) // dtype.itemsize), int(dtype.itemsize)


def require_chunk_memory(branch: Any, data: DataConfig, entries: int, stop: int) -> None:
    """Refuse (ResourceError naming data.chunk_size) a chunk that would not fit in memory:
    the raw samples (READ_COPIES copies) and their float32 conversion. `entries`: the
    tree's; `stop`: the entries to read."""
    n = min(data.chunk_size, stop)
    samples, itemsize = sample_layout(branch, entries)
    nbytes = n * samples * (READ_COPIES * itemsize + 4)
    require_memory(nbytes, "data.chunk_size", f"a chunk of {n} waveforms of {samples} samples")


def checksum_of(tree: Any, data: DataConfig, path: str) -> str | None:
    """The tree's `<waveform_branch>_checksum` branch (one uint64 per entry), if it has one."""
    name = checksum_branch(data.waveform_branch)
    if name not in tree:
        return None
    part = part_of(tree)
    try:
        dtype = getattr(tree[name].interpretation, "to_dtype", None)
    except Exception as exc:
        raise InputError(
            f"{path}: {part} '{name}': cannot interpret its type ({reason(exc)})"
        ) from None
    if dtype is None or dtype.shape != () or dtype.kind != "u" or dtype.itemsize != 8:
        raise InputError(
            f"{path}: {part} '{name}' has type {tree[name].typename}; expected one uint64 "
            f"checksum of '{data.waveform_branch}' per entry"
        )
    return name


def iter_batches(data: DataConfig, files: list[str] | None = None) -> Iterator[WaveformBatch]:
    """Yield `WaveformBatch`es of at most `data.chunk_size` waveforms from every input file."""
    remaining = data.max_events
    for path in files if files is not None else expand_files(data.files):
        if remaining is not None and remaining <= 0:
            return
        for batch in _iter_file(path, data, remaining):
            if remaining is not None:
                remaining -= len(batch)
            yield batch


@dataclass(frozen=True)
class _Reading:
    """What every chunk of one file is read with."""

    path: str
    data: DataConfig
    sampling: float
    n_base: int
    truth: dict[str, str]  # logical truth name -> branch
    checksum: str | None  # the checksum branch
    words: tuple[str, str]  # ("tree", "branch") or ("RNTuple", "field"), for messages


def _iter_file(path: str, data: DataConfig, limit: int | None) -> Iterator[WaveformBatch]:
    tree = open_tree(path, data.tree)
    branch = require_branch(tree, data.waveform_branch, path, "data.waveform_branch")
    check_waveform_branch(branch, path)
    words = (kind_of(tree), part_of(tree))
    if tree.num_entries == 0:
        raise InputError(f"{path}: {words[0]} '{data.tree}' is empty (0 entries)")
    sampling = sampling_of(tree, data, path)
    n_base = max(1, round(data.baseline_window_ns * sampling))
    truth_map = resolve_truth(tree, data, path)
    checksum = checksum_of(tree, data, path)
    stop = tree.num_entries if limit is None else min(tree.num_entries, limit)
    require_chunk_memory(branch, data, tree.num_entries, stop)
    how = _Reading(path, data, sampling, n_base, truth_map, checksum, words)
    names = [data.waveform_branch, *truth_map.values()]
    names += [checksum] if checksum else []
    baskets = BasketRows.of(tree, branch, path)
    start = 0
    n_samples = None
    try:
        chunks = _chunks(tree, names[1:] if baskets else names, data.chunk_size, stop)
        for end, chunk in chunks:
            raw = baskets.rows(start, end) if baskets else [_waveforms(chunk, how, start)]
            batch = _make_batch(raw, chunk, how, start, overwrite=baskets is None)
            del raw
            if baskets:
                baskets.release()
            release_source(tree)
            if batch is not None:
                if n_samples is None:
                    warn_if_implausible(batch, data)
                elif batch.n_samples != n_samples:
                    raise InputError(
                        f"{path}: {words[1]} '{data.waveform_branch}' entry {start} has "
                        f"{batch.n_samples} samples, earlier entries {n_samples}; waveforms "
                        "must have equal length"
                    )
                n_samples = batch.n_samples
                yield batch
            start = end
    except CcframeError:
        raise
    except Exception as exc:  # truncated baskets, decompression and checksum errors, ...
        end = min(start + data.chunk_size, stop)
        culprit = failing_branch(tree, names, start, end)
        if culprit is not None:
            raise InputError(unreadable(path, tree, culprit, exc, f"{start}..{end - 1}")) from None
        raise InputError(
            f"{path}: cannot read entries from {start} of {words[0]} '{data.tree}' ({reason(exc)})"
        ) from None


def _chunks(tree: Any, names: list[str], step: int, stop: int) -> Iterator[tuple[int, Any]]:
    """(end, the chunk of `names` or None if none) for entries [0, step), [step, 2 step), ...
    up to `stop`."""
    arrays = tree.iterate(names, step_size=step, entry_stop=stop, library="ak") if names else None
    for start in range(0, stop, step):
        end = min(start + step, stop)
        chunk = next(arrays) if arrays is not None else None
        if chunk is not None and len(chunk) != end - start:
            raise ValueError(f"{len(chunk)} entries read from {start}, expected {end - start}")
        yield end, chunk


KEY = struct.Struct(">ihiIhhii")
"""The start of a ROOT key (TKey): fNbytes, fVersion, fObjlen, fDatime, fKeylen, fCycle,
fSeekKey (32-bit; the high half of a 64-bit one if fVersion > 1000), then more."""


class BasketRows:
    """The entries of a fixed-size TTree branch as raw rows (big-endian, as stored), basket by
    basket: a basket stored uncompressed is a view of the memory-mapped file (no copy), any
    other is read (and decompressed) by uproot, the last one kept for the next chunk."""

    def __init__(self, branch: Any, path: str) -> None:
        dtype = branch.interpretation.from_dtype
        self.branch, self.dtype = branch, dtype.base
        self.n_samples = int(np.prod(dtype.shape))
        self.offsets = [int(e) for e in branch.entry_offsets]
        self.seeks = np.asarray(branch.member("fBasketSeek"), dtype=np.int64)
        self.file = np.memmap(path, dtype=np.uint8, mode="r")
        self._kept: tuple[int, np.ndarray] = (-1, np.empty(0, np.uint8))

    @classmethod
    def of(cls, tree: Any, branch: Any, path: str) -> BasketRows | None:
        """Rows of `branch` read by baskets, if it is a TTree's branch of fixed-size arrays of
        numbers (else None: uproot reads it, as awkward arrays)."""
        if isinstance(tree, Ntuple) or type(branch.interpretation).__name__ != "AsDtype":
            return None
        if branch.interpretation.from_dtype.shape == ():
            return None
        try:
            return cls(branch, path)
        except Exception:  # not mappable, odd metadata, ...: uproot reads it (and says why)
            return None

    def rows(self, start: int, stop: int) -> list[np.ndarray]:
        """Entries start..stop-1 as consecutive (k, n_samples) arrays, one per basket."""
        parts = []
        for i, (lo, hi) in enumerate(itertools.pairwise(self.offsets)):
            if lo < stop and hi > start:
                parts.append(self._basket(i, hi - lo)[max(start, lo) - lo : min(stop, hi) - lo])
        if sum(len(p) for p in parts) != stop - start:
            raise ValueError(f"entries {start}..{stop - 1} are not all in the branch's baskets")
        return parts

    def release(self) -> None:
        """Drop the pages of the mapped file (`drop_pages`)."""
        drop_pages(self.file)

    def _basket(self, i: int, entries: int) -> np.ndarray:
        data = self._mapped(i, entries * self.n_samples * self.dtype.itemsize)
        if data is None:
            if self._kept[0] != i:
                self._kept = (i, self.branch.basket(i).data)
            data = self._kept[1]
        return data.view(self.dtype).reshape(entries, self.n_samples)

    def _mapped(self, i: int, size: int) -> np.ndarray | None:
        """Basket i's `size` bytes in the mapped file, if stored there uncompressed with no
        entry offsets (its key then says fNbytes = fKeylen + fObjlen = fKeylen + size)."""
        seek = int(self.seeks[i]) if i < len(self.seeks) else 0
        head = self.file[seek : seek + KEY.size] if seek > 0 else self.file[:0]
        if len(head) < KEY.size:
            return None
        nbytes, version, objlen, _, keylen, _, seek_key, low = KEY.unpack(head.tobytes())
        own = (seek_key << 32) + (low & 0xFFFFFFFF) if version > 1000 else seek_key
        if own != seek or objlen != size or nbytes - keylen != size or keylen <= 0:
            return None
        data = self.file[seek + keylen : seek + nbytes]
        return data if len(data) == size else None


def drop_pages(mapped: Any) -> None:
    """Drop the pages of a memory-mapped file (a `numpy.memmap`) from this process's
    resident memory: they stay in the page cache and a later access maps them again, so
    reading a file larger than memory keeps the resident size flat."""
    handle = getattr(mapped, "_mmap", None)
    if handle is not None and hasattr(handle, "madvise"):
        handle.madvise(mmap.MADV_DONTNEED)


def release_source(tree: Any) -> None:
    """`drop_pages` for the file uproot mapped for a TTree (its truth branches). Safe even
    for arrays that are views of the map: a dropped page of a read-only file mapping is
    mapped again, with the same bytes, when it is next read."""
    source = getattr(getattr(tree, "file", None), "source", None)
    drop_pages(getattr(source, "_file", None))


def verify_checksums(
    chunk: ak.Array,
    data: DataConfig,
    path: str,
    name: str,
    start: int,
    words: tuple[str, str] = ("tree", "branch"),
    computed: np.ndarray | None = None,
) -> None:
    """Compare the raw waveforms of a chunk (or their checksums, `computed`) with their stored
    checksums. `words`: what the file holds, ("tree", "branch") or ("RNTuple", "field"), for
    messages."""
    if computed is None:
        waves = _regular(chunk[data.waveform_branch], path, data.waveform_branch, start, words[1])
        _checkable(waves, data, path, name, words[1])
        computed = row_checksums(waves)
    stored = ak.to_numpy(chunk[name]).astype(np.uint64, copy=False)
    bad = np.flatnonzero(computed != stored)
    if bad.size:
        raise InputError(
            f"{path}: {words[0]} '{data.tree}' entry {start + int(bad[0])}: {words[1]} "
            f"'{data.waveform_branch}' does not match its checksum in '{name}' ({bad.size} such "
            "entries in this chunk); the file is corrupt"
        )


def _checkable(waves: np.ndarray, data: DataConfig, path: str, name: str, part: str) -> None:
    """Refuse waveforms whose rows are not whole 32-bit words, which checksums hash."""
    try:
        row_words(np.empty((0, waves.shape[1]), waves.dtype.newbyteorder("=")))
    except ValueError as exc:
        raise InputError(
            f"{path}: {part} '{name}' cannot check '{data.waveform_branch}' ({exc})"
        ) from None


def _waveforms(chunk: ak.Array, how: _Reading, start: int) -> np.ndarray:
    """A chunk's waveforms read by uproot, as a (n, n_samples) array."""
    name = how.data.waveform_branch
    return _regular(chunk[name], how.path, name, start, how.words[1])


def _make_batch(
    raw: list[np.ndarray], chunk: Any, how: _Reading, start: int, overwrite: bool
) -> WaveformBatch | None:
    """The batch of a chunk's raw waveforms (consecutive parts of it; `overwrite`: they may
    become its samples) and its other branches: checksums compared, samples in mV, rows with
    NaN or inf refused or dropped, baseline and RMS."""
    path, data, words, checksum = how.path, how.data, how.words, how.checksum
    n_samples = raw[0].shape[1]
    if checksum:
        _checkable(raw[0], data, path, checksum, words[1])
    conv = _convert(raw, min(how.n_base, n_samples), data, checksum is not None, overwrite)
    if checksum:
        verify_checksums(chunk, data, path, checksum, start, words, conv.checksums)
    if n_samples < how.n_base:
        raise InputError(
            f"{path}: {words[1]} '{data.waveform_branch}' has {n_samples} samples per entry, "
            f"fewer than the {how.n_base} of the baseline window (data.baseline_window_ns)"
        )
    if data.tail_cancellation_ns:
        fall, n_base = data.tail_cancellation_ns, min(how.n_base, n_samples)
        cancel_tails(conv.waves, conv.baseline, conv.rms, how.sampling, fall, n_base)
    entry = np.arange(start, start + len(conv.waves), dtype=np.int64)
    truth = (
        ak.zip({name: chunk[branch] for name, branch in how.truth.items()}, depth_limit=1)
        if how.truth
        else None
    )
    pretrigger = data.pretrigger_ns or 0.0
    batch = WaveformBatch(conv.waves, conv.baseline, conv.rms, entry, path, how.sampling,
                          truth, pretrigger)  # fmt: skip
    if conv.finite.all():
        return batch
    bad = ~conv.finite
    if data.on_bad_waveform == "error":
        raise InputError(
            f"{path}: entry {int(entry[bad][0])} of {words[0]} '{data.tree}' has NaN or inf "
            f"samples ({int(bad.sum())} such entries in this chunk); set data.on_bad_waveform: "
            "skip to drop them"
        )
    return batch.rows(conv.finite) if conv.finite.any() else None


def _convert(
    raw: list[np.ndarray], n_window: int, data: DataConfig, checksums: bool, overwrite: bool
) -> Converted:
    """`convert_rows` of the parts of a chunk into one output."""
    negative = data.polarity == "negative"
    factors = (data.scale, data.offset_mv, negative, checksums)
    if len(raw) == 1:
        return convert_rows(raw[0], n_window, *factors, overwrite=overwrite)
    out = Converted.empty(sum(len(part) for part in raw), raw[0].shape[1], checksums)
    first = 0
    for part in raw:
        convert_rows(part, n_window, *factors, out=out.rows(first, first + len(part)))
        first += len(part)
    return out


def _regular(
    array: ak.Array, path: str, branch: str, start: int, part: str = "branch"
) -> np.ndarray:
    """A (n, n_samples) NumPy array from a fixed-size or equal-length jagged branch."""
    try:
        return ak.to_numpy(array)
    except (ValueError, TypeError):
        lengths = ak.to_numpy(ak.num(array, axis=1))
        odd = int(np.argmax(lengths != lengths[0]))
        raise InputError(
            f"{path}: {part} '{branch}' entry {start + odd} has {lengths[odd]} samples, "
            f"entry {start} has {lengths[0]}; waveforms must have equal length"
        ) from None
