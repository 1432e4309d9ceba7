"""The state actor: the one owner of what the assistant is doing, as a user sees it.

Every other actor reports facts (the connection, the turn, the server's speech events, the
speaker's playback, tool calls, mute, fatal errors); this actor alone turns them into one
`State` and publishes a `StateEvent` whenever it changes, so an LED, a display or `rtd status`
never has to reassemble it and never disagrees with another reader.

The state is derived from the facts by a fixed order of precedence (see `derive` and the table
in docs/states.md), rather than by transitions written per event: a late or repeated message
can then never leave a state behind that the facts no longer support. ``speaking`` lasts until
the speaker played the last sample (`PlaybackStopped`), not until the server's
``response.done``, which comes long before on a fast server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rtd.messages import (
    AudioTranscriptChunk,
    CancelTurn,
    ConnectionState,
    EndTurn,
    ErrorEvent,
    Fatal,
    Mute,
    OutputAudioDone,
    PlaybackStarted,
    PlaybackStopped,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    StartTurn,
    State,
    StateEvent,
    TextChunk,
    ToolCall,
    ToolCallEvent,
    TurnState,
)
from rtd.supervisor import Bus, RtdActor

logger = logging.getLogger(__name__)

MAX_TRACKED = 64
"""Items playing or tool calls running that are remembered; a lost report cannot grow it."""


@dataclass
class Facts:
    """What the state is derived from; each field is set by one kind of message."""

    connection: str = "never"
    """"never" (no connection yet), "up", "closed" (asked for: no reconnect follows), "lost"."""
    fatal: str | None = None
    """Why the daemon is stopping on an error it cannot recover from."""
    turn: TurnState = field(default_factory=TurnState)
    user_speaking: bool = False
    """The server heard speech start (or a manual turn started) and not yet end."""
    awaiting: bool = False
    """The user's turn ended and its answer has not started yet (no TurnState says so yet)."""
    playing: dict[str, None] = field(default_factory=dict)
    """Assistant items between PlaybackStarted and PlaybackStopped."""
    queued: dict[str, None] = field(default_factory=dict)
    """Items the server sent in full (OutputAudioDone) that the speaker has not started: the
    answer is on its way to the speaker, so the turn is not over."""
    ended: dict[str, None] = field(default_factory=dict)
    """Items the speaker reported stopped: a late OutputAudioDone of a cut item queues
    nothing."""
    streaming: bool = False
    """No speaker: the active response is producing text or a transcript."""
    tools: dict[str, str] = field(default_factory=dict)
    """Tool calls handed out and not answered: call id -> tool name."""
    error: str | None = None
    """The last error, shown while nothing else is going on; the next activity clears it."""
    muted: bool = False


def derive(f: Facts) -> State:
    """The state the facts support, by precedence (the first that holds wins)."""
    if f.fatal is not None:
        return "error"
    if f.connection in ("never", "closed"):
        return "idle"
    if f.connection == "lost":
        return "reconnecting"
    if f.playing:
        return "speaking"
    if f.user_speaking:
        return "user_speaking"
    if f.tools or f.turn.tool_calls_pending:
        return "tool_running"
    if f.streaming:
        return "speaking"
    if (f.awaiting or f.queued or f.turn.response_active or f.turn.response_requested
            or f.turn.response_owed):
        return "thinking"
    if f.error is not None:
        return "error"
    return "listening"


