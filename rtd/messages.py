"""Every message rtd's actors exchange on the bus: one vocabulary, each payload published once.

Immutable so one message can go to several actors without copies or races. Audio is always
24 kHz mono signed 16-bit little-endian PCM ("pcm24"), the realtime protocol's format.

**What plugins see** (re-exported by `rtd.components`, documented in docs/plugins.md): the
event types in `EVENT_TYPES`, which receivers name by their ``kind``, and the sender messages
(`UserText`, `Commit`, `RequestResponse`, `Interrupt`, `Mute`, `StartTurn`, `EndTurn`,
`CancelTurn`, `Wake`, `Sleep`) that `SenderContext` sends. The rest (`InputAudio`,
`OutputAudioDone`, `PlaybackStarted`, `PlaybackStopped`, `StatusReport`, `ToolCall`,
`ConnectionState`, `SpeechStarted`, `SpeechStopped`, `ResponseStarted`, `ResponseDone`,
`TurnState`, `Fatal`) is the runtime's own and may change between releases.

Streaming types are marked ``lossy``: a receiver that falls behind loses some of them rather
than the daemon's memory. The core actors that take the same messages (the speaker takes
`AudioChunk`) subscribe losslessly; see `rtd.supervisor.Bus`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

# -- the runtime's own ------------------------------------------------------------------------


@dataclass(frozen=True)
class InputAudio:
    """Microphone audio on its way to the server, or a sender's (`SenderContext.send_audio`).

    Lossy for the senders that hear the microphone (`Sender.audio_rate`): one that falls behind
    misses blocks; the session subscribes losslessly.
    """

    lossy: ClassVar[bool] = True
    pcm: bytes
    """pcm24: 24 kHz mono int16 little-endian."""
    source: str = "microphone"
    """"microphone" for the audio input actor's blocks, else the sending sender's name: a
    sender hears the microphone only, never its own or another sender's audio."""


@dataclass(frozen=True)
class OutputAudioDone:
    """The server sent all audio of an item; the player may flush its resampler."""

    item_id: str


@dataclass(frozen=True)
class PlaybackStarted:
    """The first sample of an assistant item left for the speaker."""

    item_id: str


@dataclass(frozen=True)
class PlaybackStopped:
    """An assistant item ended at the speaker: played to its end, or cut by an `Interrupt`."""

    item_id: str
    played_ms: int
    """Milliseconds of the item the listener heard: counted where samples leave for the
    device, less the device's reported output latency, capped at ``received_ms``."""
    received_ms: int
    """Milliseconds of the item's audio that reached the player."""
    interrupted: bool
    """True when an `Interrupt` cut it; False when it played to its end."""


@dataclass(frozen=True)
class StatusReport:
    """One actor's part of `rtd status`: the latest report per ``source`` wins."""

    source: str
    """Who reports: "session", "audio_input", ..."""
    fields: Mapping[str, Any]
    """JSON-able values (numbers, strings, booleans, None) by status key."""


@dataclass(frozen=True)
class ToolCall:
    """The model asked for a tool, and the response that asked completed."""

    call_id: str
    name: str
    arguments: str
    """The arguments as the JSON text the model produced."""


@dataclass(frozen=True)
class ConnectionState:
    """The session connected or lost its connection (receivers: the ``connection`` kind)."""

    kind: ClassVar[str] = "connection"
    connected: bool
    detail: str
    """Human-readable: the URL (never credentials) or why it closed."""
    expected: bool = False
    """The close was asked for (`Sleep`, the idle cut-off, the daily budget): no reconnect
    follows, so the conversation is idle rather than reconnecting."""


@dataclass(frozen=True)
class SpeechStarted:
    """The server heard the user start speaking (``input_audio_buffer.speech_started``)."""

    item_id: str
    """The user item the speech will become once committed."""
    audio_start_ms: int
    """Milliseconds into the connection's input audio where the speech began."""


@dataclass(frozen=True)
class SpeechStopped:
    """The server heard the user stop speaking (``input_audio_buffer.speech_stopped``)."""

    item_id: str
    audio_end_ms: int
    """Milliseconds into the connection's input audio where the speech ended."""
    answered: bool = True
    """False when the speech was too short to interrupt the assistant (``[audio]
    barge_in_min_ms``): it is dropped, and no answer follows."""


