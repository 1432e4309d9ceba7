"""Settings schemas: `setting()`, table validation, type names and "did you mean".

The bottom layer, shared by rtd's own configuration, plugin components, tools and the emulator,
so every message about a wrong value reads the same way. It imports nothing of rtd: a plugin
that declares its settings pays for this module and the standard library only.

Problems are collected as ``section.key: what is wrong (expected X, got Y)`` so a Pi owner fixes
them in one edit instead of one restart per typo (the way Mopidy reports config errors).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import field
from typing import Any

MASK = "********"
"""What a secret value shows as in `rtd config`, errors and logs."""


def setting(default: Any, help: str, *, choices: tuple[Any, ...] | None = None,
            min: float | None = None, max: float | None = None, secret: bool = False) -> Any:
    """A schema field: its default, what it means (for docs and errors), the values it may take.

    ``secret`` values are masked in `rtd config` and error messages.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "secret": secret}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def is_secret(f: dataclasses.Field[Any]) -> bool:
    return bool(f.metadata.get("secret"))


def mask(value: Any) -> Any:
    """A secret value as it may be shown: a table keeps its keys, everything else is masked."""
    if isinstance(value, Mapping):
        return {k: MASK for k in value}
    return MASK


# -- words ------------------------------------------------------------------------------------


def closest(word: str, known: Iterable[str]) -> str | None:
    """The known word a typo most likely meant, or None."""
    found = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return found[0] if found else None


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """" (did you mean 'x'?)" to append to a message, or nothing."""
    match = closest(word, known)
    return f" (did you mean '{match}'?)" if match else ""


def type_name(value: Any, *, json: bool = False) -> str:
    """How a value's type reads in a message: "an integer", "a table" ("an object" in JSON)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object" if json else "a table"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


_NAMES = {str: ("a string", "strings"), int: ("an integer", "integers"),
          float: ("a number", "numbers"), bool: ("true or false", "booleans")}


def hint_name(t: Any, plural: bool = False) -> str:
    """How a type hint reads in a message: "an integer", "a table of arrays of strings"."""
    origin = typing.get_origin(t) or t
    args = typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(hint_name(a, plural) for a in args if a is not type(None))
    if origin is list:
        return ("arrays" if plural else "an array") + (
            f" of {hint_name(args[0], True)}" if args else "")
    if origin is dict:
        return ("tables" if plural else "a table") + (
            f" of {hint_name(args[1], True)}" if len(args) == 2 else "")
    return _NAMES.get(origin, (str(t), str(t)))[plural]


# -- validation -------------------------------------------------------------------------------


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a TOML value has the shape of a (possibly nested) type hint."""
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_conforms(v, args[0]) for v in value) \
            if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict) and (len(args) != 2 or all(
            isinstance(k, str) and _conforms(v, args[1]) for k, v in value.items()))
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin)


def check_value(where: str, f: dataclasses.Field[Any], value: Any, hint: Any
                ) -> tuple[Any, str | None]:
    """Return the value coerced to the field's type, or a problem."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if type(None) in typing.get_args(hint) and len(args) == 1:  # Optional[X]: X when given
        hint = args[0]
    want = typing.get_origin(hint) or hint
    if not _conforms(value, hint):
        shown = "" if is_secret(f) or want in (list, dict) else f" {value!r}"
        return None, f"{where}: expected {hint_name(hint)}, got {type_name(value)}{shown}"
    if want is float:
        value = float(value)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        return None, (f"{where}: expected one of {', '.join(map(str, choices))}, got {value!r}"
                      f"{did_you_mean(str(value), [str(c) for c in choices])}")
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return None, f"{where}: expected a value from {lo} to {hi}, got {value!r}"
    return value, None


def unknown_key(where: str, known: Iterable[str]) -> str:
    """'section.key: unknown key (did you mean ...?); known keys: ...'."""
    key = where.rpartition(".")[2]
    names = sorted(known)
    return f"{where}: unknown key{did_you_mean(key, names)}; known keys: {', '.join(names)}"


def validate_table(section: str, schema: type, raw: Any, problems: list[str],
                   extra_keys: tuple[str, ...] = ()) -> Any:
    """Build ``schema`` from a TOML table, appending every problem found to ``problems``.

    Returns the instance built from the valid keys (defaults elsewhere), so one pass reports
    everything and callers that tolerate errors can still look at the rest. ``extra_keys`` are
    accepted and left to the caller (the keys every component table shares).
    """
    if not isinstance(raw, dict):
        problems.append(f"{section}: expected a table, got {type_name(raw)}")
        raw = {}
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in extra_keys:
            continue
        if key not in fields:
            problems.append(unknown_key(f"{section}.{key}", [*fields, *extra_keys]))
            continue
        checked, problem = check_value(f"{section}.{key}", fields[key], value, hints[key])
        if problem:
            problems.append(problem)
        else:
            values[key] = checked
    try:
        return schema(**values)
    except (TypeError, ValueError) as exc:  # a schema's own cross-field check (__post_init__)
        problems.append(f"{section}: {exc}")
        return None


def shown_fields(obj: Any) -> list[tuple[str, Any]]:
    """A settings instance's (name, value) pairs, secret values masked: for `rtd config`."""
    return [(f.name, mask(getattr(obj, f.name)) if is_secret(f) else getattr(obj, f.name))
            for f in dataclasses.fields(obj)]
