"""The typed messages the core actors exchange through the supervisor's bus.

What receivers and senders see and send lives in `rtd.components`.

Immutable so one message can go to several actors without copies or races. Audio is always
24 kHz mono signed 16-bit little-endian PCM ("pcm24"), the realtime protocol's format.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputAudio:
    """Microphone audio on its way to the server."""

    pcm: bytes
    """pcm24: 24 kHz mono int16 little-endian."""


@dataclass(frozen=True)
class OutputAudio:
    """A piece of the assistant's speech to play."""

    item_id: str
    """The assistant item the audio belongs to (for truncation after barge-in)."""
    pcm: bytes
    """pcm24: 24 kHz mono int16 little-endian."""


@dataclass(frozen=True)
class OutputAudioDone:
    """The server sent all audio of an item; the player may flush its resampler."""

    item_id: str


@dataclass(frozen=True)
class ToolCall:
    """The model asked for a tool, and the response that asked completed."""

    call_id: str
    name: str
    arguments: str
    """The arguments as the JSON text the model produced."""


@dataclass(frozen=True)
class ToolResult:
    """A tool's answer, to go back to the model as `function_call_output`."""

    call_id: str
    name: str
    output: str
    """What the model reads: JSON text or plain text."""


@dataclass(frozen=True)
class ConnectionState:
    """The session connected or lost its connection."""

    connected: bool
    detail: str
    """Human-readable: the URL (never credentials) or why it closed."""


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
class Fatal:
    """Something the daemon cannot recover from by itself; it stops with this exit code."""

    reason: str
    exit_code: int = 1


@dataclass(frozen=True)
class UpdateSession:
    """New session settings (a reload): sent as `session.update` on the open connection and
    used for every later one."""

    event: dict
    """The whole ``session.update`` client event, GA shape."""
