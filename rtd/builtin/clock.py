"""The clock tool: realtime models do not know the current time, so they ask the device."""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rtd.schema import setting
from rtd.tools import tool


@dataclass(frozen=True)
class ClockSettings:
    """Settings of the clock tool (``[tools.clock]``)."""

    timezone: str = setting("", "IANA time zone such as 'Europe/Berlin'; empty: the system's")


@tool(settings=ClockSettings)
def clock(settings: ClockSettings) -> dict[str, str]:
    """Get the current local date and time.
    Use it whenever the user asks for the time, the date or the day of the week.

    The zone is ``tools.clock.timezone``, or the system's when that is empty. A bad zone is
    reported as an error output (not an exception) so the model can tell the user to fix it.
    """
    if settings.timezone:
        try:
            tz: _dt.tzinfo | None = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return {"error": f"unknown time zone {settings.timezone!r} in tools.clock.timezone"}
    else:
        tz = None
    now = _dt.datetime.now(tz).astimezone(tz)  # astimezone(None) attaches the system's zone
    return {
        "time": now.strftime("%H:%M"),
        "date": f"{now:%A} {now.day} {now:%B %Y}",
        "timezone": now.tzname() or "",
        "iso": now.isoformat(timespec="seconds"),
    }


#: The clock tool under the name older code imports.
CLOCK = clock

__all__ = ["CLOCK", "ClockSettings", "clock"]
