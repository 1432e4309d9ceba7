"""Checks on what clients send, answered the way the real GA service answers.

Each check raises `ClientError` with the service's error `code`, `message` and `param`
(codes and wording taken from the `openai` package's types and from captured live errors, e.g.
"Unknown parameter: 'session.modalities'." / `unknown_parameter`). The first problem found is
reported, as the service does, and a rejected `session.update` changes nothing.

The session configuration lives here too: its defaults (what `session.created` shows) and how
an update merges into it (only the fields present change).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

CLIENT_EVENTS = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
)
"""Client event types the emulator accepts on a WebSocket."""

EVENT_KEYS: dict[str, tuple[str, ...]] = {
    "session.update": ("session",),
    "input_audio_buffer.append": ("audio",),
    "input_audio_buffer.commit": (),
    "input_audio_buffer.clear": (),
    "conversation.item.create": ("item", "previous_item_id"),
    "conversation.item.retrieve": ("item_id",),
    "conversation.item.truncate": ("item_id", "content_index", "audio_end_ms"),
    "conversation.item.delete": ("item_id",),
    "response.create": ("response",),
    "response.cancel": ("response_id",),
}
"""Fields each client event may carry besides `type` and `event_id`."""

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")
DEFAULT_MODEL = "gpt-realtime-2"
DEFAULT_VOICE = "marin"
DEFAULT_INSTRUCTIONS = ("rtd emulator (offline development peer): instructions are recorded, "
                        "not followed; replies come from the scenario.")

SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 200,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}

_SESSION_KEYS = ("type", "model", "output_modalities", "instructions", "audio", "include",
                 "tools", "tool_choice", "max_output_tokens", "tracing", "truncation", "prompt",
                 "reasoning", "parallel_tool_calls")
_RESPONSE_KEYS = ("conversation", "output_modalities", "instructions", "tools", "tool_choice",
                  "max_output_tokens", "metadata", "audio", "input", "prompt", "reasoning",
                  "parallel_tool_calls")
_ITEM_COMMON = ("type", "id", "object", "status")
_PART_KEYS = {
    "input_text": ("type", "text"),
    "input_audio": ("type", "audio", "transcript"),
    "input_image": ("type", "image_url", "detail"),
    "output_text": ("type", "text"),
    "output_audio": ("type", "audio", "transcript"),
}
_PARTS_BY_ROLE = {
    "user": ("input_text", "input_audio", "input_image"),
    "assistant": ("output_text", "output_audio"),
    "system": ("input_text",),
}


class ClientError(Exception):
    """A client event the service would refuse; becomes an `error` server event."""

    def __init__(self, message: str, *, code: str | None, param: str | None = None,
                 error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type


# ---------------------------------------------------------------------------------------------
# small checkers


def json_kind(value: Any) -> str:
    """JSON type name of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "decimal"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


_ARTICLE = {"integer": "an integer", "array": "an array", "object": "an object"}


def _a(kind: str) -> str:
    return _ARTICLE.get(kind, f"a {kind}" if kind != "null" else "null")


def expect(value: Any, kinds: Iterable[str], param: str) -> None:
    """Raise invalid_type unless `value` is one of the JSON `kinds` ("number" = int or float)."""
    wanted = tuple(kinds)
    kind = json_kind(value)
    if kind in wanted or (kind in ("integer", "decimal") and "number" in wanted):
        return
    names = " or ".join(_a(k) for k in wanted)
    raise ClientError(f"Invalid type for '{param}': expected {names}, but got {_a(kind)} instead.",
                      code="invalid_type", param=param)


