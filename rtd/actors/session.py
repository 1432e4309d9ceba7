"""The session actor: glue between the transport, the conversation and the bus.

The transport (`rtd.protocol.transport`) owns the socket: connecting, backoff, the bounded
outbound queue, deadlines and pings. The conversation (`rtd.conversation`) owns the turn:
server events in, client events and messages out. This actor only carries messages between
them on one thread, so neither needs a lock, and decides one thing itself: which endings and
server errors end the daemon (through `rtd.protocol.endings`, the one table of them).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pykka

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
    StartTurn,
    ToolCallEvent,
    UpdateSession,
    UserText,
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
                UpdateSession, StartTurn, EndTurn, CancelTurn, PlaybackStopped)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None],
                 target: Endpoint, session_update: Mapping[str, Any], *,
                 transport: TransportSettings | None = None, playback: bool = False,
                 barge_in_min_ms: int = 0) -> None:
        """``playback``: a speaker plays the assistant's audio and reports what it played
        (`PlaybackStopped`); ``barge_in_min_ms``: see `Conversation`."""
        super().__init__(bus, on_crash)
        self.target = target
        self.session_update = dict(session_update)
        self.settings = transport or TransportSettings()
        self.conversation = Conversation(wants=bus.wants, playback=playback,
                                         barge_in_min_ms=barge_in_min_ms)
        self.transport: Transport | None = None
        self.generation = 0
        """The connection the conversation is on; 0 while there is none."""
        self._announced = False

    def setup(self) -> None:
        s = self.settings
        self.transport = Transport(
            self.target, hello=self._hello, on_event=self._tell_event,
            on_connected=lambda n, url: self._tell(_Connected(n, url)),
            on_disconnected=lambda n, ending: self._tell(_Disconnected(n, ending)),
            on_attempt_failed=lambda ending: self._tell(_Disconnected(0, ending)),
            connect_timeout=s.connect_timeout, backoff=s.backoff,
            ping_interval=s.ping_interval, pong_timeout=s.pong_timeout,
            send_timeout=s.send_timeout, response_timeout=s.response_timeout,
            audio_backlog_ms=s.audio_backlog_ms)
        self.transport.start()

    def release(self) -> None:
        if self.transport is None:
            return
        # running tool calls are answered as cancelled while the connection still takes it
        self._apply(self.conversation.stop())
        self.transport.stop(timeout=0.5)
        self.transport = None

    # -- from the transport's thread: hop onto the actor's --------------------------------

    def _hello(self) -> list[Mapping[str, Any]]:
        return [self.conversation.stamp(self.session_update)]

    def _tell_event(self, generation: int, event: dict[str, Any]) -> None:
        self._tell(_Event(generation, event))

    def _tell(self, message: object) -> None:
        with contextlib.suppress(pykka.ActorDeadError):  # stopping: so is the transport
            self.actor_ref.tell(message)

    # -- messages -------------------------------------------------------------------------

    def handle(self, message: Any) -> Any:
        if isinstance(message, InputAudio):
            if self.transport is not None:
                self.transport.send_audio(message.pcm)
                commands = self.conversation.input_audio(len(message.pcm))
                if commands:
                    self._apply(commands)
        elif isinstance(message, _Event):
            if message.generation == self.generation:
                if self.bus.wants(ServerEventReceived):
                    self.bus.publish(ServerEventReceived(MappingProxyType(message.event)))
                self._apply(self.conversation.server_event(message.event))
        elif isinstance(message, ToolCallEvent):
            self._apply(self.conversation.tool_result(message))
        elif isinstance(message, (UserText, Commit, RequestResponse, Interrupt, StartTurn,
                                  EndTurn, CancelTurn)):
            self._apply(self.conversation.sender_input(message))
        elif isinstance(message, PlaybackStopped):
            self._apply(self.conversation.playback_stopped(message))
        elif isinstance(message, _Connected):
            self.generation = message.generation
            self._announced = True
            self._apply(self.conversation.connected(message.url))
        elif isinstance(message, _Disconnected):
            self._disconnected(message)
        elif isinstance(message, UpdateSession):
            # settings change on the same connection; every later connection sends them too
            self.session_update = dict(message.event)
            if self.generation and self.transport is not None:
                self.transport.send(self.conversation.stamp(self.session_update),
                                    self.generation)
                logger.info("session settings updated")

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
