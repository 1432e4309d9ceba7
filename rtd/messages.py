"""The typed messages actors exchange through the supervisor's bus.

Immutable so one message can go to several actors without copies or races. Audio is always
24 kHz mono signed 16-bit little-endian PCM ("pcm24"), the realtime protocol's format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


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
class Transcript:
    """A finished line of the conversation, as text."""

    role: Literal["user", "assistant"]
    text: str
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
class ServerError:
    """An `error` event from the server; most leave the session open."""

    code: str
    message: str
    event_id: str | None = None
    """The client event that caused it, when the server says."""


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
