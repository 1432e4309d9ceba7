"""Tools: functions the model may call, written as plain typed Python functions.

A plugin author writes::

    @tool
    def set_timer(minutes: int, label: str = "timer") -> str:
        \"\"\"Start a kitchen timer.

        Args:
            minutes: How long the timer runs, in minutes.
            label: What to call the timer when it rings.
        \"\"\"

and `tool` turns it into a `Tool`: a name, the description the model reads (the docstring's first
paragraph), a JSON schema of the arguments derived from the type hints and the docstring's
``Args:`` (or Sphinx ``:param:``) entries, and the function. Everything is worked out once, at
decoration time, so a mistake in a plugin fails when it is imported, with a message naming the
function and parameter, rather than when the model first calls it in someone's kitchen.

The tools actor calls `Tool.run` on a worker thread with the model's JSON arguments; `run` never
raises, because a model waiting for a ``function_call_output`` that never comes leaves the user
in silence. Every failure becomes ``{"error": "..."}`` so the model can say what went wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import enum
import inspect
import json
import logging
import re
import threading
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from rtd.schema import did_you_mean, type_name

logger = logging.getLogger(__name__)

#: Tool names the Realtime API accepts; they are also ``[tools.NAME]`` keys in the config.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: The parameter through which a tool receives its validated ``[tools.NAME]`` settings.
SETTINGS_PARAMETER = "settings"
_SUPPORTED = ("str, int, float, bool, Literal[...], an Enum subclass, list[X], or X | None "
              "of those")

Converter = Callable[[Any], Any]
Checker = Callable[[Any], Iterable[str]]
"""A tool's self-check: its validated settings in, ``"key: what is wrong"`` lines out."""


