"""The base class of every steering section: strict, typed, documented."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A steering-file section: unknown keys are errors, no silent type coercion
    (YAML already gives numbers, booleans and strings their types)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)
