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
  for ``audio`` and ``audio_chunk``, the event object for ``tool_call``, ``state`` and
  ``error``; and, when it takes a second parameter, the app's `context` dict. It may be
  ``async def``. An exception it raises is logged and the receiver goes on.
- ``@app.sender`` / ``@app.sender(wait_for_response=True)``: a `Sender` named
  ``script_sender_<function>`` that calls the function (with `context` when it takes a
  parameter) in a loop, once per *round*:

  - ``str``: a user message; rtd asks for a response.
  - ``bytes`` (pcm24: 24 kHz mono int16): appended to the input audio; with
    ``turn_detection=None`` rtd then commits the turn and asks for a response (with VAD the
    server decides when the turn ends).
  - a generator, an async generator or another iterable of ``bytes``: each chunk is appended
    as it comes, then (``turn_detection=None``) the turn is committed and answered.
  - ``None`` (or an empty value): nothing this round; the function is called again after
    `IDLE_PAUSE` seconds.

  ``async def`` functions are awaited. With ``wait_for_response`` (the default) the next
  round starts only when the response to this input is complete, tool calls and the response
  after them included (or the connection dropped, or `response_timeout` passed). Before each
  round the sender waits until the session is connected. Responses the server starts by
  itself (VAD turns, e.g. from a microphone) are seen only when they end, so when such turns
  overlap another sender's input the wait may end one response early.

Ending
------
A sender ends by raising `rtd.Stop` (also from inside its generator, after yielding the last
chunk). Its input so far still counts: the turn is committed and its response waited for.
When every sender has ended, `run()` lets the speaker finish playing, stops the daemon and
returns. ``app.stop()`` ends the app at once from anywhere (a receiver, a tool, another
thread); Ctrl-C in `run()` stops it cleanly and `run()` returns. An app without senders runs
until one of those. Any other exception in a sender is the daemon's business: it is logged and
the sender is restarted after a growing delay.

`run()` raises `rtd.exceptions.ConfigError` for an unusable configuration (also raised by the
constructor for invalid parameters), the cause of a start-up failure (e.g. `AudioFileError` for
a missing WAV), `AuthenticationError`/`RtdError` when the daemon stops on its own (refused key,
crash loop), and `TimeoutError` when ``timeout`` passed first (the app is stopped by then).

rtd logs through `logging`: without any set-up only its warnings reach stderr;
``logging.basicConfig(level="INFO")`` also shows the connection and the conversation.

Threads: receivers each run on an actor thread of their own, senders on a thread each, tools on
a worker pool; `context` is one plain dict shared by all of them, so guard compound updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import os
import re
import threading
import time
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
SCRIPT_BACKLOG_MS = 60000
"""Milliseconds of sender audio held for the server: the most audio.input.backlog_ms allows."""
"""Event kinds whose receivers get the pcm24 audio (``bytes``)."""


class Stop(Exception):
    """Raised by a sender function: this sender is done (its last input is still answered)."""




class _Stopping(Exception):
    """The sender's context is stopping: leave the round at once."""


_inside = threading.local()
"""``inside`` is True on threads running the app's receivers and senders: stop() from there
must not wait for the actors (which would wait for that very thread)."""


def _audio_table(value: str | os.PathLike[str] | None, where: str) -> dict[str, str]:
    if value is None or value == "none":
        return {"backend": "none"}
    if value == "sounddevice":
        return {"backend": "sounddevice"}
    if isinstance(value, (str, os.PathLike)) and str(value):
        return {"backend": "file", "path": str(value)}
    raise ConfigError([f"{where}: expected 'sounddevice', 'none' or a WAV path, got {value!r}"],
                      _SOURCE)


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
    return event


