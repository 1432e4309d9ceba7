"""`rtd run` as a service that runs for months: signals, reload, readiness and the watchdog.

SIGTERM and SIGINT stop the daemon; SIGHUP re-reads the configuration and applies it without a
restart. Under systemd (``Type=notify``) the daemon says when it is ready (the actors are up and
the first connection attempt succeeded or failed and is being retried), what it is doing
(``STATUS=``), that it is alive (``WATCHDOG=1``, only while `Health` finds nothing wrong), when
it reloads and when it stops. All notifications come from this process (``NotifyAccess=main``).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import pykka

from rtd import logs
from rtd._version import __version__
from rtd.components import StateEvent
from rtd.config import Config
from rtd.daemon import Daemon
from rtd.exceptions import AmbiguousDeviceError, RtdError
from rtd.exitcodes import EX_CONFIG
from rtd.messages import ConnectionState
from rtd.notify import Notifier
from rtd.supervisor import Ping, StartupError

logger = logging.getLogger("rtd")

READY_AFTER = 10.0
"""Seconds past ``provider.connect_timeout`` after which readiness is sent even though the first
connection attempt has not ended (a resolver that hangs must not fail the start)."""
HEALTH_PERIOD = 1.0
"""Seconds between health checks while a watchdog is set (or the beat interval, if shorter)."""
PING_DEADLINE = 5.0
"""Seconds a core actor may leave a health ping unanswered before the daemon counts as stuck."""
DOWN_GRACE = 10.0
"""Seconds a core actor may be down (being restarted) before that counts against health."""
RELOAD_TIMEOUT = 10.0
STOP_TIMEOUT = 1.5


class _Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to begin a clean stop.

    A BaseException, like KeyboardInterrupt: the signal may land inside code that catches
    Exception (a reload step on the supervisor's thread), which must not swallow the stop."""


def secrets(config: Config) -> list[str]:
    """Values the log must never show: the key and the provider's extra headers."""
    found = [config.api_key.value] if config.api_key else []
    return found + [v for v in config.provider.headers.values() if v]