@dataclass(frozen=True)
class ResponseStarted:
    """The server began a response (asked for by rtd, or by its own turn detection)."""

    response_id: str


@dataclass(frozen=True)
class ResponseDone:
    """A response finished, with the server's status (completed, cancelled, ...)."""

    response_id: str
    status: str


@dataclass(frozen=True)
class TurnState:
    """Where the turn stands, as the conversation (its one owner) sees it.

    Published by the session whenever a field changes, so whoever waits for an answer (the
    decorator API) or shows progress (`rtd status`) reads it instead of mirroring the
    protocol's bookkeeping.
    """

    connected: bool = False
    """A connection to the server is up."""
    response_active: bool = False
    """The server is producing a response (``response.created`` seen, its end not yet)."""
    response_requested: bool = False
    """rtd sent ``response.create`` and the server has not answered it yet."""
    response_owed: bool = False
    """A ``response.create`` rtd will send once no response is active or requested and no
    tool call is pending."""
    tool_calls_pending: int = 0
    """Tool calls handed to tools whose results have not come back."""
    responses_done: int = 0
    """Responses ended since start (completed, cancelled, failed, or lost with a connection):
    a waiter takes it before sending and is answered once it grew and the turn is idle."""

    @property
    def idle(self) -> bool:
        """Nothing in flight: no response active, requested or owed, no tool call pending."""
        return not (self.response_active or self.response_requested or self.response_owed
                    or self.tool_calls_pending)


@dataclass(frozen=True)
class Fatal:
    """Something the daemon cannot recover from by itself; it stops with this exit code."""

    reason: str
    exit_code: int = 1
    """One of `rtd.exitcodes`."""


# -- events receivers subscribe to -----------------------------------------------------------


@dataclass(frozen=True)
class AudioEvent:
    """The assistant's whole spoken answer for one item, once the server sent all of it."""

    kind: ClassVar[str] = "audio"
    item_id: str
    pcm: bytes
    """24 kHz mono int16 little-endian."""


@dataclass(frozen=True)
class AudioChunk:
    """A piece of the assistant's speech as it streams in: the speaker plays these."""

    kind: ClassVar[str] = "audio_chunk"
    lossy: ClassVar[bool] = True
    item_id: str
    pcm: bytes
    """24 kHz mono int16 little-endian."""


@dataclass(frozen=True)
class TextEvent:
    """The assistant's whole text answer for one item (session.output = "text")."""

    kind: ClassVar[str] = "text"
    item_id: str
    text: str


@dataclass(frozen=True)
class TextChunk:
    """A piece of the assistant's text answer as it streams in."""

    kind: ClassVar[str] = "text_chunk"
    lossy: ClassVar[bool] = True
    item_id: str
    text: str


@dataclass(frozen=True)
class AudioTranscript:
    """The words of the assistant's whole spoken answer for one item."""

    kind: ClassVar[str] = "audio_transcript"
    item_id: str
    text: str
    """What the user heard: when the user interrupted the assistant, the server's transcript
    of the part that was played (the rest was never heard)."""
    interrupted: bool = False
    """The user cut this answer short (barge-in, an interrupt button, a new push-to-talk
    turn): ``text`` is the part that was played."""


@dataclass(frozen=True)
class AudioTranscriptChunk:
    """A piece of the transcript of the assistant's speech as it streams in."""

    kind: ClassVar[str] = "audio_transcript_chunk"
    lossy: ClassVar[bool] = True
    item_id: str
    text: str


@dataclass(frozen=True)
class InputTranscript:
    """What the user said in one turn, as transcribed by the server."""

    kind: ClassVar[str] = "input_transcript"
    item_id: str
    text: str


@dataclass(frozen=True)
class InputTranscriptChunk:
    """A piece of the transcript of the user's speech as it streams in."""

    kind: ClassVar[str] = "input_transcript_chunk"
    lossy: ClassVar[bool] = True
    item_id: str
    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """A tool's answer: the session sends ``output`` back to the model, receivers show it.

    Published once, after the tool returned, failed or timed out.
    """

    kind: ClassVar[str] = "tool_call"
    call_id: str
    name: str
    arguments: str
    """The arguments as the JSON text the model produced."""
    output: str
    """What was sent back to the model."""

    @property
    def summary(self) -> str:
        """'clock({}) -> {"time": ...}': the call as logs, consoles and transcripts show it."""
        return f"{self.name}({self.arguments or '{}'}) -> {self.output}"


