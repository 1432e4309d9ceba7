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


def zone(name: str) -> _dt.tzinfo | None:
    """The time zone called ``name``, None for the system's (empty name).

    The one place a zone name is judged: the self-check and the call both use it. Raises
    ValueError naming the zone when this machine's zone database does not know it.
    """
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None


def check_clock(settings: ClockSettings) -> list[str]:
    """The zone must exist here: `rtd check` says so, rather than the model's first call."""
    try:
        zone(settings.timezone)
    except ValueError as exc:
        return [f"timezone: {exc}; expected an IANA name such as 'Europe/Berlin', or empty "
                "for the system's"]
    return []


@tool(settings=ClockSettings, check=check_clock)
def clock(settings: ClockSettings) -> dict[str, str]:
    """Get the current local date and time.
    Use it whenever the user asks for the time, the date or the day of the week.

    The zone is ``tools.clock.timezone``, or the system's when that is empty. rtd does not run
    the tool with a zone its self-check refused; called directly with one, it answers with an
    error output (not an exception) so the model can tell the user to fix it.
    """
    try:
        tz = zone(settings.timezone)
    except ValueError as exc:
        return {"error": f"{exc} in tools.clock.timezone"}
    now = _dt.datetime.now(tz).astimezone(tz)  # astimezone(None) attaches the system's zone
    return {
        "time": now.strftime("%H:%M"),
        "date": f"{now:%A} {now.day} {now:%B %Y}",
        "timezone": now.tzname() or "",
        "iso": now.isoformat(timespec="seconds"),
    }


#: The clock tool under the name older code imports.
CLOCK = clock

__all__ = ["CLOCK", "ClockSettings", "check_clock", "clock", "zone"]