def _is_audio(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


@dataclasses.dataclass
class _SenderSpec:
    function: Callable[..., Any]
    name: str
    wait_for_response: bool
    takes_context: bool


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

    def __init__(self) -> None:
        self.text = False
        self.audio = False

    @property
    def sent(self) -> bool:
        return self.text or self.audio


class Realtime:
    """A realtime voice app: decorate tools, receivers and senders, then `run()`.

    Parameters mirror the daemon's configuration (`rtd.config`): ``provider`` "openai",
    "azure" or "custom" (``url`` required for the last two); ``api_key`` defaults to
    ``$OPENAI_API_KEY`` (optional for custom servers); ``turn_detection`` "server_vad",
    "semantic_vad" or None for manual turns; ``output`` "audio" or "text"; ``audio_input`` and
    ``audio_output`` "none" (the default: no devices), "sounddevice" (the default device), or
    the path of a WAV file (played as the microphone / written as the speaker).
    ``response_timeout`` bounds each wait for a response. Further keyword arguments go to the
    ``[session]`` table (``silence_ms=800``, ``speed=1.2``, ``transcription_model=""``, ...).

    Invalid parameters raise `ConfigError` here; a missing API key is reported by `run()`.
    """

    def __init__(self, model: str = "gpt-realtime-2", instructions: str | None = None,
                 voice: str = "marin", *, turn_detection: str | None = "server_vad",
                 output: str = "audio", provider: str = "openai", url: str | None = None,
                 api_key: str | None = None,
                 audio_input: str | os.PathLike[str] | None = "none",
                 audio_output: str | os.PathLike[str] | None = "none",
                 response_timeout: float = 60.0, **session: Any) -> None:
        session_table: dict[str, Any] = {"voice": voice, "output": output,
                                         "turn_detection": turn_detection or "none", **session}
        if instructions is not None:
            session_table["instructions"] = instructions
        provider_table: dict[str, Any] = {"name": provider, "model": model}
        if url:
            provider_table["url"] = url
        self._table: dict[str, Any] = {
            "provider": provider_table,
            "session": session_table,
            # a script's senders yield audio as fast as they can, not at a microphone's pace:
            # hold all of it for the server (the daemon's microphone drops stale audio instead)
            "audio": {"input": {**_audio_table(audio_input, "audio_input"),
                                "backlog_ms": SCRIPT_BACKLOG_MS},
                      "output": _audio_table(audio_output, "audio_output")},
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
        self._reset()

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
             timeout: float | None = None) -> Any:
        """Offer a function to the model: ``@app.tool`` or ``@app.tool(name=..., timeout=...)``.

        Returns the `Tool` (its function is ``.function``), as `rtd.tool` does.
        """
        def decorate(fn: Callable[..., Any] | Tool) -> Tool:
            made = fn if isinstance(fn, Tool) else tool(fn, name=name, description=description,
                                                        timeout=timeout)
            if made.name in self._tools:
                raise ValueError(f"this app already has a tool named {made.name!r}; pass "
                                 "@app.tool(name=...) to tell them apart")
            self._tools[made.name] = made
            return made

        return decorate if function is None else decorate(function)

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
               wait_for_response: bool = True) -> Any:
        """Call the decorated function in a loop and send what it returns (see the module doc).

        ``@app.sender`` or ``@app.sender(wait_for_response=False)``; returns the function.
        """
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._senders.append(_SenderSpec(fn, self._unique("script_sender", fn),
                                             bool(wait_for_response), _positional(fn) >= 1))
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
                    return spec.function(value, app.context)
                return spec.function(value)

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

    # -- the sender loop --------------------------------------------------------------------

    def _run_sender(self, spec: _SenderSpec, ctx: SenderContext) -> None:
        _inside.inside = True
        loop: asyncio.AbstractEventLoop | None = None

        def wait(awaitable: Any) -> Any:
            """Run a coroutine on this sender's own loop, cancelled when the sender stops."""
            nonlocal loop
            if loop is None:
                loop = asyncio.new_event_loop()
            return loop.run_until_complete(_guarded(awaitable, ctx))

        manual = self.config.session.turn_detection == "none"
        unanswered: int | None = None  # turn mark of input not waited for (no-wait senders)
        try:
            while not ctx.stopping.is_set():
                if not self._wait_connected(ctx):
                    return
                mark = self._mark()
                done = _Round()
                stop = False
                try:
                    args = (self.context,) if spec.takes_context else ()
                    result = spec.function(*args)
                    if inspect.isawaitable(result):
                        result = wait(result)
                    if ctx.stopping.is_set():
                        return
                    self._deliver(spec, ctx, result, done, wait)
                except Stop:
                    stop = True
                except _Stopping:
                    return
                if done.audio and manual:
                    ctx.commit()
                    ctx.respond()
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
            if loop is not None:
                with contextlib.suppress(Exception):
                    loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

    def _deliver(self, spec: _SenderSpec, ctx: SenderContext, result: Any, done: _Round,
                 wait: Callable[[Any], Any]) -> None:
        if result is None:
            return
        if isinstance(result, str):
            if result:
                done.text = ctx.send_text(result) or done.text
            return
        if _is_audio(result):
            if result:
                done.audio = ctx.send_audio(bytes(result)) or done.audio
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
                    with contextlib.suppress(Exception):
                        wait(aclose())
        if isinstance(result, Iterable) and not isinstance(result, Mapping):
            for chunk in result:
                if ctx.stopping.is_set():
                    raise _Stopping
                self._chunk(spec, ctx, chunk, done)
            return
        raise TypeError(f"sender {spec.name} returned {type(result).__name__}; "
                        "return str (a message), bytes (pcm24 audio), a generator of bytes, "
                        "or None")

    @staticmethod
    def _chunk(spec: _SenderSpec, ctx: SenderContext, chunk: Any, done: _Round) -> None:
        if not _is_audio(chunk):
            raise TypeError(f"sender {spec.name} yielded "
                            f"{type(chunk).__name__}; yield pcm24 audio as bytes")
        if chunk:
            if not ctx.send_audio(bytes(chunk)):
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
        fatal, code = self._fatal, self._exit_code
        if fatal is not None:
            error = AuthenticationError if fatal.exit_code == EX_NOPERM else RtdError
            raise error(fatal.reason)
        if code:
            raise RtdError(f"rtd stopped with exit code {code}: its actors kept crashing; "
                           "see the log")

    def __repr__(self) -> str:
        p = self.config.provider
        return (f"<rtd.Realtime {p.name} {p.model}: {len(self._tools)} tool(s), "
                f"{len(self._senders)} sender(s), {len(self._receivers)} receiver(s)"
                f"{', running' if self.running else ''}>")


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


__all__ = ["AUDIO_KINDS", "IDLE_PAUSE", "TEXT_KINDS", "Realtime", "Stop"]
