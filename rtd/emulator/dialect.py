"""The emulator's side of the wire shapes: it speaks GA inside and, with ``dialect="beta"`` or
``"xai"``, the shape of those servers on the socket.

The client has its own translation (`rtd.protocol.dialects`); this one is written from the
server's view and shares no code with it on purpose: two independent implementations meeting
on the wire is what the dialect tests check. It is also stricter than it must be where the
servers document a shape: a beta emulator refuses GA-only fields (``session.type``,
``session.audio``, ``output_modalities``, ``output_text`` content) and requires the
``OpenAI-Beta: realtime=v1`` header; an xAI emulator refuses ``session.type`` and
``session.model`` (xAI takes the model from the URL only), so a client that forgets to
translate is told so, as it would be by the real thing.

Each dialect turns a client event into GA before validation (raising `ClientError` for a
shape its servers refuse), each GA server event into zero or more events on the wire, and the
REST call for ephemeral secrets into GA and back.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from rtd.emulator.validation import ClientError

PCM_RATE = 24000

_TO_BETA_NAMES = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
_BETA_FORMAT_TO_GA = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_GA_FORMAT_TO_BETA = {ga: beta for beta, ga in _BETA_FORMAT_TO_GA.items()}
_BETA_ASSISTANT = {"text": "output_text", "audio": "output_audio"}
_GA_ASSISTANT = {ga: beta for beta, ga in _BETA_ASSISTANT.items()}


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _unknown(param: str) -> ClientError:
    return ClientError(f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)


class WireDialect:
    """GA: the emulator's own shape; nothing changes on the wire."""

    name = "ga"
    #: Where the REST call for an ephemeral secret lives (under /v1).
    secrets_path = "/realtime/client_secrets"

    def refusal(self, headers: Mapping[str, str]) -> tuple[str, int, str] | None:
        """(error code, close code, message) when the upgrade's headers are of another shape."""
        if "realtime=v1" in headers.get("openai-beta", ""):
            return ("beta_api_shape_disabled", 4000,
                    "The beta Realtime API shape is no longer supported; remove the "
                    "'OpenAI-Beta: realtime=v1' header and use the GA shape.")
        return None

    def prepare(self, session: dict[str, Any]) -> None:
        """Adjust a new connection's GA session to what this dialect's servers start with."""

    def client_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """A client event from the wire as GA (ClientError: a shape this server refuses)."""
        return event

    def server_events(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """What goes on the wire for one GA server event (possibly nothing, possibly more)."""
        return [event]

    def secret_request(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        """(GA session or None, expires_after) of the REST request's body."""
        return body.get("session"), body.get("expires_after")

    def secret_response(self, value: str, expires_at: int,
                        session: dict[str, Any]) -> dict[str, Any]:
        return {"value": value, "expires_at": expires_at, "session": session}


class BetaWire(WireDialect):
    """The beta shape: flat sessions, the older event names, the OpenAI-Beta header."""

    name = "beta"
    secrets_path = "/realtime/sessions"

    def refusal(self, headers: Mapping[str, str]) -> tuple[str, int, str] | None:
        if "realtime=v1" not in headers.get("openai-beta", ""):
            return ("missing_beta_header", 4000,
                    "rtd emulator (beta dialect): send the 'OpenAI-Beta: realtime=v1' header.")
        return None

    def client_event(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event.get("type")
        if kind == "session.update" and isinstance(event.get("session"), dict):
            return {**event, "session": beta_session_to_ga(event["session"], "session")}
        if kind == "response.create" and isinstance(event.get("response"), dict):
            response = beta_session_to_ga(event["response"], "response", response=True)
            response.pop("type", None)
            if isinstance(response.get("input"), list):
                response["input"] = [_item_to_ga(i, f"response.input[{n}]")
                                     for n, i in enumerate(response["input"])]
            return {**event, "response": response}
        if kind == "conversation.item.create":
            return {**event, "item": _item_to_ga(event.get("item"), "item")}
        return event

    def server_events(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event["type"]
        if kind == "conversation.item.done":
            return []  # beta had no .done item events
        out = dict(event)
        out["type"] = _TO_BETA_NAMES.get(kind, kind)
        if kind in ("session.created", "session.updated"):
            out["session"] = ga_session_to_beta(event["session"])
        elif kind in ("response.created", "response.done"):
            response = dict(event["response"])
            modalities = response.pop("output_modalities", None)
            if modalities is not None:
                response["modalities"] = ["audio", "text"] if "audio" in modalities \
                    else ["text"]
            response["output"] = [_item_to_beta(i) for i in response.get("output") or []]
            out["response"] = response
        elif "item" in event:
            out["item"] = _item_to_beta(event["item"])
        return [out]

    def secret_request(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        flat = {k: v for k, v in body.items() if k != "client_secret"}
        secret = body.get("client_secret")
        expires = secret.get("expires_after") if isinstance(secret, dict) else None
        return beta_session_to_ga(flat, "session"), expires

    def secret_response(self, value: str, expires_at: int,
                        session: dict[str, Any]) -> dict[str, Any]:
        return {**ga_session_to_beta(session),
                "client_secret": {"value": value, "expires_at": expires_at}}


def beta_session_to_ga(flat: dict[str, Any], where: str, *,
                       response: bool = False) -> dict[str, Any]:
    """A beta session (or response override) as GA; GA-only fields are refused."""
    for key in ("type", "output_modalities", "audio", "max_output_tokens"):
        if key in flat:
            raise _unknown(f"{where}.{key}")
    out: dict[str, Any] = {} if response else {"type": "realtime"}
    heard: dict[str, Any] = {}
    said: dict[str, Any] = {}
    for key, value in flat.items():
        if key == "modalities":
            if not isinstance(value, list):
                raise ClientError(f"Invalid type for '{where}.modalities': expected an array.",
                                  code="invalid_type", param=f"{where}.modalities")
            out["output_modalities"] = ["audio"] if "audio" in value else ["text"]
        elif key in ("input_audio_format", "output_audio_format"):
            if value not in _BETA_FORMAT_TO_GA:
                raise ClientError(f"Invalid value: {value!r}. Supported values are: 'pcm16', "
                                  "'g711_ulaw', and 'g711_alaw'.", code="invalid_value",
                                  param=f"{where}.{key}")
            kind = _BETA_FORMAT_TO_GA[value]
            fmt = {"type": kind, "rate": PCM_RATE} if kind == "audio/pcm" else {"type": kind}
            (heard if key.startswith("input") else said)["format"] = fmt
        elif key == "input_audio_transcription":
            heard["transcription"] = value
        elif key == "input_audio_noise_reduction":
            heard["noise_reduction"] = value
        elif key == "turn_detection":
            heard["turn_detection"] = value
        elif key in ("voice", "speed"):
            said[key] = value
        elif key == "max_response_output_tokens":
            out["max_output_tokens"] = value
        elif key == "temperature":
            pass  # beta had it; the GA model behind the emulator has no such knob
        else:
            out[key] = value
    if response:
        if said:
            out["audio"] = {"output": said}
    elif heard or said:
        out["audio"] = {k: v for k, v in (("input", heard), ("output", said)) if v}
    return out


def ga_session_to_beta(session: Mapping[str, Any]) -> dict[str, Any]:
    """The emulator's GA session as a beta server reports it."""
    audio = session.get("audio") or {}
    heard = audio.get("input") or {}
    said = audio.get("output") or {}
    out = {k: v for k, v in session.items()
           if k in ("id", "object", "model", "instructions", "tools", "tool_choice", "tracing",
                    "expires_at")}
    modalities = session.get("output_modalities") or ["audio"]
    out["modalities"] = ["audio", "text"] if "audio" in modalities else ["text"]
    out["voice"] = said.get("voice")
    out["speed"] = said.get("speed")
    out["input_audio_format"] = _GA_FORMAT_TO_BETA.get(
        (heard.get("format") or {}).get("type", "audio/pcm"), "pcm16")
    out["output_audio_format"] = _GA_FORMAT_TO_BETA.get(
        (said.get("format") or {}).get("type", "audio/pcm"), "pcm16")
    out["input_audio_transcription"] = heard.get("transcription")
    out["input_audio_noise_reduction"] = heard.get("noise_reduction")
    out["turn_detection"] = heard.get("turn_detection")
    out["max_response_output_tokens"] = session.get("max_output_tokens", "inf")
    out["temperature"] = 0.8
    return out


def _item_to_ga(item: Any, where: str) -> Any:
    if not isinstance(item, dict) or item.get("role") != "assistant" \
            or not isinstance(item.get("content"), list):
        return item
    parts = []
    for n, part in enumerate(item["content"]):
        if isinstance(part, dict) and part.get("type") in _GA_ASSISTANT:
            raise ClientError(f"Invalid value: '{part['type']}'. Supported values are: "
                              "'input_text', 'input_audio', 'item_reference', 'text', and "
                              "'audio'.", code="invalid_value",
                              param=f"{where}.content[{n}].type")
        if isinstance(part, dict) and part.get("type") in _BETA_ASSISTANT:
            part = {**part, "type": _BETA_ASSISTANT[part["type"]]}
        parts.append(part)
    return {**item, "content": parts}


def _item_to_beta(item: Any) -> Any:
    if not isinstance(item, dict) or item.get("role") != "assistant":
        return item
    return {**item, "content": [
        {**p, "type": _GA_ASSISTANT.get(p.get("type"), p.get("type"))}
        if isinstance(p, dict) else p for p in item.get("content") or []]}


class XaiWire(WireDialect):
    """xAI's shape: a flat session, conversation.created first, a ping server event."""

    name = "xai"

    def refusal(self, headers: Mapping[str, str]) -> tuple[str, int, str] | None:
        return None

    def prepare(self, session: dict[str, Any]) -> None:
        # xAI transcribes the user without being asked (its session has no such field)
        session["audio"]["input"]["transcription"] = {"model": "xai-builtin"}

    def client_event(self, event: dict[str, Any]) -> dict[str, Any]:
        kind = event.get("type")
        if kind == "session.update" and isinstance(event.get("session"), dict):
            flat = event["session"]
            for key in ("type", "model"):
                if key in flat:
                    raise _unknown(f"session.{key}")
            out: dict[str, Any] = {"type": "realtime"}
            audio = dict(flat.get("audio") or {}) if isinstance(flat.get("audio"), dict) \
                else flat.get("audio")
            for key, value in flat.items():
                if key == "voice":
                    audio = audio if isinstance(audio, dict) else {}
                    audio["output"] = {**(audio.get("output") or {}), "voice": value}
                elif key == "turn_detection":
                    audio = audio if isinstance(audio, dict) else {}
                    audio["input"] = {**(audio.get("input") or {}), "turn_detection": value}
                elif key != "audio":
                    out[key] = value
            if audio is not None:
                out["audio"] = audio
            return {**event, "session": out}
        if kind == "response.create" and isinstance(event.get("response"), dict):
            response = dict(event["response"])
            if "output_modalities" in response:
                raise _unknown("response.output_modalities")
            modalities = response.pop("modalities", None)
            if isinstance(modalities, list):
                response["output_modalities"] = ["audio"] if "audio" in modalities \
                    else ["text"]
            return {**event, "response": response}
        return event

    def server_events(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event["type"]
        if kind == "session.created":
            return [{"type": "conversation.created", "event_id": event["event_id"],
                     "conversation": {"id": _id("conv"), "object": "realtime.conversation"}},
                    {"type": "ping", "event_id": _id("event"),
                     "timestamp": int(time.time() * 1000)}]
        if kind == "session.updated":
            return [{**event, "session": _xai_session(event["session"])}]
        if kind == "response.done":
            return [{**event, "usage": (event.get("response") or {}).get("usage")}]
        return [event]

    def secret_request(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, Any]:
        return None, body.get("expires_after")

    def secret_response(self, value: str, expires_at: int,
                        session: dict[str, Any]) -> dict[str, Any]:
        return {"value": value, "expires_at": expires_at}


def _xai_session(session: Mapping[str, Any]) -> dict[str, Any]:
    audio = session.get("audio") or {}
    heard = audio.get("input") or {}
    said = audio.get("output") or {}
    out = {k: v for k, v in session.items() if k in ("id", "instructions", "tools")}
    out["voice"] = said.get("voice")
    out["turn_detection"] = heard.get("turn_detection")
    out["audio"] = {"input": {"format": heard.get("format")},
                    "output": {"format": said.get("format")}}
    return out


WIRE_DIALECTS: Mapping[str, WireDialect] = {d.name: d for d in (WireDialect(), BetaWire(),
                                                                XaiWire())}


def wire_dialect(name: str) -> WireDialect:
    """The dialect called ``name``; ValueError naming the known ones otherwise."""
    found = WIRE_DIALECTS.get(name)
    if found is None:
        raise ValueError(f"unknown dialect {name!r}; known: {', '.join(WIRE_DIALECTS)}")
    return found
