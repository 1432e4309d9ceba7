"""The emulator against a real WebSocket client: handshake, validation, turns, tools, faults."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest
import websocket
from emulator_helpers import Client, silence

from rtd.emulator import Emulator, Scenario, ScriptedError, Turn, synthesize

CLOCK = Scenario(turns=(
    Turn(transcript="What time is it?", call="clock", arguments={"zone": "local"},
         then="It is {time} on {date}."),
    Turn(transcript="Thanks", reply="You're welcome."),
))
SPEECH = synthesize("What time is it?", "tones")
TIMEOUT_S = 5.0


def session_update(client: Client, **session: Any) -> dict[str, Any]:
    client.send(type="session.update", session={"type": "realtime", **session})
    return client.until("session.updated")["session"]


def manual_turns(client: Client, **audio_input: Any) -> None:
    """Switch off server VAD (the client commits and asks for responses itself)."""
    session_update(client, audio={"input": {"turn_detection": None, **audio_input}})


def say_text(client: Client, text: str) -> None:
    client.send(type="conversation.item.create",
                item={"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": text}]})
    client.until("conversation.item.done")


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# -- handshake ---------------------------------------------------------------------------------


def test_session_created_is_a_full_ga_session(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url + "?model=gpt-realtime-2.1", ["X-Trace: abc"])
    event = client.recv()
    assert event["type"] == "session.created"
    assert event["event_id"].startswith("event_")
    session = event["session"]
    assert session["type"] == "realtime"
    assert session["model"] == "gpt-realtime-2.1"
    assert session["output_modalities"] == ["audio"]
    assert session["tools"] == []
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    vad = session["audio"]["input"]["turn_detection"]
    assert vad["type"] == "server_vad"
    assert vad["create_response"] is True and vad["interrupt_response"] is True
    assert {"threshold", "prefix_padding_ms", "silence_duration_ms"} <= vad.keys()
    assert session["audio"]["output"]["voice"] == "marin"
    assert 3500 < session["expires_at"] - time.time() <= 3601
    assert emulator.connections == 1
    assert emulator.headers[0]["x-trace"] == "abc"
    assert emulator.paths == ["/v1/realtime?model=gpt-realtime-2.1"]
    assert emulator.sent[0]["type"] == "session.created"


def test_model_defaults_when_the_query_has_none(emulator: Emulator, connect: Any) -> None:
    assert connect(emulator.url).recv()["session"]["model"] == "gpt-realtime-2"


def test_session_update_changes_only_the_fields_present(emulator: Emulator,
                                                        connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    session = session_update(client, instructions="Be brief.",
                             audio={"output": {"voice": "cedar"}})
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    session = session_update(client, output_modalities=["text"], audio={"input": {
        "turn_detection": {"type": "server_vad", "silence_duration_ms": 700}}})
    assert session["output_modalities"] == ["text"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "cedar"
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 700
    assert session["audio"]["input"]["turn_detection"]["create_response"] is True


def test_a_wrong_key_is_refused_with_http_401(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(api_key="sk-right")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(emulator.url, ["Authorization: Bearer sk-wrong"])
    assert refused.value.status_code == 401
    body = json.loads(refused.value.resp_body)
    assert body["error"]["code"] == "invalid_api_key"
    assert body["error"]["type"] == "invalid_request_error"
    assert emulator.connections == 0
    assert connect(emulator.url, ["Authorization: Bearer sk-right"]).recv()["type"] == \
        "session.created"
    assert connect(emulator.url, ["api-key: sk-right"]).recv()["type"] == "session.created"
    assert emulator.connections == 2


def test_a_missing_key_is_refused(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(api_key="sk-right")
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(emulator.url)
    assert refused.value.status_code == 401


def test_auth_failure_close_mode_sends_an_error_then_3000(make_emulator: Any,
                                                          connect: Any) -> None:
    emulator = make_emulator(api_key="sk-right", auth_failure="close")
    client = connect(emulator.url, ["Authorization: Bearer sk-wrong"])
    assert client.recv()["error"]["code"] == "invalid_api_key"
    assert client.close_frame() == (3000, "invalid_request_error.invalid_api_key")


def test_beta_header_gets_an_error_and_close_4000(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url, ["OpenAI-Beta: realtime=v1"])
    event = client.recv()
    assert event["type"] == "error"
    assert event["error"]["code"] == "beta_api_shape_disabled"
    code, reason = client.close_frame()
    assert code == 4000
    assert "beta_api_shape_disabled" in reason


# -- validation --------------------------------------------------------------------------------

BAD_EVENTS = [
    ({"type": "response.bogus"}, "invalid_value", "type"),
    ({"event_id": "x"}, "missing_required_parameter", "type"),
    ({"type": "session.update", "session": {"instructions": "hi"}},
     "missing_required_parameter", "session.type"),
    ({"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}},
     "unknown_parameter", "session.modalities"),
    ({"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}},
     "unknown_parameter", "session.voice"),
    ({"type": "session.update", "session": {"type": "realtime", "input_audio_format": "pcm16"}},
     "unknown_parameter", "session.input_audio_format"),
    ({"type": "session.update", "session": {"type": "realtime", "temperature": 0.8}},
     "unknown_parameter", "session.temperature"),
    ({"type": "session.update", "session": {"type": "realtime", "turn_detection": None}},
     "unknown_parameter", "session.turn_detection"),
    ({"type": "session.update",
      "session": {"type": "realtime", "output_modalities": ["audio", "text"]}},
     "invalid_value", "session.output_modalities"),
    ({"type": "session.update",
      "session": {"type": "realtime", "audio": {"output": {"voice": "nova"}}}},
     "invalid_value", "session.audio.output.voice"),
    ({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"format": {"type": "audio/pcm", "rate": 16000}}}}},
     "integer_below_min_value", "session.audio.input.format.rate"),
    ({"type": "session.update", "session": {"type": "realtime", "instructions": 5}},
     "invalid_type", "session.instructions"),
    ({"type": "input_audio_buffer.append", "audio": "not base64!"}, "invalid_value", "audio"),
    ({"type": "input_audio_buffer.commit", "extra": 1}, "unknown_parameter", "extra"),
    ({"type": "output_audio_buffer.clear"}, "invalid_value", "type"),
    ({"type": "conversation.item.create", "item": {"role": "user"}},
     "missing_required_parameter", "item.type"),
    ({"type": "response.cancel"}, "response_cancel_not_active", None),
    ({"type": "conversation.item.delete", "item_id": "item_nope"}, "invalid_value", "item_id"),
]


@pytest.mark.parametrize(("event", "code", "param"), BAD_EVENTS,
                         ids=[f"{c}:{p}" for _, c, p in BAD_EVENTS])
def test_bad_events_get_an_error_and_the_session_stays_open(
        emulator: Emulator, connect: Any, event: dict[str, Any], code: str,
        param: str | None) -> None:
    client = connect(emulator.url)
    client.recv()
    client.send(**{"event_id": "evt_client_1", **event})
    error = client.until("error")["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == code
    assert error["param"] == param
    assert error["event_id"] == event.get("event_id", "evt_client_1")
    if code in ("unknown_parameter", "missing_required_parameter", "invalid_type"):
        assert f"'{param}'" in error["message"]
    # nothing was applied, and the session still answers
    session = session_update(client)
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["output"]["voice"] == "marin"


def test_error_messages_name_the_parameter(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    client.send(type="session.update", session={"instructions": "hi"})
    assert client.until("error")["error"]["message"] == \
        "Missing required parameter: 'session.type'."
    client.send(type="session.update", session={"type": "realtime", "modalities": ["audio"]})
    assert client.until("error")["error"]["message"] == \
        "Unknown parameter: 'session.modalities'."


def test_frames_that_are_not_events_get_errors(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    client.send_raw("not json")
    assert client.until("error")["error"]["code"] == "invalid_json"
    client.ws.send_binary(b"\x00\x01")
    assert client.until("error")["error"]["code"] == "invalid_event"
    client.send_raw("[1, 2]")
    assert client.until("error")["error"]["code"] == "invalid_event"
    assert session_update(client)["type"] == "realtime"
    assert emulator.received[0] == {"type": None, "_invalid_json": "not json"}
    assert emulator.received[1] == {"type": None, "_binary_bytes": 2}


# -- turns -------------------------------------------------------------------------------------


def test_server_vad_turn_from_speech_to_spoken_reply(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(Scenario(turns=(
        Turn(transcript="Hello there", reply="Hi, how can I help?"),)))
    client = connect(emulator.url)
    client.recv()
    session_update(client, audio={"input": {"transcription": {"model": "gpt-4o-transcribe"}}})
    audio = silence(0.5) + SPEECH + silence(1.0)
    client.append(audio)
    events = client.collect("response.done")
    names = types(events)
    started = events[names.index("input_audio_buffer.speech_started")]
    stopped = events[names.index("input_audio_buffer.speech_stopped")]
    committed = events[names.index("input_audio_buffer.committed")]
    assert 0 < started["audio_start_ms"] <= 500  # includes the prefix padding before 500 ms
    speech_end_ms = 500 + len(SPEECH) // 48
    assert speech_end_ms <= stopped["audio_end_ms"] <= speech_end_ms + 500
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert committed["previous_item_id"] is None
    added = events[names.index("conversation.item.added")]
    assert added["item"]["role"] == "user"
    assert added["item"]["content"][0]["type"] == "input_audio"
    deltas = [e["delta"] for e in events
              if e["type"] == "conversation.item.input_audio_transcription.delta"]
    completed = events[names.index("conversation.item.input_audio_transcription.completed")]
    assert "".join(deltas) == completed["transcript"] == "Hello there"
    assert completed["item_id"] == committed["item_id"]
    assert names.index("input_audio_buffer.speech_stopped") < names.index("response.created")
    audio_deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert len(audio_deltas) >= 2
    pcm = b"".join(base64.b64decode(e["delta"]) for e in audio_deltas)
    assert pcm == synthesize("Hi, how can I help?", "tones")
    transcript = events[names.index("response.output_audio_transcript.done")]["transcript"]
    assert transcript == "Hi, how can I help?"
    assert "".join(e["delta"] for e in events
                   if e["type"] == "response.output_audio_transcript.delta") == transcript
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["transcript"] == transcript
    assert done["usage"]["output_tokens"] > 0
    for earlier, later in [("response.created", "response.output_item.added"),
                           ("response.output_item.added", "response.content_part.added"),
                           ("response.content_part.added", "response.output_audio.delta"),
                           ("response.output_audio.done", "response.content_part.done"),
                           ("response.content_part.done", "response.output_item.done")]:
        assert names.index(earlier) < names.index(later)
    assert emulator.input_audio == audio
    appends = [e for e in emulator.received if e["type"] == "input_audio_buffer.append"]
    assert "audio" not in appends[0] and appends[0]["audio_bytes"] == 4800
    sent_delta = next(e for e in emulator.sent if e["type"] == "response.output_audio.delta")
    assert "delta" not in sent_delta and sent_delta["delta_bytes"] > 0
    assert emulator.scenario_done.wait(TIMEOUT_S)


def test_vad_without_transcription_and_without_a_scenario(emulator: Emulator,
                                                          connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    client.append(silence(0.3) + SPEECH + silence(0.6))
    events = client.collect("response.done")
    assert "conversation.item.input_audio_transcription.completed" not in types(events)
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "I heard you."


def test_placeholder_transcript_when_the_scenario_has_none(emulator: Emulator,
                                                           connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    session_update(client, audio={"input": {"transcription": {"model": "whisper-1"}}})
    client.append(silence(0.3) + SPEECH + silence(0.6))
    transcript = client.until("conversation.item.input_audio_transcription.completed")
    assert transcript["transcript"].startswith("[emulator: ")
    assert transcript["transcript"].endswith(" s of speech]")


def test_manual_turn_commit_then_response_create(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    client.append(SPEECH)
    client.send(type="input_audio_buffer.commit")
    events = client.collect("conversation.item.done")
    assert types(events) == ["input_audio_buffer.committed", "conversation.item.added",
                             "conversation.item.done"]
    client.send(type="response.create")
    events = client.collect("response.done")
    assert "input_audio_buffer.speech_started" not in types(events)
    assert events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "I heard you."
    assert client.until("rate_limits.updated")["rate_limits"][0]["name"] == "tokens"


def test_commit_of_an_empty_buffer_is_an_error(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    client.send(type="input_audio_buffer.commit", event_id="evt_commit")
    error = client.until("error")["error"]
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert error["event_id"] == "evt_commit"
    client.append(silence(0.5))
    client.send(type="input_audio_buffer.clear")
    client.until("input_audio_buffer.cleared")
    client.send(type="input_audio_buffer.commit")
    assert client.until("error")["error"]["code"] == "input_audio_buffer_commit_empty"


def test_text_output_modality(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    session_update(client, output_modalities=["text"])
    say_text(client, "Hi")
    client.send(type="response.create")
    events = client.collect("response.done")
    assert "response.output_audio.delta" not in types(events)
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == "I heard you."
    assert events[types(events).index("response.output_text.done")]["text"] == text


# -- tools -------------------------------------------------------------------------------------


def test_function_call_then_reply_formatted_from_the_output(make_emulator: Any,
                                                            connect: Any) -> None:
    emulator = make_emulator(CLOCK)
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "What time is it?")
    client.send(type="response.create")
    events = client.collect("response.done")
    done = events[types(events).index("response.function_call_arguments.done")]
    assert done["name"] == "clock"
    assert json.loads(done["arguments"]) == {"zone": "local"}
    assert done["call_id"].startswith("call_")
    arg_deltas = [e["delta"] for e in events
                  if e["type"] == "response.function_call_arguments.delta"]
    assert "".join(arg_deltas) == done["arguments"]
    output = events[-1]["response"]["output"][0]
    assert output["type"] == "function_call" and output["call_id"] == done["call_id"]
    assert not emulator.scenario_done.is_set()

    client.send(type="conversation.item.create",
                item={"type": "function_call_output", "call_id": "call_unknown", "output": "{}"})
    assert client.until("error")["error"]["code"] == "invalid_tool_call_id"
    clock = {"time": "14:05", "date": "Saturday 21 November 2026", "timezone": "UTC",
             "iso": "2026-11-21T14:05:00+00:00"}
    client.send(type="conversation.item.create",
                item={"type": "function_call_output", "call_id": done["call_id"],
                      "output": json.dumps(clock)})
    client.until("conversation.item.done")
    client.send(type="response.create")
    reply = client.until("response.output_audio_transcript.done")["transcript"]
    assert reply == "It is 14:05 on Saturday 21 November 2026."
    client.until("response.done")
    assert not emulator.scenario_done.is_set()  # turn 2 is still to come

    say_text(client, "Thanks")
    client.send(type="response.create")
    assert client.until("response.output_audio_transcript.done")["transcript"] == \
        "You're welcome."
    client.until("response.done")
    assert emulator.scenario_done.wait(TIMEOUT_S)


def test_tool_output_that_does_not_fit_is_spoken_raw(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(CLOCK)
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "What time is it?")
    client.send(type="response.create")
    call = client.until("response.function_call_arguments.done")
    client.until("response.done")
    client.send(type="conversation.item.create",
                item={"type": "function_call_output", "call_id": call["call_id"],
                      "output": "clock unavailable"})
    client.send(type="response.create")
    assert client.until("response.output_audio_transcript.done")["transcript"] == \
        "clock unavailable"


# -- responses in flight -----------------------------------------------------------------------

STALLING = Scenario(turns=(Turn(reply="A slow answer.", stall_seconds=30.0),))


def test_response_create_while_active_then_cancel(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(STALLING)
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "Hello?")
    client.send(type="response.create")
    created = client.until("response.created")["response"]
    assert created["status"] == "in_progress"
    client.send(type="response.create", event_id="evt_second")
    error = client.until("error")["error"]
    assert error["code"] == "conversation_already_has_active_response"
    assert error["event_id"] == "evt_second"
    client.send(type="response.cancel")
    done = client.until("response.done")["response"]
    assert done["id"] == created["id"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    client.send(type="response.cancel")
    assert client.until("error")["error"]["code"] == "response_cancel_not_active"
    client.send(type="response.create")  # no new input: the default reply, not stalled
    assert client.until("response.done")["response"]["status"] == "completed"


def test_speech_cancels_the_active_response(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(STALLING)
    client = connect(emulator.url)
    client.recv()
    say_text(client, "Tell me a story.")
    client.send(type="response.create")
    client.until("response.created")
    client.append(silence(0.2) + SPEECH + silence(0.5))  # all at once, faster than real time
    events = client.collect("response.done")
    assert "input_audio_buffer.speech_started" in types(events)
    assert events[-1]["response"]["status_details"]["reason"] == "turn_detected"
    # the interruption is a new user turn, and it gets its own answer
    events += client.collect("response.done")
    assert "input_audio_buffer.committed" in types(events)
    assert events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "I heard you."


def test_interrupt_response_false_lets_the_response_run(make_emulator: Any,
                                                        connect: Any) -> None:
    emulator = make_emulator(Scenario(turns=(Turn(reply="Still here.", stall_seconds=0.3),)))
    client = connect(emulator.url)
    client.recv()
    session_update(client, audio={"input": {"turn_detection": {
        "type": "server_vad", "interrupt_response": False, "create_response": False}}})
    say_text(client, "Hello")
    client.send(type="response.create")
    client.until("response.created")
    client.append(silence(0.2) + SPEECH + silence(0.5))
    events = client.collect("response.done")
    assert "input_audio_buffer.speech_started" in types(events)
    assert events[-1]["response"]["status"] == "completed"
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Still here."


# -- items -------------------------------------------------------------------------------------


def test_truncate_retrieve_delete(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "Talk to me")
    user_item = client.events[-1]["item"]["id"]
    client.send(type="response.create")
    events = client.collect("response.done")
    item = events[-1]["response"]["output"][0]
    audio_ms = sum(len(base64.b64decode(e["delta"])) for e in events
                   if e["type"] == "response.output_audio.delta") // 48

    client.send(type="conversation.item.truncate", item_id=item["id"], content_index=0,
                audio_end_ms=audio_ms + 500)
    error = client.until("error")["error"]
    assert error["message"] == f"Audio content of {audio_ms}ms is already shorter than " \
                               f"{audio_ms + 500}ms"
    client.send(type="conversation.item.truncate", item_id=user_item, content_index=0,
                audio_end_ms=0)
    assert "Only model output audio messages" in client.until("error")["error"]["message"]

    client.send(type="conversation.item.truncate", item_id=item["id"], content_index=0,
                audio_end_ms=audio_ms // 2)
    truncated = client.until("conversation.item.truncated")
    assert (truncated["item_id"], truncated["audio_end_ms"]) == (item["id"], audio_ms // 2)
    client.send(type="conversation.item.retrieve", item_id=item["id"])
    kept = client.until("conversation.item.retrieved")["item"]["content"][0]["transcript"]
    assert "I heard you.".startswith(kept) and kept != "I heard you."

    client.send(type="conversation.item.delete", item_id=item["id"])
    assert client.until("conversation.item.deleted")["item_id"] == item["id"]
    client.send(type="conversation.item.retrieve", item_id=item["id"])
    assert client.until("error")["error"]["param"] == "item_id"


# -- session end and faults --------------------------------------------------------------------


def test_max_session_seconds_closes_with_1001(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(max_session_seconds=0.3)
    client = connect(emulator.url)
    created = client.recv()
    assert created["session"]["expires_at"] - time.time() < 5
    code, reason = client.close_frame()
    assert (code, reason) == (1001, "maximum duration")
    assert client.events[-1]["error"]["code"] == "session_expired"


def test_scripted_faults_and_reconnects_continue_the_scenario(make_emulator: Any,
                                                              connect: Any) -> None:
    emulator = make_emulator(Scenario(turns=(
        Turn(error=ScriptedError(type="server_error", code="overloaded", message="Busy.")),
        Turn(close=1001),
        Turn(drop=True, stall_seconds=0.1),
        Turn(reply="Back again."),
    )))
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "one")
    client.send(type="response.create")
    events = client.collect("error")
    assert events[-1]["error"] == {"type": "server_error", "code": "overloaded",
                                   "message": "Busy.", "param": None, "event_id": None}
    assert "response.created" not in types(events)

    say_text(client, "two")
    client.send(type="response.create")
    assert client.close_frame()[0] == 1001

    client = connect(emulator.url)  # a new, empty conversation; the scenario goes on
    client.recv()
    manual_turns(client)
    say_text(client, "three")
    client.send(type="response.create")
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        client.collect("response.done")

    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "four")
    client.send(type="response.create")
    assert client.until("response.output_audio_transcript.done")["transcript"] == "Back again."
    client.until("response.done")
    assert emulator.scenario_done.wait(TIMEOUT_S)
    assert emulator.connections == 3


def test_wait_for_sees_past_and_future_events(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    client.send(type="input_audio_buffer.clear", event_id="evt_a")
    assert emulator.wait_for(lambda e: e.get("event_id") == "evt_a")["type"] == \
        "input_audio_buffer.clear"
    assert emulator.wait_for_sent(lambda e: e["type"] == "input_audio_buffer.cleared")
    with pytest.raises(TimeoutError):
        emulator.wait_for(lambda e: e.get("type") == "response.create", timeout=0.05)


def test_stop_with_a_response_in_flight_is_clean(make_emulator: Any, connect: Any,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    emulator = make_emulator(STALLING)
    client = connect(emulator.url)
    client.recv()
    say_text(client, "Hello")
    client.send(type="response.create")
    client.until("response.created")
    with caplog.at_level(logging.WARNING):
        emulator.stop()
        emulator.stop()  # idempotent
    assert not any("destroyed" in r.getMessage() or r.levelno >= logging.ERROR
                   for r in caplog.records)
    assert client.close_frame()[0] == 1001
    with pytest.raises((ConnectionError, OSError, websocket.WebSocketException)):
        Client(emulator.url)


def test_out_of_band_response_leaves_the_conversation_and_the_scenario_alone(
        make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(Scenario(turns=(Turn(reply="Scripted."),)))
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "Hi")
    client.send(type="response.create",
                response={"conversation": "none", "output_modalities": ["text"],
                          "metadata": {"topic": "summary"}})
    events = client.collect("response.done")
    assert "conversation.item.added" not in types(events)
    done = events[-1]["response"]
    assert done["conversation_id"] is None
    assert done["metadata"] == {"topic": "summary"}
    assert done["output_modalities"] == ["text"]
    client.send(type="response.create")  # the pending user text is still turn 1
    assert client.until("response.output_audio_transcript.done")["transcript"] == "Scripted."


def test_voice_is_fixed_once_audio_was_sent(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    assert session_update(client, audio={"output": {"voice": "ash"}})["audio"]["output"][
        "voice"] == "ash"
    client.send(type="response.create")
    client.until("response.done")
    client.send(type="session.update",
                session={"type": "realtime", "audio": {"output": {"voice": "verse"}}})
    assert client.until("error")["error"]["code"] == "cannot_update_voice"


def test_semantic_vad_detects_turns_too(emulator: Emulator, connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    session = session_update(client, audio={"input": {"turn_detection": {
        "type": "semantic_vad", "eagerness": "high"}}})
    assert session["audio"]["input"]["turn_detection"] == {
        "type": "semantic_vad", "eagerness": "high", "create_response": True,
        "interrupt_response": True}
    client.append(silence(0.2) + SPEECH + silence(0.8))
    events = client.collect("response.done")
    assert types(events)[0] == "input_audio_buffer.speech_started"
    assert events[-1]["response"]["status"] == "completed"


def test_an_item_truncated_while_it_streams_keeps_the_transcript_heard(
        make_emulator: Any, connect: Any) -> None:
    story = "Once upon a time a small robot counted the spoons and sang about them all night."
    # a pause in sending after the second delta, so the truncate lands mid-item
    emulator = make_emulator(Scenario(turns=(Turn(reply=story),)), faults=[
        {"at": "response.output_audio.delta", "do": "stall_sending", "seconds": 0.3,
         "nth": 2}])
    client = connect(emulator.url)
    client.recv()
    manual_turns(client)
    say_text(client, "Tell me a story")
    client.send(type="response.create")
    got = client.collect("response.output_audio.delta")
    item_id = got[-1]["item_id"]
    client.send(type="conversation.item.truncate", item_id=item_id, content_index=0,
                audio_end_ms=150)
    events = client.collect("response.done")
    types = [e["type"] for e in events]
    assert types.index("conversation.item.truncated") < types.index("response.output_audio.done")
    full = next(e for e in events
                if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert full == story  # what was generated; the item keeps what was heard
    total_ms = len(synthesize(story, "tones")) // 48
    client.send(type="conversation.item.retrieve", item_id=item_id)
    kept = client.until("conversation.item.retrieved")["item"]["content"][0]["transcript"]
    words = story.split()
    assert kept == " ".join(words[: round(len(words) * 150 / total_ms)])
    assert not [e for e in client.events if e["type"] == "error"]
