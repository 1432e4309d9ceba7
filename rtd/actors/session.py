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
from typing import Any

import pykka

from rtd.conversation import Conversation, Publish, Send
from rtd.messages import (
    Commit,
    ConnectionState,
    ErrorEvent,
    Fatal,
    InputAudio,
    Interrupt,
    RequestResponse,
    Sleep,
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


TICK = 0.25
"""Seconds between the actor's own checks (idle cut-off, session age): the coarseness of
those deadlines."""
BYTES_PER_SECOND = 48000
"""pcm24 bytes per second of assistant audio: how long what was received takes to play."""


@dataclass(frozen=True)
class _Tick:
    pass


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
                UpdateSession, Wake, Sleep)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 target: Endpoint, session_update: Mapping[str, Any], *,
                 transport: TransportSettings | None = None,
                 policy: SessionPolicy | None = None) -> None:
        super().__init__(bus, on_crash)
        self.target = target
        self.session_update = dict(session_update)
        self.settings = transport or TransportSettings()
        self.policy = policy or SessionPolicy()
        self.conversation = Conversation(wants=bus.wants)
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
        self._ticks = threading.Event()
        self._ticker: threading.Thread | None = None

    @property
    def on_demand(self) -> bool:
        return self.policy.start == "on_demand"

    def setup(self) -> None:
        self._ticker = threading.Thread(target=self._tick_loop, name="rtd-session-tick",
                                        daemon=True)
        self._ticker.start()
        if self.on_demand:
            logger.info("on demand: not connecting until a wake (rtd wake, a sender, or text)")
            self.bus.publish(ConnectionState(False, "on demand: waiting for a wake",
                                             expected=True))
            return
        self._open_conversation()

    def _open_conversation(self) -> None:
        self.open = True
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
            connect_timeout=s.connect_timeout, backoff=s.backoff,
            ping_interval=s.ping_interval, pong_timeout=s.pong_timeout,
            send_timeout=s.send_timeout, response_timeout=s.response_timeout,
            audio_backlog_ms=s.audio_backlog_ms)
        self.transport.start()

    def release(self) -> None:
        self._ticks.set()
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
        elif isinstance(message, _Event):
            if message.generation == self.generation:
                self._heard(message.event)
                self._apply(self.conversation.server_event(message.event))
        elif isinstance(message, _Tick):
            self._tick()
        elif isinstance(message, ToolCallEvent):
            self._apply(self.conversation.tool_result(message))
        elif isinstance(message, UserText):
            if not self.open:
                self._wake("text")
            self._spoke()
            self._apply(self.conversation.sender_input(message))
        elif isinstance(message, (Commit, RequestResponse, Interrupt)):
            if self.open:
                self._apply(self.conversation.sender_input(message))
            else:
                logger.debug("%s while asleep: nothing to do", type(message).__name__)
        elif isinstance(message, Wake):
            self._wake(message.source)
        elif isinstance(message, Sleep):
            self._sleep(f"asked to sleep ({message.source})")
        elif isinstance(message, _Connected):
            self.generation = message.generation
            first = not self._announced
            self._announced = True
            self._apply(self.conversation.connected(message.url))
            if self.on_demand and first:
                self._spoke()  # the idle cut-off counts from the connection
                self._apply(self.conversation.awake("the conversation is open"))
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
        logger.info("woken (%s): opening the conversation", source)
        self.conversation.forget_history()  # each wake is a new conversation
        self._open_conversation()

    def _sleep(self, why: str) -> None:
        """Close the conversation: a close frame, no reconnect until the next wake."""
        if not self.open:
            return
        self.open = False
        logger.info("closing the conversation: %s", why)
        transport, self.transport = self.transport, None
        self._epoch += 1
        self._apply(self.conversation.stop())
        if transport is not None:
            transport.stop(timeout=0.5)
        self.generation = 0
        self._user_speaking = False
        self._announced = False
        self._apply(self.conversation.closed(why))

    def _spoke(self) -> None:
        self._last_spoken = time.monotonic()

    def _heard(self, event: Mapping[str, Any]) -> None:
        """What the idle cut-off needs from a server event (before the conversation's checks:
        a malformed event still shows the server is talking)."""
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            now = time.monotonic()
            delta = event.get("delta")
            size = len(delta) * 3 // 4 if isinstance(delta, str) else 0
            self._playing_until = max(self._playing_until, now) + size / BYTES_PER_SECOND
            self._last_spoken = now
        elif kind == "input_audio_buffer.speech_started":
            self._user_speaking = True
            self._spoke()
        elif kind in ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed"):
            self._user_speaking = False
            self._spoke()
        elif kind in ("response.output_text.delta", "response.created"):
            self._spoke()

    def _idle_for(self, now: float) -> float:
        """Seconds in which neither side spoke and nothing was in flight; 0 while busy."""
        turn = self.conversation.turn
        if self._user_speaking or not turn.idle or self.conversation.has_pending_input:
            self._spoke()
            return 0.0
        return max(0.0, now - max(self._last_spoken, self._playing_until))

    def _tick(self) -> None:
        now = time.monotonic()
        if self.on_demand and self.open and self._idle_for(now) >= self.policy.idle_close_s:
            self._sleep(f"nobody spoke for {self.policy.idle_close_s:g} s")

    def _disconnected(self, message: _Disconnected) -> None:
        ending = message.ending
        if message.generation and message.generation == self.generation:
            self.generation = 0
            self._apply(self.conversation.disconnected(ending.reason))
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
            if isinstance(message, ErrorEvent) and message.source == "server":
                ending = classify(error_code=message.code)
                if ending.fatal:  # e.g. beta_api_shape_disabled: retrying cannot help
                    self.bus.publish(Fatal(f"{self.target.safe_url}: {ending.reason}",
                                           ending.exit_code or 1))
        if transport is not None and self.generation:
            turn = self.conversation.turn
            transport.response_due(self.generation, turn.response_active or
                                   turn.response_requested)
