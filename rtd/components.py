"""Senders and receivers: what plugins subclass, and the events receivers get.

A **receiver** names the event kinds it wants (``events``) and gets each one in
``receive(event)``, in an actor of its own: a slow or failing receiver never stalls audio.
A **sender** produces input in ``run(ctx)``, on a thread of its own, through the
`SenderContext` it is given, until ``ctx.stopping`` is set.

Both declare their settings as a frozen dataclass (``Settings``) whose fields use
`rtd.setting`; rtd validates the component's ``[senders.NAME]`` / ``[receivers.NAME]`` table
against it and hands the instance to ``__init__``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

# The plugin-facing part of the one vocabulary (rtd.messages), re-exported here so a plugin
# imports everything it uses from one place.
from rtd.messages import (
    EVENT_TYPES,
    AudioChunk,
    AudioEvent,
    AudioTranscript,
    AudioTranscriptChunk,
    CancelTurn,
    Commit,
    ConnectionState,
    EndTurn,
    ErrorEvent,
    InputAudio,
    InputTranscript,
    InputTranscriptChunk,
    Interrupt,
    Mute,
    RequestResponse,
    ServerEventReceived,
    Sleep,
    StartTurn,
    State,
    StateEvent,
    TextChunk,
    TextEvent,
    ToolCallEvent,
    UserText,
    Wake,
)

logger = logging.getLogger(__name__)


# -- receivers --------------------------------------------------------------------------------


class Receiver:
    """Base of output components. Subclass, set ``name`` and ``events``, implement receive().

    ``receive`` may be ``async def``. An exception it raises is logged as one line and the
    receiver keeps getting events.
    """

    name: ClassVar[str] = ""
    """Unique component name: the NAME in ``[receivers.NAME]``."""
    events: ClassVar[tuple[str, ...]] = ()
    """Event kinds to receive, from `EVENT_TYPES`."""
    Settings: ClassVar[type | None] = None
    """Frozen dataclass of the component's settings (fields made with `rtd.setting`)."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    @classmethod
    def check(cls, settings: Any) -> Iterable[str]:
        """Problems with the validated ``settings`` on this machine, for `rtd check`.

        Each is a ``"key: what is wrong"`` string (a path that cannot be written, a device
        that is missing); rtd reports it as ``receivers.NAME.key: ...`` and runs without the
        receiver. Look, do not touch: create nothing, open nothing for long.
        """
        return ()

    def start(self) -> None:
        """Acquire resources (open files, sockets) before the first event."""

    def receive(self, event: Any) -> None | Awaitable[None]:
        """Handle one event of a kind listed in ``events``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Flush and release; called once at shutdown, and before a restart after a crash."""


# -- senders ----------------------------------------------------------------------------------


