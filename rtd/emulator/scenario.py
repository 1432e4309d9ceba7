"""Scenario files: what the emulator "hears" and answers on each user turn.

The emulator has no model. A scenario scripts it, turn by turn, so tests and the demo get the
same conversation every time, and lists the faults to inject into that conversation. The file
format is documented in the package docstring (`rtd.emulator`); this module parses and checks
it, reporting every problem at once as `<path>: turn N: key: what is wrong` (or `fault N`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import string
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from http import HTTPStatus
from pathlib import Path
from typing import Any

from rtd.exceptions import ConfigError
from rtd.schema import closest, type_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

logger = logging.getLogger(__name__)

DEFAULT_REPLY = "I heard you."
"""What the emulator says on a turn the scenario does not script."""

_TOP_KEYS = ("default_reply", "turn", "fault")
_TURN_KEYS = ("transcript", "reply", "call", "arguments", "then", "error", "close",
              "stall_seconds", "drop")
_ERROR_KEYS = ("type", "code", "message")


@dataclass(frozen=True)
class ScriptedError:
    """An `error` event the emulator sends instead of a response (a scripted fault)."""

    type: str = "server_error"
    """`error.type`, e.g. "server_error" or "invalid_request_error"."""
    code: str | None = None
    """`error.code`, e.g. "rate_limit_exceeded"; None sends a null code."""
    message: str = "The server had an error while processing your request."
    """`error.message`, shown to whoever reads the client's log."""


@dataclass(frozen=True)
class Turn:
    """What the emulator does on one user turn (a committed audio buffer or a user text item)."""

    transcript: str | None = None
    """What the emulator pretends to have heard (sent as the input transcription)."""
    reply: str | None = None
    """A plain spoken (or written) reply; None means the scenario's default reply."""
    call: str | None = None
    """Name of a tool the "model" calls instead of replying."""
    arguments: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """Arguments of that call, sent as a JSON string."""
    then: str | None = None
    """Reply after the tool output arrives, formatted with the output's JSON object keys."""
    error: ScriptedError | None = None
    """Fault: send this error event instead of a response."""
    close: int | None = None
    """Fault: close the WebSocket with this code instead of responding."""
    stall_seconds: float = 0.0
    """Fault: wait this long before producing output (seconds)."""
    drop: bool = False
    """Fault: drop the TCP connection abruptly (no close frame) instead of responding."""


UPGRADE = "upgrade"
"""The `at` of a fault that acts on the HTTP upgrade request instead of on a server event."""

SERVER_EVENTS = (
    "session.created", "session.updated",
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed", "input_audio_buffer.cleared",
    "conversation.item.added", "conversation.item.done", "conversation.item.retrieved",
    "conversation.item.deleted", "conversation.item.truncated",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "response.created", "response.output_item.added", "response.output_item.done",
    "response.content_part.added", "response.content_part.done",
    "response.output_audio.delta", "response.output_audio.done",
    "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
    "response.output_text.delta", "response.output_text.done",
    "response.function_call_arguments.delta", "response.function_call_arguments.done",
    "response.done", "rate_limits.updated", "error",
)
"""The server events the emulator sends (GA names), i.e. what a fault can be anchored on."""

FAULT_ACTIONS = ("drop", "reset", "close", "stall_reading", "stall_sending", "send", "replace",
                 "duplicate", "error", "http")
"""What a fault can do (`do = ...`); see the package docstring for each."""

_FAULT_COMMON = ("at", "do", "nth", "turn", "times", "when")
_FAULT_PARAMS: dict[str, tuple[str, ...]] = {
    "drop": (),
    "reset": (),
    "close": ("code", "reason"),
    "stall_reading": ("seconds",),
    "stall_sending": ("seconds",),
    "send": ("text", "json", "binary", "pad_to"),
    "replace": ("set", "unset", "null", "binary", "pad_to"),
    "duplicate": ("copies", "same_event_id"),
    "error": ("error",),
    "http": ("status", "retry_after", "headers", "error"),
}
_FAULT_KEYS = _FAULT_COMMON + tuple(dict.fromkeys(
    key for params in _FAULT_PARAMS.values() for key in params))
