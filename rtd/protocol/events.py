"""Realtime wire events (GA shape): parsing what the server sends, building what rtd sends.

The rest of rtd never touches raw JSON: it gets `ServerEvent` objects and calls the builders
here, so a change of the protocol is a change of this package.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from rtd.exceptions import ProtocolError
from rtd.schema import did_you_mean


class SessionSettings(Protocol):
    """What `session_update` reads: the fields of rtd's ``[session]`` table.

    A protocol rather than the config class, so this package stays below the configuration
    (a script can pass any object with these attributes).
    """

    instructions: str
    voice: str
    output: str
    turn_detection: str
    transcription_model: str
    language: str
    vad_threshold: float
    silence_ms: int
    prefix_padding_ms: int
    idle_timeout_ms: int
    eagerness: str
    noise_reduction: str
    speed: float

#: The 11 client events of the GA protocol.
CLIENT_EVENT_TYPES = frozenset({
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
    "input_audio_buffer.clear", "output_audio_buffer.clear", "conversation.item.create",
    "conversation.item.retrieve", "conversation.item.truncate", "conversation.item.delete",
    "response.create", "response.cancel",
})

#: The 46 server events of the GA protocol; anything else is logged once and ignored.
SERVER_EVENT_TYPES = frozenset({
    "session.created", "session.updated", "conversation.created", "conversation.item.added",
    "conversation.item.done", "conversation.item.created", "conversation.item.retrieved",
    "conversation.item.truncated", "conversation.item.deleted",
    "input_audio_buffer.committed", "input_audio_buffer.cleared",
    "input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
    "input_audio_buffer.timeout_triggered", "input_audio_buffer.dtmf_event_received",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment",
    "response.created", "response.done", "response.output_item.added",
    "response.output_item.done", "response.content_part.added", "response.content_part.done",
    "response.output_text.delta", "response.output_text.done", "response.output_audio.delta",
    "response.output_audio.done", "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done", "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "mcp_list_tools.in_progress", "mcp_list_tools.completed", "mcp_list_tools.failed",
    "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
    "response.mcp_call.in_progress", "response.mcp_call.completed", "response.mcp_call.failed",
    "output_audio_buffer.started", "output_audio_buffer.stopped", "output_audio_buffer.cleared",
    "rate_limits.updated", "error",
})

#: Beta spellings of server events (older relays and servers) and the GA names they stand for.
BETA_SERVER_EVENT_NAMES: Mapping[str, str] = {
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
}

PCM_RATE = 24000
"""Hz: the only PCM rate the GA protocol speaks."""


#: Every field name of the realtime types (GA and beta) of the openai package 3.57: reading
#: one of these that an event lacks gives None, as the SDK's optional fields do; any other
#: name is a typo and raises AttributeError.
_FIELDS = """
allowed_callers allowed_tools always anchor annotations approval_request_id approve
arguments audio audio_end_ms audio_start_ms audio_tokens authorization bytes cached_tokens
cached_tokens_details call_id channels client_secret code connector_id content content_index
conversation conversation_id create_response defer_loading delay delta description detail
eagerness effort elapsed_ms end error event event_id expires_after expires_at format
group_id headers id idle_timeout_ms image_tokens image_url include input input_audio_format
input_audio_noise_reduction input_audio_transcription input_schema input_token_details
input_tokens instructions interrupt_response item item_id keywords language languages limit
logprob logprobs max_output_tokens max_response_output_tokens message metadata modalities
model name never noise_reduction obfuscation object output output_audio_format output_index
output_modalities output_token_details output_tokens parallel_tool_calls param parameters
part post_instructions prefix_padding_ms previous_item_id prompt rate rate_limits read_only
reason reasoning received_at remaining require_approval reset_seconds response response_id
retention_ratio role sample_rate seconds server_description server_label server_url session
silence_duration_ms speaker speed start status status_details strength temperature text
text_tokens threshold token token_limits tool_choice tool_names tools total_tokens tracing
transcript transcription truncation tunnel_id turn_detection type usage value voice
workflow_name
"""
FIELD_NAMES = frozenset(_FIELDS.split())


def _wrapped(value: Any) -> Any:
    if isinstance(value, Mapping):
        return ServerEvent(value)
    if isinstance(value, list):
        return [_wrapped(v) for v in value]
    return value


class ServerEvent(Mapping[str, Any]):
    """A parsed server event: ``event.type``, ``event.delta``, ``event.error.code``...

    Attribute access mirrors the SDKs' typed events: nested objects, list items included,
    come back as `ServerEvent` too, and a field of the protocol the event lacks reads as None
    (``event.error.param``). The event still behaves as the plain mapping it was parsed from.
    """

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            value = self._data[name]
        except KeyError:
            if name in FIELD_NAMES:
                return None
            raise AttributeError(
                f"{self._data.get('type', 'event')} has no field {name!r}"
                f"{did_you_mean(name, [*self._data, *FIELD_NAMES])}") from None
        return _wrapped(value)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-compatible data."""
        return dict(self._data)

    def __repr__(self) -> str:
        shown = {k: (f"<{len(v)} chars>" if k in ("delta", "audio") and isinstance(v, str)
                     and len(v) > 64 else v) for k, v in self._data.items()}
        return f"ServerEvent({shown!r})"


