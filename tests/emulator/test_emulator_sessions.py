"""Per-connection records and the session limit, seen from a raw WebSocket client."""

from __future__ import annotations

import time
from typing import Any

from emulator_helpers import TIMEOUT, Client, silence

from rtd.emulator import Scenario
from rtd.emulator.connection import expiry_message
from rtd.emulator.state import SharedState


def item_create(client: Client, item: dict[str, Any], **extra: Any) -> dict[str, Any]:
    client.send(type="conversation.item.create", item=item, **extra)
    event = client.until("conversation.item.done")
    return event["item"]


USER = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]}
ASSISTANT = {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "Hello."}]}


def test_each_session_records_the_items_it_received_in_order(emulator: Any,
                                                             connect: Any) -> None:
    client = connect(emulator.url)
    client.recv()
    first = item_create(client, {**USER, "id": "item_user_1"})
    second = item_create(client, ASSISTANT)
    call = item_create(client, {"type": "function_call", "id": "item_call_1", "call_id": "c1",
                                "name": "clock", "arguments": "{}"})
    output = item_create(client, {"type": "function_call_output", "call_id": "c1",
                                  "output": '{"time": "9:00"}'})
    client.send(type="conversation.item.create",
                item={"type": "function_call_output", "call_id": "nope", "output": "x"})
    assert client.until("error")["error"]["code"] == "invalid_tool_call_id"
    early = item_create(client, {**USER, "id": "item_first"}, previous_item_id="root")

    items = emulator.sessions[0].items
    assert [i["id"] for i in items] == ["item_user_1", second["id"], "item_call_1",
                                        output["id"], "item_first"]  # creation order
    assert second["id"].startswith("item_")  # the server's id, as the client was told
    assert items[0] == first and items[2] == call and items[4] == early
    assert items[1]["content"] == [{"type": "output_text", "text": "Hello."}]
    assert items[3]["output"] == '{"time": "9:00"}' and items[3]["call_id"] == "c1"

    client.close()
    again = connect(emulator.url)
    again.recv()
    item_create(again, {**USER, "id": "item_replayed"})
    sessions = emulator.sessions
    assert len(sessions) == 2
    assert [i["id"] for i in sessions[1].items] == ["item_replayed"]
    assert len(sessions[0].items) == 5  # the first session's record is kept


def test_client_events_close_frame_and_audio_per_session(emulator: Any, connect: Any) -> None:
    client = connect(emulator.url)
    created = client.recv()
    client.send(type="input_audio_buffer.clear", event_id="evt_1")
    client.append(silence(0.25), chunk_ms=100)
    client.send(type="input_audio_buffer.commit", event_id="evt_2")
    client.until("input_audio_buffer.committed")
    client.ws.close(status=1000, reason=b"bye")
    session = emulator.sessions[0]
    assert session.ended.wait(TIMEOUT)
    assert session.client_close == (1000, "bye")
    assert session.id == created["session"]["id"]
    assert session.expires_at == created["session"]["expires_at"]
    assert session.model == "gpt-realtime-2"
    events = session.client_events
    assert [e["type"] for e in events] == ["input_audio_buffer.clear"] + [
        "input_audio_buffer.append"] * 3 + ["input_audio_buffer.commit"]
    assert [e["audio_bytes"] for e in events[1:4]] == [4800, 4800, 2400]
    assert session.input_audio_bytes == 12000
    assert session.input_audio == silence(0.25) == emulator.input_audio
    assert events == emulator.received
    assert session.server_events == emulator.sent
    assert session.path == "/v1/realtime" and "host" in session.headers

    dropped = connect(emulator.url)
    dropped.recv()
    dropped.ws.sock.close()  # no close frame
    assert emulator.sessions[1].ended.wait(TIMEOUT)
    assert emulator.sessions[1].client_close is None
    assert emulator.sessions[1].client_events == []


def test_session_limit_error_then_1001_at_expires_at(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(max_session_seconds=0.5)
    client = connect(emulator.url)
    created = client.recv()
    expires_at = created["session"]["expires_at"]
    assert isinstance(expires_at, int)
    assert expires_at - time.time() < 2
    assert client.close_frame() == (1001, "maximum duration")
    error = client.events[-1]
    assert error["type"] == "error"
    assert error["error"]["code"] == "session_expired"
    assert error["error"]["message"] == "Your session hit the maximum duration of 0.5 seconds."
    assert time.time() >= expires_at - 0.05  # not before what session.created announced
    assert emulator.sessions[0].ended.wait(TIMEOUT)


def test_the_limit_is_worded_like_the_service() -> None:
    assert expiry_message(3600) == "Your session hit the maximum duration of 60 minutes."
    assert expiry_message(1800) == "Your session hit the maximum duration of 30 minutes."
    assert expiry_message(90) == "Your session hit the maximum duration of 90 seconds."


def test_expires_at_defaults_to_an_hour(emulator: Any, connect: Any) -> None:
    client = connect(emulator.url)
    expires_at = client.recv()["session"]["expires_at"]
    assert isinstance(expires_at, int) and 3590 < expires_at - time.time() <= 3601
    assert emulator.sessions[0].expires_at == expires_at


def test_a_turn_in_the_second_session_is_recorded_there(emulator: Any, connect: Any) -> None:
    for _ in range(2):
        client = connect(emulator.url)
        client.recv()
        client.send(type="session.update", session={
            "type": "realtime", "audio": {"input": {"turn_detection": None}}})
        client.until("session.updated")
        client.append(silence(0.2))
        client.send(type="input_audio_buffer.commit")
        client.send(type="response.create")
        done = client.until("response.done")
        client.close()
    first, second = emulator.sessions
    assert first.ended.wait(TIMEOUT)
    assert done["response"]["id"] in str(second.server_events)
    assert done["response"]["id"] not in str(first.server_events)
    assert first.input_audio == second.input_audio == silence(0.2)
    assert emulator.input_audio == silence(0.4)
    deltas = [e for e in second.server_events if e["type"] == "response.output_audio.delta"]
    assert deltas and all(e["delta_bytes"] > 0 and "delta" not in e for e in deltas)


def test_old_sessions_forget_their_events_to_bound_memory() -> None:
    state = SharedState(Scenario(), "tones", None, record_limit=10)
    sessions = [state.accept_connection({}, "/") for _ in range(4)]
    for session in sessions:
        for n in range(8):
            state.record_received(session, {"type": "input_audio_buffer.clear", "n": n})
    kept = [len(s.client_events) for s in sessions]
    assert kept[-1] == 8 and sum(kept) <= 20
    assert sessions[0].forgotten and not sessions[-1].forgotten
    assert len(state.received) <= 10  # the global log keeps its own limit
