"""Plain values across the sandbox boundary: arguments go in, return values come out, as JSON text.

Standard library only: the sandbox harness imports this file too (a copy beside it in the run's folder). Decoding
builds nothing but builtin values (None, bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset), so
whatever a sandboxed program sends, the evaluator compares real builtins with real builtins: an object whose ``__eq__``
is always true, or a subclass that lies about its value, cannot cross (docs/evaluation.md, "Trusted verdicts").
"""

from __future__ import annotations

import json
import math

MAX_DEPTH = 64


class Unencodable(TypeError):
    """A value that is not plain data (a function, a class instance, a generator, ...)."""


def encode(value: object, depth: int = 0) -> object:
    """``value`` as JSON-ready data; containers tagged so tuples, sets and odd floats survive the trip."""
    if depth > MAX_DEPTH:
        raise Unencodable(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind in (bool, str):
        return value
    if kind is int:
        return value if abs(value) < 2**53 else {"int": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {"float": repr(value)}
    if kind is list:
        return [encode(v, depth + 1) for v in value]
    if kind is tuple:
        return {"tuple": [encode(v, depth + 1) for v in value]}
    if kind in (set, frozenset):
        return {kind.__name__: [encode(v, depth + 1) for v in value]}
    if kind is dict:
        return {"dict": [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in value.items()]}
    if kind is bytes:
        return {"bytes": value.hex()}
    if kind is complex:
        return {"complex": [repr(value.real), repr(value.imag)]}
    if isinstance(value, bool | int | float | str | list | tuple | dict | set | frozenset | bytes | complex):
        # a subclass: only its plain value crosses, never its methods
        base = next(b for b in (bool, int, float, str, list, tuple, dict, set, frozenset, bytes, complex)
                    if isinstance(value, b))  # fmt: skip
        return encode(base(value), depth)
    raise Unencodable(f"a {kind.__name__} is not plain data")


def decode(data: object, depth: int = 0) -> object:
    """The builtin value ``data`` (from ``encode``, or from anything at all) stands for; ValueError if it is not
    well formed."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH}")
    if data is None or type(data) in (bool, int, float, str):
        return data
    if type(data) is list:
        return [decode(v, depth + 1) for v in data]
    if type(data) is not dict or len(data) != 1:
        raise ValueError("not an encoded value")
    (tag, body), = data.items()  # fmt: skip
    if tag == "int" and type(body) is str:
        return int(body)
    if tag == "float" and body in ("inf", "-inf", "nan"):
        return float(body)
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2:
        return complex(float(body[0]), float(body[1]))
    if type(body) is not list:
        raise ValueError(f"bad {tag!r} value")
    items = [decode(v, depth + 1) for v in body]
    if tag == "tuple":
        return tuple(items)
    if tag in ("set", "frozenset"):
        return (set if tag == "set" else frozenset)(items)
    if tag == "dict" and all(type(pair) is list and len(pair) == 2 for pair in items):
        return {key: value for key, value in items}
    raise ValueError(f"bad {tag!r} value")


def dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> object:
    """JSON text as data; ValueError for anything malformed (too deep, an over-long number, bad syntax)."""
    try:
        return json.loads(text)
    except (RecursionError, json.JSONDecodeError) as err:
        raise ValueError(f"malformed reply: {type(err).__name__}") from None
