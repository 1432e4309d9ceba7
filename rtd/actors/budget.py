"""The daily budget of connected minutes (``[session] max_minutes_per_day``): not an actor,
the session actor's ledger.

The minutes used today are kept in the state directory so a restart (a crash, an update, a
power cut) does not hand out a fresh day: ``$STATE_DIRECTORY`` under systemd
(``StateDirectory=rtd``), else ``[session] state_dir``, else ``$XDG_STATE_HOME/rtd``
(``~/.local/state/rtd``). The file is written atomically (a temporary file, then a rename), at
most every `SAVE_EVERY` seconds while connected and whenever a connection ends; a corrupt or
unreadable one costs one warning and counts as nothing used. Without a limit nothing is
written: the minutes are still counted, in memory, for ``rtd status``.

A day is the local calendar day: the count starts again at local midnight.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger("rtd.session")

FILE_NAME = "usage.json"
SAVE_EVERY = 30.0
"""Seconds of connection between writes of the usage file (a power cut loses at most this)."""


def state_directory(configured: str, env: Mapping[str, str]) -> Path:
    """Where rtd keeps what survives a restart: systemd's first ``$STATE_DIRECTORY``, the
    configured ``[session] state_dir``, or the XDG state directory."""
    if configured:
        return Path(configured).expanduser()
    systemd = env.get("STATE_DIRECTORY", "").split(":")[0]
    if systemd:
        return Path(systemd)
    xdg = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local/state")
    return Path(xdg) / "rtd"


def local_now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class DailyBudget:
    """Connected seconds per local day, against a limit in minutes (0: no limit)."""

    def __init__(self, limit_minutes: float, directory: Path | None, *,
                 now: Callable[[], dt.datetime] = local_now) -> None:
        self.limit_minutes = limit_minutes
        self.path = directory / FILE_NAME if directory is not None and limit_minutes else None
        self._now = now
        self.day = now().date()
        self.seconds = 0.0
        self._unsaved = 0.0
        self._warned_write = False
        if self.path is not None:
            self._load()

    @property
    def limited(self) -> bool:
        return self.limit_minutes > 0

    @property
    def minutes_today(self) -> float:
        self._roll()
        return self.seconds / 60

    @property
    def exhausted(self) -> bool:
        """Today's minutes are used up (never without a limit)."""
        self._roll()
        return self.limited and self.seconds >= self.limit_minutes * 60

    def seconds_left(self) -> float | None:
        """Connected seconds left today; None without a limit."""
        if not self.limited:
            return None
        self._roll()
        return max(0.0, self.limit_minutes * 60 - self.seconds)

    def until_midnight(self) -> float:
        """Seconds until the next local midnight, when a new day's minutes begin."""
        now = self._now()
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(),
                                       tzinfo=now.tzinfo)
        return max(0.0, (midnight - now).total_seconds())

    def add(self, seconds: float) -> None:
        """Count ``seconds`` of connection (just past); written now and then."""
        if seconds <= 0:
            return
        self._roll()
        self.seconds += seconds
        self._unsaved += seconds
        if self._unsaved >= SAVE_EVERY:
            self.save()

    def save(self) -> None:
        """Write the usage file atomically (with a limit only); a failure is one warning."""
        self._unsaved = 0.0
        if self.path is None:
            return
        data = json.dumps({"day": self.day.isoformat(), "seconds": round(self.seconds, 1)})
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".usage-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError as exc:
            if not self._warned_write:
                self._warned_write = True
                logger.warning("session.state_dir: cannot write %s (%s); the minutes used "
                               "today are counted but will not survive a restart", self.path,
                               exc.strerror or exc)

    def _roll(self) -> None:
        today = self._now().date()
        if today != self.day:
            self.day, self.seconds, self._unsaved = today, 0.0, 0.0

    def _load(self) -> None:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warned_write = True  # one warning for a directory rtd cannot use
            logger.warning("session.state_dir: cannot read %s (%s); counting today's minutes "
                           "from 0, and they may not survive a restart", self.path,
                           exc.strerror or exc)
            return
        try:
            data = json.loads(text)
            day = dt.date.fromisoformat(data["day"])
            seconds = float(data["seconds"])
            if not seconds >= 0:
                raise ValueError("negative")
        except (ValueError, TypeError, KeyError):
            logger.warning("session.state_dir: %s is not a usage file rtd wrote (corrupt?); "
                           "counting today's minutes from 0 and replacing it", self.path)
            return
        if day == self.day:
            self.seconds = seconds
