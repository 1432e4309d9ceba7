"""Logging set-up: one line per event, journald-friendly, secrets scrubbed.

Under journald (``$JOURNAL_STREAM`` names our stderr) each line starts with its syslog priority
(``<6>`` for info, ``<4>`` for warnings, as sd-daemon(3) describes) and carries no timestamp: the
journal stores the level and the time itself, and `journalctl -p warning` can then filter.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import IO

MASK = "********"

PRIORITIES = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
              logging.DEBUG: 7}
"""Python level -> syslog priority (crit, err, warning, info, debug)."""


def priority(levelno: int) -> int:
    """The syslog priority of a Python level; levels in between take the next more severe."""
    for level in sorted(PRIORITIES, reverse=True):
        if levelno >= level:
            return PRIORITIES[level]
    return PRIORITIES[logging.DEBUG]


def to_journal(stream: IO[str] | None = None) -> bool:
    """Whether ``stream`` (stderr by default) is connected to the journal.

    systemd sets ``$JOURNAL_STREAM`` to the device and inode of the stream it connected; a
    process whose stderr was redirected elsewhere inherits the variable but fails the match.
    """
    dev, _, ino = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat((stream or sys.stderr).fileno())
    except (OSError, AttributeError, ValueError):  # closed, or not a real file
        return False
    return st.st_dev == int(dev) and st.st_ino == int(ino)


def prefix(levelno: int, stream: IO[str] | None = None) -> str:
    """``<N>`` before a line rtd writes to stderr itself, when that goes to the journal."""
    return f"<{priority(levelno)}>" if to_journal(stream) else ""


class Redact(logging.Filter):
    """Replace secret values wherever they would appear in a log line.

    The code never logs keys on purpose; this guards against a library echoing a header.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(s in text for s in self.secrets):
                record.msg, record.args = self.scrub(text), None
        return True


class _Formatter(logging.Formatter):
    """Formats, scrubs what the message filter cannot see (tracebacks), and prefixes levels."""

    def __init__(self, fmt: str, redact: Redact, journal: bool) -> None:
        super().__init__(fmt, "%H:%M:%S")
        self.redact = redact
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        text = self.redact.scrub(super().format(record))
        if not self.journal:
            return text
        # journald makes one entry per line: every line gets the level, or a traceback's
        # lines would be stored as info
        mark = f"<{priority(record.levelno)}>"
        return "\n".join(mark + line for line in text.split("\n"))


def setup(level: str = "info", secrets: Iterable[str] = (), *,
          stream: IO[str] | None = None) -> None:
    """Configure the root logger; under journald without timestamps and with level prefixes."""
    out = stream or sys.stderr
    journal = to_journal(out)
    if journal:
        fmt = "%(name)s: %(message)s"
    elif os.environ.get("INVOCATION_ID"):  # another systemd sink (a file, a tty): it dates lines
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    redact = Redact(secrets)
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(fmt, redact, journal))
    handler.addFilter(redact)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pykka logs start-up errors handed back to the supervisor at info, with a traceback;
    # the supervisor reports them in one line. websocket-client is chatty on reconnects.
    logging.getLogger("pykka").setLevel(logging.WARNING)
    logging.getLogger("websocket").setLevel(logging.CRITICAL)
