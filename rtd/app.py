"""`rtd.Realtime`: a realtime voice app in one script, with decorators.

    import rtd

    app = rtd.Realtime(instructions="You are terse.", output="text")

    @app.tool
    def lights(room: str, on: bool) -> str:
        \"\"\"Switch the lights in a room.\"\"\"
        return f"{room} lights {'on' if on else 'off'}"

    @app.receiver("text")
    def show(text: str) -> None:
        print("assistant:", text)

    questions = iter(["Turn on the kitchen lights.", "Thanks!"])

    @app.sender
    def ask() -> str:
        question = next(questions, None)
        if question is None:
            raise rtd.Stop      # this sender is done: run() returns after the last answer
        return question

    app.run()

This is not a second runtime: `run()` builds a `Config`, loads the decorated functions as an
in-process plugin (`rtd.plugins.load(extra=[("script", ...)])`) and runs `rtd.daemon.Daemon`,
so the script gets the daemon's actors, supervisor, session, reconnects and restarts.

What the decorated functions become
-----------------------------------
- ``@app.tool`` / ``@app.tool(name=, description=, timeout=)``: an `rtd.tool` (the decorator
  returns the `Tool`; an existing `Tool` may be passed too: ``app.tool(rtd.tools.CLOCK)``).
- ``@app.receiver(kind, ...)``: a `Receiver` named ``script_receiver_<function>`` receiving the
  event kinds named (from `rtd.components.EVENT_TYPES`). The function gets the event's value:
  the text (``str``) for the text and transcript kinds and their ``*_chunk``s, pcm24 ``bytes``
  for ``audio`` and ``audio_chunk``, the server's event as a ``dict`` for ``server_event``,
  the event object for ``tool_call``, ``state`` and ``error``; and, when it takes a second
  parameter, the app's `context` dict. It may be ``async def``. An exception it raises is
  logged and the receiver goes on.
- ``@app.sender`` / ``@app.sender(wait_for_response=True)``: a `Sender` named
  ``script_sender_<function>`` that calls the function (with `context` when it takes a
  parameter) in a loop, once per *round*:

  - ``str``: a user message; rtd asks for a response.
  - ``bytes`` (pcm24: 24 kHz mono int16): appended to the input audio; with
    ``turn_detection=None`` rtd then commits the turn and asks for a response (with VAD the
    server decides when the turn ends).
  - a WAV file as ``bytes`` or a readable binary file (``io.BytesIO``), or a pydub
    ``AudioSegment``: decoded (any rate, channels and sample format of PCM WAV) and resampled
    to pcm24, then sent as audio. Anything else in ``bytes`` is taken as pcm24.
  - a generator, an async generator or another iterable of those: each chunk is appended as
    it comes; a ``str`` chunk is a user message; then (``turn_detection=None``) the turn is
    committed and answered.
  - ``(message, tools)``: ``message`` as above, answered with ``tools`` (functions or `Tool`
    objects known to the app) offered for that response in place of the session's.
  - ``None`` (or an empty value): nothing this round; the function is called again after
    `IDLE_PAUSE` seconds.

  ``sender(tools=[...])`` offers those tools (in place of the session's) in every response
  rtd asks for after this sender's input; with server VAD the server starts the response
  itself and the session's tools apply.

  ``async def`` functions are awaited. With ``wait_for_response`` (the default) the next
  round starts only when the response to this input is complete, tool calls and the response
  after them included (or the connection dropped, or `response_timeout` passed). Before each
  round the sender waits until the session is connected. Responses the server starts by
  itself (VAD turns, e.g. from a microphone) are seen only when they end, so when such turns
  overlap another sender's input the wait may end one response early.

Ending
------
A sender ends by raising `rtd.Stop` (also from inside its generator, after yielding the last
chunk), or `EOFError` (its input ran out: ``input()`` at the end of a pipe). Its input so far
still counts: the turn is committed and its response waited for. When every sender has ended,
`run()` lets the speaker finish playing, stops the daemon and returns. A sender raising
``asyncio.CancelledError`` (Mirascope's way) stops the whole app: nothing more is waited for
but the speaker's drain. ``app.stop()`` ends the app at once from anywhere (a receiver, a tool,
another thread); Ctrl-C in `run()` stops it cleanly and `run()` returns. An app without senders
runs until one of those. Any other exception in a sender is the daemon's business: it is logged
and the sender is restarted after a growing delay.

A sender may read its input with ``input()``: on the app's threads, when stdin is a pipe, rtd
reads the line from stdin's descriptor itself, so Ctrl-C while it waits ends the program
cleanly (a thread blocked in the builtin holds stdin's lock, and the interpreter aborts at
exit over it).

`run()` raises `rtd.exceptions.ConfigError` for an unusable configuration (also raised by the
constructor for invalid parameters), the cause of a start-up failure (e.g. `AudioFileError` for
a missing WAV), `AuthenticationError`/`RtdError` when the daemon stops on its own (refused key,
crash loop), and `TimeoutError` when ``timeout`` passed first (the app is stopped by then).

rtd logs through `logging`: without any set-up only its warnings reach stderr;
``logging.basicConfig(level="INFO")`` also shows the connection and the conversation.

Session keywords
----------------
Besides rtd's own (``instructions``, ``voice``, ``turn_detection``, ``output``), the keywords of
the beta-era APIs (Mirascope's Realtime, the SDK's ``session.update``) are accepted and mapped
to the GA session in one place, `session_keywords`: ``modalities=["text"]``,
``turn_detection={"type": "server_vad", "threshold": ..., "silence_duration_ms": ...}`` (or
None for manual turns), ``input_audio_transcription={"model": ...}`` (None: none),
``input_audio_format``/``output_audio_format`` ("pcm16" only: rtd's audio path is 24 kHz
PCM), ``tool_choice``, ``max_response_output_tokens`` (sent as ``max_output_tokens``),
``tools=[...]`` (functions or `Tool` objects, offered in the session), and ``temperature``,
which GA has no equivalent for: accepted, logged once, without effect.

asyncio
-------
``await app.run_async()`` is `run()` for asyncio programs, and ``async with app:`` runs the
app for the block (leaving it stops the app). Either way ``async def`` senders and receivers
run on the caller's event loop, so they may share its objects (events, queues, clients) with
the rest of the program; plain functions still run on threads of their own. Cancelling
`run_async` (Ctrl-C in ``asyncio.run``) stops the app before the cancellation goes on.

Threads: receivers each run on an actor thread of their own, senders on a thread each, tools on
a worker pool; `context` is one plain dict shared by all of them, so guard compound updates.
"""

