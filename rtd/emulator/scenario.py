"""Scenario files: what the emulator "hears" and answers on each user turn.

The emulator has no model. A scenario scripts it, turn by turn, so tests and the demo get the
same conversation every time. The file format is documented in the package docstring
(`rtd.emulator`); this module parses and checks it, reporting every problem at once as
`<path>: turn N: key: what is wrong`.
"""

from __future__ import annotations

import difflib
import json
import logging
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtd.exceptions import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

logger = logging.getLogger(__name__)

DEFAULT_REPLY = "I heard you."
"""What the emulator says on a turn the scenario does not script."""

# Close codes a server may send (RFC 6455 section 7.4 plus the private 3000-4999 range).
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                   1013, 1014})

_TOP_KEYS = ("default_reply", "turn")
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


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario: the scripted turns, in order, and the reply for every other turn."""

    turns: tuple[Turn, ...] = ()
    default_reply: str = DEFAULT_REPLY
    source: str | None = None
    """The file it came from, for log lines; None when built in code."""


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
        problems.append(f"{source}: default_reply: must be a string, not {_tname(default_reply)}")
        default_reply = DEFAULT_REPLY

    raw_turns = data.get("turn", [])
    turns: list[Turn] = []
    if isinstance(raw_turns, Mapping):
        problems.append(f"{source}: turn: must be an array of tables: write [[turn]], not [turn]")
    elif not isinstance(raw_turns, list):
        problems.append(f"{source}: turn: must be an array of tables, not {_tname(raw_turns)}")
    else:
        for number, raw in enumerate(raw_turns, start=1):
            where = f"{source}: turn {number}"
            if not isinstance(raw, Mapping):
                problems.append(f"{where}: must be a table, not {_tname(raw)}")
                continue
            turn, turn_problems = _parse_turn(raw, where)
            problems.extend(turn_problems)
            if turn is not None:
                turns.append(turn)

    if problems:
        raise ConfigError(problems)
    return Scenario(turns=tuple(turns), default_reply=default_reply, source=source)


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
        problems.append(f"{where}: {key}: must be a string, not {_tname(value)}")
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
                        f"not {_tname(arguments)}")
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
            problems.append(f"{where}: close: must be a close code (integer), not {_tname(close)}")
            close = None
        elif close not in _SENDABLE_CLOSE_CODES and not 3000 <= close <= 4999:
            problems.append(f"{where}: close: {close} is not a close code a server may send "
                            "(use 1000-1003, 1007-1014 or 3000-4999)")
            close = None

    stall = raw.get("stall_seconds", 0.0)
    if isinstance(stall, bool) or not isinstance(stall, (int, float)):
        problems.append(f"{where}: stall_seconds: must be a number of seconds, "
                        f"not {_tname(stall)}")
        stall = 0.0
    elif stall < 0:
        problems.append(f"{where}: stall_seconds: must not be negative (got {stall})")
        stall = 0.0

    drop = raw.get("drop", False)
    if not isinstance(drop, bool):
        problems.append(f"{where}: drop: must be true or false, not {_tname(drop)}")
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
                        f"not {_tname(raw)}")
        return None
    count = len(problems)
    for key in raw:
        if key not in _ERROR_KEYS:
            problems.append(f"{where}: error.{_unknown(key, _ERROR_KEYS)}")
    for key in _ERROR_KEYS:
        if key in raw and not isinstance(raw[key], str):
            problems.append(f"{where}: error.{key}: must be a string, not {_tname(raw[key])}")
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


def _unknown(key: str, known: tuple[str, ...]) -> str:
    """'unknown key' with a did-you-mean hint, the way config errors are reported elsewhere."""
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(known)})"
    return f"{key}: unknown key{hint}"


def _tname(value: Any) -> str:
    """A TOML-ish name for the type of a value, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__
