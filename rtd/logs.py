"""Logging set-up: one line per event, journald-friendly, secrets scrubbed."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable


class Redact(logging.Filter):
    """Replace secret values wherever they would appear in a log line.

    The code never logs keys on purpose; this guards against a library echoing a header.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(s in text for s in self.secrets):
                for s in self.secrets:
                    text = text.replace(s, "********")
                record.msg, record.args = text, None
        return True


def setup(level: str = "info", secrets: Iterable[str] = (), *, stream=None) -> None:
    """Configure the root logger; without timestamps under systemd, which adds its own."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # pykka logs start-up errors handed back to the supervisor at info, with a traceback;
    # the supervisor reports them in one line. websocket-client is chatty on reconnects.
    logging.getLogger("pykka").setLevel(logging.WARNING)
    logging.getLogger("websocket").setLevel(logging.CRITICAL)
