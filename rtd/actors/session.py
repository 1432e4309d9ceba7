"""The session actor: glue between the transport, the conversation and the bus.

The transport (`rtd.protocol.transport`) owns the socket: connecting, backoff, the bounded
outbound queue, deadlines and pings. The conversation (`rtd.conversation`) owns the turn:
server events in, client events and messages out. This actor only carries messages between
them on one thread, so neither needs a lock, and decides what is policy rather than protocol:
which endings and server errors end the daemon (through `rtd.protocol.endings`, the one table of
them), and when a connection should exist at all.

When (`SessionPolicy`): with ``start = "always"`` the transport connects at start and keeps
reconnecting. With ``"on_demand"`` nothing connects, and no microphone audio is even queued,
until a `Wake` (the control socket, a sender's ``ctx.wake()``, or a sender's text); the
conversation then closes with a close frame on `Sleep` or after ``idle_close_s`` in which
neither side spoke, and a later wake starts a fresh conversation. Server speech detection,
typed text and the assistant's audio (until it has played) count as speaking; silent
microphone frames do not, and a response or tool call in progress keeps the conversation open.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pykka

from rtd.actors.budget import DailyBudget
from rtd.conversation import Conversation, Publish, Send
from rtd.messages import (
    CancelTurn,
    Commit,
    ConnectionState,
    EndTurn,
    ErrorEvent,
    Fatal,
    InputAudio,
    Interrupt,
    PlaybackStopped,
    RequestResponse,
    ServerEventReceived,
    Sleep,
    StartTurn,
    StatusReport,
    ToolCall,
    ToolCallEvent,
    UpdateSession,
    UserText,
    Wake,
)
from rtd.protocol.endings import Ending, classify
from rtd.protocol.providers import Endpoint
from rtd.protocol.transport import Backoff, Transport
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransportSettings:
    """How the transport connects and notices a dead peer; all times in seconds."""

    connect_timeout: float = 10.0
    ping_interval: float = 15.0
    pong_timeout: float = 10.0
    send_timeout: float = 5.0
    response_timeout: float = 20.0
    audio_backlog_ms: int = 2000
    """Milliseconds of microphone audio held when the server cannot take it."""
    backoff: Backoff = Backoff()


@dataclass(frozen=True)
class SessionPolicy:
    """When a connection should exist, and what a new one gets; times in seconds."""

    start: str = "always"
    """"always": connect at start and stay connected; "on_demand": only between a `Wake` and
    a `Sleep` (or the idle cut-off)."""
    idle_close_s: float = 30.0
    """on_demand: seconds in which neither side spoke before the conversation closes."""
    recycle_before_s: float = 120.0
    """Seconds before the session's ``expires_at`` at which it moves to a new connection."""
    replay_max_chars: int = 20000
    """Characters of earlier conversation replayed into a new connection; 0: none."""
    default_session_s: float = 3600.0
    """A session's length when ``session.created`` gives no ``expires_at`` (Azure: 1800)."""
    max_minutes_per_day: float = 0.0
    """Connected minutes per local day; past them no connection until midnight. 0: none."""
    state_dir: Path | None = None
    """Where the minutes used today are kept (see `rtd.actors.budget`)."""


TICK = 0.25
"""Seconds between the actor's own checks (idle cut-off, session age): the coarseness of
those deadlines."""
BYTES_PER_SECOND = 48000
"""pcm24 bytes per second of assistant audio: how long what was received takes to play."""


SWITCH_WAIT = 8.0
"""Seconds a standby connection waits for a pause before the switch happens anyway: the old
connection closes within 10 s of the new one opening."""
LAST_MOMENT = 15.0
"""Seconds before ``expires_at`` (at most half of ``recycle_before_s``) past which a recycle
no longer waits for a pause."""
CREATED_WAIT = 1.0
"""Seconds a standby connection waits for its session.created before it may take over
without it (a server that sends none)."""
STANDBY_RETRY = 5.0
"""Seconds after a standby connection failed before the next try."""
REPORT_EVERY = 1.0
"""Seconds at least between two `StatusReport`s (the clock fields change all the time)."""
@dataclass(frozen=True)
class _Tick:
    pass


