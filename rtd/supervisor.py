"""The supervisor: starts actors in dependency order, routes their messages, stops them in reverse.

Routing is a table from message type to actor names, looked up on the sender's thread and
delivered with `tell`, so a message costs one queue hop and no actor ever waits on another.
A crashed actor is restarted one-for-one after a delay that doubles with its recent crashes
(never in a tight loop); past `max_restarts` core-actor crashes in a minute the daemon gives up
with exit 70 so systemd can start it afresh. Plugin components never end the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pykka

from rtd.exitcodes import EX_SOFTWARE
from rtd.messages import Fatal

logger = logging.getLogger(__name__)

SIGNAL_LATENCY = 0.5
"""Seconds at most before `run()` notices a signal (see `run`)."""
LOSSY_BACKLOG = 200
"""Messages waiting for a lossy subscriber beyond which streaming chunks (``lossy`` types) are
dropped for it: a receiver that cannot keep up loses chunks, not the daemon's memory."""


class Bus:
    """Delivers each message to every actor subscribed to its type; safe from any thread.

    A payload is published once and reaches all its subscribers: the speaker and a receiver
    get the same `AudioChunk`. Whether a subscriber may lose streaming chunks is a property of
    the subscription, not of the message: plugin receivers subscribe lossily, the core actors
    (the speaker) never lose one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._routes: dict[type, tuple[tuple[str, bool], ...]] = {}
        self._refs: dict[str, pykka.ActorRef[Any]] = {}
        self._observers: tuple[Callable[[object], None], ...] = ()
        self.dropped: dict[str, int] = {}
        """Lossy messages dropped per actor name, because it fell behind."""

    def subscribe(self, name: str, types: Iterable[type], *, lossy: bool = False) -> None:
        """Route ``types`` to ``name``; with ``lossy`` it may miss ``lossy`` chunks when behind."""
        with self._lock:
            for t in types:
                route = self._routes.get(t, ())
                if all(n != name for n, _ in route):
                    self._routes[t] = (*route, (name, lossy and getattr(t, "lossy", False)))

    def attach(self, name: str, ref: pykka.ActorRef[Any] | None) -> None:
        """Point a name at a (re)started actor, or at nothing while it is down."""
        with self._lock:
            if ref is None:
                self._refs.pop(name, None)
            else:
                self._refs[name] = ref

    def observe(self, callback: Callable[[object], None]) -> None:
        """Also hand every message to ``callback`` (on the publisher's thread; keep it quick)."""
        with self._lock:
            self._observers = (*self._observers, callback)

    def wants(self, message_type: type) -> bool:
        """Whether an actor receives this type: lets publishers skip work nobody needs.

        Observers are not counted: they see what is published anyway, and an observer (the
        demo's, a script's) must not make the session build messages no actor takes.
        """
        return bool(self._routes.get(message_type))

    def publish(self, message: object) -> None:
        for name, lossy in self._routes.get(type(message), ()):
            ref = self._refs.get(name)
            if ref is None:
                continue
            if lossy and ref.actor_inbox.qsize() > LOSSY_BACKLOG:
                count = self.dropped.get(name, 0) + 1
                self.dropped[name] = count
                if count == 1 or count % 1000 == 0:
                    logger.warning("%s is falling behind; dropped %d streaming chunk(s) for it",
                                   name, count)
                continue
            try:
                ref.tell(message)
            except pykka.ActorDeadError:
                logger.debug("%s is down; %s not delivered", name, type(message).__name__)
        for observer in self._observers:
            observer(message)


_births = threading.local()
"""``refs``: the actors created on this thread while the supervisor starts one (see
`Supervisor._start_child`)."""


class RtdActor(pykka.ThreadingActor):
    """Base of rtd's actors: reports its crash to the supervisor instead of dying silently.

    A crash is caught here rather than left to pykka, which would log "Unhandled exception"
    with the traceback (twice, chained, for a start-up error) on every crash: the supervisor
    logs the first crash of each actor with its traceback and later ones as one line each.
    """

    #: Name used in logs and routes.
    name = "actor"

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None]) -> None:
        super().__init__()
        born = getattr(_births, "refs", None)
        if born is not None:  # the supervisor is starting it: it stops it if the start fails
            born.append(self.actor_ref)
        self.bus = bus
        self._on_crash = on_crash
        self._start_error: Exception | None = None
        self._failed = False

    def setup(self) -> None:
        """Acquire what the actor needs (open devices, connect); runs on the actor's thread."""

    def handle(self, message: Any) -> Any:
        """Handle one message from the bus."""

    def release(self) -> None:
        """Free what the actor holds (devices, sockets); runs on stop and after a crash."""

    def on_start(self) -> None:
        # pykka only logs a traceback when on_start raises; keep the error for the start-up
        # ping instead, so the supervisor can report it as one line.
        try:
            self.setup()
        except Exception as exc:
            self._start_error = exc

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Ping):
            # returned, not raised: the supervisor raises it as one line (see _start_child)
            return self._start_error
        if self._failed:
            return None  # crashed: what was queued before the stop is not handled
        try:
            return self.handle(message)
        except Exception as exc:
            self._crash(exc)
            return None

    def _crash(self, exc: Exception) -> None:
        self._failed = True
        try:
            self.release()  # the restarted actor must find the device free
        except Exception as again:
            logger.warning("%s: releasing after its crash failed too: %s: %s", self.name,
                           type(again).__name__, again)
        finally:
            self._on_crash(self.name, exc)
            self.stop()

    def on_stop(self) -> None:
        if not self._failed:  # after a crash, release() already ran
            self.release()


