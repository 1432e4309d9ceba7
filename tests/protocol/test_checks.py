"""Server event checks: a malformed event is one warning per (type, field), then a count."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from rtd.protocol.checks import (
    CONTENT_PART,
    KNOWN_TYPES,
    NO_TYPE,
    NOT_AN_OBJECT,
    OTHER_UNKNOWN,
    OUTPUT_ITEM,
    SPECS,
    Checker,
)
from rtd.protocol.events import BETA_SERVER_EVENT_NAMES, SERVER_EVENT_TYPES

PCM = base64.b64encode(b"\x01\x00" * 240).decode()

#: A valid event of every type that has a spec: the fields rtd reads, as a GA server sends them.
VALID: dict[str, dict[str, Any]] = {
    "session.updated": {"session": {"type": "realtime", "model": "gpt-realtime-2",
                                    "audio": {"output": {"voice": "marin"}}}},
    "error": {"error": {"type": "invalid_request_error", "code": "bad", "message": "no",
                        "param": None, "event_id": "rtd_1"}},
    "response.created": {"response": {"id": "r1", "status": "in_progress", "output": []}},
    "response.done": {"response": {"id": "r1", "status": "completed", "output": [
        {"id": "i1", "type": "function_call", "call_id": "c1", "name": "clock",
         "arguments": "{}", "status": "completed"}], "status_details": None}},
    "response.output_audio.delta": {"response_id": "r1", "item_id": "i1", "output_index": 0,
                                    "content_index": 0, "delta": PCM},
    "response.output_audio.done": {"response_id": "r1", "item_id": "i1"},
    "response.output_audio_transcript.delta": {"item_id": "i1", "delta": "Hel"},
    "response.output_audio_transcript.done": {"item_id": "i1", "transcript": "Hello"},
    "response.output_text.delta": {"item_id": "i1", "delta": "Hel"},
    "response.output_text.done": {"item_id": "i1", "text": "Hello"},
    "conversation.item.input_audio_transcription.delta": {"item_id": "u1", "delta": "Hi"},
    "conversation.item.input_audio_transcription.completed": {"item_id": "u1",
                                                              "content_index": 0,
                                                              "transcript": "Hi"},
    "conversation.item.input_audio_transcription.failed": {
        "item_id": "u1", "error": {"code": "x", "message": "y", "type": "z", "param": None}},
    "input_audio_buffer.speech_started": {"item_id": "u1", "audio_start_ms": 10},
    "input_audio_buffer.speech_stopped": {"item_id": "u1", "audio_end_ms": 900},
    "response.function_call_arguments.done": {"response_id": "r1", "item_id": "i1",
                                              "output_index": 0, "call_id": "c1",
                                              "name": "clock", "arguments": "{}"},
    "conversation.item.deleted": {"item_id": "i1"},
    "input_audio_buffer.committed": {"item_id": "i1", "previous_item_id": None},
    "conversation.item.truncated": {"item_id": "i1", "content_index": 0, "audio_end_ms": 640},
}
_ITEM = {"id": "i1", "object": "realtime.item", "type": "message", "role": "assistant",
         "status": "completed", "content": [{"type": "output_audio", "transcript": "Hi"}]}
for _kind in ("conversation.item.added", "conversation.item.created", "conversation.item.done"):
    VALID[_kind] = {"previous_item_id": None, "item": _ITEM}
for _kind in ("conversation.item.retrieved", "response.output_item.added",
              "response.output_item.done"):
    VALID[_kind] = {"item": _ITEM}


def test_every_spec_has_a_valid_example_and_names_a_known_type():
    assert set(SPECS) == set(VALID)
    assert set(SPECS) <= SERVER_EVENT_TYPES


def test_every_field_is_checked_after_the_objects_holding_it():
    """The checker walks parents without checking their type: the spec must have done so."""
    for kind, fields in SPECS.items():
        declared = {f.path: f.kind for f in fields}
        seen: set[str] = set()
        for field in fields:
            parents = field.parents
            for depth in range(1, len(parents) + 1):
                parent = ".".join(parents[:depth])
                assert declared.get(parent) == "object" and parent in seen, (kind, field.path)
            seen.add(field.path)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_events_pass_quietly(kind, caplog):
    checker = Checker()
    assert checker.check({"type": kind, "event_id": "event_1", **VALID[kind]}) == (kind, True)
    assert checker.problems == {}
    assert caplog.records == []


@pytest.mark.parametrize("kind", sorted(SERVER_EVENT_TYPES - set(SPECS)))
def test_types_rtd_reads_nothing_of_pass_with_any_fields(kind):
    checker = Checker()
    assert checker.check({"type": kind, "whatever": [1, {"x": None}]}) == (kind, True)
    assert checker.problems == {}


def test_beta_names_come_back_as_ga_names():
    checker = Checker()
    for beta, ga in BETA_SERVER_EVENT_NAMES.items():
        event = {"type": beta, **VALID[ga]} if ga in VALID else {"type": beta}
        assert checker.check(event) == (ga, True)
    assert checker.problems == {}


#: (event, the problem it counts as, what its one log line says)
MALFORMED: list[tuple[Any, tuple[str, str], str]] = [
    ({"type": "response.output_audio.delta", "item_id": "i1", "delta": 5},
     ("response.output_audio.delta", "delta"),
     "server sent response.output_audio.delta with delta an integer, expected base64 text; "
     "ignored (logged once, counted)"),
    ({"type": "response.output_audio.delta", "delta": PCM},
     ("response.output_audio.delta", "item_id"),
     "server sent response.output_audio.delta without item_id; ignored"),
    ({"type": "response.output_audio.delta", "item_id": None, "delta": PCM},
     ("response.output_audio.delta", "item_id"), "with item_id null, expected text"),
    ({"type": "response.audio.delta", "item_id": 7, "delta": PCM},
     ("response.output_audio.delta", "item_id"), "with item_id an integer, expected text"),
    ({"type": "response.done", "response": "done!"}, ("response.done", "response"),
     "server sent response.done with response text, expected an object"),
    ({"type": "response.done", "response": {"id": "r", "output": "oops"}},
     ("response.done", "response.output"), "with response.output text, expected a list"),
    ({"type": "response.done", "response": {"id": "r", "status_details": {"error": []}}},
     ("response.done", "response.status_details.error"), "expected an object"),
    ({"type": "response.function_call_arguments.done", "name": "clock", "arguments": "{}"},
     ("response.function_call_arguments.done", "call_id"),
     "server sent response.function_call_arguments.done without call_id"),
    ({"type": "response.function_call_arguments.done", "call_id": ""},
     ("response.function_call_arguments.done", "call_id"),
     "with call_id empty text, expected non-empty text"),
    ({"type": "error", "error": "boom"}, ("error", "error"),
     "server sent error with error text, expected an object"),
    ({"type": "error", "error": {"message": {"nested": ["garbage"]}}}, ("error", "error.message"),
     "with error.message an object, expected text"),
    ({"type": "session.updated", "session": {"audio": {"output": "x"}}},
     ("session.updated", "session.audio.output"), "expected an object"),
    ({"type": "session.updated"}, ("session.updated", "session"), "without session"),
    ({"type": "conversation.item.added", "item": {"type": "message"}},
     ("conversation.item.added", "item.id"), "without item.id"),
    ({"type": "conversation.item.done", "item": {"id": "i", "content": {"text": "x"}}},
     ("conversation.item.done", "item.content"), "expected a list"),
    ({"type": "conversation.item.input_audio_transcription.completed", "item_id": "u",
      "transcript": True}, ("conversation.item.input_audio_transcription.completed",
                            "transcript"), "with transcript a boolean, expected text"),
    ({"type": "conversation.item.truncated", "item_id": "i", "audio_end_ms": "640"},
     ("conversation.item.truncated", "audio_end_ms"), "expected a number"),
    ({}, (NO_TYPE, "type"), "server sent JSON without a type"),
    ({"event_id": "x"}, (NO_TYPE, "type"), "without a type"),
    ({"type": 5}, (NO_TYPE, "type"), "server sent JSON with type an integer"),
    ([1, 2], (NOT_AN_OBJECT, "type"), "server sent JSON that is not an object (a list)"),
    ("text", (NOT_AN_OBJECT, "type"), "not an object (text)"),
]


@pytest.mark.parametrize(("event", "key", "line"), MALFORMED)
def test_a_malformed_event_is_ignored_logged_once_and_counted(event, key, line, caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.checks")
    checker = Checker()
    for _ in range(3):
        assert checker.check(event)[1] is False
    assert checker.problems == {key: 3}
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert line in caplog.records[0].getMessage()


def test_session_updated_with_audio_null_is_usable():
    """null where a server has nothing to say is no reason to lose the event."""
    checker = Checker()
    event = {"type": "session.updated", "session": {"model": "m", "audio": None}}
    assert checker.check(event) == ("session.updated", True)
    assert checker.problems == {}


def test_unknown_types_are_logged_once_each_with_a_bounded_memory(caplog):
    caplog.set_level(logging.INFO, "rtd.protocol.checks")
    checker = Checker(unknown_types_remembered=3)
    for name in ["a.one", "a.two", "a.one", "a.three", "a.four", "a.five", "a.four"]:
        assert checker.check({"type": name}) == (name, False)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["ignoring unknown server event type 'a.one' (logged once)",
                     "ignoring unknown server event type 'a.two' (logged once)",
                     "ignoring unknown server event type 'a.three' (logged once)",
                     "more than 3 unknown server event types; ignoring the rest without "
                     "logging them"]
    assert checker.problems == {("a.one", "type"): 2, ("a.two", "type"): 1,
                                ("a.three", "type"): 1, (OTHER_UNKNOWN, "type"): 3}


def test_a_huge_unknown_type_name_is_not_kept_whole():
    checker = Checker()
    checker.check({"type": "x" * 1_000_000})
    assert max(len(k[0]) for k in checker.problems) <= 80


@pytest.mark.parametrize(("text", "ok"), [
    (PCM, True), ("", True), ("AAAA", False),            # 3 bytes: not 16-bit PCM
    ("not base64!", False), ("QUJD\n", False), ("QQ=", False), ("Zm9v€", False),
])
def test_audio_is_base64_of_whole_samples(text, ok, caplog):
    checker = Checker()
    pcm = checker.audio("response.output_audio.delta", "delta", text)
    if ok:
        assert pcm == base64.b64decode(text)
        assert checker.problems == {}
    else:
        assert pcm is None
        assert checker.problems == {("response.output_audio.delta", "delta"): 1}
        assert "response.output_audio.delta with delta" in caplog.text


def test_bad_elements_cost_the_element_not_the_event(caplog):
    checker = Checker()
    output = ["oops", 3, {"type": "function_call", "call_id": "c1"}, {"id": "x"},
              {"type": "message", "content": "nope"}, {"type": "message", "role": None}]
    good = checker.elements("response.done", "response.output", output, OUTPUT_ITEM)
    assert good == [{"type": "function_call", "call_id": "c1"},
                    {"type": "message", "role": None}]
    assert checker.problems == {("response.done", "response.output[]"): 2,
                                ("response.done", "response.output[].type"): 1,
                                ("response.done", "response.output[].content"): 1}
    assert ("server sent response.done with an element of response.output text, expected an "
            "object; that element ignored (logged once, counted)") in caplog.text
    assert "with an element of response.output without type" in caplog.text
    assert checker.elements("x", "item.content", None, CONTENT_PART) == []


def test_known_types_are_the_ga_and_beta_names():
    assert set(BETA_SERVER_EVENT_NAMES) | SERVER_EVENT_TYPES == KNOWN_TYPES
    assert len(SERVER_EVENT_TYPES) == 46
