"""RNTuples behind the part of uproot's TTree interface that the reader uses, and the
wording of messages about either ("tree"/"RNTuple", "branch"/"field")."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import awkward as ak
import numpy as np
import xxhash
from uproot.interpretation.jagged import AsJagged
from uproot.interpretation.numerical import AsDtype

from ccframe.errors import InputError, reason


@dataclass(frozen=True)
class NotNumeric:
    """The interpretation of an RNTuple field that is no (array of) numbers: a string, a
    record, or (`nested`) arrays of arrays of variable length."""

    nested: bool = False


def interpretation_of(form: Any) -> Any:
    """An uproot TTree-like interpretation of an RNTuple field's awkward form: `AsDtype` for
    numbers and fixed-size arrays (std::array), `AsJagged` for std::vector of numbers,
    `NotNumeric` otherwise."""
    shape: list[int] = []
    while isinstance(form, ak.forms.RegularForm):
        shape.append(form.size)
        form = form.content
    if isinstance(form, ak.forms.NumpyForm) and not form.parameters:
        return AsDtype(np.dtype((form.primitive, (*shape, *form.inner_shape))))
    if not shape and _is_list(form) and _depth(form.content) == 0:
        return AsJagged(AsDtype(np.dtype(form.content.primitive)))
    return NotNumeric(nested=_depth(form) is not None)


def _is_list(form: Any) -> bool:
    """A variable-length list (std::vector, not a string)."""
    lists = ak.forms.ListOffsetForm | ak.forms.ListForm
    return isinstance(form, lists) and form.parameters.get("__array__") is None


def _depth(form: Any) -> int | None:
    """Levels of lists or fixed-size arrays above plain numbers; None if no numbers below."""
    levels = 0
    while _is_list(form) or isinstance(form, ak.forms.RegularForm):
        form, levels = form.content, levels + 1
    plain = isinstance(form, ak.forms.NumpyForm) and not form.parameters and not form.inner_shape
    return levels if plain else None


class NtupleField:
    """A top-level field of an RNTuple, with the part of uproot's TBranch interface that
    ccframe uses (`name`, `typename`, `interpretation`, `array`)."""

    def __init__(self, field: Any, ntuple: Ntuple) -> None:
        self._field, self._ntuple = field, ntuple
        self.name: str = field.name
        self.typename: str = field.typename

    @property
    def interpretation(self) -> Any:
        form, _ = self._field.to_akform()
        return interpretation_of(form.contents[0])

    def array(self, **options: Any) -> Any:
        return self._field.array(**options)

    def n_values(self) -> int:
        """Numbers stored in the field (over all entries), from the page list without reading
        a page; 0 when unknown."""
        try:
            pages = self._ntuple.pages(self.name, leaves=True)
            return sum(abs(page.num_elements) for _, page in pages)
        except Exception:  # an estimate only: a corrupt page list fails later, with its field
            return 0


class Ntuple:
    """An RNTuple with the part of uproot's TTree interface that the reader uses (`name`,
    `num_entries`, `keys`, `branches`, `in`, `[name]`, `iterate`), so that the rest of the
    reader treats both alike. Its header and footer are read (and checked) here; `iterate`
    checks the page checksums (which uproot does not) of what it reads."""

    def __init__(self, ntuple: Any, path: str) -> None:
        self._ntuple, self.path = ntuple, path
        self.name: str = ntuple.name
        self._keys: list[str] = list(ntuple.keys(recursive=False))
        self.num_entries = int(ntuple.num_entries)

    def keys(self) -> list[str]:
        return list(self._keys)

    @property
    def branches(self) -> list[NtupleField]:
        """The top-level fields."""
        return [self[name] for name in self._keys]

    def __contains__(self, name: object) -> bool:
        return name in self._keys

    def __getitem__(self, name: str) -> NtupleField:
        return NtupleField(self._ntuple[name], self)

    def pages(self, name: str, leaves: bool = False, cluster: int | None = None) -> list[Any]:
        """(column index, page description) of the pages of field `name` and its subfields
        (`leaves`: only the subfields that hold the values), in one cluster or all."""
        records = self._ntuple.field_records
        ids = {self._ntuple[name].field_id}
        while more := {i for i, r in enumerate(records) if r.parent_field_id in ids} - ids:
            ids |= more  # the field and its subfields (a top-level field is its own parent)
        if leaves:
            ids -= {records[i].parent_field_id for i in ids if records[i].parent_field_id != i}
        columns = [c.idx for c in self._ntuple.column_records if c.field_id in ids]
        links = self._ntuple.page_link_list
        clusters = links if cluster is None else [links[cluster]]
        return [(col, page) for c in clusters for col in columns for page in c[col].pages]

    def iterate(self, names: list[str], **options: Any) -> Iterator[ak.Array]:
        """uproot's `iterate`, each chunk yielded once the checksums of its pages match."""
        summaries = self._ntuple.cluster_summaries
        cluster, start = 0, 0
        for chunk in self._ntuple.iterate(names, **options):
            start += len(chunk)
            while cluster < len(summaries) and summaries[cluster].num_first_entry < start:
                self._verify(names, cluster, summaries[cluster])
                cluster += 1
            yield chunk

    def _verify(self, names: list[str], cluster: int, summary: Any) -> None:
        """Compare the pages of `names` in one cluster with their stored xxhash3 checksums."""
        source = self._ntuple.file.source
        for name in names:
            for _, page in self.pages(name, cluster=cluster):
                where = page.locator
                if not page.has_checksum or where.type != 0:  # 0: a page in this file
                    continue
                raw = source.chunk(where.offset, where.offset + where.num_bytes + 8).raw_data
                data = raw.tobytes()
                stored = int.from_bytes(data[-8:], "little")
                if xxhash.xxh3_64_intdigest(data[:-8]) != stored:
                    first = summary.num_first_entry
                    entries = f"{first}..{first + summary.num_entries - 1}"
                    problem = ValueError("a page does not match its checksum")
                    raise InputError(unreadable(self.path, self, name, problem, entries))


def kind_of(tree: Any) -> str:
    """What `tree` is, for messages: "tree" (a TTree) or "RNTuple"."""
    return "RNTuple" if isinstance(tree, Ntuple) else "tree"


def part_of(tree_or_branch: Any) -> str:
    """What the parts of a tree are, for messages: "branch" or "field" (of an RNTuple)."""
    return "field" if isinstance(tree_or_branch, Ntuple | NtupleField) else "branch"


def unreadable(path: str, tree: Any, branch: str, exc: BaseException, entries: str = "") -> str:
    """The message for a branch whose baskets cannot be read (decompression, checksum, ...)."""
    where = f" (entries {entries})" if entries else ""
    return (
        f"{path}: {kind_of(tree)} '{tree.name}', {part_of(tree)} '{branch}'{where}: corrupt or "
        f"unreadable data ({reason(exc)})"
    )