@dataclass
class Child:
    """How to start one actor, and which message types it receives."""

    name: str
    start: Callable[[Bus, Callable[[str, BaseException], None]], pykka.ActorRef[Any]]
    receives: tuple[type, ...] = ()
    critical: bool = True
    """Core actors count towards the daemon's restart limit; plugin components never end the
    daemon: they are restarted after a growing delay instead."""
    lossy: bool = False
    """May miss streaming chunks when it falls behind (plugin receivers), see `Bus`."""
    ref: pykka.ActorRef[Any] | None = field(default=None, repr=False)
    crashes: deque[float] = field(default_factory=deque, repr=False)
    """When it crashed in the last 10 minutes: the restart delay doubles with each."""
    total_crashes: int = field(default=0, repr=False)


@dataclass(frozen=True)
class _Crashed:
    name: str
    error: BaseException


@dataclass(frozen=True)
class _Restart:
    name: str


@dataclass(frozen=True)
class _StopRequested:
    pass


@dataclass(frozen=True)
class _Call:
    function: Callable[[], object]
    done: threading.Event


#: Seconds before a crashed actor is restarted: ``RESTART_FIRST``, doubling per recent crash,
#: up to these limits (core actors come back sooner: the conversation needs them).
RESTART_FIRST = 1.0
COMPONENT_BACKOFF_LIMIT = 60.0
CORE_BACKOFF_LIMIT = 30.0


class StartupError(Exception):
    """An actor could not start; carries its error."""


