"""Reading params.yaml: strict validation against the schema, with one message that lists every problem."""

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


def validate_params(raw: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as err:
        raise ParamsError(f"{source}: invalid parameters\n" + "\n".join(_describe(e) for e in err.errors())) from None


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path} not found (run from the project root or pass --params)")
    return validate_params(yaml.safe_load(path.read_text()), str(path))


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
