"""Every way a realtime connection ends, classified in one table: retry, retry later, or give up.

A daemon that runs unattended must tell "the network hiccuped" from "this key will never work":
the first is retried with backoff, the second ends the process with an exit code systemd does
not restart on (`rtd.exitcodes`: 77 credentials, 78 wrong dialect, model or URL). The table
looks at what the server said, in this order:

==========================================  ==========================================
what the server said                        what rtd does
==========================================  ==========================================
error ``invalid_api_key`` (any close)       fatal, 77
error ``beta_api_shape_disabled``           fatal, 78 (then close 4000)
error ``model_not_found``                   fatal, 78
HTTP 401 / 403 on the upgrade               fatal, 77
HTTP 400 / 404 on the upgrade               fatal, 78 (wrong URL or model)
HTTP 429                                    retry after Retry-After / rate-limit reset
HTTP 5xx                                    retry with backoff; after Retry-After if given
any other HTTP status                       retry with backoff
close 3000                                  fatal, 77
error ``session_expired``, close 1001       retry now: a new session (no backoff)
error ``rate_limit_exceeded``               retry after the hint in its message
error ``insufficient_quota``                retry after a minute (billing, not a fault)
close 4000 without the error                retry with backoff (not assumed to be beta)
anything else (1000, 1006, 1011, resets,    retry with backoff
timeouts, stalls)
==========================================  ==========================================

An error event counts for the close that follows it (the service sends the error, then closes).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Literal

from rtd.exitcodes import EX_CONFIG, EX_NOPERM

Action = Literal["retry", "retry_after", "fatal"]

MAX_DELAY = 3600.0
"""Seconds: the longest wait a server's hint can impose (a hostile Retry-After is capped)."""
RATE_LIMIT_DELAY = 10.0
"""Seconds to wait on a rate limit that gives no hint of when it resets."""
QUOTA_DELAY = 60.0
"""Seconds between attempts while the account has no quota left: only billing can fix it."""


@dataclass(frozen=True)
class Ending:
    """How a connection (or an attempt at one) ended, and what to do about it.

    ``delay`` (seconds) is the wait a ``retry_after`` must honour; on a ``retry`` it is None
    (use the backoff) or 0.0 (reconnect at once: the session ended normally, e.g. expired).
    ``exit_code`` is set on a ``fatal`` ending: what the daemon should exit with.
    ``reason`` is one human line, safe to log: it never carries credentials.
    """

    action: Action
    reason: str
    delay: float | None = None
    exit_code: int | None = None

    @property
    def fatal(self) -> bool:
        return self.action == "fatal"


#: Error codes that end the session for good: the exit code, what went wrong, what to do.
_FATAL_ERRORS: dict[str, tuple[int, str, str]] = {
    "invalid_api_key": (EX_NOPERM, "the server refused the credentials", "check the API key"),
    "beta_api_shape_disabled": (EX_CONFIG, "the server refused the protocol shape",
                                "use the GA dialect and drop any 'OpenAI-Beta: realtime=v1' "
                                "header"),
    "model_not_found": (EX_CONFIG, "the server does not know the model",
                        "check session.model and provider.url"),
}