State = Literal["idle", "listening", "user_speaking", "thinking", "tool_running", "speaking",
                "reconnecting", "error"]
"""What the box is doing, as a light or a status line shows it. ``idle``: no conversation is
open (an on-demand conversation asleep, the daily budget used up, before the first
connection)."""

STATES: tuple[State, ...] = ("idle", "listening", "user_speaking", "thinking", "tool_running",
                             "speaking", "reconnecting", "error")


@dataclass(frozen=True)
class StateEvent:
    """The conversation changed state (see `State`)."""

    kind: ClassVar[str] = "state"
    state: State
    detail: str = ""
    """Why it changed, in a few words ("server heard speech", "reply played")."""
    previous: State | None = None
    """The state before; None for the first event."""
    muted: bool = False
    """The microphone is muted (no audio goes to the server), whatever the state."""


@dataclass(frozen=True)
class ErrorEvent:
    """Something went wrong that the user may want to know about; the daemon goes on."""

    kind: ClassVar[str] = "error"
    source: str
    """Where: "server", "connection", "tool", or a component's name."""
    code: str
    message: str


@dataclass(frozen=True)
class ServerEventReceived:
    """One event from the server, as it came (for scripts that read the wire's own events,
    such as Mirascope's chunk receivers); published only while some receiver subscribes."""

    kind: ClassVar[str] = "server_event"
    lossy: ClassVar[bool] = True
    event: Mapping[str, Any]
    """The parsed JSON object, GA-shaped (a read-only view: do not keep it changing)."""


EVENT_TYPES: dict[str, type] = {t.kind: t for t in (
    AudioEvent, AudioChunk, TextEvent, TextChunk, AudioTranscript, AudioTranscriptChunk,
    InputTranscript, InputTranscriptChunk, ToolCallEvent, StateEvent, ErrorEvent,
    ServerEventReceived, ConnectionState)}
"""Every event kind a receiver may name in ``events``, with its type."""


# -- what senders send ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UserText:
    """A typed user message for the conversation."""

    text: str
    respond: bool = True
    """Ask the model to answer right away."""
    response: dict | None = None
    """Overrides for that answer: the GA ``response`` of ``response.create`` (e.g.
    ``{"tools": [...]}``, tools offered for this response only); None: the session's."""


@dataclass(frozen=True)
class Commit:
    """End the user's turn: commit the input audio buffer (manual turn taking)."""


@dataclass(frozen=True)
class RequestResponse:
    """Ask the model to respond now."""

    response: dict | None = None
    """Overrides for this response, as `UserText.response`; None: the session's settings."""


@dataclass(frozen=True)
class Interrupt:
    """Stop the assistant: cancel the response and silence the speaker within one block."""

    source: str = "sender"
    """Who asked: "sender" (a button, a script), "barge_in" (the user spoke over the
    assistant), "turn" (a manual turn started)."""


@dataclass(frozen=True)
class StartTurn:
    """Manual turns (turn detection "none"): the user starts talking; clear the input buffer
    (and stop the assistant if it is speaking)."""


@dataclass(frozen=True)
class EndTurn:
    """Manual turns: the user stopped talking; commit the input audio and ask for a response."""


@dataclass(frozen=True)
class CancelTurn:
    """Manual turns: forget what the user said in this turn; no response."""


@dataclass(frozen=True)
class Wake:
    """Open an on-demand conversation (``[session] start = "on_demand"``); a no-op when open."""

    source: str = "sender"
    """Who asked: "control" (`rtd wake`), a sender's name, "text"."""


@dataclass(frozen=True)
class Sleep:
    """Close an on-demand conversation now (a close frame, no reconnect)."""

    source: str = "sender"


@dataclass(frozen=True)
class Mute:
    """Stop (or resume) sending the microphone to the server."""

    muted: bool


@dataclass(frozen=True)
class UpdateSession:
    """New session settings (a reload): sent as `session.update` on the open connection and
    used for every later one."""

    event: dict
    """The whole ``session.update`` client event, GA shape."""
