"""Load a YAML steering file, apply --set overrides, validate, and report errors by YAML path."""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ccframe.errors import SteeringError, closest
from ccframe.steering.schema import Steering


def load_steering(
    path: str | os.PathLike[str], overrides: list[str] | tuple[str, ...] = ()
) -> Steering:
    """Parse, override and validate a steering file; every problem is a `SteeringError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SteeringError(f"{path}: steering file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SteeringError(f"{path}: cannot read steering file ({exc})") from None
    raw, lines = parse_yaml(text, str(path))
    if raw is None:
        raise SteeringError(f"{path}: steering file is empty")
    if not isinstance(raw, dict):
        raise SteeringError(
            f"{path}: expected a mapping of steering keys, got {type(raw).__name__}"
        )
    for item in overrides:
        apply_override(raw, item)
    return validate(raw, str(path), lines, set_keys=[o.split("=", 1)[0] for o in overrides])


MAX_TEXT = 1_000_000
"""Characters of a steering file (or a --set value) ccframe parses."""
MAX_VALUES = 100_000
"""Keys, items and scalars a steering file may expand to, aliases counted each time they are
used: YAML aliases can make a few hundred bytes expand to billions of values."""
MAX_DEPTH = 50
"""Nesting depth of mappings and lists."""


def parse_yaml(text: str, source: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    """YAML -> (data, {key path: 1-based line}); syntax errors name the line. The size of
    the text, its expansion through aliases and its nesting are bounded."""
    data, node = load_bounded(text, source)
    lines: dict[tuple[str, ...], int] = {}
    try:
        _record_lines(node, (), lines)
    except SteeringError as exc:
        raise SteeringError(f"{source}:{exc}") from None
    if isinstance(data, dict) and isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            # A stage written with no keys (`simulate:` alone, not `simulate: null`) runs
            # with its defaults.
            bare = isinstance(value, yaml.ScalarNode) and value.tag.endswith(":null")
            field = Steering.model_fields.get(str(key.value))
            if bare and value.value == "" and field is not None and field.default is None:
                data[str(key.value)] = {}
    return data, lines


class YAMLSyntaxError(SteeringError):
    """Text that is not YAML, or YAML that the safe loader does not construct (tags)."""


def load_bounded(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    """(data, node graph) of `text`, parsed once; refused (`SteeringError`) when the text,
    its expansion through aliases or its nesting exceeds the bounds above, and
    (`YAMLSyntaxError`) when it is not valid YAML for the safe loader."""
    if len(text) > MAX_TEXT:
        raise SteeringError(
            f"{source}: {len(text)} characters; a steering file holds at most {MAX_TEXT}"
        )
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        expanded_size(node, source)  # before construction expands the aliases
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        problem = _clip(str(exc.problem or exc))
        raise YAMLSyntaxError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:
        raise YAMLSyntaxError(f"{source}: YAML error: {_clip(str(exc))}") from None
    except RecursionError:
        raise SteeringError(
            f"{source}: YAML nested too deeply (at most {MAX_DEPTH} levels)"
        ) from None
    finally:
        loader.dispose()
    return data, node


def expanded_size(node: yaml.Node | None, source: str) -> int:
    """Values `node` expands to, aliases counted at every use (memoised, so linear in the
    size of the text), refused beyond MAX_VALUES values or MAX_DEPTH levels."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth)
    active: set[int] = set()

    def size(n: yaml.Node) -> tuple[int, int]:
        key = id(n)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise SteeringError(f"{source}:{n.start_mark.line + 1}: a YAML alias refers to itself")
        active.add(key)
        total, deepest = 1, 0
        children: list[yaml.Node] = []
        if isinstance(n, yaml.MappingNode):
            children = [item for pair in n.value for item in pair]
        elif isinstance(n, yaml.SequenceNode):
            children = list(n.value)
        for child in children:
            values, depth = size(child)
            total += values
            deepest = max(deepest, depth)
            if total > MAX_VALUES:
                break
        active.discard(key)
        sizes[key] = (total, deepest + 1)
        return sizes[key]

    if node is None:
        return 0
    try:
        total, depth = size(node)
    except RecursionError:
        total, depth = 0, MAX_DEPTH + 1
    if total > MAX_VALUES:
        raise SteeringError(
            f"{source}: expands to more than {MAX_VALUES} values (YAML aliases are expanded at "
            "every use); write the values out or use fewer aliases"
        )
    if depth > MAX_DEPTH:
        raise SteeringError(f"{source}: YAML nested too deeply (at most {MAX_DEPTH} levels)")
    return total