# -- the Tool ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A function the model can call, with the JSON schema the model fills in.

    `tool` builds these from typed functions. Built directly, ``function`` is called as
    ``function(**arguments)`` (plus ``settings=`` when ``takes_settings``) and ``parameters`` is
    whatever hand-written schema describes those arguments.
    """

    name: str
    #: What the model reads to decide when to call the tool.
    description: str
    #: JSON schema of the arguments object, as sent in `session.update`.
    parameters: Mapping[str, Any]
    #: The user's function; its result is a string or anything JSON-serialisable.
    function: Callable[..., Any]
    #: Dataclass validated from the tool's ``[tools.NAME]`` table, or None.
    settings: type | None = None
    #: Whether ``function`` takes a ``settings`` keyword argument.
    takes_settings: bool = False
    #: Default seconds a call may take; the config's ``tools.NAME.timeout`` overrides it.
    timeout: float | None = None
    #: Argument name -> function turning the validated JSON value into what ``function`` takes
    #: (Enum members, ints for integral floats); filled in by `tool`, empty for hand-built tools.
    converters: Mapping[str, Converter] = field(default_factory=dict, repr=False, compare=False,
                                               kw_only=True)
    #: What `check` runs (``@tool(check=)``): problems of the settings that only this machine
    #: can show (a time zone it lacks, a path it cannot write), for `rtd check`.
    checker: Checker | None = field(default=None, repr=False, compare=False, kw_only=True)

    def schema(self) -> dict[str, Any]:
        """The tool as the `tools` entry of a GA `session.update`.

        A deep copy, so whoever assembles the session update cannot change the tool's schema.
        """
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": copy.deepcopy(dict(self.parameters))}

    def check(self, settings: Any = None) -> list[str]:
        """Problems with ``settings`` on this machine, as ``"key: what is wrong"`` lines.

        Run by `rtd check` and before `rtd run` starts, so that a mistake the table's types
        cannot show is reported with the other configuration problems instead of at the
        model's first call. None means the settings class's defaults; no checker, no problems.
        """
        if self.checker is None:
            return []
        if settings is None and self.settings is not None:
            settings = self.settings()
        found = self.checker(settings)
        return [found] if isinstance(found, str) else list(found or ())

    def validate(self, arguments: Any) -> list[str]:
        """Every problem with the model's (JSON-decoded) arguments; empty when they are valid.

        Checks the subset of JSON schema that `tool` emits (``type`` including lists of types,
        ``enum``, ``items``, ``properties``, ``required``, ``additionalProperties``) and ignores
        other keywords of hand-written schemas. Integral floats such as ``3.0`` count as
        integers, because some models write them; booleans never count as numbers.
        """
        if not isinstance(arguments, dict):
            return [f"arguments must be a JSON object, got {_describe(arguments)}"]
        problems: list[str] = []
        _check_object(arguments, self.parameters, "", problems)
        return problems

    def invoke(self, arguments: Mapping[str, Any], settings: Any = None) -> Any:
        """Call the function with validated arguments and return its result.

        Enum-typed arguments arrive as members, and ``settings`` is passed when the function
        takes it (None means the settings class's defaults). A coroutine result is run to
        completion on a fresh event loop: this runs on the tools actor's worker thread, which
        has no loop of its own, so it must not be called from inside a running loop.
        """
        kwargs = {key: self.converters[key](value) if key in self.converters else value
                  for key, value in arguments.items()}
        if self.takes_settings:
            if settings is None and self.settings is not None:
                settings = self.settings()
            kwargs[SETTINGS_PARAMETER] = settings
        result = self.function(**kwargs)
        if inspect.isawaitable(result):
            result = _run_awaitable(result, current_call())
        return result

    def run(self, settings: Any, arguments_json: str, call: CallContext | None = None) -> str:
        """Run with the model's JSON arguments and return the `function_call_output` string.

        Never raises: invalid JSON, invalid arguments, an exception in the tool and a result
        that is not JSON all become ``{"error": "..."}`` describing it, so the model can tell
        the user what went wrong instead of waiting forever for an answer that never comes.
        A string result is returned as is; anything else as JSON. ``call`` is what the tool
        sees as `current_call()`; cancelling it cancels a coroutine tool and kills processes
        started with `run_process`.
        """
        try:
            arguments = json.loads(arguments_json) if (arguments_json or "").strip() else {}
        except (json.JSONDecodeError, TypeError) as exc:
            return _error(f"arguments are not valid JSON: {exc}")
        problems = self.validate(arguments)
        if problems:
            logger.info("tool %s: invalid arguments from the model: %s", self.name,
                        "; ".join(problems))
            return _error("invalid arguments: " + "; ".join(problems))
        _local.call = call
        try:
            result = self.invoke(arguments, settings)
        except Cancelled:
            return _error("the call was cancelled: rtd is stopping")
        except Exception as exc:  # a tool's bug must not take the daemon down
            logger.warning("tool %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return _error(f"{type(exc).__name__}: {exc}")
        finally:
            _local.call = None
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result, ensure_ascii=False, default=_to_json)
        except (TypeError, ValueError, RecursionError) as exc:
            logger.warning("tool %s returned something not JSON-serialisable: %s", self.name, exc)
            return _error(f"tool returned a value that is not JSON: {exc}")


async def _await(awaitable: Awaitable[Any]) -> Any:
    """Await anything awaitable; `asyncio.run` itself accepts only coroutines."""
    return await awaitable


# -- cancelling a running call ----------------------------------------------------------------


class Cancelled(Exception):
    """The call was cancelled (rtd is stopping); raised out of `run_process` and coroutines."""


class CallContext:
    """One running tool call, which rtd may cancel (at shutdown) while the tool still runs.

    Python cannot stop a thread, so cancelling is cooperative: it runs the callbacks tools
    registered with `on_cancel` (`run_process` kills its process group; a coroutine tool's
    task is cancelled) and sets `cancelled`, which a tool that loops can check.
    """

    def __init__(self, call_id: str = "") -> None:
        self.call_id = call_id
        self.cancelled = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] = []

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the call is cancelled (at once if it already was)."""
        with self._lock:
            if not self.cancelled.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def cancel(self) -> None:
        with self._lock:
            if self.cancelled.is_set():
                return
            self.cancelled.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # one tool's broken callback must not stop the others
                logger.warning("cancelling tool call %s: %s: %s", self.call_id,
                               type(exc).__name__, exc)


_local = threading.local()


def current_call() -> CallContext | None:
    """The call this thread is running for the tools actor, or None (e.g. in a test)."""
    return getattr(_local, "call", None)


def _run_awaitable(awaitable: Awaitable[Any], call: CallContext | None) -> Any:
    """Run a coroutine tool on a fresh loop, cancelling its task when the call is cancelled."""
    import asyncio  # only tools that are coroutines pay for asyncio

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(_await(awaitable))
        if call is not None:
            call.on_cancel(lambda: loop.call_soon_threadsafe(task.cancel))
        try:
            return loop.run_until_complete(task)
        except asyncio.CancelledError:
            raise Cancelled() from None
    finally:
        loop.close()


def run_process(argv: list[str], *, timeout: float | None = None,
                **options: Any) -> Any:
    """`subprocess.run` for tools: the command and everything it starts end with the call.

    The process gets a session (process group) of its own, and the whole group is killed when
    the call is cancelled (rtd stopping) or ``timeout`` seconds pass; plain `subprocess.run`
    kills only the direct child on a timeout and nothing at all at shutdown, so a ``sh -c``
    or a script's children would outlive rtd. Raises `subprocess.TimeoutExpired` on a
    timeout and `Cancelled` when cancelled; other keywords are `subprocess.Popen`'s.
    """
    import contextlib
    import os
    import signal
    import subprocess

    capture = options.pop("capture_output", False)
    if capture:
        options.setdefault("stdout", subprocess.PIPE)
        options.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(argv, start_new_session=True, **options)
    reaped = threading.Event()  # after that, the group id may belong to someone else

    def kill_group() -> None:
        if not reaped.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
                os.killpg(proc.pid, signal.SIGKILL)

    call = current_call()
    if call is not None:
        call.on_cancel(kill_group)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group()
        proc.communicate()
        raise
    finally:
        if proc.poll() is None:  # an exception in communicate (e.g. interrupted)
            kill_group()
            proc.wait()
        reaped.set()
    if call is not None and call.cancelled.is_set():
        raise Cancelled()
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def _error(message: str) -> str:
    return json.dumps({"error": message}, ensure_ascii=False)


def _to_json(value: Any) -> Any:
    """The JSON form of values tools commonly return that `json` does not know."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# -- validation -------------------------------------------------------------------------------

_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "a boolean", "null": "null", "array": "an array", "object": "an object"}


def _is_type(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or \
            (isinstance(value, float) and value.is_integer())
    if json_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "null":
        return value is None
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, dict)
    return True  # a type this validator does not know: leave it to the tool


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``, ``1.0`` is ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _show(value: Any) -> str:
    """A value as it appears in a problem: short, strings quoted, JSON's null and booleans."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return repr(value)


def _describe(value: Any) -> str:
    """What the model sent, for ``expected X, got Y``: "a string 'ten'", "an array"."""
    kind = type_name(value, json=True)
    if isinstance(value, (bool, str)):
        return f"{kind} {_show(value)}"
    if isinstance(value, (int, float)):
        return f"{kind} {value!r}"
    return kind


def _check(value: Any, schema: Mapping[str, Any], where: str, problems: list[str]) -> None:
    """Append the problems of ``value`` against ``schema`` to ``problems``."""
    wanted = schema.get("type")
    if wanted is not None:
        allowed = [wanted] if isinstance(wanted, str) else list(wanted)
        if not any(_is_type(value, t) for t in allowed):
            names = [_TYPE_NAMES.get(t, str(t)) for t in allowed]
            expected = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
            problems.append(f"{where}: expected {expected}, got {_describe(value)}")
            return
    choices = schema.get("enum")
    if choices is not None and not any(_json_equal(value, c) for c in choices):
        problems.append(f"{where}: expected one of {', '.join(_show(c) for c in choices)}, "
                        f"got {_show(value)}")
        return
    items = schema.get("items")
    if isinstance(value, list) and isinstance(items, Mapping):
        for i, item in enumerate(value):
            _check(item, items, f"{where}[{i}]", problems)
    if isinstance(value, dict) and any(k in schema for k in ("properties", "required",
                                                             "additionalProperties")):
        _check_object(value, schema, where, problems)


def _check_object(value: dict[str, Any], schema: Mapping[str, Any], where: str,
                  problems: list[str]) -> None:
    """Check an object's keys; ``where`` is empty for the arguments object itself."""
    properties: Mapping[str, Any] = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        path = f"{where}.{key}" if where else key
        if key in properties:
            _check(item, properties[key], path, problems)
        elif extra is False:
            hint = did_you_mean(key, properties)
            what = f"{where}: unknown key" if where else "unknown argument"
            problems.append(f"{what} {key!r}{hint}")
        elif isinstance(extra, Mapping):
            _check(item, extra, path, problems)
    for key in schema.get("required") or ():
        if key not in value:
            what = f"{where}: missing required key" if where else "missing required argument"
            problems.append(f"{what} {key!r}")


# -- docstrings -------------------------------------------------------------------------------

_ARGS_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters)\s*:$")
_ANY_SECTION = re.compile(r"^[A-Z][A-Za-z ]*:$")
_GOOGLE_ENTRY = re.compile(r"^\**(\w+)\s*(?:\([^)]*\))?\s*:(.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*?\s)?\**(\w+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _normalise(text: str) -> str:
    return " ".join(text.split())


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """The first paragraph and the per-parameter descriptions of a docstring.

    Reads Google style (an ``Args:`` section of ``name: text`` or ``name (type): text`` entries,
    continued on more deeply indented lines) and Sphinx style (``:param name: text`` or
    ``:param type name: text``). Whitespace is normalised, since the model reads prose, not
    layout. The first paragraph ends at a blank line or where a section begins.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or _ANY_SECTION.match(stripped) or stripped.startswith(":"):
            break
        summary.append(stripped)
    params: dict[str, list[str]] = {}
    i = 0
    while i < len(lines):
        line, stripped = lines[i], lines[i].strip()
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            text = params.setdefault(sphinx.group(1), [sphinx.group(2)])
            base = _indent(line)
            i += 1
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > base) \
                    and not lines[i].strip().startswith(":"):
                text.append(lines[i])
                i += 1
            continue
        if _ARGS_SECTION.match(stripped):
            header = _indent(line)
            entry_indent: int | None = None
            current: list[str] | None = None
            i += 1
            while i < len(lines):
                body = lines[i]
                if body.strip():
                    if _indent(body) <= header:
                        break
                    if entry_indent is None:
                        entry_indent = _indent(body)
                    entry = _GOOGLE_ENTRY.match(body.strip())
                    if _indent(body) <= entry_indent and entry:
                        current = params.setdefault(entry.group(1), [entry.group(2)])
                    elif current is not None:
                        current.append(body)
                i += 1
            continue
        i += 1
    return _normalise(" ".join(summary)), {k: _normalise(" ".join(v)) for k, v in params.items()}


# -- from type hints to JSON schema -----------------------------------------------------------


class _Unsupported(Exception):
    """A type hint (or a part of one) that has no JSON schema here; the message says why."""


def _json_type(value: Any) -> str:
    """The JSON type of a Literal value or Enum member value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    raise _Unsupported(f"{value!r} is not a string, number, boolean or None")


def _choices_schema(values: list[Any]) -> dict[str, Any]:
    kinds = list(dict.fromkeys(_json_type(v) for v in values))
    return {"type": kinds[0] if len(kinds) == 1 else kinds, "enum": values}


def _pick(pairs: list[tuple[Any, Any]]) -> Converter:
    """A converter mapping a validated JSON value to the choice it equals."""

    def convert(value: Any) -> Any:
        for json_value, target in pairs:
            if _json_equal(value, json_value):
                return target
        return value

    return convert


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema also accepting null: ``"type": [X, "null"]`` (and null in any enum)."""
    schema = dict(schema)
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if "null" not in kinds:
        schema["type"] = [*kinds, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _to_int(value: Any) -> Any:
    return int(value) if isinstance(value, float) else value


def _to_float(value: Any) -> Any:
    return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


_PRIMITIVES: dict[Any, tuple[str, Converter | None]] = {
    str: ("string", None), int: ("integer", _to_int), float: ("number", _to_float),
    bool: ("boolean", None),
}


def _schema_for(hint: Any) -> tuple[dict[str, Any], Converter | None]:
    """The JSON schema of a type hint, and the converter from JSON to it (None: as is)."""
    if isinstance(hint, type) and issubclass(hint, enum.Enum):  # before str: str-mixin enums
        members = list(hint)
        if not members:
            raise _Unsupported(f"the Enum {hint.__name__} has no members")
        values = [m.value for m in members]
        return _choices_schema(values), _pick(list(zip(values, members, strict=True)))
    if isinstance(hint, type) and hint in _PRIMITIVES:
        kind, convert = _PRIMITIVES[hint]
        return {"type": kind}, convert
    origin = typing.get_origin(hint)
    if origin is Literal:
        values = list(typing.get_args(hint))
        return _choices_schema(values), _pick([(v, v) for v in values])
    if origin is list:
        args = typing.get_args(hint)
        if not args:
            raise _Unsupported("list needs an item type, e.g. list[str]")
        items, convert_item = _schema_for(args[0])
        if convert_item is None:
            return {"type": "array", "items": items}, None
        return {"type": "array", "items": items}, lambda v: [convert_item(x) for x in v]
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise _Unsupported("unions other than X | None are not supported")
        inner, convert_inner = _schema_for(args[0])
        if convert_inner is None:
            return _nullable(inner), None
        return _nullable(inner), lambda v: None if v is None else convert_inner(v)
    if hint is list:
        raise _Unsupported("list needs an item type, e.g. list[str]")
    raise _Unsupported(f"{inspect.formatannotation(hint)} is not supported")


# -- the decorator ----------------------------------------------------------------------------


def _build(function: Callable[..., Any], name: str | None, description: str | None,
           settings: type | None, timeout: float | None, check: Checker | None) -> Tool:
    if not inspect.isfunction(function) and not inspect.ismethod(function):
        raise TypeError(f"@tool expects a function, got {function!r}")
    where = f"@tool {function.__qualname__}"
    name = function.__name__ if name is None else name
    if not _NAME.match(name):
        raise ValueError(f"{where}: tool name {name!r} must be 1 to 64 letters, digits, '_' or "
                         "'-' (the Realtime API's rule, and a [tools.NAME] key)")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(f"{where}: timeout must be a positive number of seconds, got "
                         f"{timeout!r}")
    if settings is not None and not (isinstance(settings, type)
                                     and dataclasses.is_dataclass(settings)):
        raise TypeError(f"{where}: settings must be a dataclass (validated from "
                        f"[tools.{name}]), got {settings!r}")
    if check is not None and not callable(check):
        raise TypeError(f"{where}: check must be a function taking the settings and returning "
                        f"'key: message' strings, got {check!r}")
    summary, documented = parse_docstring(inspect.getdoc(function))
    if description is None:
        description = summary
        if not description:
            raise TypeError(f"{where}: no docstring; write one (its first paragraph is what the "
                            "model reads to decide when to call the tool) or pass description=")
    else:
        description = description.strip()
        if not description:
            raise TypeError(f"{where}: description must not be empty")
    try:
        hints = typing.get_type_hints(function)
    except Exception as exc:  # NameError for undefined names, TypeError for bad annotations
        raise TypeError(f"{where}: cannot resolve the type hints: {exc}") from exc

    properties: dict[str, Any] = {}
    required: list[str] = []
    converters: dict[str, Converter] = {}
    takes_settings = False
    for parameter in inspect.signature(function).parameters.values():
        pname = parameter.name
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{where}: *args and **kwargs are not supported (parameter "
                            f"{pname!r}); the model passes named arguments only")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"{where}: parameter {pname!r} is positional-only; the model passes "
                            "arguments by name")
        if pname == SETTINGS_PARAMETER:
            if settings is None:
                raise TypeError(f"{where}: parameter 'settings' is reserved for the tool's "
                                f"[tools.{name}] settings; pass @tool(settings=YourDataclass) or "
                                "rename the parameter")
            takes_settings = True
            continue
        if pname not in hints:
            raise TypeError(f"{where}: parameter {pname!r} has no type hint; annotate it, e.g. "
                            f"{pname}: str")
        try:
            schema, convert = _schema_for(hints[pname])
        except _Unsupported as exc:
            raise TypeError(f"{where}: parameter {pname!r} has unsupported type "
                            f"{inspect.formatannotation(hints[pname])}: {exc}; use "
                            f"{_SUPPORTED}") from None
        if parameter.default is parameter.empty:
            required.append(pname)
        else:
            default = parameter.default
            if default is None:  # `x: int = None` means "may be absent or null"
                schema = _nullable(schema)
            default = _default_json(default)
            problems: list[str] = []
            _check(default, schema, "default", problems)
            if problems:
                raise TypeError(f"{where}: parameter {pname!r} has a default that does not match "
                                f"its type ({problems[0]})")
            schema["default"] = default
        if pname in documented and documented[pname]:
            schema = {**schema, "description": documented[pname]}
        properties[pname] = schema
        if convert is not None:
            converters[pname] = convert
    if settings is not None and not takes_settings:
        raise TypeError(f"{where}: settings={settings.__name__} given but the function has no "
                        "'settings' parameter to receive them")

    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = False
    return Tool(name=name, description=description, parameters=parameters, function=function,
                settings=settings, takes_settings=takes_settings,
                timeout=None if timeout is None else float(timeout), converters=converters,
                checker=check)


def _default_json(value: Any) -> Any:
    """A parameter's default as it goes into the schema."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_default_json(v) for v in value]
    if isinstance(value, list):
        return [_default_json(v) for v in value]
    return value


@typing.overload
def tool(function: Callable[..., Any], /) -> Tool: ...


@typing.overload
def tool(*, name: str | None = None, description: str | None = None,
         settings: type | None = None, timeout: float | None = None,
         check: Checker | None = None) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(function: Callable[..., Any] | None = None, /, *, name: str | None = None,
         description: str | None = None, settings: type | None = None,
         timeout: float | None = None, check: Checker | None = None
         ) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` from a typed function: ``@tool`` or ``@tool(name=..., ...)``.

    ``name`` defaults to the function's name and ``description`` to its docstring's first
    paragraph. ``settings`` is a dataclass validated from the tool's ``[tools.NAME]`` table and
    passed as the function's ``settings`` parameter. ``timeout`` is the default number of
    seconds a call may take. ``check`` takes the validated settings and returns
    ``"key: what is wrong"`` strings for `rtd check` (see `Tool.check`). Raises TypeError
    (ValueError for a bad name or timeout) at decoration time for anything the model could
    not call correctly.
    """
    if function is not None:
        return _build(function, name, description, settings, timeout, check)

    def decorate(function: Callable[..., Any]) -> Tool:
        return _build(function, name, description, settings, timeout, check)

    return decorate


__all__ = ["SETTINGS_PARAMETER", "CallContext", "Cancelled", "Checker", "Tool", "current_call",
           "parse_docstring", "run_process", "tool"]
