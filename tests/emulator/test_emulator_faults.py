"""Injected faults, seen from a raw WebSocket client: what arrives on the wire, and when not."""

from __future__ import annotations

import base64
import json
import logging
import socket
import struct
from typing import Any

import pytest
import websocket
from emulator_helpers import TIMEOUT, Client

from rtd.emulator import Emulator, Fault, Scenario, ScriptedError, Turn

CALL = Scenario(turns=(
    Turn(transcript="What time is it?", call="clock", arguments={}, then="It is {time}."),
    Turn(reply="Second turn."),
))
TWO_TURNS = Scenario(turns=(Turn(reply="First turn."), Turn(reply="Second turn.")))


def start(client: Client) -> None:
    """Read session.created and switch to manual turns (the client asks for responses)."""
    assert client.recv()["type"] == "session.created"
    client.send(type="session.update",
                session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    client.until("session.updated")


def ask(client: Client, text: str = "Hello") -> None:
    """One user text turn: the item, then response.create."""
    client.send(type="conversation.item.create",
                item={"type": "message", "role": "user",
                      "content": [{"type": "input_text", "text": text}]})
    client.until("conversation.item.done")
    client.send(type="response.create")


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def normal_turn(emulator: Emulator, connect: Any, expect: str) -> None:
    """A fresh connection gets a complete, ordinary spoken reply."""
    client = connect(emulator.url)
    start(client)
    ask(client)
    events = client.collect("response.done")
    assert events[-1]["response"]["status"] == "completed"
    transcript = events[types(events).index("response.output_audio_transcript.done")]
    assert transcript["transcript"] == expect


# -- ending TCP --------------------------------------------------------------------------------


@pytest.mark.parametrize(("do", "end"), [("drop", "fin"), ("reset", "rst")])
def test_tcp_ends_after_the_kth_audio_delta_without_a_close_frame(
        make_emulator: Any, connect: Any, do: str, end: str) -> None:
    emulator = make_emulator(TWO_TURNS, faults=[
        {"at": "response.output_audio.delta", "nth": 3, "turn": 1, "do": do}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    events: list[dict[str, Any]] = []
    while types(events).count("response.output_audio.delta") < 3:
        events.append(client.recv())
    assert events[-1]["type"] == "response.output_audio.delta"
    assert client.tcp_end() == end
    assert emulator.sessions[0].ended.wait(TIMEOUT)
    assert emulator.sessions[0].client_close is None
    assert emulator.injected == [{"fault": 0, "do": do, "at": "response.output_audio.delta",
                                  "when": "after", "session": 0, "turn": 1}]
    normal_turn(emulator, connect, "Second turn.")  # once: the next turn is untouched
    assert len(emulator.injected) == 1


def test_drop_before_session_created_sends_nothing(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "session.created", "when": "before", "do": "drop"}])
    client = connect(emulator.url)
    assert client.tcp_end() == "fin"
    assert emulator.sent == []
    assert connect(emulator.url).recv()["type"] == "session.created"


@pytest.mark.parametrize(("code", "reason"), [
    (4321, "made up by the test"), (1011, "server error"), (1001, ""),
    (1005, "kept off the wire by the RFC"), (2999, "reserved"), (1015, "")])
def test_close_with_any_code_and_reason(make_emulator: Any, connect: Any, code: int,
                                        reason: str) -> None:
    emulator = make_emulator(faults=[{"at": "response.created", "do": "close", "code": code,
                                      "reason": reason}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.recv()["type"] == "response.created"
    assert client.raw_close_frame() == (code, reason)


def test_close_without_a_code_sends_an_empty_close_frame(make_emulator: Any,
                                                         connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "session.created", "do": "close"}])
    client = connect(emulator.url)
    assert client.recv()["type"] == "session.created"
    assert client.raw_close_frame() == (None, "")
    assert client.tcp_end() == "fin"


def test_turn_drop_and_close_keys_use_the_same_paths(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(Scenario(turns=(Turn(drop=True), Turn(close=1005))))
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.tcp_end() == "fin"
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.raw_close_frame() == (1005, "rtd emulator scenario turn 2")


# -- stalls ------------------------------------------------------------------------------------


def test_stall_sending_keeps_reading_and_sends_nothing(make_emulator: Any,
                                                       connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "response.created", "when": "before",
                                      "do": "stall_sending"}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.quiet(0.5)  # a response is due, and nothing comes
    client.send(type="input_audio_buffer.clear", event_id="evt_while_stalled")
    assert emulator.wait_for(lambda e: e.get("event_id") == "evt_while_stalled", TIMEOUT)
    assert client.quiet(0.3)  # not even the answer to what it read
    assert "input_audio_buffer.cleared" not in types(emulator.sent)
    assert client.ws.connected and not emulator.sessions[0].ended.is_set()
    client.close()
    assert emulator.sessions[0].ended.wait(TIMEOUT)


def test_a_bounded_stall_then_everything_arrives_in_order(make_emulator: Any,
                                                          connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "response.created", "do": "stall_sending",
                                      "seconds": 0.3}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.recv()["type"] == "response.created"
    client.send(type="input_audio_buffer.clear")  # read at once, answered after the stall
    stalled = client.collect("response.done")
    assert "input_audio_buffer.cleared" in types(stalled)
    ask(client)  # once: the next response is not stalled, and looks the same
    normal = client.collect("response.done")
    assert [t for t in types(stalled) if t != "input_audio_buffer.cleared"] == types(normal)[1:]
    assert stalled[-1]["response"]["status"] == "completed"


def _tcp_info_works() -> bool:
    with socket.socket() as sock:
        try:
            sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        except (OSError, AttributeError):
            return False
    return True


def test_stall_reading_blocks_the_clients_sends(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "response.created", "when": "before",
                                      "do": "stall_reading"}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    assert client.quiet(0.3)
    emulator.wait_for_injected(timeout=TIMEOUT)
    before = len(emulator.sessions[0].client_events)
    chunk = json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(bytes(768_000)).decode()})
    client.ws.settimeout(0.5)
    sent = 0
    with pytest.raises(websocket.WebSocketTimeoutException):
        for _ in range(200):  # at most 200 MB: far more than any socket buffer
            client.ws.send(chunk)
            sent += 1
    assert sent < 200
    read = len(emulator.sessions[0].client_events) - before
    assert read <= 1  # at most what was already off the socket when the stall began
    assert not emulator.sessions[0].ended.is_set()
    if _tcp_info_works():  # the emulator notices the client giving up, without reading
        client.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.ws.sock.close()
        assert emulator.sessions[0].ended.wait(TIMEOUT)