def classify(*, status: int | None = None, close_code: int | None = None,
             error_code: str | None = None, headers: Mapping[str, str] | None = None,
             cause: str = "", message: str = "", now: float | None = None) -> Ending:
    """Classify one ending by the table in this module's docstring.

    ``status`` is the HTTP status of a refused upgrade (with its response ``headers``),
    ``close_code`` the server's close code (None: no close frame, or one without a code),
    ``error_code`` the code of the error event just before the end, or of the refusal's body.
    ``cause`` says what happened and where, for the reason line (e.g. "wss://... closed the
    connection (code 4000)"); ``message`` is the server's own words (an error event's message,
    a refusal's body), quoted in the reason and read for a "try again in 20s" hint.
    ``now`` (unix seconds) is for HTTP-date Retry-After values.
    """
    def reason(what: str, said: str, advice: str = "") -> str:
        text = f"{what} ({said}{': ' + message if message else ''})"
        text = f"{cause}: {text}" if cause else text
        return f"{text}; {advice}" if advice else text

    if error_code in _FATAL_ERRORS:
        code, what, advice = _FATAL_ERRORS[error_code]
        said = error_code if status is None else f"HTTP {status}, {error_code}"
        return Ending("fatal", reason(what, said, advice), exit_code=code)
    if status is not None:
        return _classify_status(status, error_code, {k.lower(): v for k, v in
                                                     (headers or {}).items()}, reason, now)
    if close_code == 3000:
        return Ending("fatal", reason("the server refused the credentials", "close code 3000",
                                      "check the API key"), exit_code=EX_NOPERM)
    if error_code == "session_expired" or close_code == 1001:
        said = "session_expired" if error_code == "session_expired" else "close code 1001"
        return Ending("retry", reason("the session ended", said, "starting a new one"),
                      delay=0.0)
    if error_code == "rate_limit_exceeded":
        delay = _message_hint(message)
        return Ending("retry_after", reason("rate limited", error_code),
                      delay=RATE_LIMIT_DELAY if delay is None else delay)
    if error_code == "insufficient_quota":
        return Ending("retry_after", reason("the account has no quota left", error_code,
                                            "check billing"), delay=QUOTA_DELAY)
    return Ending("retry", cause or "the connection ended")


def _classify_status(status: int, error_code: str | None, headers: Mapping[str, str],
                     reason: Callable[..., str], now: float | None) -> Ending:
    said = f"HTTP {status}"
    if status in (401, 403):
        return Ending("fatal", reason("the server refused the credentials", said,
                                      "check the API key"), exit_code=EX_NOPERM)
    if status in (400, 404):
        what = "the server does not know the URL or model" if status == 404 else \
            "the server refused the request"
        return Ending("fatal", reason(what, said, "check provider.url, session.model and the "
                                      "provider's dialect"), exit_code=EX_CONFIG)
    if status == 429:
        if error_code == "insufficient_quota":
            return Ending("retry_after", reason("the account has no quota left", said,
                                                "check billing"), delay=QUOTA_DELAY)
        hint = retry_delay(headers, now)
        return Ending("retry_after", reason("rate limited", said),
                      delay=RATE_LIMIT_DELAY if hint is None else hint)
    what = "the server is unavailable" if status >= 500 else "the server refused the upgrade"
    hint = retry_delay(headers, now, rate_limits=False)
    if hint is not None:
        return Ending("retry_after", reason(what, said), delay=hint)
    return Ending("retry", reason(what, said))


def retry_delay(headers: Mapping[str, str], now: float | None = None, *,
                rate_limits: bool = True) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or an HTTP date), ``retry-after-ms``, or
    (with ``rate_limits``) the longest ``x-ratelimit-reset-*`` ("1s", "20ms", "1m30s");
    None when no header gives a usable value. Header names must be lower case."""
    value = headers.get("retry-after-ms")
    if value is not None and (ms := _number(value)) is not None:
        return _capped(ms / 1000)
    value = headers.get("retry-after")
    if value is not None:
        seconds = _number(value)
        if seconds is None:
            seconds = _http_date(value, time.time() if now is None else now)
        if seconds is not None:
            return _capped(seconds)
    if not rate_limits:
        return None
    resets = [d for name, v in headers.items()
              if name.startswith("x-ratelimit-reset") and (d := duration(v)) is not None]
    return _capped(max(resets)) if resets else None


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")


def duration(text: str) -> float | None:
    """Seconds in a rate-limit duration: "1s", "20ms", "1m30s", "6m0s", "0.5s" or a bare number
    of seconds; None when it is none of these."""
    text = text.strip()
    if (plain := _number(text)) is not None:
        return plain
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    return total if pos and pos == len(text) else None


_HINT = re.compile(r"try again in\s+([0-9][0-9a-zµ.]*)", re.IGNORECASE)


def _message_hint(message: str) -> float | None:
    """The wait in "Please try again in 6ms." (OpenAI's rate-limit messages), capped."""
    match = _HINT.search(message or "")
    if match is None:
        return None
    value = duration(match.group(1).rstrip("."))
    return None if value is None else _capped(value)


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _http_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": an HTTP date is GMT by definition
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp() - now


def _capped(seconds: float) -> float:
    return min(MAX_DELAY, max(0.0, seconds))