@dataclass(frozen=True)
class _Standby:
    generation: int
    url: str


@dataclass(frozen=True)
class _StandbyFailed:
    ending: Ending


@dataclass(frozen=True)
class _Connected:
    generation: int
    url: str


@dataclass(frozen=True)
class _Event:
    generation: int
    event: dict[str, Any]


@dataclass(frozen=True)
class _Disconnected:
    generation: int
    ending: Ending


class SessionActor(RtdActor):
    name = "session"
    receives = (InputAudio, ToolCallEvent, UserText, Commit, RequestResponse, Interrupt,
                UpdateSession, Wake, Sleep, StartTurn, EndTurn, CancelTurn, PlaybackStopped)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 target: Endpoint, session_update: Mapping[str, Any], *,
                 transport: TransportSettings | None = None,
                 policy: SessionPolicy | None = None, playback: bool = False,
                 barge_in_min_ms: int = 0) -> None:
        """``playback``: a speaker plays the assistant's audio and reports what it played
        (`PlaybackStopped`); ``barge_in_min_ms``: see `Conversation`."""
        super().__init__(bus, on_crash)
        self.target = target
        self.session_update = dict(session_update)
        self.settings = transport or TransportSettings()
        self.policy = policy or SessionPolicy()
        self.conversation = Conversation(wants=bus.wants, playback=playback,
                                         barge_in_min_ms=barge_in_min_ms)
        self.transport: Transport | None = None
        self.generation = 0
        """The connection the conversation is on; 0 while there is none."""
        self._announced = False
        self.open = False
        """A conversation is wanted: always, or on demand between a wake and a sleep."""
        self._last_spoken = 0.0        # monotonic: the latest sign that someone spoke
        self._playing_until = 0.0      # monotonic: when the assistant's audio received so far
        #                                has played (it arrives faster than real time)
        self._user_speaking = False
        self._epoch = 0                # transports started: see _start_transport
        self._woken = False            # on demand: the open is still to be marked
        # the session's clock (unix seconds) and the recycle in progress
        self._expires_at: float | None = None
        self._session_began: float | None = None
        self._standby_gen = 0          # a standby connection is open, waiting to take over
        self._standby_since = 0.0      # monotonic
        self._standby_expires: float | None = None
        self._standby_created = False  # its session.created came
        self._standby_asked = False    # standby() called, no answer yet
        self._standby_retry = 0.0      # monotonic: not before
        self.reconnects = 0
        """Connections after the first of a conversation, recycles not counted."""
        self.recycles = 0
        """Switches to a new connection before the session's time limit."""
        self._connections = 0          # of the open conversation
        self.budget = DailyBudget(0, None)
        self._counting_since = 0.0     # monotonic: connected time counted up to here
        self._over_budget = False      # no connection until local midnight
        self._low_warned: object = None  # the day the "minutes left" line was logged
        # counters since start, for rtd status
        self.turns = 0
        """User turns: spoken turns the server committed, and typed messages."""
        self.interruptions = 0
        """The user spoke (or a sender interrupted) while the assistant was answering."""
        self.tool_calls = 0
        """Tool calls handed to the tools."""
        self._dropped_before = 0       # ms of microphone audio dropped by earlier transports
        self._reported: dict[str, Any] | None = None
        self._reported_at = 0.0        # monotonic
        self._offline = "not connected yet"
        self._ticks = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def on_demand(self) -> bool:
        return self.policy.start == "on_demand"

    def setup(self) -> None:
        self.budget = DailyBudget(self.policy.max_minutes_per_day, self.policy.state_dir)
        self._ticker = threading.Thread(target=self._tick_loop, name="rtd-session-tick",
                                        daemon=True)
        self._ticker.start()
        if self.budget.exhausted:  # a restart does not hand out a fresh day
            self._budget_used_up()
            return
        if self.on_demand:
            self._offline = "on demand: waiting for a wake"
            logger.info("on demand: not connecting until a wake (rtd wake, a sender, or text)")
            self.bus.publish(ConnectionState(False, "on demand: waiting for a wake",
                                             expected=True))
            return
        self._open_conversation()

    def _open_conversation(self) -> None:
        self.open = True
        self._woken = self.on_demand
        self._connections = 0
        self._spoke()
        self._start_transport()

    def _start_transport(self) -> None:
        s = self.settings
        # each transport counts its connections from 1: what a stopped one still says is not
        # the new one's
        self._epoch += 1
        epoch = self._epoch

        def tell(message: object) -> None:
            if epoch == self._epoch:
                self._tell(message)

        self.transport = Transport(
            self.target, hello=self._hello,
            on_event=lambda n, event: tell(_Event(n, event)),
            on_connected=lambda n, url: tell(_Connected(n, url)),
            on_disconnected=lambda n, ending: tell(_Disconnected(n, ending)),
            on_attempt_failed=lambda ending: tell(_Disconnected(0, ending)),
            on_standby=lambda n, url: tell(_Standby(n, url)),
            on_standby_failed=lambda ending: tell(_StandbyFailed(ending)), hold_audio=True,
            connect_timeout=s.connect_timeout, backoff=s.backoff,
            ping_interval=s.ping_interval, pong_timeout=s.pong_timeout,
            send_timeout=s.send_timeout, response_timeout=s.response_timeout,
            audio_backlog_ms=s.audio_backlog_ms)
        self.transport.start()

    def release(self) -> None:
        self._ticks.set()
        self._count(time.monotonic())
        self.budget.save()
        if self.transport is None:
            return
        # running tool calls are answered as cancelled while the connection still takes it
        self._apply(self.conversation.stop())
        self.transport.stop(timeout=0.5)
        self.transport = None

    def _tick_loop(self) -> None:
        while not self._ticks.wait(TICK):
            self._tell(_Tick())

    # -- from the transport's thread: hop onto the actor's --------------------------------

    def _hello(self) -> list[Mapping[str, Any]]:
        return [self.conversation.stamp(self.session_update)]

    def _tell(self, message: object) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # stopping: so is the transport
            self.actor_ref.tell(message)

    # -- messages -------------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        if isinstance(message, InputAudio):
            # before a wake nothing is queued: what was said then never leaves the device
            if self.transport is not None and self.open:
                self.transport.send_audio(message.pcm)
                commands = self.conversation.input_audio(len(message.pcm))
                if commands:
                    self._apply(commands)
        elif isinstance(message, _Event):
            if message.generation == self.generation:
                self._saw(message.event)
                if self.bus.wants(ServerEventReceived):
                    self.bus.publish(ServerEventReceived(MappingProxyType(message.event)))
                self._apply(self.conversation.server_event(message.event))
            elif (self._standby_gen and message.generation == self._standby_gen
                  and message.event.get("type") == "session.created"):
                # the new session is live, and says when it ends: ready to take over
                self._standby_expires = _expires_at(message.event)
                self._standby_created = True
                if self._safe(time.monotonic()):
                    self._switch()
        elif isinstance(message, _Tick):
            self._tick()
        elif isinstance(message, ToolCallEvent):
            self._apply(self.conversation.tool_result(message))
        elif isinstance(message, UserText):
            if not self.open:
                self._wake("text")
            if not self.open:
                logger.info("typed text not sent: %s", self._budget_detail())
                return
            self._spoke()
            self.turns += 1
            self._apply(self.conversation.sender_input(message))
        elif isinstance(message, (Commit, RequestResponse, Interrupt, StartTurn, EndTurn,
                                  CancelTurn)):
            if isinstance(message, StartTurn) and not self.open:
                self._wake("talk")  # a button pressed while asleep opens the conversation
            if isinstance(message, (StartTurn, EndTurn)):
                self._spoke()  # a held button is the user talking: not idle
            if isinstance(message, Interrupt) and self._answering(time.monotonic()):
                self.interruptions += 1
                self._playing_until = time.monotonic()  # the speaker is cleared
            if self.open:
                self._apply(self.conversation.sender_input(message))
            else:
                logger.debug("%s while asleep: nothing to do", type(message).__name__)
        elif isinstance(message, PlaybackStopped):
            self._apply(self.conversation.playback_stopped(message))
        elif isinstance(message, Wake):
            self._wake(message.source)
        elif isinstance(message, Sleep):
            self._sleep(f"asked to sleep ({message.source})")
        elif isinstance(message, _Connected):
            self._connected(message)
        elif isinstance(message, _Standby):
            self._standby(message)
        elif isinstance(message, _StandbyFailed):
            self._standby_asked = False
            self._standby_gen = 0
            self._standby_retry = time.monotonic() + STANDBY_RETRY
        elif isinstance(message, _Disconnected):
            self._disconnected(message)
        elif isinstance(message, UpdateSession):
            # settings change on the same connection; every later connection sends them too
            self.session_update = dict(message.event)
            if self.generation and self.transport is not None:
                self.transport.send(self.conversation.stamp(self.session_update),
                                    self.generation)
                logger.info("session settings updated")

    # -- on demand ------------------------------------------------------------------------

    def _wake(self, source: str) -> None:
        if self.open:
            self._spoke()
            return
        if self._over_budget:
            logger.info("not woken (%s): %s", source, self._budget_detail())
            self.bus.publish(ConnectionState(False, self._budget_detail(), expected=True))
            return
        logger.info("woken (%s): opening the conversation", source)
        self.conversation.forget_history()  # each wake is a new conversation
        self._open_conversation()

    def _sleep(self, why: str, *, log: bool = True) -> None:
        """Close the conversation: a close frame, no reconnect until the next wake."""
        if not self.open:
            return
        self.open = False
        if log:
            logger.info("closing the conversation: %s", why)
        self._count(time.monotonic())
        self.budget.save()
        transport, self.transport = self.transport, None
        self._epoch += 1
        self._apply(self.conversation.stop())
        if transport is not None:
            transport.stop(timeout=0.5)
        self.generation = 0
        self._user_speaking = False
        self._announced = False
        self._expires_at = self._session_began = None
        self._standby_gen = 0
        self._standby_asked = False
        if transport is not None:
            self._dropped_before += transport.dropped_audio_ms
        self._offline = why
        self._apply(self.conversation.closed(why))
        self._report(time.monotonic(), now=True)

    def _spoke(self) -> None:
        self._last_spoken = time.monotonic()

    def _saw(self, event: Mapping[str, Any]) -> None:
        """What the idle cut-off and the replay need from a server event (before the
        conversation's checks: a malformed event still shows the server is talking)."""
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            now = time.monotonic()
            delta = event.get("delta")
            size = len(delta) * 3 // 4 if isinstance(delta, str) else 0
            self._playing_until = max(self._playing_until, now) + size / BYTES_PER_SECOND
            self._last_spoken = now
        elif kind == "session.created":
            expires = _expires_at(event)
            if expires is not None:
                self._expires_at = expires
        elif kind == "input_audio_buffer.speech_started":
            now = time.monotonic()
            if self._answering(now):
                self.interruptions += 1
            # a barge-in clears the speaker (the server cancels the response itself)
            self._playing_until = min(self._playing_until, now)
            self._user_speaking = True
            self._spoke()
        elif kind in ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"):
            if kind == "input_audio_buffer.committed":
                self.turns += 1
            self._user_speaking = False
            self._spoke()
        elif kind in ("response.output_text.delta", "response.created"):
            self._spoke()

    def _answering(self, now: float) -> bool:
        """The assistant is answering: a response in progress, or its audio still playing."""
        return self.conversation.turn.response_active or now < self._playing_until

    def _idle_for(self, now: float) -> float:
        """Seconds in which neither side spoke and nothing was in flight; 0 while busy."""
        turn = self.conversation.turn
        if self._user_speaking or not turn.idle or self.conversation.has_pending_input:
            self._spoke()
            return 0.0
        return max(0.0, now - max(self._last_spoken, self._playing_until))

    def _tick(self) -> None:
        now = time.monotonic()
        self._count(now)
        self._report(now)
        if self._over_budget:
            if not self.budget.exhausted:
                self._new_day()
            return
        if self.budget.exhausted:
            self._budget_used_up()
            return
        self._budget_low()
        if self.on_demand and self.open and self._idle_for(now) >= self.policy.idle_close_s:
            self._sleep(f"nobody spoke for {self.policy.idle_close_s:g} s")
            return
        self._recycle(now)

    # -- rtd status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The session's part of `rtd status`: JSON-able values; times in seconds."""
        now = time.time()
        connected = bool(self.generation)
        left = self.budget.seconds_left()
        transport = self.transport
        return {
            "connected": connected,
            "session_age_s": round(now - self._session_began)
            if connected and self._session_began else None,
            "expires_in_s": max(0, round(self._expires_at - now))
            if connected and self._expires_at else None,
            "minutes_today": round(self.budget.minutes_today, 2),
            "minutes_left_today": None if left is None else round(left / 60, 2),
            "turns": self.turns,
            "interruptions": self.interruptions,
            "tool_calls": self.tool_calls,
            "reconnects": self.reconnects,
            "recycles": self.recycles,
            "dropped_audio_ms": self._dropped_before + (
                transport.dropped_audio_ms if transport is not None else 0),
            "start": self.policy.start,
            "offline": None if connected else (self._offline or "connecting"),
        }

    def _report(self, mono: float, *, now: bool = False) -> None:
        """Publish the status when it changed: at once for a connection's change, else at
        most every `REPORT_EVERY` seconds."""
        if not now and mono - self._reported_at < REPORT_EVERY:
            return
        fields = self.status()
        if fields == self._reported:
            return
        self._reported, self._reported_at = fields, mono
        self.bus.publish(StatusReport("session", fields))

    # -- the daily budget -----------------------------------------------------------------

    def _count(self, now: float) -> None:
        """Add the connected time since the last count to today's minutes."""
        if self.generation and self._counting_since:
            self.budget.add(now - self._counting_since)
        self._counting_since = now if self.generation else 0.0

    def _budget_detail(self) -> str:
        hours = self.budget.until_midnight() / 3600
        return (f"the daily limit of {self.budget.limit_minutes:g} connected minutes "
                f"(session.max_minutes_per_day) is used up; offline until local midnight, "
                f"in {hours:.1f} h")

    def _budget_low(self) -> None:
        """One line a day when a tenth (at least a minute) of the daily minutes is left."""
        left = self.budget.seconds_left()
        if (left is None or self._low_warned == self.budget.day
                or left > max(60.0, self.budget.limit_minutes * 6)):
            return
        self._low_warned = self.budget.day
        logger.info("%.1f of today's %g connected minutes (session.max_minutes_per_day) are "
                    "left", left / 60, self.budget.limit_minutes)

    def _budget_used_up(self) -> None:
        """Close (or do not open) the conversation until midnight: one log line."""
        self._over_budget = True
        detail = self._budget_detail()
        self._offline = detail
        logger.warning("%s", detail)
        if self.open:
            self._sleep(detail, log=False)
        else:
            self.bus.publish(ConnectionState(False, detail, expected=True))

    def _new_day(self) -> None:
        self._over_budget = False
        self._offline = "on demand: waiting for a wake" if self.on_demand else ""
        if self.on_demand:
            logger.info("a new day: the daily minutes are back; waiting for a wake")
            self.bus.publish(ConnectionState(False, "on demand: waiting for a wake",
                                             expected=True))
        else:
            logger.info("a new day: the daily minutes are back; connecting")
            self.conversation.forget_history()
            self._open_conversation()

    # -- connections and recycling ------------------------------------------------------

    def _connected(self, message: _Connected) -> None:
        """A connection is the current one (a new one, or a standby that took over when the
        old one ended): the replay goes first, then the held microphone audio."""
        self.generation = message.generation
        self._counting_since = time.monotonic()
        self._announced = True
        self._connections += 1
        if self._connections > 1:
            self.reconnects += 1
        began = time.time()
        expires = self._standby_expires if message.generation == self._standby_gen else None
        self._begin_session(began, expires)
        replay = self._replay()
        if self.transport is not None:
            self.transport.release(message.generation, replay)
        if replay:
            logger.info("replayed %d item(s) of the conversation into connection %d",
                        len(replay), message.generation)
        self._apply(self.conversation.connected(message.url))
        if self._woken:
            self._woken = False
            self._spoke()  # the idle cut-off counts from the connection
        self._offline = ""
        self._report(time.monotonic(), now=True)

    def _begin_session(self, began: float, expires: float | None) -> None:
        self._session_began = began
        self._expires_at = expires if expires is not None else (
            began + self.policy.default_session_s)
        self._standby_gen = 0
        self._standby_asked = False
        self._standby_expires = None
        self._standby_created = False

    def _replay(self) -> list[dict[str, Any]]:
        return self.conversation.replay(self.policy.replay_max_chars)

    def _safe(self, now: float) -> bool:
        """Between responses: nothing in flight, nobody speaking, nothing left to play."""
        turn = self.conversation.turn
        return (turn.idle and not self._user_speaking and now >= self._playing_until
                and not self.conversation.has_pending_input)

    def _last_moment(self) -> float:
        return min(LAST_MOMENT, self.policy.recycle_before_s / 2)

    def _recycle(self, now: float) -> None:
        """Open a standby connection when the session nears its end, at a pause (or at the
        last moment); switch to it at a pause, or when it waited long enough."""
        transport = self.transport
        if transport is None or not self.generation or self._expires_at is None:
            return
        left = self._expires_at - time.time()
        if self._standby_gen:
            ready = self._standby_created or now - self._standby_since >= CREATED_WAIT
            if ready and (self._safe(now) or now - self._standby_since >= SWITCH_WAIT
                          or left < self._last_moment() / 2):
                self._switch()
            return
        if self._standby_asked or now < self._standby_retry:
            return
        if left < self.policy.recycle_before_s and (
                self._safe(now) or left < self._last_moment()):
            logger.info("the session ends in %.0f s: opening its successor", max(0.0, left))
            self._standby_asked = transport.standby()

    def _standby(self, message: _Standby) -> None:
        """The successor is open; it takes over once its session.created came (it says when
        the new session ends), at a pause."""
        self._standby_asked = False
        self._standby_gen = message.generation
        self._standby_since = time.monotonic()
        self._standby_created = False

    def _switch(self) -> None:
        transport, generation = self.transport, self._standby_gen
        if transport is None or not generation:
            return
        replay = self._replay()
        if not transport.switch(generation, replay):
            return  # it took over by itself, or failed: its own report follows
        expires = self._standby_expires
        self.generation = generation
        self.recycles += 1
        self._begin_session(time.time(), expires)
        logger.info("recycled the session onto connection %d: %d item(s) replayed",
                    generation, len(replay))
        self._apply(self.conversation.connected(self.target.safe_url))
        self._report(time.monotonic(), now=True)

    def _disconnected(self, message: _Disconnected) -> None:
        ending = message.ending
        if message.generation and message.generation == self.generation:
            self._count(time.monotonic())
            self.budget.save()
            self.generation = 0
            self._expires_at = self._session_began = None
            self._user_speaking = False
            self._offline = f"reconnecting: {ending.reason}"
            self._apply(self.conversation.disconnected(ending.reason))
            self._report(time.monotonic(), now=True)
        elif not self._announced:
            # the first attempt failed: say so once, so readiness reports "retrying"
            self._announced = True
            self.bus.publish(ConnectionState(False, f"{ending.reason}; retrying"))
        if ending.fatal:
            self.bus.publish(Fatal(ending.reason, ending.exit_code or 1))

    def _apply(self, commands: list[Send | Publish]) -> None:
        """Carry out what the conversation decided: sends to the transport, messages out."""
        transport = self.transport
        for command in commands:
            if isinstance(command, Send):
                if transport is not None and self.generation:
                    transport.send(command.event, self.generation)
                continue
            message = command.message
            self.bus.publish(message)
            if isinstance(message, ToolCall):
                self.tool_calls += 1
            if isinstance(message, ErrorEvent) and message.source == "server":
                ending = classify(error_code=message.code)
                if ending.fatal:  # e.g. beta_api_shape_disabled: retrying cannot help
                    self.bus.publish(Fatal(f"{self.target.safe_url}: {ending.reason}",
                                           ending.exit_code or 1))
        if transport is not None and self.generation:
            turn = self.conversation.turn
            transport.response_due(self.generation, turn.response_active or
                                   turn.response_requested)


def _expires_at(event: Mapping[str, Any]) -> float | None:
    """``session.expires_at`` of a ``session.created`` (unix seconds), read from the raw JSON:
    the openai package's type omits it. None when absent or not a number."""
    session = event.get("session")
    value = session.get("expires_at") if isinstance(session, Mapping) else None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