from __future__ import annotations

import asyncio
import builtins
import concurrent.futures
import contextlib
import dataclasses
import inspect
import io
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rtd.components import (
    EVENT_TYPES,
    Receiver,
    Sender,
    SenderContext,
)
from rtd.config import ComponentConfig, Config, Secret, parse
from rtd.exceptions import AuthenticationError, ConfigError, RtdError
from rtd.exitcodes import EX_NOPERM, EX_SOFTWARE
from rtd.hookspecs import hookimpl
from rtd.messages import ConnectionState, Fatal, TurnState
from rtd.tools import Tool, tool

_CANCELLED = (asyncio.CancelledError, concurrent.futures.CancelledError)

if TYPE_CHECKING:
    from rtd.daemon import Daemon

logger = logging.getLogger(__name__)

IDLE_PAUSE = 0.1
"""Seconds a sender rests after a round in which its function had nothing to send."""
DRAIN_TIMEOUT = 120.0
"""Seconds `run()` waits, once every sender ended, for the speaker to play what it holds."""
STOP_TIMEOUT = 2.0
"""Seconds the daemon's actors get to stop."""
_POLL = 0.1
"""Granularity of every wait that must notice a stop."""
_SOURCE = "rtd.Realtime"

TEXT_KINDS = frozenset({"text", "text_chunk", "audio_transcript", "audio_transcript_chunk",
                        "input_transcript", "input_transcript_chunk"})
"""Event kinds whose receivers get the text (``str``)."""
AUDIO_KINDS = frozenset({"audio", "audio_chunk"})
"""Event kinds whose receivers get the pcm24 audio (``bytes``)."""
SCRIPT_BACKLOG_MS = 60000
"""Milliseconds of sender audio held for the server: the most audio.input.backlog_ms allows."""


class Stop(Exception):
    """Raised by a sender function: this sender is done (its last input is still answered)."""


class _Stopping(Exception):
    """The sender's context is stopping: leave the round at once."""


_inside = threading.local()
"""``inside`` is True on threads running the app's receivers and senders: stop() from there
must not wait for the actors (which would wait for that very thread)."""


def stdin_fd() -> int | None:
    """stdin's file descriptor, or None when `sys.stdin` is not backed by one."""
    try:
        return sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def read_stdin_line(fd: int, prompt: object = "") -> str:
    """``input(prompt)`` read from the descriptor itself, a byte at a time.

    Nothing is read beyond the newline, and `sys.stdin`'s buffer (and its lock) is never
    taken: a thread still blocked here when the program ends cannot make the interpreter
    abort at shutdown, as one blocked in ``input()`` on a pipe does ("could not acquire lock
    for <stdin>"). The end of input raises `EOFError`, as ``input()`` does.
    """
    if prompt:
        sys.stdout.write(str(prompt))
        sys.stdout.flush()
    data = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            if not data:
                raise EOFError("EOF when reading a line")
            break
        if byte == b"\n":
            break
        data += byte
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    return data.decode(encoding, errors="replace").removesuffix("\r")


_builtin_input = builtins.input


def _input(prompt: object = "") -> str:
    """``input()`` as the app's senders and receivers get it: on a pipe, `read_stdin_line`
    (so Ctrl-C while one waits for a line ends the program cleanly); elsewhere, and on a
    terminal (where ``input()`` holds no lock and edits the line), the builtin."""
    fd = stdin_fd() if getattr(_inside, "inside", False) else None
    if fd is not None and not os.isatty(fd):
        return read_stdin_line(fd, prompt)
    return _builtin_input(prompt)


def _install_input() -> None:
    if builtins.input is _builtin_input:
        builtins.input = _input


def _audio_table(value: str | os.PathLike[str] | None, where: str) -> dict[str, str]:
    if value is None or value == "none":
        return {"backend": "none"}
    if value == "sounddevice":
        return {"backend": "sounddevice"}
    if isinstance(value, (str, os.PathLike)) and str(value):
        return {"backend": "file", "path": str(value)}
    raise ConfigError([f"{where}: expected 'sounddevice', 'none' or a WAV path, got {value!r}"],
                      _SOURCE)


_UNSET: Any = object()
"""A keyword not given (None means something for several of them)."""
_VAD_KEYS = {
    "server_vad": ("type", "threshold", "silence_duration_ms", "prefix_padding_ms",
                   "create_response", "interrupt_response", "idle_timeout_ms"),
    "semantic_vad": ("type", "eagerness", "create_response", "interrupt_response"),
}
_PCM16 = ("pcm16", "audio/pcm")


