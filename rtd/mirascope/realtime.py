"""Mirascope's ``Realtime``, on rtd's runtime and the GA protocol.

Mirascope 1.x's realtime module spoke the beta shape, which OpenAI has switched off; this is
the same API over `rtd.Realtime`, so a Mirascope script runs with only its import changed.
The session keywords go through `rtd.app.session_keywords` (the one mapping onto GA), senders
and receivers become rtd's, and tools run on rtd's tools actor with the script's
``@app.function_call`` handlers.

What receivers get (``@app.receiver(kind)``, called as ``receiver(value, context)``):

- ``"text"``, ``"audio_transcript"``: the whole text of the answer (``str``);
- ``"audio"``: the whole spoken answer as a pydub ``AudioSegment`` (24 kHz mono 16-bit) when
  pydub is installed, else its pcm24 ``bytes``;
- ``"text_chunk"``, ``"audio_chunk"``, ``"audio_transcript_chunk"``, ``"tool_chunk"``: the
  server's delta event as a dict, GA-shaped (``type`` is ``response.output_text.delta``,
  ``response.output_audio.delta``, ``response.output_audio_transcript.delta``,
  ``response.function_call_arguments.delta``; ``delta``, ``response_id``, ``item_id`` as
  Mirascope read them);
- ``None``: every server event, as a dict.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import warnings
from collections.abc import Callable
from typing import Any, Literal, TypeAlias

from rtd.app import Realtime as _App
from rtd.app import unexpected_keyword
from rtd.exceptions import ConfigError
from rtd.mirascope.tool import OpenAIRealtimeTool, tool_type
from rtd.tools import Tool, current_call

logger = logging.getLogger(__name__)

Context: TypeAlias = dict[str, Any]
"""What every sender, receiver and function-call handler gets: the app's one shared dict."""

ChunkResponseType: TypeAlias = Literal["text_chunk", "audio_chunk", "audio_transcript_chunk",
                                       "tool_chunk"]
TextResponseType: TypeAlias = Literal["text", "audio_transcript"]
AudioResponseType: TypeAlias = Literal["audio"]
ResponseType: TypeAlias = ChunkResponseType | TextResponseType | AudioResponseType

TOOL_TIMEOUT = 120.0
"""Seconds a function-call handler may take before the model is told it timed out."""

_NO_KEY = ("no API key: set $OPENAI_API_KEY (and $OPENAI_BASE_URL for a server other than "
           "OpenAI's, e.g. http://127.0.0.1:8765/v1 for rtd emulate)")

NotSet: Any = object()
"""A keyword not given: the server's (here: rtd's) default applies."""

# Mirascope's receiver kind -> (rtd's event kind, the value it gets)
_WHOLE = {"text": "text", "audio_transcript": "audio_transcript", "audio": "audio"}
# chunk kinds read the server's own events: kind -> their GA type (None: every event)
_RAW: dict[str | None, str | None] = {
    "text_chunk": "response.output_text.delta",
    "audio_chunk": "response.output_audio.delta",
    "audio_transcript_chunk": "response.output_audio_transcript.delta",
    "tool_chunk": "response.function_call_arguments.delta",
    None: None,
}


def _audio_segment(pcm: bytes) -> Any:
    """pydub's AudioSegment of pcm24 when pydub is installed (no ffmpeg needed), else bytes."""
    try:
        with warnings.catch_warnings():  # pydub warns about a missing ffmpeg it needs not here
            warnings.simplefilter("ignore", RuntimeWarning)
            from pydub import AudioSegment
    except ImportError:
        return pcm
    return AudioSegment(data=pcm, sample_width=2, frame_rate=24000, channels=1)