def test_a_frozen_connection_notices_its_client_leaving(make_emulator: Any,
                                                        connect: Any) -> None:
    if not _tcp_info_works():
        pytest.skip("TCP_INFO is Linux-only")
    emulator = make_emulator(faults=[{"at": "session.created", "do": "stall_reading"}])
    client = connect(emulator.url)
    assert client.recv()["type"] == "session.created"
    client.send(type="input_audio_buffer.clear")
    assert client.quiet(0.3)
    client.ws.sock.shutdown(socket.SHUT_WR)
    assert emulator.sessions[0].ended.wait(TIMEOUT)


@pytest.mark.parametrize(("at", "do"), [
    ("response.created", "stall_reading"), ("response.created", "stall_sending"),
    ("session.created", "stall_reading")])  # the reader itself stops there
def test_stopping_the_emulator_during_a_stall_is_clean(make_emulator: Any, connect: Any,
                                                      caplog: pytest.LogCaptureFixture,
                                                      at: str, do: str) -> None:
    emulator = make_emulator(faults=[{"at": at, "when": "before", "do": do}])
    client = connect(emulator.url)
    if at == "response.created":
        start(client)
        ask(client)
    emulator.wait_for_injected(timeout=TIMEOUT)
    with caplog.at_level(logging.WARNING):
        emulator.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert emulator.sessions[0].ended.is_set()


def test_stall_reading_for_a_while_then_reading_resumes(make_emulator: Any,
                                                        connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "session.created", "do": "stall_reading",
                                      "seconds": 0.3}])
    client = connect(emulator.url)
    assert client.recv()["type"] == "session.created"
    client.send(type="input_audio_buffer.clear", event_id="evt_late")
    assert client.until("input_audio_buffer.cleared")
    assert emulator.sessions[0].client_events[-1]["event_id"] == "evt_late"