_WHEN: dict[str, tuple[str, ...]] = {
    "drop": ("before", "after"), "reset": ("before", "after"), "close": ("before", "after"),
    "stall_reading": ("before", "after"), "stall_sending": ("before", "after"),
    "send": ("before", "after", "instead"), "error": ("before", "after", "instead"),
}
"""Where a fault's action goes relative to its event; absent actions fix it themselves."""
_IMPLIED_WHEN = {"replace": "instead", "duplicate": "after", "http": "before"}
_AT_UPGRADE = ("http", "stall_sending", "drop", "reset")
MAX_PAD_BYTES = 64 * 1024 * 1024
"""The largest frame a fault may pad to (bytes): big enough for any size test, not for a typo."""
MAX_CLOSE_REASON_BYTES = 123  # RFC 6455 5.5: a control frame's payload is at most 125 bytes
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HTTP_STATUSES = frozenset(s.value for s in HTTPStatus if 200 <= s.value <= 599)


@dataclass(frozen=True)
class Fault:
    """A fault injected into otherwise normal traffic: where it fires and what it does.

    The trigger: the `nth` server event of type `at` and every later one (counted per response
    for events a response sends, per connection for the others, per emulator for
    `at = "upgrade"`), only while user turn `turn` is the latest (None: any), at most `times`
    times in all (None: every time). The action is `do` with its parameters; see the package
    docstring for each.
    """

    at: str
    """A server event type (GA name, e.g. "response.done") or "upgrade" (the HTTP request)."""
    do: str
    """One of FAULT_ACTIONS."""
    nth: int = 1
    turn: int | None = None
    times: int | None = 1
    when: str = "after"
    """"before", "after" or "instead" of the event (replace: instead; duplicate: after)."""
    code: int | None = None
    """close: the close code; None sends a close frame without one (seen as 1005)."""
    reason: str = ""
    """close: the close reason (at most 123 bytes of UTF-8)."""
    seconds: float | None = None
    """stall_*: how long (seconds); None until the connection ends."""
    text: str | None = None
    """send: this text as the frame, verbatim (need not be JSON)."""
    json: Any = None
    """send: this value, serialized as JSON, as the frame."""
    binary: bool = False
    """send/replace: send the frame as a binary frame instead of a text frame."""
    pad_to: int | None = None
    """send/replace: pad the frame with spaces (still valid JSON) to this many bytes."""
    set: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """replace: dotted path -> new value (tables merge into the tables already there)."""
    unset: tuple[str, ...] = ()
    """replace: dotted paths to remove."""
    null: tuple[str, ...] = ()
    """replace: dotted paths to set to JSON null (TOML has no null)."""
    copies: int = 1
    """duplicate: how many extra copies of the event follow it."""
    same_event_id: bool = False
    """duplicate: keep the original event_id in the copies (default: fresh ids)."""
    error: ScriptedError | None = None
    """error: the error event's contents; http: the JSON body's error object."""
    status: int | None = None
    """http: the HTTP status answering the upgrade, e.g. 503."""
    retry_after: str | None = None
    """http: the Retry-After header's value (seconds or an HTTP date)."""
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    """http: more response headers, e.g. {"x-ratelimit-reset-requests" = "2s"}."""

    def describe(self) -> str:
        """A short label for log lines, e.g. "drop after response.output_audio.delta #3"."""
        nth = f" #{self.nth}" if self.nth != 1 else ""
        turn = f" on turn {self.turn}" if self.turn is not None else ""
        if self.at == UPGRADE:
            return f"{self.do} at the upgrade{nth}{turn}"
        return f"{self.do} {self.when} {self.at}{nth}{turn}"


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario: the scripted turns, in order, the reply for every other turn, and the
    faults to inject."""

    turns: tuple[Turn, ...] = ()
    default_reply: str = DEFAULT_REPLY
    source: str | None = None
    """The file it came from, for log lines; None when built in code."""
    faults: tuple[Fault, ...] = ()


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario TOML file; raise ConfigError listing every problem found."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError([f"{where}: cannot read the scenario file: {reason}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{where}: not UTF-8 text: {exc}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{where}: not valid TOML: {exc}"]) from exc
    scenario = parse_scenario(data, where)
    logger.debug("loaded scenario %s with %d turn(s)", where, len(scenario.turns))
    return scenario


def parse_scenario(data: Mapping[str, Any], source: str = "<scenario>") -> Scenario:
    """Check an already-decoded scenario table; raise ConfigError listing every problem."""
    problems: list[str] = []
    for key in data:
        if key not in _TOP_KEYS:
            problems.append(f"{source}: {_unknown(key, _TOP_KEYS)}")

    default_reply = data.get("default_reply", DEFAULT_REPLY)
    if not isinstance(default_reply, str):
        problems.append(f"{source}: default_reply: must be a string, "
                        f"not {type_name(default_reply)}")
        default_reply = DEFAULT_REPLY

    raw_turns = data.get("turn", [])
    turns: list[Turn] = []
    if isinstance(raw_turns, Mapping):
        problems.append(f"{source}: turn: must be an array of tables: write [[turn]], not [turn]")
    elif not isinstance(raw_turns, list):
        problems.append(f"{source}: turn: must be an array of tables, not {type_name(raw_turns)}")
    else:
        for number, raw in enumerate(raw_turns, start=1):
            where = f"{source}: turn {number}"
            if not isinstance(raw, Mapping):
                problems.append(f"{where}: must be a table, not {type_name(raw)}")
                continue
            turn, turn_problems = _parse_turn(raw, where)
            problems.extend(turn_problems)
            if turn is not None:
                turns.append(turn)

    raw_faults = data.get("fault", [])
    faults: list[Fault] = []
    if isinstance(raw_faults, Mapping):
        problems.append(f"{source}: fault: must be an array of tables: write [[fault]], "
                        "not [fault]")
    elif not isinstance(raw_faults, list):
        problems.append(f"{source}: fault: must be an array of tables, not {type_name(raw_faults)}")
    else:
        for number, raw in enumerate(raw_faults, start=1):
            where = f"{source}: fault {number}"
            if not isinstance(raw, Mapping):
                problems.append(f"{where}: must be a table, not {type_name(raw)}")
                continue
            fault, fault_problems = _parse_fault(raw, where)
            problems.extend(fault_problems)
            if fault is not None:
                faults.append(fault)

    if problems:
        raise ConfigError(problems)
    return Scenario(turns=tuple(turns), default_reply=default_reply, source=source,
                    faults=tuple(faults))


def parse_faults(items: Iterable[Fault | Mapping[str, Any] | str],
                 source: str = "Emulator(faults=...) item") -> tuple[Fault, ...]:
    """Check faults given in code or on a command line; raise ConfigError listing every problem.

    Each item is a `Fault`, a table with the keys of a `[[fault]]` table, or the inside of such
    a table as TOML text (`'at = "upgrade", do = "http", status = 503'`). Problems are named
    `<source> N: key: what is wrong` (N from 1).
    """
    problems: list[str] = []
    faults: list[Fault] = []
    for number, item in enumerate(items, start=1):
        where = f"{source} {number}"
        raw: Any = item
        if isinstance(item, Fault):
            raw = _fault_table(item)
        elif isinstance(item, str):
            try:
                raw = tomllib.loads(f"fault = {{{item}}}")["fault"]
            except tomllib.TOMLDecodeError as exc:
                problems.append(f"{where}: not a TOML inline table body like "
                                f"'at = \"response.done\", do = \"duplicate\"' ({exc})")
                continue
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: must be a table, not {type_name(raw)}")
            continue
        fault, fault_problems = _parse_fault(raw, where)
        problems.extend(fault_problems)
        if fault is not None:
            faults.append(fault)
    if problems:
        raise ConfigError(problems)
    return tuple(faults)


def _fault_table(fault: Fault) -> dict[str, Any]:
    """The table form of a Fault built in code (its non-default fields), to check it the same
    way as a file's."""
    table: dict[str, Any] = {}
    for spec in fields(Fault):
        value = getattr(fault, spec.name)
        if spec.name in ("at", "do"):
            table[spec.name] = value
            continue
        default = spec.default_factory() if callable(spec.default_factory) else spec.default
        if spec.name == "when" and value == _IMPLIED_WHEN.get(fault.do):
            continue
        if value == default:
            continue
        if spec.name == "times" and value is None:
            value = "always"
        elif isinstance(value, ScriptedError):
            value = {"type": value.type, "message": value.message,
                     **({"code": value.code} if value.code is not None else {})}
        elif isinstance(value, tuple):
            value = list(value)
        table[spec.name] = value
    return table


