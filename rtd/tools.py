"""Tools: functions the model may call, and the built-in ones.

A tool is a name, a description the model reads, a JSON schema for its arguments, a settings
schema validated from its ``[tools.NAME]`` table, and a function. The model decides when to call
it; the tools actor runs it and the session sends the result back.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtd.config import setting

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tool:
    """A function the model can call."""

    name: str
    description: str
    #: JSON schema of the arguments object, as sent in `session.update`.
    parameters: Mapping[str, Any]
    #: Called with (settings, arguments) and returns anything JSON-serialisable or a string.
    function: Callable[[Any, dict[str, Any]], Any]
    #: Frozen dataclass type validated from the tool's ``[tools.NAME]`` table.
    settings: type = field(default=type(None))

    def schema(self) -> dict[str, Any]:
        """The tool as the `tools` entry of a GA `session.update`."""
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": dict(self.parameters)}

    def run(self, settings: Any, arguments_json: str) -> str:
        """Run with the model's JSON arguments and return the `function_call_output` string.

        Every failure becomes an output that describes it, so the model can tell the user what
        went wrong instead of waiting forever for an answer that never comes.
        """
        try:
            arguments = json.loads(arguments_json) if arguments_json.strip() else {}
        except json.JSONDecodeError as exc:
            return json.dumps({"error": f"arguments are not valid JSON: {exc}"})
        if not isinstance(arguments, dict):
            return json.dumps({"error": "arguments must be a JSON object"})
        try:
            result = self.function(settings, arguments)
        except Exception as exc:  # a tool's bug must not take the daemon down
            logger.warning("tool %s failed: %s: %s", self.name, type(exc).__name__, exc)
            return json.dumps({"error": f"{type(exc).__name__}: {exc}"})
        if isinstance(result, str):
            return result
        try:
            return json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            logger.warning("tool %s returned something not JSON-serialisable: %s", self.name, exc)
            return json.dumps({"error": f"tool returned a value that is not JSON: {exc}"})


@dataclass(frozen=True)
class ClockSettings:
    """Settings of the clock tool."""

    timezone: str = setting("", "IANA time zone such as 'Europe/Berlin'; empty: the system's")


def _clock(settings: ClockSettings, arguments: dict[str, Any]) -> dict[str, str]:
    if settings.timezone:
        try:
            tz: _dt.tzinfo | None = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return {"error": f"unknown time zone {settings.timezone!r} in tools.clock.timezone"}
    else:
        tz = None
    now = _dt.datetime.now(tz).astimezone(tz)
    return {
        "time": now.strftime("%H:%M"),
        "date": f"{now:%A} {now.day} {now:%B %Y}",
        "timezone": now.tzname() or "",
        "iso": now.isoformat(timespec="seconds"),
    }


CLOCK = Tool(
    name="clock",
    description="Get the current local date and time. Use it whenever the user asks for the "
    "time, the date or the day of the week.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
    function=_clock,
    settings=ClockSettings,
)

#: Tools shipped with rtd, by name.
BUILTIN_TOOLS: dict[str, Tool] = {CLOCK.name: CLOCK}
