"""Property tests: whatever a server sends, the conversation neither raises nor loses its footing.

Every GA server event type (and the beta spellings) is built plausibly, then mutated (keys
dropped, values replaced by JSON of other types, garbage nested), and sequences of them, with
duplicates, any order, sender input, tool results and reconnects, go through a real
`Conversation`. After each step: only well-formed commands, a consistent turn, each tool call
published at most once, no duplicate items.
"""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtd.conversation import MAX_ITEMS, Conversation, Publish, Send
from rtd.messages import (
    Commit,
    Interrupt,
    RequestResponse,
    ToolCall,
    ToolCallEvent,
    TurnState,
    UserText,
)
from rtd.protocol.events import BETA_SERVER_EVENT_NAMES, SERVER_EVENT_TYPES

RESPONSES = ("r1", "r2", "r3")
ITEMS = ("i1", "i2", "u1", "rtd_item_1")
CALLS = ("c1", "c2", "c3")
PCM = base64.b64encode(b"\x01\x00" * 48).decode()


def _item(iid: str, cid: str, variant: int) -> dict[str, Any]:
    if variant == 0:
        return {"id": iid, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_audio", "transcript": "Hello."}]}
    if variant == 1:
        return {"id": iid, "object": "realtime.item", "type": "message", "role": "user",
                "status": "completed", "content": [{"type": "input_text", "text": "hi"}]}
    if variant == 2:
        return {"id": iid, "type": "function_call", "call_id": cid, "name": "clock",
                "arguments": "{}", "status": "completed"}
    return {"id": iid, "type": "function_call_output", "call_id": cid, "output": "{}"}


def plausible(kind: str, rid: str, iid: str, cid: str, variant: int) -> dict[str, Any]:
    """A valid-looking event of `kind` with the ids given (fields as the openai types have
    them)."""
    base: dict[str, Any] = {"type": kind, "event_id": f"event_{variant}"}
    part = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
    item = _item(iid, cid, variant % 4)
    response = {"id": rid, "object": "realtime.response",
                "status": ("completed", "cancelled", "failed", "incomplete")[variant % 4],
                "output": [_item(iid, cid, 2), _item("i2", cid, 0)],
                "status_details": {"type": "failed", "error": {"message": "x"}}}
    fields: dict[str, Any]
    if kind in ("session.created", "session.updated"):
        fields = {"session": {"id": "sess_1", "type": "realtime", "model": "gpt-realtime-2",
                              "expires_at": 1_900_000_000, "audio": {
                                  "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                                  "output": {"voice": "marin"}}}}
    elif kind == "conversation.created":
        fields = {"conversation": {"id": "conv_1", "object": "realtime.conversation"}}
    elif kind in ("conversation.item.added", "conversation.item.created",
                  "conversation.item.done"):
        fields = {"previous_item_id": ITEMS[variant % len(ITEMS)], "item": item}
    elif kind in ("conversation.item.retrieved", "response.output_item.added",
                  "response.output_item.done"):
        fields = {"response_id": rid, "output_index": 0, "item": item}
    elif kind == "conversation.item.truncated":
        fields = {"item_id": iid, "content_index": 0, "audio_end_ms": 640}
    elif kind in ("conversation.item.deleted", "input_audio_buffer.committed",
                  "input_audio_buffer.cleared", "input_audio_buffer.timeout_triggered"):
        fields = {"item_id": iid, "previous_item_id": None}
    elif kind in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"):
        fields = {"item_id": iid, "audio_start_ms": 100, "audio_end_ms": 900}
    elif kind == "input_audio_buffer.dtmf_event_received":
        fields = {"event": "5", "received_at": 1_900_000_000}
    elif kind.startswith("conversation.item.input_audio_transcription."):
        fields = {"item_id": iid, "content_index": 0, "delta": "Hi", "transcript": " Hi ",
                  "text": "Hi", "start": 0.0, "end": 1.0, "id": "seg_1", "speaker": "A",
                  "error": {"code": "x", "message": "unclear", "type": "y", "param": None}}
    elif kind in ("response.created", "response.done"):
        fields = {"response": response}
    elif kind in ("response.content_part.added", "response.content_part.done"):
        fields = {**part, "part": {"type": "audio", "transcript": "Hel"}}
    elif kind.endswith("_audio.delta") or kind == "response.audio.delta":
        fields = {**part, "delta": PCM}
    elif kind.endswith(".delta"):
        fields = {**part, "delta": "Hel"}
    elif kind in ("response.output_audio_transcript.done", "response.audio_transcript.done"):
        fields = {**part, "transcript": "Hello."}
    elif kind in ("response.output_text.done", "response.text.done"):
        fields = {**part, "text": "Hello."}
    elif kind == "response.function_call_arguments.done":
        fields = {**part, "call_id": cid, "name": "clock", "arguments": "{}"}
    elif kind.startswith(("response.mcp_call", "mcp_list_tools")):
        fields = {"item_id": iid, "output_index": 0, "arguments": "{}"}
    elif kind == "rate_limits.updated":
        fields = {"rate_limits": [{"name": "requests", "limit": 100, "remaining": 99,
                                   "reset_seconds": 1.5}]}
    elif kind == "error":
        fields = {"error": {"type": "invalid_request_error",
                            "code": ("server_error", "conversation_already_has_active_response",
                                     "session_expired")[variant % 3],
                            "message": "m", "param": None,
                            "event_id": (None, "rtd_1", "rtd_2", "evt")[variant % 4]}}
    else:  # audio.done, output_audio_buffer.*, ...
        fields = {**part}
    return {**base, **fields}


ALL_TYPES = sorted(SERVER_EVENT_TYPES | set(BETA_SERVER_EVENT_NAMES))
assert len(SERVER_EVENT_TYPES) == 46

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(["", "AAAA", "not base64", "rtd_1", "c1", "r1"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


@st.composite
def mutated(draw: st.DrawFn, event: dict[str, Any]) -> Any:
    """The event with a few random mutations."""
    value: Any = copy.deepcopy(event)
    for _ in range(draw(st.integers(0, 3))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["drop", "replace", "add", "wrap"]))
        if not path:
            if how == "replace":
                value = draw(json_values)
            continue
        parent = value
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        if how == "drop":
            del parent[last]
        elif how == "replace":
            parent[last] = draw(json_values)
        elif how == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.text(max_size=6))] = draw(json_values)
        elif how == "wrap":
            parent[last] = draw(st.sampled_from([[parent[last]], {"x": parent[last]}]))
    return value


@st.composite
def server_events(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(ALL_TYPES))
    event = plausible(kind, draw(st.sampled_from(RESPONSES)), draw(st.sampled_from(ITEMS)),
                      draw(st.sampled_from(CALLS)), draw(st.integers(0, 11)))
    if draw(st.booleans()):
        return event
    return draw(mutated(event))


steps = st.one_of(
    server_events(), server_events(), server_events(), server_events(),
    st.sampled_from([UserText("hi"), UserText("note", respond=False), Commit(),
                     RequestResponse(), Interrupt(), "stop", ("connect", "ws://x"),
                     ("disconnect", "gone"), "again"]),
    st.builds(lambda c, o: ToolCallEvent(c, "clock", "{}", o), st.sampled_from(CALLS),
              st.sampled_from(["{}", "", "ä"])),
    json_values,
)


class Checked:
    """A conversation under test, with the invariants checked after every step."""

    def __init__(self) -> None:
        self.conv = Conversation()
        self.called: set[str] = set()
        self.done = 0
        self.last: Any = None

    def feed(self, step: Any) -> None:
        if step == "again":
            step = self.last
        self.last = step
        conv = self.conv
        if isinstance(step, ToolCallEvent):
            out = conv.tool_result(step)
        elif isinstance(step, (UserText, Commit, RequestResponse, Interrupt)):
            out = conv.sender_input(step)
        elif step == "stop":
            out = conv.stop()
        elif isinstance(step, tuple) and step[0] == "connect":
            out = conv.connected(step[1])
        elif isinstance(step, tuple) and step[0] == "disconnect":
            out = conv.disconnected(step[1])
        else:
            out = conv.server_event(step)
        self.check(out)

    def check(self, out: list[Any]) -> None:
        conv = self.conv
        turn = conv.turn
        creates = 0
        for command in out:
            assert isinstance(command, (Send, Publish))
            if isinstance(command, Send):
                event = command.event
                assert isinstance(event, dict) and isinstance(event["type"], str)
                assert isinstance(event["event_id"], str)
                json.dumps(event)
                creates += event["type"] == "response.create"
            elif isinstance(command.message, ToolCall):
                assert command.message.call_id not in self.called  # at most once, ever
                self.called.add(command.message.call_id)
            elif isinstance(command.message, TurnState):
                assert command.message == turn
        if creates:
            assert creates == 1 and turn.response_requested
        assert turn.tool_calls_pending >= 0
        assert turn.responses_done >= self.done
        self.done = turn.responses_done
        assert not (turn.response_active and turn.response_requested)
        if not turn.connected:
            assert turn.idle
            assert all(not isinstance(c, Send) for c in out)
        ids = [item.id for item in conv.items]
        assert len(ids) == len(set(ids)) and len(ids) <= MAX_ITEMS
        assert all(n > 0 for n in conv.problems.values())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(server_events())
def test_any_single_event_is_survived(event):
    checked = Checked()
    checked.feed(("connect", "ws://x"))
    checked.feed(event)
    checked.feed(event)  # and its duplicate


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=1, max_size=40))
def test_any_sequence_is_survived(sequence):
    checked = Checked()
    checked.feed(("connect", "ws://x"))
    for step in sequence:
        checked.feed(step)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.permutations([
    plausible("response.created", "r1", "i1", "c1", 0),
    plausible("response.function_call_arguments.done", "r1", "i1", "c1", 0),
    plausible("response.output_audio.delta", "r1", "i2", "c1", 0),
    plausible("response.output_audio.done", "r1", "i2", "c1", 0),
    plausible("response.output_item.done", "r1", "i1", "c1", 2),
    plausible("response.done", "r1", "i1", "c1", 0),
    plausible("response.done", "r1", "i1", "c1", 0),
    plausible("error", "r1", "i1", "c1", 0),
]), st.booleans())
def test_a_tool_turn_in_any_order_runs_its_call_at_most_once_and_ends(order, answer):
    checked = Checked()
    checked.feed(("connect", "ws://x"))
    for event in order:
        checked.feed(event)
    if answer:
        checked.feed(ToolCallEvent("c1", "clock", "{}", "{}"))
    turn = checked.conv.turn
    assert not turn.response_active  # whatever the order, the response is not left active
    assert turn.tool_calls_pending == (len(checked.called) if not answer else 0)