def check_keys(obj: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Raise unknown_parameter for the first key not in `allowed`."""
    known = set(allowed)
    for key in obj:
        if key not in known:
            param = f"{prefix}.{key}" if prefix else key
            raise ClientError(f"Unknown parameter: '{param}'.", code="unknown_parameter",
                              param=param)


def require(obj: dict[str, Any], key: str, prefix: str = "") -> Any:
    """Return obj[key] or raise missing_required_parameter."""
    if key not in obj:
        param = f"{prefix}.{key}" if prefix else key
        raise ClientError(f"Missing required parameter: '{param}'.",
                          code="missing_required_parameter", param=param)
    return obj[key]


def one_of(value: Any, allowed: Iterable[str], param: str) -> None:
    """Raise invalid_value unless `value` is one of `allowed` (strings)."""
    options = tuple(allowed)
    expect(value, ("string",), param)
    if value not in options:
        raise ClientError(f"Invalid value: '{value}'. Supported values are: {_listing(options)}.",
                          code="invalid_value", param=param)


def _listing(options: tuple[str, ...]) -> str:
    quoted = [f"'{o}'" for o in options]
    if len(quoted) == 1:
        return quoted[0]
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def _integer(value: Any, param: str, low: int | None = None, high: int | None = None) -> None:
    expect(value, ("integer",), param)
    if low is not None and value < low:
        raise ClientError(f"Invalid '{param}': integer below minimum value. Expected a value "
                          f">= {low}, but got {value} instead.",
                          code="integer_below_min_value", param=param)
    if high is not None and value > high:
        raise ClientError(f"Invalid '{param}': integer above maximum value. Expected a value "
                          f"<= {high}, but got {value} instead.",
                          code="integer_above_max_value", param=param)


def _decimal(value: Any, param: str, low: float, high: float) -> None:
    expect(value, ("number",), param)
    if value < low:
        raise ClientError(f"Invalid '{param}': decimal below minimum value. Expected a value "
                          f">= {low}, but got {value} instead.",
                          code="decimal_below_min_value", param=param)
    if value > high:
        raise ClientError(f"Invalid '{param}': decimal above maximum value. Expected a value "
                          f"<= {high}, but got {value} instead.",
                          code="decimal_above_max_value", param=param)


def _modalities(value: Any, param: str) -> None:
    expect(value, ("array",), param)
    for index, entry in enumerate(value):
        one_of(entry, ("audio", "text"), f"{param}[{index}]")
    if sorted(set(value)) not in (["audio"], ["text"]):
        raise ClientError(f"Invalid modalities: {sorted(set(value))!r}. Supported combinations "
                          "are: ['text'] and ['audio'].", code="invalid_value", param=param)


# ---------------------------------------------------------------------------------------------
# client event envelope


def check_event(event: Any) -> str:
    """Check the envelope of a decoded client event; return its type."""
    if not isinstance(event, dict):
        raise ClientError(f"Invalid event: expected a JSON object, but got {_a(json_kind(event))}.",
                          code="invalid_event")
    if "event_id" in event and event["event_id"] is not None:
        expect(event["event_id"], ("string",), "event_id")
    kind = require(event, "type")
    expect(kind, ("string",), "type")
    if kind == "output_audio_buffer.clear":
        raise ClientError("Invalid value: 'output_audio_buffer.clear'. This event is only "
                          "supported on WebRTC and SIP connections, not on a WebSocket; stop "
                          "local playback and send conversation.item.truncate instead.",
                          code="invalid_value", param="type")
    if kind not in EVENT_KEYS:
        one_of(kind, CLIENT_EVENTS, "type")
    check_keys(event, ("type", "event_id", *EVENT_KEYS[kind]))
    return str(kind)


# ---------------------------------------------------------------------------------------------
# session


def default_session(model: str, session_id: str, expires_at: int) -> dict[str, Any]:
    """The full GA session object a new connection starts with (as in `session.created`)."""
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": model,
        "output_modalities": ["audio"],
        "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "reasoning": None,
        "include": None,
        "expires_at": expires_at,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": dict(SERVER_VAD_DEFAULTS),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": DEFAULT_VOICE,
                "speed": 1.0,
            },
        },
    }


def validate_session(session: Any) -> dict[str, Any]:
    """Check the `session` of a session.update against the GA schema; return it."""
    if session is None:
        raise ClientError("Missing required parameter: 'session'.",
                          code="missing_required_parameter", param="session")
    expect(session, ("object",), "session")
    check_keys(session, _SESSION_KEYS, "session")
    kind = require(session, "type", "session")
    expect(kind, ("string",), "session.type")
    if kind == "transcription":
        raise ClientError("Passing a transcription session update event to a realtime session "
                          "is not allowed.", code="invalid_value", param="session.type")
    one_of(kind, ("realtime", "transcription"), "session.type")

    if "model" in session:
        expect(session["model"], ("string",), "session.model")
    if "output_modalities" in session:
        _modalities(session["output_modalities"], "session.output_modalities")
    if "instructions" in session:
        expect(session["instructions"], ("string",), "session.instructions")
    if "audio" in session:
        _audio(session["audio"])
    if "include" in session and session["include"] is not None:
        expect(session["include"], ("array",), "session.include")
        for index, entry in enumerate(session["include"]):
            one_of(entry, ("item.input_audio_transcription.logprobs",),
                   f"session.include[{index}]")
    if "tools" in session:
        _tools(session["tools"], "session.tools")
    if "tool_choice" in session:
        _tool_choice(session["tool_choice"], "session.tool_choice")
    if "max_output_tokens" in session:
        _max_tokens(session["max_output_tokens"], "session.max_output_tokens")
    if "tracing" in session and session["tracing"] is not None:
        value = session["tracing"]
        expect(value, ("string", "object"), "session.tracing")
        if isinstance(value, str):
            one_of(value, ("auto",), "session.tracing")
        else:
            check_keys(value, ("workflow_name", "group_id", "metadata"), "session.tracing")
    if "truncation" in session:
        value = session["truncation"]
        expect(value, ("string", "object"), "session.truncation")
        if isinstance(value, str):
            one_of(value, ("auto", "disabled"), "session.truncation")
        else:
            one_of(require(value, "type", "session.truncation"), ("retention_ratio",),
                   "session.truncation.type")
    if "prompt" in session and session["prompt"] is not None:
        expect(session["prompt"], ("object",), "session.prompt")
    if "reasoning" in session and session["reasoning"] is not None:
        expect(session["reasoning"], ("object",), "session.reasoning")
        check_keys(session["reasoning"], ("effort",), "session.reasoning")
    if "parallel_tool_calls" in session:
        expect(session["parallel_tool_calls"], ("boolean",), "session.parallel_tool_calls")
    checked: dict[str, Any] = session
    return checked


def _audio(audio: Any) -> None:
    expect(audio, ("object",), "session.audio")
    check_keys(audio, ("input", "output"), "session.audio")
    if "input" in audio:
        inp = audio["input"]
        prefix = "session.audio.input"
        expect(inp, ("object",), prefix)
        check_keys(inp, ("format", "noise_reduction", "transcription", "turn_detection"), prefix)
        if "format" in inp:
            _format(inp["format"], f"{prefix}.format")
        if "noise_reduction" in inp and inp["noise_reduction"] is not None:
            value = inp["noise_reduction"]
            expect(value, ("object",), f"{prefix}.noise_reduction")
            check_keys(value, ("type", "strength"), f"{prefix}.noise_reduction")
            if "type" in value:
                one_of(value["type"], ("near_field", "far_field"), f"{prefix}.noise_reduction.type")
            if "strength" in value:
                expect(value["strength"], ("number",), f"{prefix}.noise_reduction.strength")
        if "transcription" in inp and inp["transcription"] is not None:
            value = inp["transcription"]
            expect(value, ("object",), f"{prefix}.transcription")
            check_keys(value, ("model", "language", "prompt", "delay", "keywords", "languages"),
                       f"{prefix}.transcription")
            for key in ("model", "language", "prompt", "delay"):
                if key in value and value[key] is not None:
                    expect(value[key], ("string",), f"{prefix}.transcription.{key}")
        if "turn_detection" in inp and inp["turn_detection"] is not None:
            _turn_detection(inp["turn_detection"], f"{prefix}.turn_detection")
    if "output" in audio:
        out = audio["output"]
        prefix = "session.audio.output"
        expect(out, ("object",), prefix)
        check_keys(out, ("format", "voice", "speed"), prefix)
        if "format" in out:
            _format(out["format"], f"{prefix}.format")
        if "voice" in out:
            _voice(out["voice"], f"{prefix}.voice")
        if "speed" in out:
            _decimal(out["speed"], f"{prefix}.speed", 0.25, 1.5)


def _format(value: Any, param: str) -> None:
    expect(value, ("object",), param)
    check_keys(value, ("type", "rate"), param)
    kind = value.get("type", "audio/pcm")
    one_of(kind, ("audio/pcm", "audio/pcmu", "audio/pcma"), f"{param}.type")
    if kind != "audio/pcm":
        raise ClientError(f"Invalid value: '{kind}'. The rtd emulator (an offline development "
                          "peer) supports only 'audio/pcm'; the real service also accepts "
                          "'audio/pcmu' and 'audio/pcma'.", code="invalid_value",
                          param=f"{param}.type")
    if "rate" in value:
        _integer(value["rate"], f"{param}.rate", 24000, 24000)


def _voice(value: Any, param: str) -> None:
    expect(value, ("string", "object"), param)
    if isinstance(value, dict):
        check_keys(value, ("id",), param)
        expect(require(value, "id", param), ("string",), f"{param}.id")
    else:
        one_of(value, VOICES, param)


def _turn_detection(value: Any, param: str) -> None:
    expect(value, ("object",), param)
    kind = require(value, "type", param)
    one_of(kind, ("server_vad", "semantic_vad"), f"{param}.type")
    if kind == "server_vad":
        check_keys(value, SERVER_VAD_DEFAULTS, param)
        if "threshold" in value:
            _decimal(value["threshold"], f"{param}.threshold", 0.0, 1.0)
        for key in ("prefix_padding_ms", "silence_duration_ms"):
            if key in value:
                _integer(value[key], f"{param}.{key}", 0)
        if "idle_timeout_ms" in value and value["idle_timeout_ms"] is not None:
            _integer(value["idle_timeout_ms"], f"{param}.idle_timeout_ms", 0)
    else:
        check_keys(value, SEMANTIC_VAD_DEFAULTS, param)
        if "eagerness" in value:
            one_of(value["eagerness"], ("low", "medium", "high", "auto"), f"{param}.eagerness")
    for key in ("create_response", "interrupt_response"):
        if key in value:
            expect(value[key], ("boolean",), f"{param}.{key}")


def _tools(value: Any, param: str) -> None:
    expect(value, ("array",), param)
    for index, tool in enumerate(value):
        where = f"{param}[{index}]"
        expect(tool, ("object",), where)
        kind = tool.get("type", "function")
        one_of(kind, ("function", "mcp"), f"{where}.type")
        if kind == "function":
            check_keys(tool, ("type", "name", "description", "parameters"), where)
            expect(require(tool, "name", where), ("string",), f"{where}.name")
            if "description" in tool:
                expect(tool["description"], ("string",), f"{where}.description")
            if "parameters" in tool:
                expect(tool["parameters"], ("object",), f"{where}.parameters")
        else:
            expect(require(tool, "server_label", where), ("string",), f"{where}.server_label")


def _tool_choice(value: Any, param: str) -> None:
    expect(value, ("string", "object"), param)
    if isinstance(value, str):
        one_of(value, ("auto", "none", "required"), param)
        return
    kind = require(value, "type", param)
    one_of(kind, ("function", "mcp"), f"{param}.type")
    if kind == "function":
        check_keys(value, ("type", "name"), param)
        expect(require(value, "name", param), ("string",), f"{param}.name")
    else:
        check_keys(value, ("type", "server_label", "name"), param)


def _max_tokens(value: Any, param: str) -> None:
    if value == "inf":
        return
    expect(value, ("integer", "string"), param)
    if isinstance(value, str):
        one_of(value, ("inf",), param)
    _integer(value, param, 1, 4096)


def merge_session(config: dict[str, Any], session: dict[str, Any]) -> None:
    """Apply a validated session update: only the fields present change."""
    for key, value in session.items():
        if key == "audio":
            continue
        config[key] = copy.deepcopy(value)
    audio = session.get("audio") or {}
    inp = audio.get("input") or {}
    out = audio.get("output") or {}
    cur_in = config["audio"]["input"]
    cur_out = config["audio"]["output"]
    if "format" in inp:
        cur_in["format"] = {"type": "audio/pcm", "rate": 24000, **inp["format"]}
    if "noise_reduction" in inp:
        cur_in["noise_reduction"] = copy.deepcopy(inp["noise_reduction"])
    if "transcription" in inp:
        value = inp["transcription"]
        cur_in["transcription"] = (None if value is None else
                                   {"model": None, "language": None, "prompt": None,
                                    **copy.deepcopy(value)})
    if "turn_detection" in inp:
        value = inp["turn_detection"]
        current = cur_in["turn_detection"]
        if value is None:
            cur_in["turn_detection"] = None
        elif current is not None and current.get("type") == value["type"]:
            current.update(copy.deepcopy(value))
        else:
            base = SERVER_VAD_DEFAULTS if value["type"] == "server_vad" else SEMANTIC_VAD_DEFAULTS
            cur_in["turn_detection"] = {**base, **copy.deepcopy(value)}
    if "format" in out:
        cur_out["format"] = {"type": "audio/pcm", "rate": 24000, **out["format"]}
    for key in ("voice", "speed"):
        if key in out:
            cur_out[key] = copy.deepcopy(out[key])


# ---------------------------------------------------------------------------------------------
# response.create


def validate_response_params(params: Any) -> dict[str, Any]:
    """Check the optional `response` of a response.create; return it (or {})."""
    if params is None:
        return {}
    expect(params, ("object",), "response")
    check_keys(params, _RESPONSE_KEYS, "response")
    if "conversation" in params:
        one_of(params["conversation"], ("auto", "none"), "response.conversation")
    if "output_modalities" in params:
        _modalities(params["output_modalities"], "response.output_modalities")
    if "instructions" in params:
        expect(params["instructions"], ("string",), "response.instructions")
    if "tools" in params:
        _tools(params["tools"], "response.tools")
    if "tool_choice" in params:
        _tool_choice(params["tool_choice"], "response.tool_choice")
    if "max_output_tokens" in params:
        _max_tokens(params["max_output_tokens"], "response.max_output_tokens")
    if "metadata" in params and params["metadata"] is not None:
        expect(params["metadata"], ("object",), "response.metadata")
        for key, value in params["metadata"].items():
            expect(value, ("string",), f"response.metadata.{key}")
    if "audio" in params:
        expect(params["audio"], ("object",), "response.audio")
        check_keys(params["audio"], ("output",), "response.audio")
        out = params["audio"].get("output", {})
        expect(out, ("object",), "response.audio.output")
        check_keys(out, ("format", "voice"), "response.audio.output")
        if "format" in out:
            _format(out["format"], "response.audio.output.format")
        if "voice" in out:
            _voice(out["voice"], "response.audio.output.voice")
    if "input" in params:
        expect(params["input"], ("array",), "response.input")
    checked: dict[str, Any] = params
    return checked


# ---------------------------------------------------------------------------------------------
# conversation items


def validate_item(item: Any) -> dict[str, Any]:
    """Check the `item` of a conversation.item.create; return the item as the server stores it.

    The returned item has no `id` when the client gave none (the caller assigns one).
    """
    if item is None:
        raise ClientError("Missing required parameter: 'item'.",
                          code="missing_required_parameter", param="item")
    expect(item, ("object",), "item")
    kind = require(item, "type", "item")
    one_of(kind, ("message", "function_call", "function_call_output"), "item.type")
    if "id" in item and item["id"] is not None:
        expect(item["id"], ("string",), "item.id")
    stored: dict[str, Any] = {"object": "realtime.item", "type": kind, "status": "completed"}
    if item.get("id"):
        stored["id"] = item["id"]
    if kind == "message":
        check_keys(item, (*_ITEM_COMMON, "role", "content"), "item")
        role = require(item, "role", "item")
        one_of(role, tuple(_PARTS_BY_ROLE), "item.role")
        content = require(item, "content", "item")
        expect(content, ("array",), "item.content")
        parts = []
        for index, part in enumerate(content):
            where = f"item.content[{index}]"
            expect(part, ("object",), where)
            part_type = require(part, "type", where)
            one_of(part_type, _PARTS_BY_ROLE[role], f"{where}.type")
            check_keys(part, _PART_KEYS[part_type], where)
            for key in ("text", "transcript", "audio", "image_url"):
                if key in part and part[key] is not None:
                    expect(part[key], ("string",), f"{where}.{key}")
            if part_type in ("input_text", "output_text"):
                require(part, "text", where)
            parts.append(copy.deepcopy(part))
        stored.update(role=role, content=parts)
    elif kind == "function_call":
        check_keys(item, (*_ITEM_COMMON, "name", "call_id", "arguments"), "item")
        expect(require(item, "name", "item"), ("string",), "item.name")
        expect(require(item, "arguments", "item"), ("string",), "item.arguments")
        if "call_id" in item:
            expect(item["call_id"], ("string",), "item.call_id")
        stored.update(name=item["name"], call_id=item.get("call_id"), arguments=item["arguments"])
    else:
        check_keys(item, (*_ITEM_COMMON, "call_id", "output"), "item")
        expect(require(item, "call_id", "item"), ("string",), "item.call_id")
        expect(require(item, "output", "item"), ("string",), "item.output")
        stored.update(call_id=item["call_id"], output=item["output"])
    return stored
