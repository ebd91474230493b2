"""Named exceptions. The CLI turns every `CcframeError` into one line and a non-zero exit."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CcframeError(Exception):
    """Base class of every error ccframe reports to a user (no traceback)."""

    exit_code = 2


class SteeringError(CcframeError):
    """A steering file (or a --set override) is invalid."""


class InputError(CcframeError):
    """An input file, tree, branch or waveform cannot be used."""


class OutputError(CcframeError):
    """An output cannot be written, or would overwrite a finished result."""


class ResourceError(CcframeError):
    """A setting would need more memory or disk than the machine has, or the disk filled up."""


class SweepError(CcframeError):
    """A sweep cannot be set up, run or collected."""


class CondorError(SweepError):
    """HTCondor is not available, or refused the sweep's DAG."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean ...?)' hint naming the closest candidates, or ''."""
    if len(name) > 100:  # no name this long is a typo of a valid one
        return ""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def reason(exc: BaseException) -> str:
    """An exception's first line (at most 160 characters), or its type's name, for a
    one-line message."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]