class Realtime:
    """Mirascope's ``Realtime`` (1.25): decorate senders, receivers and function-call handlers,
    then ``await app.run()``.

    The endpoint and key are the OpenAI SDK's: ``$OPENAI_API_KEY``, and ``$OPENAI_BASE_URL``
    for another server (``http://127.0.0.1:8765/v1`` for ``rtd emulate``).
    """

    def __init__(
        self,
        model: str,
        *,
        context: dict[str, Any] | None = None,
        modalities: list[str] = NotSet,
        instructions: str = NotSet,
        voice: str = NotSet,
        turn_detection: dict[str, Any] | None = NotSet,
        input_audio_format: str = NotSet,
        output_audio_format: str = NotSet,
        input_audio_transcription: Any = NotSet,
        tool_choice: str = NotSet,
        temperature: float = NotSet,
        max_response_output_tokens: int | float | Literal["inf"] = NotSet,
        tools: list[Callable[..., Any] | type[OpenAIRealtimeTool]] = NotSet,
        **unexpected: Any,
    ) -> None:
        for name in unexpected:  # Python's own message names no alternative
            known = [p for p in inspect.signature(Realtime.__init__).parameters
                     if p not in ("self", "unexpected")]
            raise unexpected_keyword("Realtime()", name, known)
        given = {k: v for k, v in {
            "modalities": modalities, "instructions": instructions, "voice": voice,
            "turn_detection": turn_detection, "input_audio_format": input_audio_format,
            "output_audio_format": output_audio_format, "tool_choice": tool_choice,
            "temperature": temperature,
            "max_response_output_tokens": max_response_output_tokens,
        }.items() if v is not NotSet}
        # beta sessions transcribed nothing unless asked: neither does this one
        given["input_audio_transcription"] = (None if input_audio_transcription is NotSet
                                              else input_audio_transcription)
        self.context: Context = context if context is not None else {}
        self.function_call_handlers: dict[str, Callable[..., Any]] = {}
        self._types: dict[str, type[OpenAIRealtimeTool]] = {}
        self._app = _App(model, **given)
        # not given: not sent, so the server's own defaults apply, as with Mirascope
        self._app.session_defaults_from_server = {
            path for path, value in (("instructions", instructions),
                                     ("audio.output.voice", voice)) if value is NotSet}
        self._app.context = self.context
        self._raw_receivers: list[tuple[str | None, Callable[..., Any]]] = []
        for item in ([] if tools is NotSet else tools):
            self._tool(item, offered=True)

    # -- tools ------------------------------------------------------------------------------

    def _tool(self, item: Any, *, offered: bool) -> Tool:
        """The app's Tool for a function or tool class, made once per name."""
        kind = tool_type(item)
        name = kind._name()
        known = self._types.get(name)
        if known is None:
            self._types[name] = kind
            made = self._app.tool(self._runnable(name, kind), offered=offered)
        else:
            made = self._app._tools[name]
            if offered:
                self._app.tool(made, offered=True)
        return made

    def _runnable(self, name: str, kind: type[OpenAIRealtimeTool]) -> Tool:
        base = kind._tool()

        def run(**arguments: Any) -> Any:
            call = current_call()
            instance = self._types[name](**arguments, tool_call={
                "call_id": call.call_id if call else "", "arguments": json.dumps(arguments)})
            handler = self.function_call_handlers.get(name)
            if handler is None:
                logger.info("no @app.function_call handler for %s: calling the tool itself",
                            name)
                return instance.call()
            return handler(instance, self.context)

        return dataclasses.replace(base, function=run, converters=base.converters,
                                   timeout=TOOL_TIMEOUT)

    def function_call(self, tool: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Handle the model's calls of ``tool``: ``handler(tool_instance, context) -> str``,
        whose result goes back to the model as the call's output."""
        self._tool(tool, offered=False)

        def inner(func: Callable[..., Any]) -> Callable[..., Any]:
            self.function_call_handlers[tool_type(tool)._name()] = func
            return func

        return inner

    # -- senders and receivers --------------------------------------------------------------

    def sender(self, wait_for_text_response: bool = False,
               wait_for_audio_transcript_response: bool = False,
               tools: list[Any] | None = None
               ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A sender: ``async def f(context)`` returning (or an async generator yielding) a
        ``str``, WAV ``bytes``/``BytesIO``, or ``(message, tools)``.

        With a ``wait_for_*`` flag the next call waits until the answer is complete; ``tools``
        are offered (in place of the session's) in the responses to this sender's input.
        """
        made = None if tools is None else [self._tool(t, offered=False) for t in tools]

        def inner(func: Callable[..., Any]) -> Callable[..., Any]:
            wait = bool(wait_for_text_response or wait_for_audio_transcript_response)
            self._app.sender(func, wait_for_response=wait, tools=made)
            return func

        return inner

    def receiver(self, response_type: ResponseType | None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """A receiver: ``async def f(response, context)`` for one kind (see the module doc)."""
        if response_type not in _WHOLE and response_type not in _RAW:
            raise ValueError(f"@app.receiver: unknown response type {response_type!r}; "
                             f"expected one of {', '.join([*_WHOLE, *map(str, _RAW)])}")

        def inner(func: Callable[..., Any]) -> Callable[..., Any]:
            if response_type in _WHOLE:
                kind = _WHOLE[response_type]

                def whole(value: Any, context: Context) -> Any:
                    return func(_audio_segment(value) if kind == "audio" else value, context)

                whole.__name__ = getattr(func, "__name__", "receiver")
                self._app.receiver(kind)(whole)
            else:
                wanted = _RAW[response_type]

                def raw(data: dict[str, Any], context: Context) -> Any:
                    if wanted is not None and data.get("type") != wanted:
                        return None
                    return func(data, context)

                raw.__name__ = getattr(func, "__name__", "receiver")
                self._app.receiver("server_event")(raw)
            return func

        return inner

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until a sender raises ``asyncio.CancelledError``, every sender's input ended
        (``EOFError``), or the task is cancelled (Ctrl-C)."""
        if self.is_running():
            raise RuntimeError("Already running")
        try:
            await self._app.run_async()
        except ConfigError as exc:  # this API has no api_key=: say what it does read
            problems = [_NO_KEY if p.startswith("api_key: no API key") else p
                        for p in exc.problems]
            raise ConfigError(problems, exc.source) from None

    def is_running(self) -> bool:
        return self._app.running


__all__ = ["Context", "NotSet", "Realtime", "ResponseType"]