class Health:
    """What the watchdog needs to know: does every part of the daemon still do its job?

    Each core actor answers a ping (sent without waiting, at most one outstanding per actor);
    each open sound device delivers callbacks; the session is connected or reconnecting (its
    actor answering is what makes the reconnecting knowing). Plugin components never stop the
    watchdog, as they never end the daemon: one that stops answering is logged.
    """

    def __init__(self, daemon: Daemon, wake: Callable[[], None] = lambda: None) -> None:
        self.daemon = daemon
        self.connection: ConnectionState | None = None
        """The session's last connection report; None until the first attempt ended."""
        self.state = ""
        self._wake = wake
        self._pings: dict[str, tuple[Any, float, Any]] = {}
        self._down_since: dict[str, float] = {}
        self._silent: set[str] = set()
        daemon.bus.observe(self._observe)

    def _observe(self, message: object) -> None:  # the publisher's thread: keep it quick
        if isinstance(message, ConnectionState):
            self.connection = message
            self._wake()
        elif isinstance(message, StateEvent):
            self.state = message.state
            self._wake()

    def problems(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        found: list[str] = []
        for child in list(self.daemon.supervisor.children):
            ref = child.ref
            if ref is None:
                since = self._down_since.setdefault(child.name, now)
                if child.critical and now - since > DOWN_GRACE:
                    found.append(f"{child.name} has been down for {now - since:.0f} s")
                continue
            self._down_since.pop(child.name, None)
            pending = self._pings.get(child.name)
            if pending is not None and pending[2] is ref:
                future, sent, _ = pending
                try:
                    future.get(timeout=0)
                except pykka.Timeout:
                    late = now - sent
                    if late > PING_DEADLINE:
                        if child.critical:
                            found.append(f"{child.name} has not answered for {late:.0f} s")
                        elif child.name not in self._silent:
                            self._silent.add(child.name)
                            logger.warning("%s has not answered a health check for %.0f s; it "
                                           "may be stuck", child.name, late)
                    continue  # one ping at a time: a slow actor must not pile them up
                except Exception:  # it died or failed to start: the supervisor deals with that
                    pass
                self._silent.discard(child.name)
            with contextlib.suppress(pykka.ActorDeadError):
                self._pings[child.name] = (ref.ask(Ping(), block=False), now, ref)
        for backend in (self.daemon.input, self.daemon.output):
            problem = backend.health_problem() if backend is not None else None
            if problem:
                found.append(problem)
        return found

    def status(self) -> str:
        """One line for ``STATUS=`` (`systemctl status rtd` shows it)."""
        c = self.connection
        if c is None:
            parts = ["connecting"]
        elif c.connected:
            parts = [f"connected to {c.detail}"]
            if self.state:
                parts.append(self.state)
        elif c.expected:
            parts = [f"offline ({c.detail})"]
        else:
            parts = [f"reconnecting ({c.detail})"]
        for backend, what in ((self.daemon.input, "microphone"),
                              (self.daemon.output, "speaker")):
            waiting = backend.waiting_for if backend is not None else None
            if waiting:
                parts.append(f"{what} not available, looking for it ({waiting.split('. ')[0]})")
        return "; ".join(parts)


class Service:
    """Runs one daemon until SIGTERM, reloading it on SIGHUP, notifying systemd throughout."""

    def __init__(self, config: Config, load: Callable[[], Config], *,
                 log_level: str | None = None, notifier: Notifier | None = None,
                 warn: Callable[[Config], list[str]] = lambda config: []) -> None:
        self.config = config
        self._load = load
        self._log_level = log_level
        self._warn = warn
        self.notifier = notifier or Notifier.from_environment()
        self.daemon = Daemon(config)
        self._wake = threading.Event()
        self.health = Health(self.daemon, self._wake.set)
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._hangup = threading.Event()
        self._reloading = False
        self._stop_signalled = False

    # -- the main thread ------------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hangup)
        threads = [threading.Thread(target=self._reloader, name="rtd-reload", daemon=True)]
        if self.notifier.enabled:
            threads.append(threading.Thread(target=self._notifier, name="rtd-notify",
                                            daemon=True))
        for thread in threads:
            thread.start()
        code = 0
        try:
            try:
                self.daemon.start()
                self._started.set()
                self._wake.set()
                logger.info("rtd %s running; stop with Ctrl-C or SIGTERM, reload with SIGHUP",
                            __version__)
                code = self.daemon.run()
            except _Stop as stop:
                logger.info("%s received; stopping", stop)
        except StartupError as exc:
            cause = exc.__cause__
            # a device name that matches several devices needs an edit; other failures (a file
            # that is not there yet) may pass: let systemd try again
            code = EX_CONFIG if isinstance(cause, AmbiguousDeviceError) else 1
            logger.error("cannot start: %s", cause if isinstance(cause, RtdError) else exc)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            self._stopping.set()
            self._wake.set()
            self._hangup.set()
            self.notifier.stopping("stopping")
            self.daemon.stop(timeout=STOP_TIMEOUT)
            for thread in threads:
                thread.join(timeout=1.0)
            self.notifier.close()
        return code

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if self._stop_signalled:  # a second Ctrl-C while stopping: the stop is under way
            return
        self._stop_signalled = True
        raise _Stop(signal.Signals(signum).name)

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        # in a signal handler: only set a flag; the reload thread does the work
        self._hangup.set()

    # -- reload ---------------------------------------------------------------------------------

    def _reloader(self) -> None:
        while not self._stopping.is_set():
            self._hangup.wait()
            if self._stopping.is_set():
                return
            if not self._started.wait(timeout=0.5):
                continue  # still starting: the request stays set until it can be served
            self._hangup.clear()
            self.reload()

    def reload(self) -> bool:
        """Re-read the configuration and apply it; keep the running one if the new one is bad."""
        self._reloading = True
        self.notifier.reloading("reloading the configuration")
        try:
            try:
                config = self._load()
            except RtdError as exc:  # ConfigError names the file and every problem
                logger.error("reload rejected, the configuration running before is kept:\n%s",
                             exc)
                return False
            logs.setup(self._log_level or config.log.level, secrets(config))
            where = config.source or "built-in defaults"
            logger.info("SIGHUP: applying %s", where)
            for problem in config.component_problems:
                logger.warning("not running: %s", problem)
            for warning in self._warn(config):
                logger.warning("%s", warning)
            try:
                changes = self.daemon.reload(config, timeout=RELOAD_TIMEOUT)
            except TimeoutError as exc:
                logger.error("%s; some changes may not be applied", exc)
                return False
            self.config = config
            logger.info("reloaded %s: %s", where, "; ".join(changes) or "nothing changed")
            return True
        finally:
            self._reloading = False
            self.notifier.ready(self.health.status())

    # -- systemd --------------------------------------------------------------------------------

    def _notifier(self) -> None:
        """Readiness once, STATUS= on every change, and watchdog beats while healthy."""
        interval = self.notifier.watchdog_interval
        ready_by = time.monotonic() + self.config.provider.connect_timeout + READY_AFTER
        ready = False
        told = ""
        unhealthy: list[str] = []
        next_check = next_beat = time.monotonic()
        while not self._stopping.is_set():
            self._wake.clear()  # before looking: a wake during the look makes another one
            now = time.monotonic()
            if not ready and self._started.is_set() and (
                    self.health.connection is not None or now >= ready_by):
                ready = True
                told = self.health.status()
                self.notifier.ready(told)
            elif ready and not self._reloading:
                status = self.health.status()
                if status != told:
                    told = status
                    self.notifier.status(status)
            if interval is not None and now >= next_check:
                next_check = now + min(HEALTH_PERIOD, interval)
                problems = self.health.problems(now)
                if problems and problems != unhealthy:
                    logger.warning("unhealthy, the watchdog is not fed: %s", "; ".join(problems))
                elif unhealthy and not problems:
                    logger.info("healthy again")
                unhealthy = problems
                if not problems and now >= next_beat:
                    self.notifier.watchdog()
                    next_beat = now + interval
            waits = [next_check - now] if interval is not None else []
            if not ready:
                waits.append(max(0.0, ready_by - now))
            self._wake.wait(timeout=max(0.05, min(waits)) if waits else None)
