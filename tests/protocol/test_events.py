"""The wire shapes rtd sends and the way it reads what servers send."""

from __future__ import annotations

import base64
import json

import pytest

from rtd.builtin.clock import CLOCK
from rtd.config import SessionConfig
from rtd.exceptions import ProtocolError
from rtd.protocol import events
from rtd.protocol.providers import endpoint, with_model


def test_session_update_is_ga_shaped():
    update = events.session_update(SessionConfig(language="en"), "gpt-realtime-2",
                                   [CLOCK.schema()])
    s = update["session"]
    assert update["type"] == "session.update"
    assert s["type"] == "realtime" and s["model"] == "gpt-realtime-2"
    assert s["output_modalities"] == ["audio"]
    assert s["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert s["audio"]["input"]["transcription"] == {"model": "gpt-4o-mini-transcribe",
                                                    "language": "en"}
    assert s["audio"]["input"]["noise_reduction"] == {"type": "far_field"}
    td = s["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad"
    assert td["interrupt_response"] is True and td["create_response"] is True
    assert s["audio"]["output"]["voice"] == "marin"
    assert s["tools"] == [{"type": "function", "name": "clock",
                           "description": CLOCK.description,
                           "parameters": {"type": "object", "properties": {},
                                          "additionalProperties": False}}]
    # none of the beta spellings GA rejects
    for beta in ("modalities", "voice", "input_audio_format", "input_audio_transcription",
                 "turn_detection", "temperature", "max_response_output_tokens"):
        assert beta not in s


def test_session_update_variants():
    s = events.session_update(SessionConfig(turn_detection="none", transcription_model="",
                                            noise_reduction="none", output="text"), "m")["session"]
    assert s["audio"]["input"]["turn_detection"] is None
    assert "transcription" not in s["audio"]["input"]
    assert "noise_reduction" not in s["audio"]["input"]
    assert s["output_modalities"] == ["text"]
    s = events.session_update(SessionConfig(turn_detection="semantic_vad", eagerness="low"),
                              "m")["session"]
    assert s["audio"]["input"]["turn_detection"]["eagerness"] == "low"


def test_vad_tuning_and_who_interrupts_are_always_explicit():
    td = events.session_update(SessionConfig(vad_threshold=0.7, silence_ms=650,
                                             prefix_padding_ms=200, idle_timeout_ms=8000),
                               "m")["session"]["audio"]["input"]["turn_detection"]
    assert td == {"type": "server_vad", "threshold": 0.7, "prefix_padding_ms": 200,
                  "silence_duration_ms": 650, "idle_timeout_ms": 8000,
                  "create_response": True, "interrupt_response": True}
    assert "idle_timeout_ms" not in events.session_update(SessionConfig(), "m")[
        "session"]["audio"]["input"]["turn_detection"]
    # with barge_in_min_ms rtd decides: the server neither interrupts nor answers by itself
    for kind in ("server_vad", "semantic_vad"):
        td = events.session_update(SessionConfig(turn_detection=kind), "m",
                                   barge_in_min_ms=300)["session"]["audio"]["input"][
                                       "turn_detection"]
        assert (td["interrupt_response"], td["create_response"]) == (False, False)


def test_barge_in_client_events():
    assert events.item_truncate("it", 1234) == {
        "type": "conversation.item.truncate", "item_id": "it", "content_index": 0,
        "audio_end_ms": 1234}
    assert events.item_delete("it") == {"type": "conversation.item.delete", "item_id": "it"}
    assert events.item_retrieve("it") == {"type": "conversation.item.retrieve", "item_id": "it"}
    assert events.input_audio_clear() == {"type": "input_audio_buffer.clear"}


def test_client_event_builders_round_trip():
    pcm = bytes(range(10))
    ev = events.audio_append(pcm)
    assert base64.b64decode(ev["audio"]) == pcm
    assert events.function_call_output("call_1", "{}") == {
        "type": "conversation.item.create",
        "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"}}
    assert json.loads(events.encode_client_event(events.user_text("hi")))["item"]["content"] == [
        {"type": "input_text", "text": "hi"}]
    with pytest.raises(ValueError):
        events.encode_client_event({"no": "type"})


def test_server_event_attribute_access():
    ev = events.parse_server_event(json.dumps({
        "type": "error", "error": {"code": "x", "message": "m", "event_id": None}}))
    assert ev.type == "error" and ev.error.code == "x" and ev["error"]["message"] == "m"
    assert ev.to_dict()["type"] == "error"
    with pytest.raises(AttributeError, match="error has no field 'nope'"):
        _ = ev.nope
    with pytest.raises(ProtocolError):
        events.parse_server_event("not json")
    with pytest.raises(ProtocolError):
        events.parse_server_event("[1, 2]")


def test_event_lists_match_the_protocol():
    assert len(events.CLIENT_EVENT_TYPES) == 11
    assert len(events.SERVER_EVENT_TYPES) == 46


def test_endpoints_per_provider():
    e = endpoint("openai", "gpt-realtime-2", "sk-1")
    assert e.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime-2"
    assert e.headers == {"Authorization": "Bearer sk-1"}
    e = endpoint("azure", "dep", "az-1",
                 "wss://r.openai.azure.com/openai/v1/realtime?model=dep")
    assert e.url == "wss://r.openai.azure.com/openai/v1/realtime?model=dep"
    assert e.headers == {"api-key": "az-1"}
    e = endpoint("custom", "m", None, "ws://127.0.0.1:9/v1/realtime",
                 {"x-portkey-provider": "openai"})
    assert e.url == "ws://127.0.0.1:9/v1/realtime?model=m"
    assert e.headers == {"x-portkey-provider": "openai"}
    assert "sk-1" not in repr(endpoint("openai", "m", "sk-1"))


def test_safe_url_hides_query_credentials():
    e = endpoint("custom", "m", None, "wss://h/v1/realtime?api_key=abc&model=m")
    assert "abc" not in e.safe_url and "model=m" in e.safe_url
    assert with_model("ws://h/x?model=a", "b") == "ws://h/x?model=a"