def parse_server_event(text: str | bytes) -> ServerEvent:
    """Parse one text frame; a frame that is not a JSON object with a type is a ProtocolError."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"server sent a frame that is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("server sent JSON without a string 'type' field")
    return ServerEvent(data)


def encode_client_event(event: Mapping[str, Any]) -> str:
    """Serialise a client event, refusing what no server would accept (no type)."""
    if not isinstance(event.get("type"), str):
        raise ValueError("a client event needs a string 'type'")
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def audio_append(pcm: bytes) -> dict[str, Any]:
    """`input_audio_buffer.append` carrying pcm24 bytes."""
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode("ascii")}


def decode_audio(b64: str) -> bytes:
    """The PCM bytes of a base64 `delta` or `audio` field."""
    return base64.b64decode(b64)


def function_call_output(call_id: str, output: str, *,
                         item_id: str | None = None) -> dict[str, Any]:
    """The item that answers a function call; the model reads `output` as text.

    With `item_id` the item gets rtd's own id, so the server's echo of it is recognised.
    """
    item: dict[str, Any] = {"type": "function_call_output", "call_id": call_id,
                            "output": output}
    if item_id is not None:
        item = {"id": item_id, **item}
    return {"type": "conversation.item.create", "item": item}


def response_create(response: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Ask for a response; ``response`` overrides the session for it (GA `response` object)."""
    if response:
        return {"type": "response.create", "response": dict(response)}
    return {"type": "response.create"}


def response_cancel() -> dict[str, Any]:
    """Cancel whatever response is active (no `response_id`: rtd's view may lag the server's)."""
    return {"type": "response.cancel"}


def input_audio_commit() -> dict[str, Any]:
    """End the user's turn by hand (manual turn taking)."""
    return {"type": "input_audio_buffer.commit"}


def input_audio_clear() -> dict[str, Any]:
    """Drop the input audio not yet committed: a manual turn starts afresh."""
    return {"type": "input_audio_buffer.clear"}


def item_truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    """Cut an assistant item's audio (and the server's transcript of it) at what was heard."""
    return {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0,
            "audio_end_ms": int(audio_end_ms)}


def item_delete(item_id: str) -> dict[str, Any]:
    return {"type": "conversation.item.delete", "item_id": item_id}


def item_retrieve(item_id: str) -> dict[str, Any]:
    """Ask for an item as the server keeps it (after a truncation: the transcript heard)."""
    return {"type": "conversation.item.retrieve", "item_id": item_id}


def user_text(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """A typed user message, as senders (and scripts) add one.

    With `item_id` the item gets rtd's own id, so the server's echo of it is recognised.
    """
    item: dict[str, Any] = {"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": text}]}
    if item_id is not None:
        item = {"id": item_id, **item}
    return {"type": "conversation.item.create", "item": item}


def assistant_text(text: str, *, item_id: str | None = None) -> dict[str, Any]:
    """An assistant message as text: what the assistant said earlier, replayed into a new
    session (its audio cannot be)."""
    item: dict[str, Any] = {"type": "message", "role": "assistant",
                            "content": [{"type": "output_text", "text": text}]}
    if item_id is not None:
        item = {"id": item_id, **item}
    return {"type": "conversation.item.create", "item": item}


def function_call(call_id: str, name: str, arguments: str, *,
                  item_id: str | None = None) -> dict[str, Any]:
    """A function call the model made earlier, replayed into a new session (its output item,
    with the same ``call_id``, must follow it)."""
    item: dict[str, Any] = {"type": "function_call", "call_id": call_id, "name": name,
                            "arguments": arguments}
    if item_id is not None:
        item = {"id": item_id, **item}
    return {"type": "conversation.item.create", "item": item}


def with_event_id(event: Mapping[str, Any], event_id: str) -> dict[str, Any]:
    """A copy of a client event carrying `event_id`, which the server echoes in an error the
    event causes (``error.event_id``)."""
    return {"type": event["type"], "event_id": event_id,
            **{k: v for k, v in event.items() if k not in ("type", "event_id")}}


def session_update(session: SessionSettings, model: str,
                   tools: Sequence[Mapping[str, Any]] = (), *,
                   barge_in_min_ms: int = 0) -> dict[str, Any]:
    """The GA `session.update` for a configuration: nested audio config, pcm at 24 kHz.

    `interrupt_response` and `create_response` are always sent explicitly: servers differ in
    their defaults. With ``barge_in_min_ms`` both are false: the server would cancel the answer
    at the first sound and answer a cough; rtd decides instead, once speech lasted that long
    (see docs/talking.md).
    """
    server_decides = barge_in_min_ms <= 0
    audio_format = {"type": "audio/pcm", "rate": PCM_RATE}
    audio_in: dict[str, Any] = {"format": audio_format}
    if session.noise_reduction != "none":
        audio_in["noise_reduction"] = {"type": session.noise_reduction}
    if session.transcription_model:
        transcription: dict[str, Any] = {"model": session.transcription_model}
        if session.language:
            transcription["language"] = session.language
        audio_in["transcription"] = transcription
    turn: dict[str, Any] | None
    if session.turn_detection == "server_vad":
        turn = {"type": "server_vad", "threshold": session.vad_threshold,
                "prefix_padding_ms": session.prefix_padding_ms,
                "silence_duration_ms": session.silence_ms,
                "create_response": server_decides, "interrupt_response": server_decides}
        if session.idle_timeout_ms:
            turn["idle_timeout_ms"] = session.idle_timeout_ms
    elif session.turn_detection == "semantic_vad":
        turn = {"type": "semantic_vad", "eagerness": session.eagerness,
                "create_response": server_decides, "interrupt_response": server_decides}
    else:
        turn = None
    audio_in["turn_detection"] = turn
    return {"type": "session.update", "session": {
        "type": "realtime",
        "model": model,
        "output_modalities": [session.output],
        "instructions": session.instructions,
        "audio": {"input": audio_in,
                  "output": {"format": dict(audio_format), "voice": session.voice,
                             "speed": session.speed}},
        "tools": [dict(t) for t in tools],
        "tool_choice": "auto",
    }}