def _parse_fault(raw: Mapping[str, Any], where: str) -> tuple[Fault | None, list[str]]:
    """Check one [[fault]] table; return the fault (None when unusable) and its problems."""
    problems: list[str] = []
    do = raw.get("do")
    action: str | None = None
    if do is None:
        problems.append(f"{where}: do: missing; say what the fault does "
                        f"({', '.join(FAULT_ACTIONS)})")
    elif not isinstance(do, str):
        problems.append(f"{where}: do: must be a string, not {type_name(do)}")
    elif do not in FAULT_ACTIONS:
        problems.append(f"{where}: do: {_unknown_value(do, FAULT_ACTIONS)}")
    else:
        action = do

    at = raw.get("at")
    if at is None:
        problems.append(f"{where}: at: missing; name the server event the fault acts on "
                        '(e.g. at = "response.done") or at = "upgrade"')
    elif not isinstance(at, str):
        problems.append(f"{where}: at: must be a string, not {type_name(at)}")
        at = None
    elif at != UPGRADE and at not in SERVER_EVENTS:
        problems.append(f"{where}: at: {at!r} is not an event the emulator sends"
                        f"{_hint(at, (UPGRADE, *SERVER_EVENTS))}")
        at = None

    for key in raw:
        if key not in _FAULT_KEYS:
            problems.append(f"{where}: {_unknown(key, _FAULT_KEYS)}")
        elif action is not None and key not in _FAULT_COMMON + _FAULT_PARAMS[action]:
            own = _FAULT_PARAMS[action]
            listing = f"its keys: {', '.join(own)}" if own else "it takes no parameters"
            problems.append(f"{where}: {key}: not used by do = {action!r} ({listing})")

    def count(key: str, default: int | None, low: int = 1, high: int | None = None) -> int | None:
        if key not in raw:
            return default
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: {key}: must be an integer, not {type_name(value)}")
            return default
        if value < low or (high is not None and value > high):
            span = f"{low}..{high}" if high is not None else f"at least {low}"
            problems.append(f"{where}: {key}: must be {span} (got {value})")
            return default
        return value

    nth = count("nth", 1)
    turn = count("turn", None)
    times: int | None = 1
    raw_times = raw.get("times", 1)
    if raw_times == "always":
        times = None
    elif isinstance(raw_times, str):
        problems.append(f"{where}: times: must be a count or \"always\", not {raw_times!r}")
    else:
        times = count("times", 1)

    when = _IMPLIED_WHEN.get(action or "", "after")
    if "when" in raw and action is not None:
        value = raw["when"]
        if action in _IMPLIED_WHEN:
            fixed = {"replace": "it always replaces the event",
                     "duplicate": "the copies always follow the event",
                     "http": "it answers the upgrade"}[action]
            problems.append(f"{where}: when: not used by do = {action!r} ({fixed})")
        elif at == UPGRADE:
            problems.append(f"{where}: when: not used at the upgrade (nothing is sent yet)")
        elif not isinstance(value, str) or value not in _WHEN[action]:
            shown = repr(value) if isinstance(value, str) else type_name(value)
            problems.append(f"{where}: when: must be one of {', '.join(_WHEN[action])} for "
                            f"do = {action!r}, not {shown}")
        else:
            when = value
    if action is not None and at == UPGRADE and action not in _AT_UPGRADE:
        problems.append(f"{where}: do: {action!r} cannot happen at the upgrade (there: "
                        f"{', '.join(_AT_UPGRADE)}); anchor it on an event instead, e.g. "
                        'at = "session.created"')
    if action == "http" and at is not None and at != UPGRADE:
        problems.append(f"{where}: do: 'http' answers the WebSocket upgrade: write "
                        'at = "upgrade"')

    params = _parse_fault_params(raw, action, where, problems)
    if problems or action is None or at is None:
        return None, problems
    fault = Fault(at=at, do=action, nth=nth or 1, turn=turn, times=times, when=when, **params)
    return fault, problems