class SenderContext:
    """What a sender may do. Thread-safe; every method returns False once stopping."""

    def __init__(self, name: str, publish: Callable[[object], None]) -> None:
        self.name = name
        self._publish = publish
        self.stopping = threading.Event()
        """Set when rtd is stopping this sender: return from run() soon after."""
        self.log = logging.getLogger(f"rtd.sender.{name}")
        self._warned_after_stop = False

    def _send(self, message: object) -> bool:
        if self.stopping.is_set():
            if not self._warned_after_stop:
                self._warned_after_stop = True
                self.log.warning("sender %s sent %s after it was stopped; ignored (check "
                                 "ctx.stopping in its loop)", self.name, type(message).__name__)
            return False
        self._publish(message)
        return True

    def send_text(self, text: str, *, respond: bool = True,
                  response: dict[str, Any] | None = None) -> bool:
        """Add a user message; with ``respond`` the model answers it.

        ``response`` overrides the session for that answer (the GA ``response`` object of
        ``response.create``, e.g. ``{"tools": [...]}``).
        """
        return self._send(UserText(str(text), respond, response))

    def send_audio(self, pcm: bytes) -> bool:
        """Append 24 kHz mono int16 audio to the user's turn."""
        return self._send(InputAudio(bytes(pcm), self.name))

    def commit(self) -> bool:
        """End the user's spoken turn (when turn detection is "none")."""
        return self._send(Commit())

    def respond(self, response: dict[str, Any] | None = None) -> bool:
        """Ask the model for a response now (``response``: overrides, as in send_text)."""
        return self._send(RequestResponse(response))

    def interrupt(self) -> bool:
        """Cancel the assistant's answer and silence the speaker."""
        return self._send(Interrupt("sender"))

    def start_turn(self) -> bool:
        """Manual turns (turn detection "none"): the user starts talking (a button pressed)."""
        return self._send(StartTurn())

    def end_turn(self) -> bool:
        """Manual turns: the user stopped talking (the button released); the model answers."""
        return self._send(EndTurn())

    def cancel_turn(self) -> bool:
        """Manual turns: drop what the user said in this turn; no answer."""
        return self._send(CancelTurn())

    def wake(self) -> bool:
        """Open an on-demand conversation (a wake word, a button); a no-op when it is open."""
        return self._send(Wake(self.name))

    def sleep(self) -> bool:
        """Close an on-demand conversation now."""
        return self._send(Sleep(self.name))

    def mute(self, muted: bool = True) -> bool:
        """Stop (True) or resume (False) streaming the microphone."""
        return self._send(Mute(bool(muted)))

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until stopping or ``timeout`` seconds; True when stopping."""
        return self.stopping.wait(timeout)


class Sender:
    """Base of input components. Subclass, set ``name``, implement run(ctx).

    ``run`` may be ``async def``. It runs on its own thread until it returns or ``ctx.stopping``
    is set; a sender that raises is restarted with backoff.

    A sender that sets ``audio_rate`` also hears the microphone, through ``hear(pcm)``: a wake
    word, a local voice detector or a level meter needs the audio before anything is sent,
    whether or not a conversation is open.
    """

    name: ClassVar[str] = ""
    """Unique component name: the NAME in ``[senders.NAME]``."""
    Settings: ClassVar[type | None] = None
    """Frozen dataclass of the component's settings (fields made with `rtd.setting`)."""
    audio_rate: ClassVar[int | None] = None
    """Hz at which `hear` gets the microphone (mono int16), e.g. 16000; None: not at all."""

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    @classmethod
    def check(cls, settings: Any) -> Iterable[str]:
        """Problems with the validated ``settings`` on this machine, for `rtd check`.

        As `Receiver.check`: ``"key: what is wrong"`` strings, reported as
        ``senders.NAME.key: ...``; the sender does not run while any is reported.
        """
        return ()

    def run(self, ctx: SenderContext) -> None | Awaitable[None]:
        raise NotImplementedError

    def hear(self, pcm: bytes, ctx: SenderContext) -> None:
        """One block of microphone audio, at ``audio_rate`` Hz, mono int16 little-endian.

        ``ctx`` is the context run() gets, there from the first block on (run() may not have
        started yet). Called for senders with an ``audio_rate``, on the sender actor's thread
        (not run()'s),
        block after block in order, from the first block after start until the sender stops;
        not while the microphone is muted. Return quickly: while more than 200 blocks wait,
        new ones are dropped for this sender (a gap, never a stalled microphone). An exception
        costs that block (logged) and the sender keeps hearing.
        """

    def stop(self) -> None:
        """Unblock run() if it waits on something other than ctx.stopping (a socket, a pipe)."""


__all__ = [
    "EVENT_TYPES", "AudioChunk", "AudioEvent", "AudioTranscript", "AudioTranscriptChunk",
    "CancelTurn", "Commit", "ConnectionState", "EndTurn", "ErrorEvent", "InputTranscript",
    "InputTranscriptChunk", "Interrupt", "Mute", "Receiver", "RequestResponse", "Sender",
    "SenderContext", "ServerEventReceived", "Sleep", "StartTurn", "State", "StateEvent",
    "TextChunk", "TextEvent", "ToolCallEvent", "UserText", "Wake",
]