class StateMachine:
    """Facts in, `StateEvent` out when the state (or mute) changed. No threads, no bus.

    ``speaker`` says whether a speaker plays the assistant's audio; without one, ``speaking``
    is when the active response streams text or a transcript.
    """

    def __init__(self, *, speaker: bool = True) -> None:
        self.speaker = speaker
        self.facts = Facts()
        self.state: State = "idle"

    def feed(self, message: object) -> StateEvent | None:
        why = self._apply(message)
        if why is None:
            return None
        state, muted = derive(self.facts), self.facts.muted
        if state == self.state and why != "mute":
            return None
        previous, self.state = self.state, state
        if why == "mute":
            why = "microphone muted" if muted else "microphone unmuted"
        elif state == "error" and self.facts.fatal is None and self.facts.error is not None:
            why = self.facts.error  # the error itself, not the last fact that uncovered it
        return StateEvent(state, why, previous, muted)

    def _apply(self, m: object) -> str | None:
        """Update the facts; why they changed (the event's detail), or None if they did not."""
        f = self.facts
        if isinstance(m, ConnectionState):
            if m.connected:
                f.connection, f.error = "up", None
                return f"connected to {m.detail}" if m.detail else "connected"
            f.connection = "closed" if m.expected else "lost"
            f.user_speaking = f.awaiting = f.streaming = False
            f.tools.clear()
            f.queued.clear()
            return (f"conversation closed: {m.detail}" if f.connection == "closed"
                    else f"connection lost: {m.detail}")
        if isinstance(m, Fatal):
            f.fatal = m.reason
            return f"stopping: {m.reason}"
        if isinstance(m, TurnState):
            busy = m.response_active or m.response_requested or m.response_owed
            f.turn = m
            if busy or m.tool_calls_pending:
                f.awaiting, f.error = False, None
            if not m.response_active:
                f.streaming = False
            return "the response started" if m.response_active else (
                "waiting for the answer" if busy else "the response ended")
        if isinstance(m, SpeechStarted):
            f.user_speaking, f.awaiting, f.error = True, False, None
            f.queued.clear()  # whatever was on its way is cut or was lost
            return "the user started speaking"
        if isinstance(m, SpeechStopped):
            f.user_speaking = False
            f.awaiting = m.answered
            return ("the user stopped speaking" if m.answered
                    else "too short to interrupt the assistant")
        if isinstance(m, StartTurn):
            f.user_speaking, f.awaiting, f.error = True, False, None
            return "the user's turn started"
        if isinstance(m, EndTurn):
            if not f.user_speaking:
                return None
            f.user_speaking, f.awaiting = False, True
            return "the user's turn ended"
        if isinstance(m, CancelTurn):
            f.user_speaking = f.awaiting = False
            return "the user's turn was cancelled"
        if isinstance(m, OutputAudioDone):
            if not self.speaker or m.item_id in f.ended or m.item_id in f.playing:
                return None
            _track(f.queued, m.item_id, None)
            return "the answer is on its way to the speaker"
        if isinstance(m, PlaybackStarted):
            f.queued.pop(m.item_id, None)
            _track(f.playing, m.item_id, None)
            return f"playing {m.item_id}"
        if isinstance(m, PlaybackStopped):
            _track(f.ended, m.item_id, None)
            queued = f.queued.pop(m.item_id, ()) != ()
            if f.playing.pop(m.item_id, ()) == ():
                return "nothing of it was played" if queued else None
            return (f"{m.item_id} interrupted after {m.played_ms} ms" if m.interrupted
                    else f"{m.item_id} played to its end")
        if isinstance(m, ToolCall):
            _track(f.tools, m.call_id, m.name)
            return f"running {m.name}"
        if isinstance(m, ToolCallEvent):
            if f.tools.pop(m.call_id, None) is None:
                return None
            return f"{m.name} answered"
        if isinstance(m, (TextChunk, AudioTranscriptChunk)):
            if self.speaker or not f.turn.response_active or f.streaming:
                return None
            f.streaming = True
            return "the answer is streaming"
        if isinstance(m, ResponseDone):
            f.streaming = False
            if m.status == "failed":
                f.error, f.awaiting = "response failed", False
                return "the response failed"
            return None
        if isinstance(m, ErrorEvent):
            if m.source != "server":
                return None
            f.error, f.awaiting = m.code, False
            return f"server error {m.code}"
        if isinstance(m, Mute):
            if m.muted == f.muted:
                return None
            f.muted = m.muted
            return "mute"
        return None


def _track(table: dict[str, Any], key: str, value: Any) -> None:
    table[key] = value
    while len(table) > MAX_TRACKED:
        del table[next(iter(table))]


class StateActor(RtdActor):
    """Publishes the one `StateEvent` stream from the facts other actors report."""

    name = "state"
    inputs: tuple[type, ...] = (
        ConnectionState, Fatal, TurnState, SpeechStarted, SpeechStopped, StartTurn, EndTurn,
        CancelTurn, OutputAudioDone, PlaybackStarted, PlaybackStopped, ToolCall, ToolCallEvent,
        ResponseDone, ErrorEvent, Mute)

    @classmethod
    def receives_for(cls, speaker: bool) -> tuple[type, ...]:
        """Without a speaker, the streamed text says when the assistant speaks."""
        return cls.inputs if speaker else (*cls.inputs, TextChunk, AudioTranscriptChunk)

    def __init__(self, bus: Bus, on_crash: Callable[[str, BaseException], None], *,
                 speaker: bool = True) -> None:
        super().__init__(bus, on_crash)
        self.machine = StateMachine(speaker=speaker)

    def setup(self) -> None:
        # the first event: nothing is open yet (`rtd status` has a state from the start)
        self.bus.publish(StateEvent(self.machine.state, "rtd is starting", None,
                                    self.machine.facts.muted))

    def handle(self, message: Any) -> Any:
        event = self.machine.feed(message)
        if event is not None:
            logger.debug("state %s -> %s (%s)", event.previous, event.state, event.detail)
            self.bus.publish(event)