def _parse_fault_params(raw: Mapping[str, Any], action: str | None, where: str,
                        problems: list[str]) -> dict[str, Any]:
    """Check the parameters of one action; return those present as Fault keyword arguments."""
    out: dict[str, Any] = {}
    if action == "close":
        code = raw.get("code")
        if code is not None:
            if isinstance(code, bool) or not isinstance(code, int):
                problems.append(f"{where}: code: must be a close code (integer), "
                                f"not {type_name(code)}")
            elif not 1000 <= code <= 4999:
                problems.append(f"{where}: code: {code} is not a close code (use 1000-4999; "
                                "codes the RFC keeps off the wire, like 1005, are sent anyway)")
            else:
                out["code"] = code
        reason = raw.get("reason")
        if reason is not None:
            if not isinstance(reason, str):
                problems.append(f"{where}: reason: must be a string, not {type_name(reason)}")
            elif len(reason.encode("utf-8")) > MAX_CLOSE_REASON_BYTES:
                problems.append(f"{where}: reason: at most {MAX_CLOSE_REASON_BYTES} bytes of "
                                "UTF-8 fit in a close frame")
            elif code is None:
                problems.append(f"{where}: reason: needs `code` (a close frame carries a "
                                "reason only after a code)")
            else:
                out["reason"] = reason
    elif action in ("stall_reading", "stall_sending"):
        seconds = raw.get("seconds")
        if seconds is not None:
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
                problems.append(f"{where}: seconds: must be a number of seconds, "
                                f"not {type_name(seconds)}")
            elif not seconds > 0 or not math.isfinite(seconds):
                problems.append(f"{where}: seconds: must be positive (leave it out to stall "
                                "until the connection ends)")
            else:
                out["seconds"] = float(seconds)
    elif action == "send":
        given = [key for key in ("text", "json") if key in raw]
        if len(given) != 1:
            problems.append(f"{where}: {'text' if not given else given[1]}: "
                            + ("send needs the frame: text = \"...\" (verbatim) or "
                               "json = {...} (a value sent as JSON)" if not given else
                               "give text or json, not both"))
        elif given == ["text"]:
            if not isinstance(raw["text"], str):
                problems.append(f"{where}: text: must be a string, not {type_name(raw['text'])}")
            else:
                out["text"] = raw["text"]
        else:
            try:
                json.dumps(raw["json"])
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: json: cannot be sent as JSON ({exc}); dates and "
                                "times must be strings")
            else:
                out["json"] = raw["json"]
    elif action == "replace":
        table = raw.get("set", {})
        if not isinstance(table, Mapping):
            problems.append(f"{where}: set: must be a table of path = value, "
                            f"not {type_name(table)}")
        else:
            for key in table:
                if not _path_ok(key):
                    problems.append(f"{where}: set: {key!r} is not a dotted path like "
                                    '"response.output"')
            try:
                json.dumps(table)
            except (TypeError, ValueError) as exc:
                problems.append(f"{where}: set: cannot be sent as JSON ({exc})")
            else:
                out["set"] = dict(table)
        for key in ("unset", "null"):
            paths = raw.get(key, [])
            if not isinstance(paths, (list, tuple)) or not all(isinstance(p, str) for p in paths):
                problems.append(f"{where}: {key}: must be an array of dotted paths like "
                                '["item_id"]')
            elif bad := [p for p in paths if not _path_ok(p)]:
                problems.append(f"{where}: {key}: {bad[0]!r} is not a dotted path like "
                                '"session.audio"')
            else:
                out[key] = tuple(paths)
        if not any(raw.get(key) for key in ("set", "unset", "null", "binary", "pad_to")):
            problems.append(f"{where}: set: replace needs set, unset, null, binary or pad_to "
                            "(what to change in the event)")
    elif action == "duplicate":
        copies = raw.get("copies", 1)
        if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= 100:
            problems.append(f"{where}: copies: must be an integer 1..100, not {copies!r}")
        else:
            out["copies"] = copies
        same = raw.get("same_event_id", False)
        if not isinstance(same, bool):
            problems.append(f"{where}: same_event_id: must be true or false, not {type_name(same)}")
        else:
            out["same_event_id"] = same
    elif action == "error":
        error = _parse_error(raw.get("error", {}), where, problems)
        if error is not None:
            out["error"] = error
    elif action == "http":
        status = raw.get("status")
        if status is None:
            problems.append(f"{where}: status: missing; the HTTP status answering the upgrade, "
                            "e.g. status = 503")
        elif isinstance(status, bool) or not isinstance(status, int):
            problems.append(f"{where}: status: must be an integer, not {type_name(status)}")
        elif status not in _HTTP_STATUSES:
            problems.append(f"{where}: status: {status} is not an HTTP status that refuses an "
                            "upgrade (use 200-599, e.g. 429 or 503)")
        else:
            out["status"] = status
        retry = raw.get("retry_after")
        if retry is not None:
            if isinstance(retry, bool) or not isinstance(retry, (int, float, str)):
                problems.append(f"{where}: retry_after: must be seconds or an HTTP date, "
                                f"not {type_name(retry)}")
            elif isinstance(retry, str):
                if not retry.strip() or "\n" in retry or "\r" in retry:
                    problems.append(f"{where}: retry_after: must be a header value on one line")
                else:
                    out["retry_after"] = retry.strip()
            elif retry < 0 or not math.isfinite(retry):
                problems.append(f"{where}: retry_after: must not be negative (got {retry})")
            else:
                out["retry_after"] = f"{retry:g}" if isinstance(retry, float) else str(retry)
        headers = raw.get("headers", {})
        if not isinstance(headers, Mapping):
            problems.append(f"{where}: headers: must be a table of name = \"value\", "
                            f"not {type_name(headers)}")
        else:
            for name, value in headers.items():
                if not _HEADER_NAME.match(name):
                    problems.append(f"{where}: headers: {name!r} is not an HTTP header name")
                elif not isinstance(value, str) or "\n" in value or "\r" in value:
                    problems.append(f"{where}: headers.{name}: must be a string on one line")
            out["headers"] = dict(headers)
        error = _parse_error(raw.get("error"), where, problems)
        if error is not None:
            out["error"] = error
    if action in ("send", "replace"):
        binary = raw.get("binary", False)
        if not isinstance(binary, bool):
            problems.append(f"{where}: binary: must be true or false, not {type_name(binary)}")
        else:
            out["binary"] = binary
        pad = raw.get("pad_to")
        if pad is not None:
            if isinstance(pad, bool) or not isinstance(pad, int) or not 1 <= pad <= MAX_PAD_BYTES:
                problems.append(f"{where}: pad_to: must be a size in bytes, 1..{MAX_PAD_BYTES} "
                                f"(e.g. 10485760 for 10 MiB), not {pad!r}")
            else:
                out["pad_to"] = pad
    return out


