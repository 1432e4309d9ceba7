"""The client's dialects, event by event (the emulator's own translation meets them on the
wire in tests/test_client.py, tests/actors and tests/e2e)."""

from __future__ import annotations

from typing import Any

import pytest

from rtd.protocol import dialects
from rtd.protocol.events import session_update
from rtd.protocol.providers import endpoint

GA, BETA, XAI = (dialects.get(n) for n in ("ga", "beta", "xai"))


class Settings:
    instructions = "Be brief."
    voice = "cedar"
    output = "audio"
    turn_detection = "server_vad"
    transcription_model = "gpt-4o-mini-transcribe"
    language = ""
    vad_threshold = 0.5
    silence_ms = 500
    prefix_padding_ms = 300
    idle_timeout_ms = 0
    eagerness = "auto"
    noise_reduction = "far_field"
    speed = 1.0


UPDATE = session_update(Settings(), "gpt-realtime-2", [{"type": "function", "name": "clock"}])


def test_ga_says_the_rates_even_when_the_caller_did_not() -> None:
    sent = GA.outgoing({"type": "session.update", "session": {"type": "realtime"}})
    audio = sent["session"]["audio"]
    assert audio["input"]["format"] == audio["output"]["format"] == {
        "type": "audio/pcm", "rate": 24000}
    mulaw = GA.outgoing({"type": "session.update", "session": {
        "type": "realtime", "audio": {"input": {"format": {"type": "audio/pcmu"}}}}})
    assert mulaw["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    transcription = GA.outgoing({"type": "session.update", "session": {"type": "transcription"}})
    assert set(transcription["session"]["audio"]) == {"input"}
    other = {"type": "input_audio_buffer.commit"}
    assert GA.outgoing(other) is other


def test_beta_session_update_is_flat_and_round_trips() -> None:
    flat = BETA.outgoing(UPDATE)["session"]
    assert flat["modalities"] == ["audio", "text"]
    assert (flat["input_audio_format"], flat["output_audio_format"]) == ("pcm16", "pcm16")
    assert flat["voice"] == "cedar" and flat["speed"] == 1.0
    assert flat["turn_detection"]["type"] == "server_vad"
    assert flat["input_audio_transcription"] == {"model": "gpt-4o-mini-transcribe"}
    assert flat["input_audio_noise_reduction"] == {"type": "far_field"}
    assert "type" not in flat and "audio" not in flat and "output_modalities" not in flat
    back = BETA.incoming({"type": "session.updated", "session": dict(flat)})["session"]
    ga = UPDATE["session"]
    assert back["output_modalities"] == ga["output_modalities"]
    assert back["audio"]["input"] == ga["audio"]["input"]
    assert back["audio"]["output"] == ga["audio"]["output"]


def test_beta_names_and_assistant_content() -> None:
    delta = BETA.incoming({"type": "response.audio.delta", "delta": "AAAA"})
    assert delta["type"] == "response.output_audio.delta"
    assert BETA.incoming({"type": "response.text.done"})["type"] == "response.output_text.done"
    item = {"role": "assistant", "type": "message", "content": [{"type": "text", "text": "x"}]}
    done = BETA.incoming({"type": "response.done", "response": {
        "modalities": ["text"], "output": [item]}})
    assert done["response"]["output_modalities"] == ["text"]
    assert done["response"]["output"][0]["content"][0]["type"] == "output_text"
    replay = BETA.outgoing({"type": "conversation.item.create", "item": {
        "type": "message", "role": "assistant",
        "content": [{"type": "output_text", "text": "Earlier."}]}})
    assert replay["item"]["content"][0]["type"] == "text"
    response = BETA.outgoing({"type": "response.create", "response": {
        "output_modalities": ["text"], "max_output_tokens": 50}})["response"]
    assert response == {"modalities": ["text"], "max_response_output_tokens": 50}


def test_xai_session_is_flat_and_ping_stays_below() -> None:
    flat = XAI.outgoing(UPDATE)["session"]
    assert set(flat) == {"instructions", "tools", "voice", "turn_detection", "audio"}
    assert flat["audio"] == {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                             "output": {"format": {"type": "audio/pcm", "rate": 24000}}}
    assert XAI.incoming({"type": "ping", "timestamp": 1}) is None
    back = XAI.incoming({"type": "session.updated", "session": dict(flat)})["session"]
    assert back["audio"]["output"]["voice"] == "cedar"
    assert back["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    done = XAI.incoming({"type": "response.done", "response": {"id": "r"},
                         "usage": {"total_tokens": 3}})
    assert done["response"]["usage"] == {"total_tokens": 3} and "usage" not in done
    assert XAI.outgoing({"type": "response.create", "response": {
        "output_modalities": ["audio"]}})["response"] == {"modalities": ["text", "audio"]}


def test_session_keywords_of_the_beta_era_map_to_ga_once(
        caplog: pytest.LogCaptureFixture) -> None:
    dialects._logged.clear()
    given: dict[str, Any] = {"modalities": ["text"], "voice": "ash", "temperature": 0.7,
                             "input_audio_format": "g711_ulaw",
                             "max_response_output_tokens": 200}
    with caplog.at_level("WARNING", logger="rtd.protocol.dialects"):
        ga = dialects.session_from_beta(given, request=True)
        dialects.session_from_beta(given, request=True)
    assert ga == {"type": "realtime", "output_modalities": ["text"], "max_output_tokens": 200,
                  "audio": {"input": {"format": {"type": "audio/pcmu"}},
                            "output": {"voice": "ash"}}}
    assert len([r for r in caplog.records if "temperature" in r.message]) == 1


@pytest.mark.parametrize(("provider", "dialect", "expected", "header"), [
    ("openai", "", "ga", None), ("custom", "", "ga", None), ("xai", "", "xai", None),
    ("custom", "beta", "beta", "realtime=v1"), ("xai", "ga", "ga", None)])
def test_endpoint_carries_the_dialect(provider: str, dialect: str, expected: str,
                                      header: str | None) -> None:
    target = endpoint(provider, "m", "k", "ws://127.0.0.1:1/v1/realtime"
                      if provider == "custom" else "", dialect=dialect)
    assert target.dialect.name == expected
    assert target.headers.get("OpenAI-Beta") == header
    if provider == "xai":
        assert target.url == "wss://api.x.ai/v1/realtime?model=m"


def test_an_unknown_dialect_is_named() -> None:
    with pytest.raises(ValueError, match="unknown dialect 'xia' \\(did you mean 'xai'\\?\\)"):
        dialects.get("xia")
