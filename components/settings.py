"""The base of every settings model: each room's config.py, the engine's layout and params.yaml's schema.

Settings are frozen, an unknown key is refused with the allowed ones named (components/params/loading.py), and
true/false is never read as a number: pydantic would quietly take ``steps: true`` for 1.
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and _is_number(annotation):
            raise ValueError("expected a number, not true/false")
        if isinstance(value, dict) and get_origin(annotation) is dict and _is_number(get_args(annotation)[1]):
            keys = [str(k) for k, v in value.items() if isinstance(v, bool)]
            if keys:
                raise ValueError(f"expected numbers, not true/false (at {', '.join(keys)})")
        return value


def flat_dump(settings: BaseModel) -> dict[str, Any]:
    """``{'a': {'b': 1}}`` as ``{'a.b': 1}``: settings as MLflow params."""

    def walk(tree: dict, prefix: str) -> dict[str, Any]:
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat |= walk(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        return flat

    return walk(settings.model_dump(), "")


def _is_number(annotation: Any) -> bool:
    kinds = {annotation, *get_args(annotation)}
    return bool(kinds & {int, float}) and bool not in kinds