def _path_ok(path: Any) -> bool:
    return isinstance(path, str) and all(part for part in path.split("."))


def _parse_turn(raw: Mapping[str, Any], where: str) -> tuple[Turn | None, list[str]]:
    """Check one [[turn]] table; return the turn (None when unusable) and its problems."""
    problems: list[str] = []
    for key in raw:
        if key not in _TURN_KEYS:
            problems.append(f"{where}: {_unknown(key, _TURN_KEYS)}")

    def text(key: str) -> str | None:
        value = raw.get(key)
        if value is None or isinstance(value, str):
            return value
        problems.append(f"{where}: {key}: must be a string, not {type_name(value)}")
        return None

    transcript = text("transcript")
    reply = text("reply")
    call = text("call")
    then = text("then")
    if call is not None and not call.strip():
        problems.append(f"{where}: call: must name a tool, not be empty")

    arguments = raw.get("arguments", {})
    if not isinstance(arguments, Mapping):
        problems.append(f"{where}: arguments: must be a table, e.g. arguments = {{}}, "
                        f"not {type_name(arguments)}")
        arguments = {}
    else:
        try:
            json.dumps(arguments)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}: arguments: cannot be sent as JSON ({exc}); "
                            "dates and times must be strings")

    if then is not None:
        try:
            list(string.Formatter().parse(then))
        except ValueError as exc:
            problems.append(f"{where}: then: not a valid format string ({exc}); "
                            "write {{ and }} for literal braces")

    error = _parse_error(raw.get("error"), where, problems)

    close = raw.get("close")
    if close is not None:
        if isinstance(close, bool) or not isinstance(close, int):
            problems.append(f"{where}: close: must be a close code (integer), "
                            f"not {type_name(close)}")
            close = None
        elif not 1000 <= close <= 4999:
            problems.append(f"{where}: close: {close} is not a close code (use 1000-4999; "
                            "codes the RFC keeps off the wire, like 1005, are sent anyway)")
            close = None

    stall = raw.get("stall_seconds", 0.0)
    if isinstance(stall, bool) or not isinstance(stall, (int, float)):
        problems.append(f"{where}: stall_seconds: must be a number of seconds, "
                        f"not {type_name(stall)}")
        stall = 0.0
    elif stall < 0:
        problems.append(f"{where}: stall_seconds: must not be negative (got {stall})")
        stall = 0.0

    drop = raw.get("drop", False)
    if not isinstance(drop, bool):
        problems.append(f"{where}: drop: must be true or false, not {type_name(drop)}")
        drop = False

    if reply is not None and call is not None:
        problems.append(f"{where}: reply: cannot be combined with call "
                        "(a turn either replies or calls a tool; use `then` for the reply "
                        "after the tool)")
    if call is None:
        if "then" in raw:
            problems.append(f"{where}: then: needs `call` (it is the reply after a tool output)")
        if "arguments" in raw:
            problems.append(f"{where}: arguments: needs `call` (they are the tool's arguments)")
    present = {"reply": reply is not None, "call": call is not None, "error": error is not None,
               "close": close is not None, "drop": drop}
    actions = [name for name, there in present.items() if there]
    faults = [name for name in actions if name in ("error", "close", "drop")]
    if faults and len(actions) > 1:
        problems.append(f"{where}: {faults[0]}: cannot be combined with "
                        f"{', '.join(a for a in actions if a != faults[0])} "
                        "(a fault replaces the response)")

    if problems:
        return None, problems
    turn = Turn(transcript=transcript, reply=reply, call=call, arguments=dict(arguments),
                then=then, error=error, close=close, stall_seconds=float(stall), drop=drop)
    return turn, problems