def test_upgrade_stall_never_answers_the_handshake(make_emulator: Any) -> None:
    emulator = make_emulator(faults=[{"at": "upgrade", "do": "stall_sending"}])
    with pytest.raises(websocket.WebSocketTimeoutException):
        websocket.create_connection(emulator.url, timeout=0.5)
    assert emulator.attempts == 1 and emulator.connections == 0
    client = Client(emulator.url)  # once: the next attempt is answered
    assert client.recv()["type"] == "session.created"
    client.close()


@pytest.mark.parametrize("do", ["drop", "reset"])
def test_upgrade_drop_and_reset(make_emulator: Any, do: str) -> None:
    emulator = make_emulator(faults=[{"at": "upgrade", "do": do}])
    with pytest.raises((websocket.WebSocketException, ConnectionError)) as raised:
        websocket.create_connection(emulator.url, timeout=TIMEOUT)
    expected = ConnectionResetError if do == "reset" else \
        websocket.WebSocketConnectionClosedException  # an EOF where the answer should be
    assert isinstance(raised.value, expected)
    assert (emulator.attempts, emulator.connections) == (1, 0)


# -- frames that are not what they should be ---------------------------------------------------


def test_malformed_and_binary_frames(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(faults=[
        {"at": "session.created", "do": "send", "text": "not json"},
        {"at": "session.created", "do": "send", "json": {"event_id": "evt_no_type"}},
        {"at": "session.created", "do": "send", "json": [1, 2]},
        {"at": "session.created", "do": "send", "text": "\u0000\u0001\u00ff", "binary": True},
        {"at": "session.updated", "do": "replace", "binary": True, "set": {}},
    ])
    client = connect(emulator.url)
    frames = [client.frame() for _ in range(5)]
    text, binary = websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY
    assert frames[0][0] == text and json.loads(frames[0][1])["type"] == "session.created"
    assert frames[1:4] == [(text, b"not json"), (text, b'{"event_id": "evt_no_type"}'),
                           (text, b"[1, 2]")]
    assert frames[4] == (binary, "\u0000\u0001\u00ff".encode())
    client.send(type="session.update", session={"type": "realtime"})
    opcode, data = client.frame()
    assert opcode == binary and json.loads(data)["type"] == "session.updated"
    injected = [e for e in emulator.sent if "_fault" in e]
    assert [e["_fault"] for e in injected] == [0, 1, 2, 3, 4]
    assert injected[0] == {"type": None, "_text": "not json", "_fault": 0}
    assert injected[2] == {"type": None, "_json": [1, 2], "_fault": 2}


def test_a_10_mb_frame(make_emulator: Any, connect: Any) -> None:
    size = 10 * 1024 * 1024
    emulator = make_emulator(faults=[{"at": "response.done", "do": "send", "pad_to": size,
                                      "json": {"type": "rate_limits.updated",
                                               "rate_limits": []}}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    client.until("response.done")
    opcode, data = client.frame()
    assert opcode == websocket.ABNF.OPCODE_TEXT and len(data) == size
    assert json.loads(data) == {"type": "rate_limits.updated", "rate_limits": []}
    record = next(e for e in emulator.sent if "_fault" in e)
    assert record["_bytes"] == size
    assert len(json.dumps(record)) < 1000  # the record does not keep the padding
    assert client.recv()["type"] == "rate_limits.updated"  # the real one follows


WRONG_FIELDS = [
    ("audio delta is an int", CALL.turns[1:],
     {"at": "response.output_audio.delta", "do": "replace", "set": {"delta": 5}},
     lambda e: e["type"] == "response.output_audio.delta" and e["delta"] == 5),
    ("audio delta without item_id", (),
     {"at": "response.output_audio.delta", "do": "replace", "unset": ["item_id"]},
     lambda e: e["type"] == "response.output_audio.delta" and "item_id" not in e
     and isinstance(e["delta"], str)),
    ("response is a string", (),
     {"at": "response.done", "do": "replace", "set": {"response": "oops"}},
     lambda e: e["type"] == "response.done" and e["response"] == "oops"),
    ("output items are strings", (),
     {"at": "response.done", "do": "replace", "set": {"response.output": ["oops", "again"]}},
     lambda e: e["type"] == "response.done" and e["response"]["output"] == ["oops", "again"]
     and e["response"]["status"] == "completed"),
    ("arguments done without call_id", CALL.turns[:1],
     {"at": "response.function_call_arguments.done", "do": "replace", "unset": ["call_id"]},
     lambda e: e["type"] == "response.function_call_arguments.done" and "call_id" not in e
     and e["name"] == "clock"),
    ("error is a string", (),
     {"at": "response.created", "do": "send", "json": {"type": "error", "error": "boom"}},
     lambda e: e == {"type": "error", "error": "boom"}),
    ("nested merge keeps the rest", (),
     {"at": "response.done", "do": "replace", "set": {"response": {"status": 7}}},
     lambda e: e["type"] == "response.done" and e["response"]["status"] == 7
     and e["response"]["id"].startswith("resp_")),
]


@pytest.mark.parametrize(("name", "turns", "fault", "check"), WRONG_FIELDS,
                         ids=[w[0] for w in WRONG_FIELDS])
def test_wrong_field_types_in_real_events(make_emulator: Any, connect: Any, name: str,
                                          turns: tuple[Turn, ...], fault: dict[str, Any],
                                          check: Any) -> None:
    emulator = make_emulator(Scenario(turns=tuple(turns)), faults=[fault])
    client = connect(emulator.url)
    start(client)
    ask(client)
    events = client.collect("rate_limits.updated")  # after response.done, real or not
    broken = [e for e in events if check(e)]
    assert len(broken) == 1, types(events)
    if fault["do"] == "replace":  # instead of the real event: it never arrives intact
        assert [e["event_id"] for e in events].count(broken[0]["event_id"]) == 1


def test_session_updated_with_audio_null(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "session.updated", "do": "replace",
                                      "null": ["session.audio"]}])
    client = connect(emulator.url)
    client.recv()
    client.send(type="session.update", session={"type": "realtime", "instructions": "Hi."})
    session = client.until("session.updated")["session"]
    assert session["audio"] is None and session["instructions"] == "Hi."
    client.send(type="session.update", session={"type": "realtime"})  # once
    assert client.until("session.updated")["session"]["audio"]["output"]["voice"] == "marin"


# -- repeated and missing events ---------------------------------------------------------------


def test_duplicate_response_done_repeats_the_tool_call(make_emulator: Any,
                                                       connect: Any) -> None:
    emulator = make_emulator(CALL, faults=[{"at": "response.done", "turn": 1,
                                            "do": "duplicate"}])
    client = connect(emulator.url)
    start(client)
    ask(client, "What time is it?")
    events = client.collect("rate_limits.updated")
    done = [e for e in events if e["type"] == "response.done"]
    assert len(done) == 2
    assert done[0]["response"] == done[1]["response"]
    assert done[0]["response"]["output"][0]["type"] == "function_call"
    assert done[0]["event_id"] != done[1]["event_id"]
    # the tool's output is answered once; the duplicate did not start another response
    call_id = done[0]["response"]["output"][0]["call_id"]
    client.send(type="conversation.item.create", item={
        "type": "function_call_output", "call_id": call_id, "output": '{"time": "9:00"}'})
    client.send(type="response.create")
    assert client.until("response.output_audio_transcript.done")["transcript"] == "It is 9:00."
    assert client.until("response.done")["response"]["status"] == "completed"


def test_duplicates_can_keep_the_event_id(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(faults=[{"at": "session.created", "do": "duplicate", "copies": 2,
                                      "same_event_id": True}])
    client = connect(emulator.url)
    events = [client.recv() for _ in range(3)]
    assert types(events) == ["session.created"] * 3
    assert len({e["event_id"] for e in events}) == 1


def test_error_in_place_of_response_done(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(TWO_TURNS, faults=[{
        "at": "response.done", "when": "instead", "do": "error", "turn": 1,
        "error": {"type": "server_error", "code": "overloaded", "message": "Busy."}}])
    client = connect(emulator.url)
    start(client)
    ask(client)
    events = client.collect("error")
    assert events[-1]["error"] == {"type": "server_error", "code": "overloaded",
                                   "message": "Busy.", "param": None, "event_id": None}
    assert "response.done" not in types(events)
    assert "response.output_audio.delta" in types(events)
    ask(client)  # the emulator's response did end: the next one is accepted
    events = client.collect("response.done")
    assert "error" not in types(events)
    assert events[-1]["response"]["output"][0]["content"][0]["transcript"] == "Second turn."


# -- the upgrade -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "status", "headers", "code"), [
    ({"status": 503, "retry_after": 2}, 503, {"retry-after": "2"}, None),
    ({"status": 429, "retry_after": 1.5,
      "headers": {"x-ratelimit-reset-requests": "1s"}}, 429,
     {"retry-after": "1.5", "x-ratelimit-reset-requests": "1s"}, "rate_limit_exceeded"),
    ({"status": 500, "error": {"type": "server_error", "message": "Oops."}}, 500, {}, None),
])
def test_http_status_on_the_upgrade(make_emulator: Any, connect: Any, fault: dict[str, Any],
                                    status: int, headers: dict[str, str],
                                    code: str | None) -> None:
    emulator = make_emulator(faults=[{"at": "upgrade", "do": "http", **fault}])
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(emulator.url, timeout=TIMEOUT)
    assert refused.value.status_code == status
    got = {k.lower(): v for k, v in refused.value.resp_headers.items()}
    for name, value in headers.items():
        assert got[name] == value
    if not headers:
        assert "retry-after" not in got
    body = json.loads(refused.value.resp_body)["error"]
    assert body["code"] == code
    assert body["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    if "error" in fault:
        assert body["message"] == "Oops."
    assert connect(emulator.url).recv()["type"] == "session.created"
    assert (emulator.attempts, emulator.connections) == (2, 1)
    assert emulator.injected[0]["session"] is None


def test_every_time_and_only_after_a_turn(make_emulator: Any, connect: Any) -> None:
    """times = "always" repeats a fault from its nth event on; turn = N holds it back until
    turn N is the latest; times = 2 at the upgrade refuses two attempts."""
    emulator = make_emulator(TWO_TURNS, faults=[
        {"at": "upgrade", "do": "http", "status": 503, "turn": 2, "times": 2},
        {"at": "response.done", "do": "duplicate", "times": "always"},
        {"at": "response.output_audio.delta", "nth": 2, "times": "always", "do": "send",
         "json": {"type": "marker"}},
    ])
    client = connect(emulator.url)  # turn 0: the upgrade fault waits for turn 2
    start(client)
    for _ in range(2):
        ask(client)
        events = client.collect("rate_limits.updated")
        assert types(events).count("response.done") == 2
        deltas = [i for i, t in enumerate(types(events)) if t == "response.output_audio.delta"]
        markers = [i for i, t in enumerate(types(events)) if t == "marker"]
        assert len(deltas) >= 3 and markers == [i + 1 for i in deltas[1:]]  # from the 2nd on
    client.close()
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(emulator.url, timeout=TIMEOUT)
    assert connect(emulator.url).recv()["type"] == "session.created"


def test_invalid_api_key_then_3000_is_a_flag_too(make_emulator: Any, connect: Any) -> None:
    emulator = make_emulator(api_key="sk-right", auth_failure="close")
    client = connect(emulator.url, ["Authorization: Bearer sk-wrong"])
    assert client.recv()["error"]["code"] == "invalid_api_key"
    assert client.close_frame() == (3000, "invalid_request_error.invalid_api_key")
    assert emulator.sessions[0].id is None


# -- building faults in code -------------------------------------------------------------------


def test_faults_from_code_text_and_tables_are_checked_alike(make_emulator: Any,
                                                            connect: Any) -> None:
    emulator = make_emulator(faults=[
        Fault(at="session.created", do="send", text="from a Fault"),
        'at = "session.created", do = "send", text = "from TOML text"',
        {"at": "session.created", "do": "error",
         "error": ScriptedError(code="x").__dict__},
    ])
    client = connect(emulator.url)
    frames = [client.frame()[1] for _ in range(4)]
    assert frames[1:3] == [b"from a Fault", b"from TOML text"]
    assert json.loads(frames[3])["error"]["code"] == "x"
    assert [f.do for f in emulator.faults] == ["send", "send", "error"]