def _record_lines(node: yaml.Node | None, prefix: tuple[str, ...], out: dict) -> None:
    """{key path: line}; a key given twice in one mapping is an error (YAML would keep the
    last one silently)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                dotted = ".".join((*prefix, name))
                raise SteeringError(
                    f"{line}: key '{dotted}' is given twice (first on line {seen[name]}); keep one"
                )
            seen[name] = line
            path = (*prefix, name)
            out[path] = line
            _record_lines(value, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            path = (*prefix, str(i))
            out[path] = value.start_mark.line + 1
            _record_lines(value, path, out)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply `dotted.key=value` (value parsed as YAML) to the raw steering mapping."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise SteeringError(f"--set {_short(item)}: expected dotted.key=value")
    try:
        value = load_bounded(text, f"--set {key.strip()[:60]}")[0] if text.strip() else None
    except YAMLSyntaxError:
        value = text  # not YAML: the text itself
    parts = key.strip().split(".")
    node: Any = raw
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            node = node[_index(part, node, where)]
            continue
        child = node.get(part)
        if child is None:
            if parts[depth + 1].isdigit():
                raise SteeringError(
                    f"--set {key}: {where} is not in the file, so it has no items to index; "
                    f"set the whole list: --set {where}=[...]"
                )
            child = node[part] = {}
        if not isinstance(child, dict | list):
            raise SteeringError(f"--set {key}: {where} is a value, not a section")
        node = child
    last = parts[-1]
    if isinstance(node, list):
        node[_index(last, node, key)] = value
    else:
        node[last] = value


def _index(part: str, seq: list[Any], where: str) -> int:
    if not part.isdigit() or int(part) >= len(seq):
        raise SteeringError(f"--set {where}: expected a list index below {len(seq)}")
    return int(part)


def validate(
    raw: dict[str, Any],
    source: str = "<steering>",
    lines: dict[tuple[str, ...], int] | None = None,
    set_keys: list[str] | None = None,
) -> Steering:
    """Validate a raw mapping into `Steering`, turning pydantic errors into one line."""
    try:
        return Steering.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        paths = [".".join(_data_path(err["loc"], raw)) for err in errors]
        # Of the errors from a union's members, keep the deepest (the one naming the bad item).
        keep = [
            err
            for err, p in zip(errors, paths, strict=True)
            if not any(q != p and q.startswith(p + ".") for q in paths)
        ]
        messages = [_describe(err, raw, source, lines or {}, set_keys or []) for err in keep]
        more = f" (+{len(messages) - 3} more)" if len(messages) > 3 else ""
        raise SteeringError("; ".join(dict.fromkeys(messages[:3])) + more) from None


def _describe(err: Any, raw: Any, source: str, lines: dict, set_keys: list[str]) -> str:
    path = _data_path(err["loc"], raw)
    dotted = ".".join(path)
    if len(dotted) > 120:
        dotted = dotted[:117] + "..."
    where = source
    from_set = [k for k in set_keys if dotted == k or dotted.startswith(k + ".")]
    if from_set:
        where = f"--set {from_set[0]}"
    elif path and tuple(path) in lines:
        where = f"{source}:{lines[tuple(path)]}"
    if err["type"] == "extra_forbidden":
        fields = _fields_at(path[:-1])
        hint = closest(path[-1], fields)
        valid = f"; valid keys here: {', '.join(fields)}" if fields and not hint else ""
        return f"{where}: unknown key '{dotted}'{hint}{valid}"
    if err["type"] == "missing":
        return f"{where}: missing required key '{dotted}'"
    msg = err["msg"].removeprefix("Value error, ")
    if not path:
        return f"{where}: {msg}"
    if isinstance(err.get("input"), dict):  # a check across a whole section
        return f"{where}: {dotted}: {msg}"
    value = _short(err.get("input"))
    return f"{where}: {dotted} = {value}: {msg}"


def _data_path(loc: tuple, raw: Any) -> list[str]:
    """The part of a pydantic error location that indexes into the YAML data (union member
    tags such as `literal['pi']` are dropped)."""
    path: list[str] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and str(part) in node:
            node = node[str(part)]
            path.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(str(part))
        elif isinstance(part, str) and not _is_union_tag(part) and isinstance(node, dict):
            path.append(part)  # a missing or unknown key at this level
            break
    return path


def _is_union_tag(part: str) -> bool:
    return any(ch in part for ch in "[]()") or part in {"str", "int", "float", "bool", "list"}


def _fields_at(path: list[str]) -> list[str]:
    """Field names of the steering section at a YAML path (for typo hints)."""
    model: Any = Steering
    for part in path:
        field = model.model_fields.get(part) if _is_model(model) else None
        if field is None:
            return []
        model = _model_in(field.annotation)
        if model is None:
            return []
    return list(model.model_fields) if _is_model(model) else []


def _is_model(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, BaseModel)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if _is_model(annotation):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if _is_model(arg):
            return arg
    return None


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any, limit: int = 60) -> str:
    """A repr of at most `limit` characters, built without the whole repr of a large
    value."""
    brief = reprlib.Repr()
    brief.maxstring = brief.maxother = limit
    brief.maxlevel = 3
    return _clip(brief.repr(value), limit)


# Keys whose relative paths are read from the working directory (as `ccframe run` reads
# them); a run folder's steering.yaml and a sweep's trials hold them absolute, so that they
# work from any folder (a condor job starts in its trial folder).
CWD_PATHS = ("data.files", "infer.chain", "traditional.thresholds")


def absolute_paths(raw: dict[str, Any]) -> None:
    """Make the relative paths (and globs) of `CWD_PATHS` in raw steering absolute, from
    the working directory."""
    for dotted in CWD_PATHS:
        *sections, key = dotted.split(".")
        node: Any = raw
        for section in sections:
            node = node.get(section) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        value = node.get(key)
        if isinstance(value, str):
            node[key] = os.path.abspath(os.path.expanduser(value))
        elif isinstance(value, list):
            node[key] = [
                os.path.abspath(os.path.expanduser(v)) if isinstance(v, str) else v for v in value
            ]


def with_absolute_paths(steering: Steering) -> Steering:
    """The steering with the paths of `CWD_PATHS` absolute (from the working directory)."""
    raw = steering.model_dump(mode="json")
    absolute_paths(raw)
    return Steering.model_validate(raw)


def dump_steering(steering: Steering) -> str:
    """The resolved steering file (every default written out) as YAML."""
    return yaml.safe_dump(steering.model_dump(mode="json"), sort_keys=False)