def _parse_error(raw: Any, where: str, problems: list[str]) -> ScriptedError | None:
    """Check an `error = {type, code, message}` table."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        problems.append(f"{where}: error: must be a table like "
                        f'{{type = "server_error", code = "...", message = "..."}}, '
                        f"not {type_name(raw)}")
        return None
    count = len(problems)
    for key in raw:
        if key not in _ERROR_KEYS:
            problems.append(f"{where}: error.{_unknown(key, _ERROR_KEYS)}")
    for key in _ERROR_KEYS:
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{where}: error.{key}: must be a string, not {type_name(raw[key])}")
    if len(problems) > count:
        return None
    defaults = ScriptedError()
    return ScriptedError(type=raw.get("type", defaults.type), code=raw.get("code"),
                         message=raw.get("message", defaults.message))


def format_then(template: str | None, output: str) -> str:
    """The follow-up reply for a tool output.

    The output is parsed as a JSON object and its keys fill `template` (`str.format_map`).
    When the output is not a JSON object, a placeholder is missing, or there is no template,
    the raw output is spoken instead: the user still hears what the tool said.
    """
    if template is None:
        return output
    try:
        data = json.loads(output)
    except ValueError:
        return output
    if not isinstance(data, dict):
        return output
    try:
        return template.format_map(data)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        logger.info("tool output does not fill %r; speaking the raw output", template)
        return output


def _unknown_value(value: str, known: tuple[str, ...]) -> str:
    """'unknown action 'x'' with a did-you-mean hint or the list of known values."""
    return f"unknown action {value!r}{_hint(value, known)}"


def _hint(value: str, known: tuple[str, ...]) -> str:
    match = closest(value, known)
    if match:
        return f"; did you mean {match!r}?"
    return f" (one of: {', '.join(known)})" if len(known) <= 12 else ""


def _unknown(key: str, known: tuple[str, ...]) -> str:
    """'unknown key' with a did-you-mean hint, the way config errors are reported elsewhere."""
    match = closest(key, known)
    hint = f"; did you mean {match!r}?" if match else f" (known keys: {', '.join(known)})"
    return f"{key}: unknown key{hint}"
