"""Session actor: the flows that bite (PROTOCOL.md), driven event by event.

The connection is a fake that subclasses the real `RealtimeConnection`, recording what the
actor sends; everything else (actor, bus, messages) is real.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

import pykka
import pytest

from rtd.actors.session import SessionActor, _Connected, _Event
from rtd.components import (
    AudioChunk,
    AudioEvent,
    AudioTranscript,
    AudioTranscriptChunk,
    Commit,
    ErrorEvent,
    InputTranscript,
    InputTranscriptChunk,
    Interrupt,
    RequestResponse,
    StateEvent,
    TextChunk,
    UserText,
)
from rtd.messages import Fatal, ToolCall, ToolCallEvent
from rtd.protocol.connection import RealtimeConnection
from rtd.protocol.events import ServerEvent
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, Ping


class FakeConnection(RealtimeConnection):
    def __init__(self) -> None:
        self.endpoint = Endpoint("ws://fake/v1/realtime?model=m")
        self.sent: list[dict[str, Any]] = []
        self.close_code = None
        self.close_reason = ""
        self._closed = False

    def send(self, event):
        self.sent.append(dict(event))

    def send_audio_data(self, pcm):
        self.sent.append({"type": "input_audio_buffer.append", "bytes": len(pcm)})

    def close(self):
        self._closed = True


class Harness:
    def __init__(self) -> None:
        self.bus = Bus()
        self.seen: list[object] = []
        self.bus.observe(self.seen.append)
        # an unreachable target: the link retries quietly in the background, never connects
        self.ref = SessionActor.start(self.bus, lambda n, e: None,
                                      Endpoint("ws://127.0.0.1:9/v1/realtime"),
                                      {"type": "session.update", "session": {"type": "realtime"}})
        self.conn = FakeConnection()
        self.ref.tell(_Connected(self.conn))

    def feed(self, *events: dict[str, Any]) -> None:
        for event in events:
            self.ref.tell(_Event(self.conn, ServerEvent(event)))
        self.ref.ask(Ping(), timeout=5)

    def tell(self, message: object) -> None:
        self.ref.tell(message)
        self.ref.ask(Ping(), timeout=5)

    def sent_types(self) -> list[str]:
        return [e["type"] for e in self.conn.sent]

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.seen if isinstance(m, kind)]


@pytest.fixture
def h():
    harness = Harness()
    yield harness
    pykka.ActorRegistry.stop_all()


def call_events(rid: str, call_id: str, status: str) -> list[dict[str, Any]]:
    return [
        {"type": "response.created", "response": {"id": rid, "status": "in_progress"}},
        {"type": "response.function_call_arguments.done", "response_id": rid, "item_id": "it",
         "output_index": 0, "call_id": call_id, "name": "clock", "arguments": "{}"},
        {"type": "response.done", "response": {"id": rid, "status": status, "output": []}},
    ]


def test_connect_sends_session_update_first(h):
    h.feed()
    assert h.conn.sent[0] == {"type": "session.update", "session": {"type": "realtime"}}


def test_tool_runs_only_after_a_completed_response(h):
    h.feed(*call_events("resp_1", "call_1", "cancelled"))
    assert h.of(ToolCall) == []
    h.feed(*call_events("resp_2", "call_2", "completed"))
    assert h.of(ToolCall) == [ToolCall("call_2", "clock", "{}")]


def test_output_then_response_create_after_response_done(h):
    h.feed(*call_events("resp_1", "call_1", "completed"))
    # before the tool answers, the server starts another response (e.g. the user spoke)
    h.feed({"type": "response.created", "response": {"id": "resp_2"}})
    h.tell(ToolCallEvent("call_1", "clock", "{}", '{"time": "10:00"}'))
    assert h.sent_types()[-1] == "conversation.item.create"
    assert h.conn.sent[-1]["item"] == {"type": "function_call_output", "call_id": "call_1",
                                       "output": '{"time": "10:00"}'}
    assert "response.create" not in h.sent_types()
    h.feed({"type": "response.done", "response": {"id": "resp_2", "status": "completed"}})
    assert h.sent_types()[-1] == "response.create"
    assert h.sent_types().count("response.create") == 1


def test_response_create_waits_for_every_parallel_call(h):
    rid = "resp_1"
    h.feed({"type": "response.created", "response": {"id": rid}},
           *[{"type": "response.function_call_arguments.done", "response_id": rid,
              "call_id": c, "name": "clock", "arguments": "{}"} for c in ("a", "b")],
           {"type": "response.done", "response": {"id": rid, "status": "completed"}})
    h.tell(ToolCallEvent("a", "clock", "{}", "1"))
    assert "response.create" not in h.sent_types()
    h.tell(ToolCallEvent("b", "clock", "{}", "2"))
    assert h.sent_types()[-3:] == ["conversation.item.create", "conversation.item.create",
                                   "response.create"]


def test_calls_listed_only_in_response_output_still_run(h):
    h.feed({"type": "response.created", "response": {"id": "r"}},
           {"type": "response.done", "response": {"id": "r", "status": "completed", "output": [
               {"type": "function_call", "call_id": "c9", "name": "clock", "arguments": "{}"}]}})
    assert h.of(ToolCall) == [ToolCall("c9", "clock", "{}")]


def test_late_tool_result_is_dropped(h, caplog):
    caplog.set_level(logging.INFO, "rtd.actors.session")
    h.tell(ToolCallEvent("nobody", "clock", "{}", "{}"))
    assert h.sent_types() == ["session.update"]
    assert "arrived after its conversation ended" in caplog.text


def test_audio_transcripts_and_errors(h, caplog):
    caplog.set_level(logging.INFO)
    h.bus.subscribe("audio_output", [AudioChunk])
    pcm = b"\x01\x00" * 480
    h.feed({"type": "response.output_audio.delta", "item_id": "it1",
            "delta": base64.b64encode(pcm).decode()},
           {"type": "response.output_audio_transcript.done", "item_id": "it1",
            "transcript": "Hello there."},
           {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
            "content_index": 0, "transcript": " Hi "},
           {"type": "error", "error": {"type": "invalid_request_error", "code": "bad_thing",
                                       "message": "That was bad.", "event_id": "evt_7"}})
    assert h.of(AudioChunk) == [AudioChunk("it1", pcm)]  # once, for speaker and receivers
    assert h.of(AudioTranscript) == [AudioTranscript("it1", "Hello there.")]
    assert h.of(InputTranscript) == [InputTranscript("u1", "Hi")]
    assert h.of(ErrorEvent) == [ErrorEvent("server", "bad_thing", "That was bad.")]
    assert "server error bad_thing: That was bad. (caused by event evt_7)" in caplog.text
    assert h.of(Fatal) == []


def test_unknown_event_types_are_logged_once(h, caplog):
    caplog.set_level(logging.INFO, "rtd.actors.session")
    h.feed({"type": "brand_new.thing"}, {"type": "brand_new.thing"})
    assert caplog.text.count("brand_new.thing") == 1


def test_fatal_errors_stop_the_daemon(h):
    h.feed({"type": "error", "error": {"code": "beta_api_shape_disabled", "message": "no"}})
    assert [f.exit_code for f in h.of(Fatal)] == [1]


def test_audio_before_connection_is_kept_and_sent_once_connected():
    bus = Bus()
    ref = SessionActor.start(bus, lambda n, e: None, Endpoint("ws://127.0.0.1:9/x"),
                             {"type": "session.update", "session": {}}, block_ms=40)
    try:
        from rtd.messages import InputAudio
        for _ in range(3):
            ref.tell(InputAudio(b"\x00\x00" * 960))
        conn = FakeConnection()
        ref.tell(_Connected(conn))
        ref.ask(Ping(), timeout=5)
        assert [e["type"] for e in conn.sent] == ["session.update"] + [
            "input_audio_buffer.append"] * 3
    finally:
        pykka.ActorRegistry.stop_all()




def test_whole_item_audio_only_when_a_receiver_wants_it(h):
    h.feed({"type": "response.output_audio.delta", "item_id": "x", "delta": "AAAA"},
           {"type": "response.output_audio.done", "item_id": "x"})
    assert h.of(AudioEvent) == []  # nobody subscribed: the session keeps no copy


def test_chunks_are_built_only_for_subscribers(h):
    h.feed({"type": "response.output_audio.delta", "item_id": "x", "delta": "AAAA"},
           {"type": "response.output_audio_transcript.delta", "item_id": "x", "delta": "Hel"},
           {"type": "response.output_text.delta", "item_id": "x", "delta": "Hel"},
           {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u",
            "delta": "Hi"})
    assert h.of(AudioChunk) == h.of(AudioTranscriptChunk) == []
    assert h.of(TextChunk) == h.of(InputTranscriptChunk) == []


def test_whole_item_audio_and_chunks_for_receivers(h):
    h.bus.subscribe("receivers.recorder", [AudioEvent, AudioChunk, AudioTranscriptChunk])
    parts = [b"\x01\x00" * 10, b"\x02\x00" * 10]
    h.feed(*[{"type": "response.output_audio.delta", "item_id": "it",
              "delta": base64.b64encode(p).decode()} for p in parts],
           {"type": "response.output_audio_transcript.delta", "item_id": "it", "delta": "Hel"},
           {"type": "response.output_audio.done", "item_id": "it"})
    assert h.of(AudioChunk) == [AudioChunk("it", p) for p in parts]
    assert h.of(AudioEvent) == [AudioEvent("it", b"".join(parts))]
    assert h.of(AudioTranscriptChunk) == [AudioTranscriptChunk("it", "Hel")]


def test_states_follow_the_conversation(h):
    h.feed({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u"},
           {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900, "item_id": "u"},
           {"type": "response.created", "response": {"id": "r"}},
           {"type": "response.output_audio.delta", "item_id": "a", "delta": "AAAA"},
           {"type": "response.done", "response": {"id": "r", "status": "completed"}},
           {"type": "error", "error": {"code": "x", "message": "y"}})
    assert [e.state for e in h.of(StateEvent)] == [
        "listening", "thinking", "speaking", "idle", "error"]


def test_sender_input_while_disconnected_is_sent_once_connected():
    bus = Bus()
    ref = SessionActor.start(bus, lambda n, e: None, Endpoint("ws://127.0.0.1:9/x"),
                             {"type": "session.update", "session": {}})
    try:
        ref.tell(UserText("remember the milk"))
        ref.tell(Commit())
        conn = FakeConnection()
        ref.tell(_Connected(conn))
        ref.ask(Ping(), timeout=5)
        assert [e["type"] for e in conn.sent] == [
            "session.update", "conversation.item.create", "response.create",
            "input_audio_buffer.commit"]
    finally:
        pykka.ActorRegistry.stop_all()


def test_response_started_is_published(h):
    from rtd.messages import ResponseStarted

    h.feed({"type": "response.created", "response": {"id": "resp_9"}})
    assert h.of(ResponseStarted) == [ResponseStarted("resp_9")]


def test_sender_messages(h):
    h.tell(UserText("turn on the radio"))
    assert h.conn.sent[1]["item"]["content"] == [{"type": "input_text",
                                                  "text": "turn on the radio"}]
    assert h.sent_types()[1:] == ["conversation.item.create", "response.create"]
    # a response is now active: the next request waits for response.done
    h.tell(UserText("and louder", respond=True))
    assert h.sent_types()[-1] == "conversation.item.create"
    h.tell(Interrupt())
    assert h.sent_types()[-1] == "response.cancel"
    h.feed({"type": "response.done", "response": {"id": "r1", "status": "cancelled"}})
    assert h.sent_types()[-1] == "response.create"
    h.feed({"type": "response.done", "response": {"id": "r2", "status": "completed"}})
    h.tell(Commit())
    h.tell(RequestResponse())
    assert h.sent_types()[-2:] == ["input_audio_buffer.commit", "response.create"]
    h.tell(UserText("just noting", respond=False))
    assert h.sent_types()[-1] == "conversation.item.create"