def _merge(into: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``into`` with ``extra`` merged in, nested tables key by key."""
    out = dict(into)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _pcm_format(value: Any, name: str, problems: list[str]) -> None:
    kind = value.get("type") if isinstance(value, Mapping) else value
    rate = value.get("rate", 24000) if isinstance(value, Mapping) else 24000
    if kind not in _PCM16 or rate != 24000:
        problems.append(f"{name}: rtd's audio path is pcm16 at 24 kHz; got {value!r} (leave "
                        "it out, or pass 'pcm16')")


def session_keywords(*, output: str | None = None, turn_detection: Any = _UNSET,
                     modalities: Any = _UNSET, input_audio_format: Any = _UNSET,
                     output_audio_format: Any = _UNSET,
                     input_audio_transcription: Any = _UNSET, tool_choice: Any = _UNSET,
                     temperature: Any = _UNSET, max_response_output_tokens: Any = _UNSET,
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one mapping of session keywords (rtd's and the beta-era APIs') onto the GA session.

    Returns the ``[session]`` table entries rtd's configuration has, and the GA
    ``session.update`` fields it has no key for (``prefix_padding_ms``, ``tool_choice``,
    ``max_output_tokens``, a transcription prompt), merged into the update as they are.
    Raises `ConfigError` listing every keyword it cannot map.
    """
    problems: list[str] = []
    table: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    turn_extra: dict[str, Any] = {}
    if modalities is not _UNSET and modalities is not None:
        kinds = [modalities] if isinstance(modalities, str) else list(modalities)
        if not kinds or any(k not in ("text", "audio") for k in kinds):
            problems.append(f"modalities: expected ['text'] or ['audio'] (or both), got "
                            f"{modalities!r}")
        else:
            wanted = "audio" if "audio" in kinds else "text"
            if output is not None and output != wanted:
                problems.append(f"modalities: {modalities!r} contradicts output={output!r}; "
                                "pass one of them")
            output = wanted
    if output is not None:
        table["output"] = output
    if turn_detection is not _UNSET:
        if turn_detection is None or turn_detection == "none":
            table["turn_detection"] = "none"
        elif isinstance(turn_detection, str):
            table["turn_detection"] = turn_detection
        elif isinstance(turn_detection, Mapping):
            kind = turn_detection.get("type", "server_vad")  # beta's default type
            allowed = _VAD_KEYS.get(kind)
            if allowed is None:
                problems.append(f"turn_detection.type: expected 'server_vad' or "
                                f"'semantic_vad', got {kind!r}")
                allowed = ()
            table["turn_detection"] = kind
            for key, value in turn_detection.items():
                if allowed and key not in allowed:
                    from rtd.schema import did_you_mean
                    problems.append(f"turn_detection.{key}: not a {kind} setting"
                                    f"{did_you_mean(key, allowed)}")
                elif key == "threshold":
                    table["vad_threshold"] = value
                elif key == "silence_duration_ms":
                    table["silence_ms"] = value
                elif key == "eagerness":
                    table["eagerness"] = value
                elif key != "type":
                    turn_extra[key] = value
        else:
            problems.append(f"turn_detection: expected 'server_vad', 'semantic_vad', None or a "
                            f"dict such as {{'type': 'server_vad'}}, got {turn_detection!r}")
    for name, value in (("input_audio_format", input_audio_format),
                        ("output_audio_format", output_audio_format)):
        if value is not _UNSET and value is not None:
            _pcm_format(value, name, problems)
    if input_audio_transcription is not _UNSET:
        t = input_audio_transcription
        if t is None:
            table["transcription_model"] = ""
        elif isinstance(t, str):
            table["transcription_model"] = t
        elif isinstance(t, Mapping):
            unknown = [k for k in t if k not in ("model", "language", "prompt")]
            if unknown:
                problems.append(f"input_audio_transcription.{unknown[0]}: expected model, "
                                "language or prompt")
            table["transcription_model"] = t.get("model") or "whisper-1"
            if t.get("language"):
                table["language"] = t["language"]
            if t.get("prompt"):
                extra["audio"] = {"input": {"transcription": {"prompt": t["prompt"]}}}
        else:
            problems.append(f"input_audio_transcription: expected None, a model name or "
                            f"{{'model': ...}}, got {t!r}")
    if turn_extra:
        extra = _merge(extra, {"audio": {"input": {"turn_detection": turn_extra}}})
    if tool_choice is not _UNSET and tool_choice is not None:
        extra["tool_choice"] = tool_choice
    if max_response_output_tokens is not _UNSET and max_response_output_tokens is not None:
        m = max_response_output_tokens
        if m == "inf" or (isinstance(m, float) and math.isinf(m)):
            extra["max_output_tokens"] = "inf"
        elif isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 4096:
            extra["max_output_tokens"] = m
        else:
            problems.append(f"max_response_output_tokens: expected 1..4096 or 'inf', got {m!r}")
    if temperature is not _UNSET and temperature is not None:
        logger.info("temperature=%r: the GA protocol has no temperature; ignored", temperature)
    if problems:
        raise ConfigError(problems, _SOURCE)
    return table, extra


def unexpected_keyword(where: str, name: str, known: Iterable[str]) -> TypeError:
    """The TypeError for a keyword nobody takes, naming the closest real one."""
    from rtd.schema import did_you_mean

    return TypeError(f"{where} got an unexpected keyword argument {name!r}"
                     f"{did_you_mean(name, known)}")


def _check_keywords(session: Mapping[str, Any]) -> None:
    """Keywords beyond the constructor's are ``[session]`` keys; a typo is a TypeError."""
    from rtd.config import SessionConfig

    keys = [f.name for f in dataclasses.fields(SessionConfig)]
    for name in session:
        if name not in keys:
            own = [p for p in inspect.signature(Realtime.__init__).parameters
                   if p not in ("self", "session")]
            raise unexpected_keyword("Realtime()", name, [*own, *keys])


def _positional(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` takes (a large number for ``*args``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: give them one argument
        return 1
    count = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return 99
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def _event_value(event: Any) -> Any:
    kind = getattr(event, "kind", "")
    if kind in TEXT_KINDS:
        return event.text
    if kind in AUDIO_KINDS:
        return event.pcm
    if kind == "server_event":
        return dict(event.event)
    return event


def _is_audio(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


def _as_audio(value: Any, sender: str) -> bytes | None:
    """pcm24 from what a sender returned, or None when it is not audio.

    WAV files (bytes or a binary file such as ``BytesIO``) are decoded and resampled, a pydub
    ``AudioSegment`` converted; other bytes are taken as pcm24 already.
    """
    from rtd.audio.file_backend import decode_wav, is_wav

    where = f"senders.{sender}"
    if _is_audio(value):
        data = bytes(value)
        return decode_wav(data, where) if is_wav(data) else data
    if isinstance(value, io.IOBase) or (hasattr(value, "read") and hasattr(value, "seek")):
        getvalue = getattr(value, "getvalue", None)
        data = getvalue() if getvalue is not None else value.read()
        if isinstance(data, str):
            raise TypeError(f"sender {sender} returned a text file; return a binary WAV file")
        return decode_wav(data, where) if is_wav(data) else bytes(data)
    if all(hasattr(value, a) for a in ("raw_data", "frame_rate", "channels", "sample_width")):
        # a pydub AudioSegment: through a WAV header, so every sample width decodes the same
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as w:
            w.setnchannels(int(value.channels))
            w.setsampwidth(int(value.sample_width))
            w.setframerate(int(value.frame_rate))
            w.writeframes(value.raw_data)
        return decode_wav(buffer.getvalue(), where)
    return None


@dataclasses.dataclass
class _SenderSpec:
    function: Callable[..., Any]
    name: str
    wait_for_response: bool
    takes_context: bool
    tools: tuple[Tool, ...] | None = None
    """Offered in the responses asked for after this sender's input; None: the session's."""


@dataclasses.dataclass
class _ReceiverSpec:
    function: Callable[..., Any]
    name: str
    kinds: tuple[str, ...]
    takes_context: bool


class _Plugin:
    """The script's in-process plugin: its hooks hand the registry the app's components."""

    def __init__(self, tools: list[Tool], senders: list[type[Sender]],
                 receivers: list[type[Receiver]]) -> None:
        self._tools, self._senders, self._receivers = tools, senders, receivers

    @hookimpl
    def register_tools(self) -> list[Tool]:
        return list(self._tools)

    @hookimpl
    def register_senders(self) -> list[type[Sender]]:
        return list(self._senders)

    @hookimpl
    def register_receivers(self) -> list[type[Receiver]]:
        return list(self._receivers)


class _Round:
    """What one sender round sent so far (kept up to date while a generator streams)."""

    def __init__(self, tools: tuple[Tool, ...] | None = None) -> None:
        self.text = False
        self.audio = False
        self.unanswered_text = False
        """A generator sent messages without asking for a response: ask at the round's end."""
        self.tools = tools

    def response(self) -> dict[str, Any] | None:
        """The overrides of the response to this round: its tools, if it names any."""
        if self.tools is None:
            return None
        return {"tools": [t.schema() for t in self.tools]}

    @property
    def sent(self) -> bool:
        return self.text or self.audio


class Realtime:
    """A realtime voice app: decorate tools, receivers and senders, then `run()`.

    Parameters mirror the daemon's configuration (`rtd.config`): ``provider`` "openai",
    "azure", "xai" or "custom" (``url`` required for azure and custom), ``dialect`` the shape
    of the wire ("ga", "beta", "xai"; default: the provider's); ``api_key`` defaults to
    ``$OPENAI_API_KEY`` (optional for custom servers); ``turn_detection`` "server_vad",
    "semantic_vad" or None for manual turns; ``output`` "audio" or "text"; ``audio_input`` and
    ``audio_output`` "none" (the default: no devices), "sounddevice" (the default device), or
    the path of a WAV file (played as the microphone / written as the speaker).
    ``response_timeout`` bounds each wait for a response. Further keyword arguments go to the
    ``[session]`` table (``silence_ms=800``, ``speed=1.2``, ``transcription_model=""``, ...).

    Invalid parameters raise `ConfigError` here; a missing API key is reported by `run()`.
    """

    def __init__(self, model: str = "gpt-realtime-2", instructions: str | None = None,
                 voice: str = "marin", *, turn_detection: Any = "server_vad",
                 output: str | None = None, provider: str = "openai", url: str | None = None,
                 api_key: str | None = None, dialect: str | None = None,
                 audio_input: str | os.PathLike[str] | None = "none",
                 audio_output: str | os.PathLike[str] | None = "none",
                 response_timeout: float = 60.0, modalities: Any = _UNSET,
                 input_audio_format: Any = _UNSET, output_audio_format: Any = _UNSET,
                 input_audio_transcription: Any = _UNSET, tool_choice: Any = _UNSET,
                 temperature: Any = _UNSET, max_response_output_tokens: Any = _UNSET,
                 tools: Iterable[Callable[..., Any] | Tool] = (), **session: Any) -> None:
        _check_keywords(session)
        mapped, self._session_extra = session_keywords(
            output=output, turn_detection=turn_detection, modalities=modalities,
            input_audio_format=input_audio_format, output_audio_format=output_audio_format,
            input_audio_transcription=input_audio_transcription, tool_choice=tool_choice,
            temperature=temperature, max_response_output_tokens=max_response_output_tokens)
        session_table: dict[str, Any] = {"voice": voice, "output": "audio", **mapped, **session}
        if instructions is not None:
            session_table["instructions"] = instructions
        provider_table: dict[str, Any] = {"name": provider, "model": model}
        if url:
            provider_table["url"] = url
        if dialect is not None:
            provider_table["dialect"] = dialect
        self._table: dict[str, Any] = {
            "provider": provider_table,
            "session": session_table,
            # a script's senders yield audio as fast as they can, not at a microphone's pace:
            # hold all of it for the server (the daemon's microphone drops stale audio instead)
            "audio": {"input": {**_audio_table(audio_input, "audio_input"),
                                "backlog_ms": SCRIPT_BACKLOG_MS},
                      "output": _audio_table(audio_output, "audio_output")},
            # a script's own control socket: the system daemon's path belongs to the daemon
            "control": {"path": os.path.join(tempfile.gettempdir(),
                                             f"rtd-app-{os.getpid()}-{id(self):x}.sock")},
        }
        self._api_key = api_key
        self.response_timeout = float(response_timeout)
        self.config: Config = self._build_config(require_key=False)
        """The validated configuration (components and key are added by `start()`)."""
        self.context: dict[str, Any] = {}
        """One dict shared by every sender and receiver of this app (and kept across runs)."""
        self.daemon: Daemon | None = None
        """The running daemon (its ``bus`` may be observed), or None."""

        self._tools: dict[str, Tool] = {}
        self._offered: set[str] = set()
        """Names of the tools offered in the session (the others only in responses)."""
        self._tool_of: dict[int, Tool] = {}
        """id(function) -> its Tool, for tools passed as functions."""
        self._senders: list[_SenderSpec] = []
        self._receivers: list[_ReceiverSpec] = []
        self._names: set[str] = set()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._connected = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._abort_drain = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        """The caller's event loop under `run_async` / ``async with``: async code runs there."""
        self._on_stopped: list[Callable[[], None]] = []
        self.session_defaults_from_server: set[str] = set()
        """Dotted GA session fields left out of session.update, so the server's defaults
        apply (``"instructions"``, ``"audio.output.voice"``): for APIs whose "not given"
        meant the server's choice."""
        self._reset()
        for t in tools:
            self.tool(t)

    def _reset(self) -> None:
        # the conversation's turn state, as the session last published it (see _observe)
        self._turn = TurnState()
        self._finished_senders: set[str] = set()
        self._sender_count = 0
        self._finish_requested = False
        self._drain = False
        self._fatal: Fatal | None = None
        self._exit_code: int | None = None
        self._connected.clear()
        self._abort_drain.clear()

    # -- configuration ----------------------------------------------------------------------

    def _build_config(self, *, require_key: bool) -> Config:
        from rtd.plugins import Registry

        try:
            config = parse(self._table, None, require_key=require_key and not self._api_key,
                           registry=Registry())
        except ConfigError as exc:
            env = self._table["provider"].get("api_key_env", "OPENAI_API_KEY")
            problems = [f"api_key: no API key: pass api_key=... or set ${env}"
                        if p.startswith("provider.api_key_env: no API key") else p
                        for p in exc.problems]
            raise ConfigError(problems, _SOURCE) from None
        if self._api_key:
            config = dataclasses.replace(config, api_key=Secret(self._api_key,
                                                                "Realtime(api_key=...)"))
        return config

    # -- decorators -------------------------------------------------------------------------

    def _unique(self, prefix: str, function: Callable[..., Any]) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", getattr(function, "__name__", "") or "function")
        name, n = f"{prefix}_{base}", 1
        while name in self._names:
            n += 1
            name = f"{prefix}_{base}_{n}"
        self._names.add(name)
        return name

    def tool(self, function: Callable[..., Any] | Tool | None = None, /, *,
             name: str | None = None, description: str | None = None,
             timeout: float | None = None, offered: bool = True) -> Any:
        """Offer a function to the model: ``@app.tool`` or ``@app.tool(name=..., timeout=...)``.

        Returns the `Tool` (its function is ``.function``), as `rtd.tool` does. With
        ``offered=False`` the tool is not in the session: it runs when a response a sender
        asked for offers it (``sender(tools=...)``, a ``(message, tools)`` result).
        """
        def decorate(fn: Callable[..., Any] | Tool) -> Tool:
            return self._add_tool(fn, offered=offered, name=name, description=description,
                                  timeout=timeout)

        return decorate if function is None else decorate(function)

    def _add_tool(self, fn: Callable[..., Any] | Tool, *, offered: bool,
                  name: str | None = None, description: str | None = None,
                  timeout: float | None = None) -> Tool:
        made: Tool | None = None
        if isinstance(fn, Tool):
            made = fn
        elif name is None and description is None and timeout is None:
            made = self._tool_of.get(id(fn), (None, None))[1]
        if made is None:
            made = tool(fn, name=name, description=description, timeout=timeout)
        existing = self._tools.get(made.name)
        if existing is not None and existing is not made:
            raise ValueError(f"this app already has a tool named {made.name!r}; pass "
                             "@app.tool(name=...) to tell them apart")
        self._tools[made.name] = made
        if not isinstance(fn, Tool):
            self._tool_of[id(fn)] = (fn, made)
        if offered:
            self._offered.add(made.name)
        return made

    def _resolve_tools(self, items: Iterable[Any], where: str) -> list[Tool]:
        """The app's Tools for the functions or Tools a sender names (known ones only: the
        tools actor runs what was registered before `start()`)."""
        found: list[Tool] = []
        for item in items:
            if isinstance(item, Tool):
                made = self._tools.get(item.name)
            else:
                made = self._tool_of.get(id(item), (None, None))[1] or \
                    self._tools.get(getattr(item, "__name__", ""))
            if made is None:
                shown = getattr(item, "name", None) or getattr(item, "__name__", repr(item))
                raise TypeError(f"{where}: tool {shown!r} is not one of this app's; pass it in "
                                "tools=, sender(tools=...) or @app.tool(offered=False) before "
                                "run()")
            found.append(made)
        return found

    def receiver(self, *kinds: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Call the decorated function with each event of the given kinds (see the module doc)."""
        if len(kinds) == 1 and callable(kinds[0]):
            raise TypeError("name the event kinds: @app.receiver('text'), kinds: "
                            + ", ".join(EVENT_TYPES))
        unknown = [k for k in kinds if k not in EVENT_TYPES]
        if unknown or not kinds:
            raise ValueError(f"@app.receiver: unknown event kind(s) {unknown or list(kinds)!r}; "
                             f"expected some of {', '.join(EVENT_TYPES)}")

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._receivers.append(_ReceiverSpec(fn, self._unique("script_receiver", fn),
                                                 tuple(kinds), _positional(fn) >= 2))
            return fn

        return decorate

    def sender(self, function: Callable[..., Any] | None = None, /, *,
               wait_for_response: bool = True,
               tools: Iterable[Callable[..., Any] | Tool] | None = None) -> Any:
        """Call the decorated function in a loop and send what it returns (see the module doc).

        ``@app.sender`` or ``@app.sender(wait_for_response=False, tools=[...])``; returns the
        function. ``tools`` are offered, in place of the session's, in the responses rtd asks
        for after this sender's input.
        """
        offered = None if tools is None else tuple(self._add_tool(t, offered=False)
                                                   for t in tools)

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._senders.append(_SenderSpec(fn, self._unique("script_sender", fn),
                                             bool(wait_for_response), _positional(fn) >= 1,
                                             offered))
            return fn

        return decorate if function is None else decorate(function)

    # -- components -------------------------------------------------------------------------

    def _receiver_class(self, spec: _ReceiverSpec) -> type[Receiver]:
        app = self

        class ScriptReceiver(Receiver):
            name = spec.name
            events = spec.kinds

            def receive(self, event: Any) -> Any:
                _inside.inside = True
                value = _event_value(event)
                if spec.takes_context:
                    result = spec.function(value, app.context)
                else:
                    result = spec.function(value)
                if inspect.isawaitable(result) and app._loop is not None:
                    with contextlib.suppress(_Stopping):  # the loop went away: stopping
                        app._on_caller_loop(result, None)
                    return None
                return result

        ScriptReceiver.__name__ = ScriptReceiver.__qualname__ = f"ScriptReceiver_{spec.name}"
        return ScriptReceiver

    def _sender_class(self, spec: _SenderSpec) -> type[Sender]:
        app = self

        class ScriptSender(Sender):
            name = spec.name

            def run(self, ctx: SenderContext) -> None:
                app._run_sender(spec, ctx)

        ScriptSender.__name__ = ScriptSender.__qualname__ = f"ScriptSender_{spec.name}"
        return ScriptSender

    def _on_caller_loop(self, awaitable: Any, ctx: SenderContext | None) -> Any:
        """Run ``awaitable`` on the caller's loop and wait for it from this thread.

        Given up (the coroutine cancelled) when the sender stops or the loop goes away, so no
        actor thread waits on a loop that will not run again.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            raise _Stopping
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), loop)
        while True:
            try:
                return future.result(timeout=_POLL)
            except concurrent.futures.TimeoutError:
                if (ctx is not None and ctx.stopping.is_set()) or loop.is_closed() or \
                        not loop.is_running():
                    future.cancel()
                    raise _Stopping from None

    # -- the sender loop --------------------------------------------------------------------

    def _run_sender(self, spec: _SenderSpec, ctx: SenderContext) -> None:
        _inside.inside = True
        own: asyncio.AbstractEventLoop | None = None

        def wait(awaitable: Any) -> Any:
            """Run a coroutine on the caller's loop (run_async) or on this sender's own one,
            cancelled when the sender stops."""
            nonlocal own
            if self._loop is not None:
                return self._on_caller_loop(awaitable, ctx)
            if own is None:
                own = asyncio.new_event_loop()
            return own.run_until_complete(_guarded(awaitable, ctx))

        manual = self.config.session.turn_detection == "none"
        unanswered: int | None = None  # turn mark of input not waited for (no-wait senders)
        try:
            while not ctx.stopping.is_set():
                if not self._wait_connected(ctx):
                    return
                mark = self._mark()
                done = _Round(spec.tools)
                stop = False
                try:
                    args = (self.context,) if spec.takes_context else ()
                    result = spec.function(*args)
                    if inspect.isawaitable(result):
                        result = wait(result)
                    if ctx.stopping.is_set():
                        return
                    self._deliver(spec, ctx, result, done, wait)
                except (Stop, EOFError) as exc:
                    stop = True
                    if isinstance(exc, EOFError):
                        logger.info("%s: its input ended (EOFError)", spec.name)
                except _Stopping:
                    return
                except _CANCELLED:
                    # Mirascope's way to end: the whole app stops, whatever else runs
                    logger.info("%s raised CancelledError: stopping the app", spec.name)
                    self._request_finish(drain=True)
                    return
                response = done.response()
                if done.audio and manual:
                    ctx.commit()
                    ctx.respond(response)
                elif done.unanswered_text:
                    ctx.respond(response)
                if done.sent:
                    unanswered = mark
                if unanswered is not None and (spec.wait_for_response or stop):
                    self._wait_turn(unanswered, ctx, spec.name)
                    unanswered = None
                if stop:
                    self._sender_finished(spec.name)
                    return
                if not done.sent:
                    ctx.wait(IDLE_PAUSE)
        finally:
            if own is not None:
                with contextlib.suppress(Exception):
                    own.run_until_complete(own.shutdown_asyncgens())
                own.close()

    def _deliver(self, spec: _SenderSpec, ctx: SenderContext, result: Any, done: _Round,
                 wait: Callable[[Any], Any]) -> None:
        result = self._split_tools(spec, result, done)
        if result is None:
            return
        if isinstance(result, str):
            if result:
                done.text = ctx.send_text(result, response=done.response()) or done.text
            return
        audio = _as_audio(result, spec.name)
        if audio is not None:
            if audio:
                done.audio = ctx.send_audio(audio) or done.audio
            return
        if isinstance(result, AsyncIterator):
            try:
                while True:
                    try:
                        chunk = wait(result.__anext__())
                    except StopAsyncIteration:
                        return
                    self._chunk(spec, ctx, chunk, done)
            finally:
                aclose = getattr(result, "aclose", None)
                if aclose is not None and not ctx.stopping.is_set():
                    with contextlib.suppress(BaseException):
                        wait(aclose())
        if isinstance(result, Iterable) and not isinstance(result, Mapping):
            for chunk in result:
                if ctx.stopping.is_set():
                    raise _Stopping
                self._chunk(spec, ctx, chunk, done)
            return
        raise TypeError(f"sender {spec.name} returned {type(result).__name__}; "
                        "return str (a message), bytes (pcm24 audio or a WAV file), a "
                        "BytesIO of a WAV, a generator of those, or None")

    def _split_tools(self, spec: _SenderSpec, value: Any, done: _Round) -> Any:
        """``(message, tools)``: the message, with the tools noted for its response."""
        if isinstance(value, tuple) and len(value) == 2 and \
                isinstance(value[1], (list, tuple, type(None))):
            value, tools = value
            if tools:
                done.tools = tuple(self._resolve_tools(tools, f"sender {spec.name}"))
        return value

    def _chunk(self, spec: _SenderSpec, ctx: SenderContext, chunk: Any, done: _Round) -> None:
        chunk = self._split_tools(spec, chunk, done)
        if isinstance(chunk, str):
            if chunk:
                if not ctx.send_text(chunk, respond=False):
                    raise _Stopping
                done.text = done.unanswered_text = True
            return
        audio = _as_audio(chunk, spec.name)
        if audio is None:
            raise TypeError(f"sender {spec.name} yielded "
                            f"{type(chunk).__name__}; yield pcm24 audio as bytes, a WAV "
                            "(bytes or BytesIO) or a str message")
        if audio:
            if not ctx.send_audio(audio):
                raise _Stopping
            done.audio = True

    # -- waiting for the session ------------------------------------------------------------

    def _observe(self, message: object) -> None:
        """Bus observer (on the publisher's thread): turn state, connection, fatal errors.

        The session's conversation owns the turn state and publishes every change of it;
        the app only reads it, so it cannot drift from what the session does.
        """
        if isinstance(message, TurnState):
            with self._cond:
                self._turn = message
                self._cond.notify_all()
        elif isinstance(message, ConnectionState):
            if message.connected:
                self._connected.set()
            else:
                self._connected.clear()
        elif isinstance(message, Fatal):
            with self._cond:
                if self._fatal is None:
                    self._fatal = message

    def _mark(self) -> int:
        with self._cond:
            return self._turn.responses_done

    def _answered(self, mark: int) -> bool:
        """A response ended since ``mark`` and nothing is in flight (no response active,
        requested or owed, no tool call unanswered)."""
        return self._turn.responses_done > mark and self._turn.idle

    def _wait_connected(self, ctx: SenderContext) -> bool:
        while not self._connected.wait(_POLL):
            if ctx.stopping.is_set():
                return False
        return not ctx.stopping.is_set()

    def _wait_turn(self, mark: int, ctx: SenderContext, name: str) -> bool:
        """Wait until the input sent since ``mark`` is answered; False when stopping or late.

        Answered: a response ended after ``mark`` and the conversation is idle (no response
        active or queued, no tool call unanswered), then the receivers caught up.
        """
        deadline = time.monotonic() + self.response_timeout
        with self._cond:
            while not self._answered(mark):
                if ctx.stopping.is_set():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    logger.warning("%s: no response within %.0f s; going on", name,
                                   self.response_timeout)
                    return False
                self._cond.wait(min(_POLL, remaining))
        self._receivers_caught_up(ctx, deadline)
        return True

    def _receivers_caught_up(self, ctx: SenderContext, deadline: float) -> None:
        """Wait until the app's receivers handled every event published so far.

        So a sender's next round starts after the receivers saw the answer (a printed reply
        comes before the next question). A receiver still busy at ``deadline`` is not waited
        for further.
        """
        daemon = self.daemon
        if daemon is not None and not ctx.stopping.is_set():
            daemon.settle(timeout=max(0.0, deadline - time.monotonic()))

    def _sender_finished(self, name: str) -> None:
        with self._cond:
            self._finished_senders.add(name)
            last = len(self._finished_senders) >= self._sender_count
        logger.info("%s stopped (rtd.Stop)", name)
        if last:
            self._request_finish(drain=True)

    # -- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the daemon is up (between `start()` and the end of the stop)."""
        return not self._stopped.is_set()

    def start(self) -> None:
        """Start the daemon in the background and return; end it with `stop()`."""
        from rtd import plugins
        from rtd.daemon import Daemon
        from rtd.supervisor import StartupError

        if not self._stopped.is_set():
            raise RuntimeError("this app is already running")
        _install_input()
        config = self._build_config(require_key=True)
        receivers = [self._receiver_class(s) for s in self._receivers]
        senders = [self._sender_class(s) for s in self._senders]
        plugin = _Plugin(list(self._tools.values()), senders, receivers)
        # Only the script's own components: installed plugins are not enabled here, and their
        # names could not then shadow the script's.
        registry = plugins.load(extra=[("script", plugin)], entry_points=())
        problems = [p for info in registry.plugins for p in info.problems]
        if problems:
            raise ConfigError(problems, _SOURCE)
        components = (
            *(ComponentConfig("tools", name, None) for name in self._tools),
            *(ComponentConfig("receivers", cls.name, None) for cls in receivers),
            *(ComponentConfig("senders", cls.name, None) for cls in senders),
        )
        config = dataclasses.replace(config, components=components)
        self._reset()
        self._sender_count = len(senders)
        self.config = config
        daemon = Daemon(config, registry=registry)
        daemon.session_update = self._session_update(daemon.session_update)
        daemon.bus.observe(self._observe)
        self.daemon = daemon  # before the senders start: one may finish at once
        try:
            daemon.start()
        except StartupError as exc:
            self.daemon = None
            cause = exc.__cause__
            if isinstance(cause, RtdError):
                raise cause from None
            raise
        except BaseException:  # Ctrl-C while starting: stop what already runs
            self.daemon = None
            daemon.stop(STOP_TIMEOUT)
            raise
        self._stopped.clear()
        self._thread = threading.Thread(target=self._supervise, args=(daemon,),
                                        name="rtd-app", daemon=True)
        self._thread.start()

    def _session_update(self, update: Mapping[str, Any]) -> dict[str, Any]:
        """The daemon's session.update with the tools the session offers (a sender's own are
        offered per response) and the GA fields rtd's config has no key for."""
        session = dict(update["session"])
        session["tools"] = [t.schema() for n, t in self._tools.items() if n in self._offered]
        session = _merge(session, self._session_extra)
        for path in self.session_defaults_from_server:
            *parents, last = path.split(".")
            table = session
            for key in parents:
                table[key] = table = dict(table.get(key) or {})
            table.pop(last, None)
        return {**update, "session": session}

    def _supervise(self, daemon: Daemon) -> None:
        """The daemon's supervisor loop, then the teardown: always on this thread."""
        try:
            try:
                self._exit_code = daemon.run()
            except Exception:
                logger.exception("rtd app: supervisor failed")
                self._exit_code = EX_SOFTWARE
            if self._drain and self._fatal is None and self._exit_code == 0:
                deadline = time.monotonic() + DRAIN_TIMEOUT
                while not self._abort_drain.is_set() and time.monotonic() < deadline:
                    if daemon.drained(timeout=0.5):
                        break
        finally:
            daemon.stop(STOP_TIMEOUT)
            self.daemon = None
            self._stopped.set()
            for callback in self._on_stopped:
                with contextlib.suppress(Exception):  # e.g. the caller's loop closed
                    callback()

    def _request_finish(self, *, drain: bool) -> None:
        with self._cond:
            if self._finish_requested:
                return
            self._finish_requested = True
            self._drain = drain
        daemon = self.daemon
        if daemon is not None:
            daemon.supervisor.request_stop()

    def stop(self, timeout: float = 10.0) -> None:
        """End the app now (no waiting for responses or the speaker). Safe from any thread.

        From one of the app's receivers or senders it only asks for the stop; elsewhere it
        returns once the daemon stopped (or ``timeout`` passed).
        """
        self._request_finish(drain=False)
        self._abort_drain.set()
        if not getattr(_inside, "inside", False):
            self._stopped.wait(timeout)

    def run(self, timeout: float | None = None) -> None:
        """Run until every sender ended, `stop()` or Ctrl-C; see the module doc for errors."""
        interrupted = False
        self._on_stopped = []  # a previous run_async's loop is not this run's
        try:
            self.start()
            if not self._stopped.wait(timeout):
                self._request_finish(drain=False)
                self._abort_drain.set()
                self._stopped.wait()
                raise TimeoutError(f"the rtd app did not finish within {timeout:g} s; stopped")
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            self._request_finish(drain=False)
            while True:  # a second Ctrl-C skips the speaker's drain, never the stop itself
                try:
                    self._stopped.wait()
                    break
                except KeyboardInterrupt:
                    self._abort_drain.set()
            return
        self._raise_outcome()

    def _raise_outcome(self) -> None:
        fatal, code = self._fatal, self._exit_code
        if fatal is not None:
            error = AuthenticationError if fatal.exit_code == EX_NOPERM else RtdError
            raise error(fatal.reason)
        if code:
            raise RtdError(f"rtd stopped with exit code {code}: its actors kept crashing; "
                           "see the log")

    # -- asyncio ----------------------------------------------------------------------------

    async def run_async(self, timeout: float | None = None) -> None:
        """`run()` for asyncio programs: ``await app.run_async()``.

        ``async def`` senders and receivers run on this loop. Being cancelled (Ctrl-C under
        ``asyncio.run``) stops the app, then the cancellation goes on. Errors as `run()`.
        """
        finished = await self._start_async()
        try:
            try:
                await asyncio.wait_for(finished.wait(), timeout)
            except asyncio.TimeoutError:
                await self._stop_async()
                raise TimeoutError(f"the rtd app did not finish within {timeout:g} s; "
                                   "stopped") from None
        except asyncio.CancelledError:
            await self._stop_async()
            raise
        finally:
            self._loop = None
        self._raise_outcome()

    async def __aenter__(self) -> Realtime:
        await self._start_async()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._stop_async()
        finally:
            self._loop = None

    async def _start_async(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        self._loop = loop

        def stopped() -> None:
            loop.call_soon_threadsafe(finished.set)

        self._on_stopped = [stopped]
        started = loop.run_in_executor(None, self.start)
        try:
            await asyncio.shield(started)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):  # the start goes on: stop what it made
                await started
            await self._stop_async()
            raise
        except BaseException:
            self._loop = None
            raise
        return finished

    async def _stop_async(self) -> None:
        """Stop from the loop without blocking it (its senders and receivers must finish)."""
        stopping = asyncio.get_running_loop().run_in_executor(None, self.stop, STOP_TIMEOUT * 5)
        while True:
            try:
                await asyncio.shield(stopping)
                return
            except asyncio.CancelledError:  # a second Ctrl-C: the stop still completes
                if stopping.done():
                    raise

    def __repr__(self) -> str:
        p = self.config.provider
        return (f"<rtd.Realtime {p.name} {p.model}: {len(self._tools)} tool(s), "
                f"{len(self._senders)} sender(s), {len(self._receivers)} receiver(s)"
                f"{', running' if self.running else ''}>")


async def _awaited(awaitable: Any) -> Any:
    """A coroutine for any awaitable (an async generator's ``__anext__()`` is not one)."""
    return await awaitable


async def _guarded(awaitable: Any, ctx: SenderContext) -> Any:
    """Await ``awaitable``, cancelling it (and raising `_Stopping`) once the sender stops."""
    task = asyncio.ensure_future(awaitable)
    while not task.done():
        if ctx.stopping.is_set():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise _Stopping
        await asyncio.wait({task}, timeout=_POLL)
    return task.result()


__all__ = ["AUDIO_KINDS", "IDLE_PAUSE", "TEXT_KINDS", "Realtime", "Stop", "session_keywords"]
