"""What each steering key means: `ccframe validate --print --explain` and the JSON schema.

Every key is documented by the string literal below its field (`Section` turns it into the
field's description); a key with a unit in its name (`_mv`, `_ns`, ...) starts its
description with that unit in brackets, e.g. `[mV] Noise RMS ...`.
"""

from __future__ import annotations

import json
import textwrap
import typing
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ccframe.settings import Section
from ccframe.steering.schema import Steering

UNITS = {
    "_sqrt_ns": "sqrt(ns)",
    "_mv": "mV",
    "_ns": "ns",
    "_ghz": "GHz",
    "_mhz": "MHz",
    "_cm": "cm",
    "_gev": "GeV/c",
    "_mb": "MB",
    "_s": "s",
    "_rms": "rms",
}
"""Key-name endings that state a unit, and the unit its description starts with ([unit]);
the first matching ending counts (`c_sqrt_ns` is in sqrt(ns), not ns). [rms] is a multiple
of the waveform's own noise RMS (docs/algorithms.md, "Conventions")."""

SCHEMA_URL = "http://json-schema.org/draft-07/schema#"
"""The draft the schema declares: pydantic writes only draft-07 keywords (`$defs` is just
where the `$ref`s point), and draft 7 is what editors' YAML language servers support."""
WIDTH = 100
"""Line width of the explained listing."""
COLUMN = 48
"""Largest column of the descriptions in the listing."""
MAX_ITEMS = 12
"""List items shown in the listing; longer lists are shortened (the count is given)."""


def unit_of(key: str) -> str | None:
    """The unit a key's name states (`rms_mv` -> mV), or None."""
    for ending, unit in UNITS.items():
        if key.endswith(ending):
            return unit
    return None


def description(field: FieldInfo) -> str:
    """A field's description on one line (docstrings span lines), or ''."""
    return " ".join((field.description or "").split())


def sections_in(annotation: Any) -> list[type[Section]]:
    """The Section classes an annotation holds (`X`, `X | None`, `dict[str, X]`, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return [annotation]
    found: list[type[Section]] = []
    for arg in typing.get_args(annotation):
        found += [s for s in sections_in(arg) if s not in found]
    return found


def iter_fields(
    model: type[BaseModel] = Steering, prefix: str = ""
) -> Iterator[tuple[str, type[BaseModel], str, FieldInfo]]:
    """(dotted key, owning class, field name, field) of every key reachable from `model`,
    depth first in declaration order; the keys of a mapping of sections (`sweep.parameters`)
    appear as `<name>`."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        yield key, model, name, field
        for section in sections_in(field.annotation):
            is_mapping = typing.get_origin(field.annotation) is dict
            yield from iter_fields(section, f"{key}.<name>." if is_mapping else f"{key}.")


def section_doc(section: type[BaseModel]) -> str:
    """The first paragraph of a section's class docstring, on one line."""
    doc = section.__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def explain(steering: Steering) -> str:
    """Every resolved key as `dotted.key: value  # [unit] description`, section by section
    (a comment line with the section's meaning above each), wrapped at WIDTH columns."""
    lines: list[str] = []
    _explain_model(steering, "", lines)
    return "\n".join(lines) + "\n"


def _explain_model(model: BaseModel, prefix: str, lines: list[str]) -> None:
    """The keys of one section as aligned entries, then its subsections."""
    entries: list[tuple[str, str]] = []
    nested: list[tuple[str, str, BaseModel]] = []
    for name, field in type(model).model_fields.items():
        key, value = f"{prefix}{name}", getattr(model, name)
        text = description(field)
        if isinstance(value, Section):
            nested.append((key, text or section_doc(type(value)), value))
        elif (
            isinstance(value, dict)
            and value
            and all(isinstance(v, Section) for v in value.values())
        ):
            nested += [(f"{key}[{json.dumps(k)}]", text, v) for k, v in value.items()]
        elif value is None and sections_in(field.annotation):
            stage = sections_in(field.annotation)[0]
            entries.append((f"{key}: null", f"(off) {text or section_doc(stage)}"))
        else:
            entries.append((f"{key}: {_shown(value)}", text))
    _aligned(entries, lines)
    for key, text, value in nested:
        lines.append("")
        lines += textwrap.wrap(
            f"{key}: {text}" if text else key,
            WIDTH,
            initial_indent="# ",
            subsequent_indent="#   ",
            break_on_hyphens=False,
        )
        _explain_model(value, f"{key}.", lines)


def _aligned(entries: list[tuple[str, str]], lines: list[str]) -> None:
    """`head  # description` lines, the comments of one section in one column (a head too
    long for it has its comment on the lines below)."""
    column = min(max((len(h) for h, _ in entries), default=0) + 2, COLUMN)
    for head, text in entries:
        if not text:
            lines.append(head)
            continue
        wrapped = textwrap.wrap(text, WIDTH - column - 2, break_on_hyphens=False)
        if len(head) + 2 > column:
            lines.append(head)
        else:
            lines.append(f"{head.ljust(column)}# {wrapped.pop(0)}")
        lines += [f"{' ' * column}# {rest}" for rest in wrapped]


def _shown(value: Any) -> str:
    """A value as YAML flow text (JSON is valid YAML); long lists shortened."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list | tuple) and len(value) > MAX_ITEMS:
        head = ", ".join(_json(v) for v in value[: MAX_ITEMS - 2])
        return f"[{head}, ..., {_json(value[-1])}]  ({len(value)} values)"
    return _json(value)


def _json(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, separators=(", ", ": "), default=str)


def json_schema() -> dict[str, Any]:
    """The steering file's JSON schema (draft 7), every key's description included,
    for editors (YAML language server: `# yaml-language-server: $schema=...`)."""
    schema = Steering.model_json_schema(mode="validation")
    return {"$schema": SCHEMA_URL, **_tidy(schema)}


def _tidy(node: Any) -> Any:
    """The schema with each description's lines joined (paragraphs kept), as editors show
    them in a hover."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items()}
    if isinstance(node.get("description"), str):
        paragraphs = node["description"].split("\n\n")
        out["description"] = "\n\n".join(" ".join(p.split()) for p in paragraphs)
    return out


def json_schema_text() -> str:
    """`json_schema()` as the text of steering/ccframe.schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def undocumented(model: type[BaseModel] = Steering) -> list[str]:
    """Dotted keys without a description (a key holding a section may rely on the section's
    class docstring)."""
    missing = []
    for key, _, _, field in iter_fields(model):
        if description(field):
            continue
        sections = sections_in(field.annotation)
        if sections and all(section_doc(s) for s in sections):
            continue
        missing.append(key)
    return missing


def unit_disagreements(model: type[BaseModel] = Steering) -> list[str]:
    """Keys whose name states a unit that their description does not start with."""
    bad = []
    for key, _, name, field in iter_fields(model):
        unit = unit_of(name)
        if unit is not None and not description(field).startswith(f"[{unit}]"):
            bad.append(f"{key}: expected the description to start with [{unit}]")
    return bad
