"""The conversation's replay: what a new session is told of the conversation so far.

A real `Conversation` is fed server events and sender input; its `replay()` is compared with
the items a new session must get: text for messages (the assistant's as heard), function calls
with their outputs, in order, no duplicates, the oldest trimmed first; and the new session's
echoes of the replayed items are not new history.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rtd.conversation import Conversation, Send
from rtd.messages import ToolCallEvent, UserText

URL = "ws://127.0.0.1:9/v1/realtime"


def user_turn(c: Conversation, item_id: str, transcript: str) -> None:
    """A spoken user turn: the server's item, then its transcription."""
    c.server_event({"type": "conversation.item.added", "previous_item_id": None,
                    "item": {"id": item_id, "type": "message", "role": "user",
                             "status": "completed",
                             "content": [{"type": "input_audio", "transcript": None}]}})
    c.server_event({"type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item_id, "content_index": 0, "transcript": transcript})


def reply(c: Conversation, rid: str, item_id: str, transcript: str) -> None:
    c.server_event({"type": "response.created", "response": {"id": rid}})
    c.server_event({"type": "response.output_item.added", "response_id": rid,
                    "item": {"id": item_id, "type": "message", "role": "assistant",
                             "status": "in_progress", "content": []}})
    c.server_event({"type": "response.output_audio_transcript.done", "response_id": rid,
                    "item_id": item_id, "output_index": 0, "content_index": 0,
                    "transcript": transcript})
    c.server_event({"type": "response.done", "response": {"id": rid, "status": "completed",
                                                          "output": []}})


def call(c: Conversation, rid: str, call_id: str, arguments: str = '{"zone": "UTC"}') -> None:
    c.server_event({"type": "response.created", "response": {"id": rid}})
    c.server_event({"type": "response.function_call_arguments.done", "response_id": rid,
                    "item_id": f"fc_{call_id}", "output_index": 0, "call_id": call_id,
                    "name": "clock", "arguments": arguments})
    c.server_event({"type": "response.done", "response": {
        "id": rid, "status": "completed",
        "output": [{"id": f"fc_{call_id}", "type": "function_call", "call_id": call_id,
                    "name": "clock", "arguments": arguments, "status": "completed"}]}})


def items(replay: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert all(e["type"] == "conversation.item.create" and e["event_id"] for e in replay)
    return [e["item"] for e in replay]


def conversation() -> Conversation:
    c = Conversation()
    c.connected(URL)
    return c


def test_messages_calls_and_outputs_in_order_as_text():
    c = conversation()
    user_turn(c, "item_u1", "What time is it?")
    call(c, "r1", "call_1")
    out = c.tool_result(ToolCallEvent("call_1", "clock", '{"zone": "UTC"}', '{"time": "10:00"}'))
    sent = [x.event for x in out if isinstance(x, Send)]
    output_id = sent[0]["item"]["id"]
    reply(c, "r2", "item_a1", "It is ten.")
    c.sender_input(UserText("Thanks", respond=False))
    replayed = items(c.replay(10000))
    assert replayed == [
        {"id": "item_u1", "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "What time is it?"}]},
        {"id": "fc_call_1", "type": "function_call", "call_id": "call_1", "name": "clock",
         "arguments": '{"zone": "UTC"}'},
        {"id": output_id, "type": "function_call_output", "call_id": "call_1",
         "output": '{"time": "10:00"}'},  # exactly the string sent before
        {"id": "item_a1", "type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "It is ten."}]},
        {"id": sent_user_id(c), "type": "message", "role": "user",
         "content": [{"type": "input_text", "text": "Thanks"}]},
    ]


def sent_user_id(c: Conversation) -> str:
    return [i.id for i in c.items if i.role == "user" and i.text == "Thanks"][0]


def test_a_call_without_an_output_and_untranscribed_audio_are_left_out():
    c = conversation()
    user_turn(c, "item_u1", "Set a timer")
    call(c, "r1", "call_lost")
    c.disconnected("dropped")  # the call is abandoned with its connection: no output ever
    c.connected(URL)
    c.server_event({"type": "conversation.item.added", "previous_item_id": None,
                    "item": {"id": "item_u2", "type": "message", "role": "user",
                             "status": "completed",
                             "content": [{"type": "input_audio", "transcript": None}]}})
    replayed = items(c.replay(10000))
    assert [i["id"] for i in replayed] == ["item_u1"]


def test_the_oldest_go_first_and_a_call_goes_with_its_output():
    c = conversation()
    user_turn(c, "item_u1", "a" * 50)
    call(c, "r1", "call_1", arguments="{}")
    c.tool_result(ToolCallEvent("call_1", "clock", "{}", "x" * 40))
    reply(c, "r2", "item_a1", "b" * 30)
    user_turn(c, "item_u2", "c" * 20)
    everything = items(c.replay(10000))
    assert len(everything) == 5
    # 20 + 30 fit in 60; the call (2 + 5 + 40) does not fit with them: it goes with its output
    assert [i["id"] for i in items(c.replay(60))] == ["item_a1", "item_u2"]
    assert [i["id"] for i in items(c.replay(100))] == [i["id"] for i in everything[1:]]
    assert c.replay(0) == []


def test_echoes_of_the_replay_in_the_new_session_are_not_new_history():
    c = conversation()
    user_turn(c, "item_u1", "Hello")
    reply(c, "r1", "item_a1", "Hi there.")
    before = c.items
    replay = c.replay(1000)
    c.disconnected("recycled")
    c.connected(URL)
    previous = None
    for event in replay:  # the new session echoes each created item, added then done
        for kind in ("conversation.item.added", "conversation.item.done"):
            c.server_event({"type": kind, "previous_item_id": previous,
                            "item": {**event["item"], "object": "realtime.item",
                                     "status": "completed"}})
        previous = event["item"]["id"]
    assert c.items == before
    assert items(c.replay(1000)) == items(replay)  # and the next replay is the same


def test_a_call_announced_before_its_arguments_is_replayed_with_them():
    c = conversation()
    user_turn(c, "item_u1", "Time?")
    c.server_event({"type": "response.created", "response": {"id": "r1"}})
    c.server_event({"type": "response.output_item.added", "response_id": "r1",
                    "item": {"id": "fc_call_1", "type": "function_call", "call_id": "call_1",
                             "name": "clock", "arguments": "", "status": "in_progress"}})
    call(c, "r1", "call_1", arguments='{"zone": "UTC"}')
    c.tool_result(ToolCallEvent("call_1", "clock", '{"zone": "UTC"}', "ten"))
    replayed = items(c.replay(1000))
    assert replayed[1]["arguments"] == '{"zone": "UTC"}'
    assert [i["type"] for i in replayed] == ["message", "function_call", "function_call_output"]


# -- properties -----------------------------------------------------------------------------------

STEPS = st.lists(st.tuples(st.sampled_from(["spoken", "typed", "reply", "call", "answer",
                                            "drop", "delete", "echo"]),
                           st.integers(0, 5), st.text(max_size=12)), max_size=30)


@settings(max_examples=150, deadline=None)
@given(STEPS, st.integers(0, 120))
def test_the_replay_is_ordered_unique_and_pairs_every_call_with_its_output(steps, limit):
    c = conversation()
    for n, (kind, k, text) in enumerate(steps):
        if kind == "spoken":
            user_turn(c, f"item_u{n}", text)
        elif kind == "typed":
            c.sender_input(UserText(text, respond=False))
        elif kind == "reply":
            reply(c, f"r{n}", f"item_a{n}", text)
        elif kind == "call":
            call(c, f"r{n}", f"call_{k}", arguments=json.dumps({"t": text}))
        elif kind == "answer":
            c.tool_result(ToolCallEvent(f"call_{k}", "clock", "{}", text))
        elif kind == "drop":
            c.disconnected("dropped")
            c.connected(URL)
        elif kind == "delete" and c.items:
            c.server_event({"type": "conversation.item.deleted",
                            "item_id": c.items[k % len(c.items)].id})
        elif kind == "echo":  # the new session's echoes of a replay change nothing
            before = c.items
            for event in c.replay(10000):
                c.server_event({"type": "conversation.item.done", "previous_item_id": None,
                                "item": {**event["item"], "status": "completed"}})
            assert c.items == before
    replayed = items(c.replay(limit))
    ids = [i["id"] for i in replayed]
    assert len(ids) == len(set(ids))                          # no duplicates
    order = [i.id for i in c.items]
    assert ids == sorted(ids, key=order.index)                # the conversation's order
    calls = [i["call_id"] for i in replayed if i["type"] == "function_call"]
    outputs = [i["call_id"] for i in replayed if i["type"] == "function_call_output"]
    assert sorted(calls) == sorted(outputs) and len(set(calls)) == len(calls)  # in pairs
    for i, item in enumerate(replayed):
        if item["type"] == "function_call_output":             # each after its own call
            assert any(x["type"] == "function_call" and x["call_id"] == item["call_id"]
                       for x in replayed[:i])
        if item["type"] == "message":
            assert item["content"][0]["text"].strip()           # no empty messages
    chars = sum(len(i["content"][0]["text"]) if i["type"] == "message" else
                len(i.get("arguments", "")) + len(i.get("name", "")) + len(i.get("output", ""))
                for i in replayed)
    assert chars <= limit