class Supervisor:
    """Owns the actors of one daemon: their order, their routes and their restarts."""

    def __init__(self, children: list[Child], bus: Bus | None = None, *,
                 max_restarts: int = 5, period: float = 60.0,
                 restart_first: float = RESTART_FIRST) -> None:
        self.bus = bus or Bus()
        self.children = children
        self.max_restarts = max_restarts
        self.period = period
        self.restart_first = restart_first
        """Seconds before the first restart of a crashed actor; doubled per recent crash."""
        self._control: queue.Queue[object] = queue.Queue(maxsize=64)
        self._restarts: deque[float] = deque()
        self._started: list[Child] = []
        self._timers: list[threading.Timer] = []
        for child in children:
            self.bus.subscribe(child.name, child.receives, lossy=child.lossy)
        self.bus.observe(self._watch)

    def _watch(self, message: object) -> None:
        if isinstance(message, Fatal):
            self._put(message)

    def _put(self, message: object) -> None:
        try:
            self._control.put_nowait(message)
        except queue.Full:  # already flooded with reasons to act; the first ones win
            logger.debug("supervisor queue full; dropped %r", message)

    def _crashed(self, name: str, error: BaseException) -> None:
        self._put(_Crashed(name, error))

    def start(self) -> None:
        """Start every actor in order; on failure stop those already started and raise."""
        for child in self.children:
            try:
                self._start_child(child)
            except Exception as exc:
                if child.critical:
                    self.stop()
                    raise StartupError(f"{child.name}: {exc}") from exc
                self._started.append(child)
                child.total_crashes += 1
                self._schedule_restart(child, exc, time.monotonic())
                continue
            self._started.append(child)
            logger.debug("started %s", child.name)

    def _start_child(self, child: Child) -> None:
        born: list[pykka.ActorRef[Any]] = []
        _births.refs = born
        try:
            ref = child.start(self.bus, self._crashed)
            # ask() is for start-up only: it confirms setup() ran before the next actor begins
            error = ref.ask(Ping(), timeout=10)
        except pykka.ActorDeadError:
            # it crashed before answering: its error is already in the control queue
            raise self._take_crash(child.name) or StartupError("stopped during start-up") \
                from None
        except BaseException:
            # Ctrl-C too, even one that lands inside pykka's start before the ref is ours: the
            # actor's thread is not a daemon one and would keep the process alive for good
            for started in born:
                with contextlib.suppress(pykka.Timeout, pykka.ActorDeadError):
                    started.stop(block=True, timeout=2)
            raise
        finally:
            _births.refs = None
        if error is not None:  # setup() failed: release what it got, report the error
            ref.stop(block=True, timeout=2)
            raise error
        child.ref = ref
        self.bus.attach(child.name, ref)

    def request_stop(self) -> None:
        """Make `run()` return 0: the clean end of an embedded daemon. Safe from any thread."""
        self._put(_StopRequested())

    def call(self, function: Callable[[], object], timeout: float) -> bool:
        """Run ``function`` on the thread in `run()`, between crash restarts, and wait for it.

        Reconfiguring (a reload) goes through here so it never races a restart. False when it
        did not finish within ``timeout`` seconds (or `run()` is not running).
        """
        done = threading.Event()
        self._put(_Call(function, done))
        return done.wait(timeout)

    def replace(self, children: list[Child], restart: Iterable[str] = ()) -> None:
        """Become ``children``, in their order, without stopping what did not change.

        Actors no longer listed stop, and so do those named in ``restart`` (in reverse start
        order); new and restarted ones then start in order. Call it through `call`. A child that
        fails to start is handled as a crash: a plugin component is retried after a delay, a core
        actor through the restart limit.
        """
        names = {c.name for c in children}
        restart = set(restart)
        running = {c.name: c for c in self._started}
        for child in reversed(self._started):
            if child.name not in names or child.name in restart:
                self._stop_child(child, 2.0)
        for timer in self._timers:  # delayed restarts belong to the actors just replaced
            timer.cancel()
        self._started = []
        for child in children:
            kept = running.get(child.name)
            if kept is not None and child.name not in restart and kept.ref is not None:
                self._started.append(kept)
                continue
            self.bus.subscribe(child.name, child.receives, lossy=child.lossy)
            self._started.append(child)
            try:
                self._start_child(child)
            except Exception as exc:  # the same backoff as any crash, counted alike
                self._crashed_child(child, exc)
                continue
            logger.info("started %s", child.name)
        self.children = list(self._started)

    def _take_crash(self, name: str) -> BaseException | None:
        """Remove a child's crash report from the control queue and return its error."""
        kept: list[object] = []
        reason: BaseException | None = None
        while True:
            try:
                item = self._control.get_nowait()
            except queue.Empty:
                break
            if reason is None and isinstance(item, _Crashed) and item.name == name:
                reason = item.error
            else:
                kept.append(item)
        for item in kept:
            self._put(item)
        return reason

    def run(self) -> int:
        """Block until something ends the daemon; return the exit code.

        Signals reach the main thread while it waits here (lock waits are interruptible), so
        the caller's handler can raise to stop.
        """
        while True:
            try:
                item = self._control.get(timeout=SIGNAL_LATENCY)
            except queue.Empty:
                # a signal the kernel handed to another thread only runs its Python handler
                # once this thread executes again: wake up now and then to let it
                continue
            if isinstance(item, _StopRequested):
                return 0
            if isinstance(item, Fatal):
                logger.error("%s", item.reason)
                return item.exit_code
            if isinstance(item, _Crashed):
                code = self._restart(item)
                if code is not None:
                    return code
            if isinstance(item, _Restart):
                code = self._restart_component(item.name)
                if code is not None:
                    return code
            if isinstance(item, _Call):
                try:
                    item.function()
                except Exception:
                    logger.exception("reconfiguring failed")
                finally:
                    item.done.set()

    def _restart(self, crash: _Crashed) -> int | None:
        """A started actor crashed: schedule its restart, or end the daemon past the limit."""
        child = next((c for c in self._started if c.name == crash.name), None)
        if child is None or child.ref is None:  # not ours, or already down and scheduled
            return None
        return self._crashed_child(child, crash.error)

    def _crashed_child(self, child: Child, error: BaseException) -> int | None:
        now = time.monotonic()
        self.bus.attach(child.name, None)
        child.ref = None
        child.total_crashes += 1
        if child.critical:
            while self._restarts and now - self._restarts[0] > self.period:
                self._restarts.popleft()
            if len(self._restarts) >= self.max_restarts:
                logger.error("%s crashed (%s: %s) and restarts are exhausted (%d in %.0f s); "
                             "exiting", child.name, type(error).__name__, error,
                             self.max_restarts, self.period)
                return EX_SOFTWARE
            self._restarts.append(now)
        self._schedule_restart(child, error, now)
        return None

    def _schedule_restart(self, child: Child, error: BaseException, now: float) -> None:
        """Restart after a delay that doubles with recent crashes: never in a tight loop."""
        self.bus.attach(child.name, None)
        child.ref = None
        while child.crashes and now - child.crashes[0] > 600:
            child.crashes.popleft()
        child.crashes.append(now)
        limit = CORE_BACKOFF_LIMIT if child.critical else COMPONENT_BACKOFF_LIMIT
        delay = min(limit, self.restart_first * 2.0 ** (len(child.crashes) - 1))
        what = f"{type(error).__name__}: {error}"
        if child.total_crashes <= 1:  # the first time, with the traceback a developer needs
            logger.error("%s crashed: %s; restarting it in %.0f s%s", child.name, what, delay,
                         _traceback(error))
        else:
            logger.warning("%s crashed again (%d crashes since start): %s; restarting it in "
                           "%.0f s", child.name, child.total_crashes, what, delay)
        timer = threading.Timer(delay, self._put, args=(_Restart(child.name),))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _restart_component(self, name: str) -> int | None:
        child = next((c for c in self._started if c.name == name), None)
        if child is None or child.ref is not None:
            return None
        try:
            self._start_child(child)
        except Exception as exc:  # failed again while starting: the same backoff, not an exit
            return self._crashed_child(child, exc)
        logger.info("%s restarted", name)
        return None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop actors in reverse start order, each given a share of ``timeout`` seconds."""
        for timer in self._timers:
            timer.cancel()
        deadline = time.monotonic() + timeout
        while self._started:
            child = self._started.pop()
            self._stop_child(child, max(0.2, deadline - time.monotonic()))

    def _stop_child(self, child: Child, timeout: float) -> None:
        self.bus.attach(child.name, None)
        if child.ref is None:
            return
        try:
            child.ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            logger.warning("%s did not stop within %.1f s", child.name, timeout)
        except pykka.ActorDeadError:
            pass
        child.ref = None
        logger.debug("stopped %s", child.name)


def _traceback(error: BaseException) -> str:
    """The traceback of where it went wrong: the root cause's, once, not the wrapper chain."""
    root = error.__cause__ or error
    if root.__traceback__ is None:
        return ""
    return "\n" + "".join(traceback.format_exception(root, chain=False)).rstrip()


@dataclass(frozen=True)
class Ping:
    """Health check: answered once the actor has handled every message sent before it."""
