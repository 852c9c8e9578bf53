"""Reading params.yaml: strict YAML (a duplicated key is an error, not a silent replacement), then validation against
the schema, with one message that names the file and lists every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from components.params.schema import Params


class ParamsError(ValueError):
    """params.yaml does not validate; the message lists every problem."""


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``overlay`` on top of ``base``, recursively for nested mappings."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a params file with a section written twice must not lose the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first[key] + 1})", key_node.start_mark
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


def read_yaml(path: str | Path) -> Any:
    """A YAML file's content; a syntax error or a duplicated key names the file, line and column."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found (run from the project root or pass --params)")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ParamsError(f"{where}: not valid YAML: {err.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None


def validate_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(f"{source}: invalid parameters\n" + "\n".join(_describe(e) for e in err.errors())) from None


def read_params_file(path: str | Path) -> dict[str, Any]:
    """The raw sections of a params file; an empty file is an error (it would silently run the default job)."""
    raw = read_yaml(path)
    if raw is None:
        raise ParamsError(
            f"{path} is empty: it holds the pipeline's parameters (data, layout, model, features, train, ...); restore "
            "it (`git checkout params.yaml`) or apply a preset (`python -m components.params.presets apply NAME`)"
        )
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections (data, layout, ...), got {type(raw).__name__}")
    return raw


def load_params(path: str | Path = "params.yaml") -> Params:
    return validate_params(read_params_file(path), str(path))


def _describe(error: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(error["loc"][:-1]))
        return f"  - {loc}: unknown key (value {value!r}); allowed keys here: {allowed}"
    message = error["msg"].removeprefix("Value error, ")
    if not loc:
        return f"  - {message}"
    return f"  - {loc} = {value!r}: {message}"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Params
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return list(getattr(model, "model_fields", {}))
