"""Typed options: a dataclass declares each key with its type and default; dicts from recipes and ``--set``
become instances of it, or fail with one line that names the bad key or value.

Used for evaluation protocols (one dataclass per evaluator) and pretraining recipe sections, so a typo is an
error rather than a silently ignored key::

    @dataclass(frozen=True)
    class Protocol:
        RENAMED: ClassVar[dict[str, str]] = {"clip_grad_norm": "grad_clip"}
        iterations: int = 150
        grad_clip: float | None = 10.0

    options_from(Protocol, {"iteration": 20}, "eval/smoke/cls.yaml")
    # RecipeError: unknown key 'iteration' in eval/smoke/cls.yaml (did you mean 'iterations'?); valid keys: …
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from ssl_bench.errors import RecipeError

T = TypeVar("T")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or an empty string when nothing is close."""
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name_error(kind: str, name: str, choices: Iterable[str], where: str = "") -> RecipeError:
    """``unknown task 'segg' (did you mean 'seg'?); choose from: cls, det, seg`` as a RecipeError."""
    choices = sorted(str(c) for c in choices)
    place = f" in {where}" if where else ""
    return RecipeError(
        f"unknown {kind} '{name}'{place}{did_you_mean(name, choices)}; choose from: {', '.join(choices)}"
    )


def option_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    return getattr(tp, "__name__", str(tp))


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` checked against ``tp`` (ints are accepted for floats); raises _Mismatch."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise _Mismatch
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        args = [a for a in get_args(tp) if a is not Ellipsis]
        items = [_coerce(v, args[0]) for v in value] if args else list(value)
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    raise _Mismatch


def check_value(key: str, value: Any, tp: Any, where: str) -> Any:
    try:
        return _coerce(value, tp)
    except _Mismatch:
        raise RecipeError(
            f"{key}={value!r} in {where} is not valid: expected {_type_name(tp)}"
        ) from None


def options_from(cls: type[T], values: Mapping[str, Any] | None, where: str) -> T:
    """An instance of the dataclass ``cls`` from ``values``; missing keys take the declared defaults.

    Args:
        cls: a dataclass; ``RENAMED`` (a class attribute ``{old: new}``) names keys that were renamed.
        values: keys and values from a recipe, merged with ``--set`` overrides.
        where: the recipe path or flag the values came from, for the message.

    Raises:
        RecipeError: an unknown or renamed key, a value of the wrong type, a required key missing.
    """
    values = dict(values or {})
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    renamed: dict[str, str] = getattr(cls, "RENAMED", {})
    for key in values:
        if key in fields:
            continue
        if key in renamed:
            raise RecipeError(f"key '{key}' in {where} was renamed to '{renamed[key]}'")
        raise RecipeError(
            f"unknown key '{key}' in {where}{did_you_mean(key, fields)}; valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        if name in values:
            kwargs[name] = check_value(name, values[name], hints[name], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise RecipeError(f"missing key '{name}' in {where}")
    return cls(**kwargs)


def options_dict(options: Any) -> dict[str, Any]:
    """A dataclass of options as plain values (tuples as lists), for records and ``config.yaml``."""
    out = dataclasses.asdict(options)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


__all__ = [
    "check_value",
    "did_you_mean",
    "option_names",
    "options_dict",
    "options_from",
    "unknown_name_error",
]
