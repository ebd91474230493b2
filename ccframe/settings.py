"""The base of every steering section (strict, typed, documented), in a module of its own:
the sections live next to the code they configure and `ccframe.steering` gathers them, so
neither imports the other."""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Characters no steering string may hold: a newline in a value would become a new line in
the HTCondor submit files, DAGs and shell scripts that sweeps render, and in file names."""


class Section(BaseModel):
    """A steering-file section: unknown keys are errors, no silent type coercion
    (YAML already gives numbers, booleans and strings their types), finite numbers only,
    no control characters in strings. Each key is documented by the string literal below
    it (its description, shown by `ccframe validate --explain` and in the JSON schema)."""

    model_config = ConfigDict(
        extra="forbid",
        validate_assignment=True,
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        bad = _control_character(value)
        if bad is not None:
            raise ValueError(
                f"control character {bad!r} (a newline, tab, ...) in a string; "
                "steering strings must be one line of printable text"
            )
        return value


def _control_character(value: Any, depth: int = 0) -> str | None:
    """The first control character in a string, or in the strings (keys included) of a
    list or mapping; None when there is none."""
    if isinstance(value, str):
        found = CONTROL.search(value)
        return found.group() if found else None
    if depth > 64:  # nesting is bounded by the YAML loader; stop anyway
        return None
    if isinstance(value, list | tuple):
        items: Any = value
    elif isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    else:
        return None
    for item in items:
        bad = _control_character(item, depth + 1)
        if bad is not None:
            return bad
    return None


RESERVED = frozenset({"run.json", "steering.yaml", ".ccframe.lock"})
"""Files of a run folder that ccframe keeps for itself."""


def _inside_run_folder(value: str) -> str:
    """A stage's output: a relative path that stays inside the run folder."""
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if not value.strip() or value.startswith(("/", "~")) or PureWindowsPath(value).drive:
        raise ValueError("expected a file name inside the run folder (a relative path)")
    if ".." in parts:
        raise ValueError("'..' would write outside the run folder; give a path inside it")
    if value in RESERVED:
        raise ValueError(f"'{value}' is the run folder's own file; choose another name")
    return value


RunFile = Annotated[str, AfterValidator(_inside_run_folder)]
"""A stage's output file, relative to the run folder and inside it."""
