"""The conversation, driven by tables of event sequences (duplicates, reordering, errors).

Each case is a list of steps (server events, sender input, tool results, connection changes)
fed to a real `Conversation`; the expectations are what it sent, published and kept.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from rtd.conversation import (
    CANCELLED_OUTPUT,
    MAX_CALLS_PER_RESPONSE,
    MAX_ITEMS,
    MAX_PENDING_INPUT,
    TOO_MANY_OUTPUT,
    Command,
    Conversation,
    Item,
    Publish,
    Send,
)
from rtd.messages import (
    AudioChunk,
    AudioEvent,
    AudioTranscript,
    AudioTranscriptChunk,
    Commit,
    ConnectionState,
    ErrorEvent,
    InputTranscript,
    InputTranscriptChunk,
    Interrupt,
    OutputAudioDone,
    RequestResponse,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    StateEvent,
    TextChunk,
    TextEvent,
    ToolCall,
    ToolCallEvent,
    TurnState,
    UserText,
)

URL = "ws://127.0.0.1:9/v1/realtime?model=m"


def pcm_b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode()


PCM = b"\x01\x00" * 480
B64 = pcm_b64(PCM)


# -- server events -------------------------------------------------------------------------------

def created(rid: str) -> dict[str, Any]:
    return {"type": "response.created", "response": {"id": rid, "status": "in_progress"}}


def done(rid: str, status: str = "completed", output: Any = None) -> dict[str, Any]:
    return {"type": "response.done",
            "response": {"id": rid, "status": status, "output": output or []}}


def args_done(rid: str | None, call_id: str, name: str = "clock", item: str = "fc"
              ) -> dict[str, Any]:
    event = {"type": "response.function_call_arguments.done", "item_id": f"{item}_{call_id}",
             "output_index": 0, "call_id": call_id, "name": name, "arguments": "{}"}
    if rid is not None:
        event["response_id"] = rid
    return event


def fc(call_id: str, name: str = "clock") -> dict[str, Any]:
    return {"id": f"fc_{call_id}", "type": "function_call", "call_id": call_id, "name": name,
            "arguments": "{}", "status": "completed"}


def delta(item: str, pcm: bytes = PCM) -> dict[str, Any]:
    return {"type": "response.output_audio.delta", "response_id": "r", "item_id": item,
            "output_index": 0, "content_index": 0, "delta": pcm_b64(pcm)}


def error(code: str, message: str = "no", event_id: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code,
                                       "message": message, "param": None,
                                       "event_id": event_id}}


def msg(item_id: str, role: str, text: str | None = None, status: str = "completed",
        part: str | None = None) -> dict[str, Any]:
    content = []
    if text is not None:
        kind = part or ("input_text" if role == "user" else "output_audio")
        content = [{"type": kind, ("transcript" if kind.endswith("audio") else "text"): text}]
    return {"id": item_id, "object": "realtime.item", "type": "message", "role": role,
            "status": status, "content": content}


def added(item: dict[str, Any], previous: str | None = None,
          kind: str = "conversation.item.added") -> dict[str, Any]:
    return {"type": kind, "previous_item_id": previous, "item": item}


def result(call_id: str, output: str = '{"time": "10:00"}', name: str = "clock"
           ) -> ToolCallEvent:
    return ToolCallEvent(call_id, name, "{}", output)


def call_turn(rid: str, call_id: str, status: str = "completed") -> list[Any]:
    return [created(rid), args_done(rid, call_id), done(rid, status, [fc(call_id)])]


# -- the harness ---------------------------------------------------------------------------------

CONNECT = ("connect", URL)


@dataclass
class Run:
    conv: Conversation
    commands: list[Command] = field(default_factory=list)

    def step(self, step: Any) -> list[Command]:
        if isinstance(step, Mapping):
            out = self.conv.server_event(step)
        elif isinstance(step, ToolCallEvent):
            out = self.conv.tool_result(step)
        elif isinstance(step, (UserText, Commit, RequestResponse, Interrupt)):
            out = self.conv.sender_input(step)
        elif step == "stop":
            out = self.conv.stop()
        elif step[0] == "connect":
            out = self.conv.connected(step[1])
        elif step[0] == "disconnect":
            out = self.conv.disconnected(step[1])
        else:
            raise AssertionError(step)
        check_commands(out)
        self.commands.extend(out)
        return out

    @property
    def sent(self) -> list[dict[str, Any]]:
        return [c.event for c in self.commands if isinstance(c, Send)]

    def sent_types(self) -> list[str]:
        return [e["type"] for e in self.sent]

    def of(self, kind: type) -> list[Any]:
        return [c.message for c in self.commands
                if isinstance(c, Publish) and isinstance(c.message, kind)]


def check_commands(out: list[Command]) -> None:
    for command in out:
        assert isinstance(command, (Send, Publish))
        if isinstance(command, Send):
            assert isinstance(command.event["type"], str)
            assert command.event["event_id"].startswith("rtd_")
            json.dumps(command.event)


def drive(steps: list[Any], wants: Callable[[type], bool] = lambda t: True,
          connect: bool = True) -> Run:
    run = Run(Conversation(wants=wants))
    for step in ([CONNECT] if connect else []) + list(steps):
        run.step(step)
    return run


# -- the table -----------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    steps: list[Any]
    sent: list[str] | None = None
    """Types of the client events sent, in order."""
    calls: list[str] | None = None
    """Call ids published as ToolCall, in order."""
    responses: list[tuple[str, str]] | None = None
    """ResponseDone messages published, as (id, status)."""
    turn: dict[str, Any] | None = None
    """Fields of the final turn state."""
    logs: list[str] = field(default_factory=list)
    """Fragments that appear exactly once in the log."""
    connect: bool = True
    """Start connected."""

    def __str__(self) -> str:
        return self.name


IDLE = {"response_active": False, "response_requested": False, "response_owed": False,
        "tool_calls_pending": 0}

CASES = [
    # tool calls
    Case("a cancelled response's calls never run; a completed one's do",
         [*call_turn("r1", "c1", "cancelled"), *call_turn("r2", "c2")],
         calls=["c2"], responses=[("r1", "cancelled"), ("r2", "completed")],
         turn={**IDLE, "tool_calls_pending": 1}, logs=["response r1 cancelled; 1 tool call(s)"]),
    Case("a tool call waits for response.done, not arguments.done",
         [created("r1"), args_done("r1", "c1")], calls=[],
         turn={"response_active": True, "tool_calls_pending": 0}),
    Case("a duplicate response.done runs the tool once and ends nothing twice",
         [*call_turn("r1", "c1"), done("r1", "completed", [fc("c1")]),
          done("r1", "completed", [fc("c1")])],
         calls=["c1"], responses=[("r1", "completed")], turn={"tool_calls_pending": 1},
         logs=["ignoring a repeated response.done (r1); logged once"]),
    Case("a call in both arguments.done and the output runs once",
         [created("r1"), args_done("r1", "c1"), args_done("r1", "c1"),
          done("r1", "completed", [fc("c1"), fc("c1")])], calls=["c1"]),
    Case("calls listed only in response.output still run",
         [created("r"), done("r", "completed", [fc("c9")])], calls=["c9"]),
    Case("a call without a response id belongs to the active response",
         [created("r"), args_done(None, "c1"), done("r")], calls=["c1"]),
    Case("the same call id in a later response does not run again",
         [*call_turn("r1", "c1"), result("c1"), created("r2"),
          done("r2", "completed", [fc("c1")])],
         calls=["c1"], logs=["1 tool call(s) the server repeated not run again"]),
    Case("a call of a cancelled response does not run when a later response repeats it",
         [*call_turn("r1", "c1", "cancelled"), *call_turn("r2", "c1")], calls=[]),
    Case("output, then response.create once every parallel call answered",
         [created("r1"), args_done("r1", "a"), args_done("r1", "b"), done("r1"),
          result("a", "1"), result("b", "2")],
         sent=["conversation.item.create", "conversation.item.create", "response.create"],
         calls=["a", "b"], turn={"response_requested": True, "tool_calls_pending": 0}),
    Case("the follow-up response waits for a response the server started meanwhile",
         [*call_turn("r1", "c1"), created("r2"), result("c1"), done("r2")],
         sent=["conversation.item.create", "response.create"], responses=[
             ("r1", "completed"), ("r2", "completed")], turn={"response_requested": True}),
    Case("a result for an unknown call is dropped with one line",
         [result("nobody")], sent=[],
         logs=["result of clock (call nobody) dropped: the call is not one this "
               "conversation ran"]),
    Case("a second result for the same call is dropped",
         [*call_turn("r1", "c1"), result("c1"), result("c1")],
         sent=["conversation.item.create", "response.create"],
         logs=["result of clock (call c1) dropped: the call was answered already"]),
    Case("a result after its connection ended is dropped",
         [*call_turn("r1", "c1"), ("disconnect", "gone"), CONNECT, result("c1")], sent=[],
         turn={**IDLE, "connected": True},
         logs=["connection lost with 1 tool call(s) unanswered",
               "dropped: the call belonged to a connection that ended"]),
    Case("a result of a call that never ran is dropped",
         [*call_turn("r1", "c1", "cancelled"), result("c1")], sent=[],
         logs=["dropped: the call was never run"]),
    Case("more calls than one response may start are answered at once, not run",
         [created("r"), done("r", "completed",
                            [fc(f"c{i}") for i in range(MAX_CALLS_PER_RESPONSE + 2)])],
         calls=[f"c{i}" for i in range(MAX_CALLS_PER_RESPONSE)],
         sent=["conversation.item.create"] * 2,
         turn={"tool_calls_pending": MAX_CALLS_PER_RESPONSE, "response_owed": True},
         logs=[f"the 2 past {MAX_CALLS_PER_RESPONSE} are not run"]),
    # asking for responses
    Case("typed text gets an item and a response",
         [UserText("turn on the radio")], sent=["conversation.item.create", "response.create"],
         turn={"response_requested": True}),
    Case("typed text without respond gets only the item",
         [UserText("just noting", respond=False)], sent=["conversation.item.create"],
         turn=IDLE),
    Case("response.create is never sent while one is requested: it is owed",
         [UserText("one"), UserText("two"), RequestResponse()],
         sent=["conversation.item.create", "response.create", "conversation.item.create"],
         turn={"response_requested": True, "response_owed": True}),
    Case("an owed response goes out when the response ends",
         [UserText("one"), created("r1"), UserText("two"), done("r1")],
         sent=["conversation.item.create", "response.create", "conversation.item.create",
               "response.create"],
         turn={"response_requested": True, "response_owed": False}),
    Case("response.create is never sent while tool calls are pending",
         [*call_turn("r1", "c1"), RequestResponse()], sent=[],
         turn={"response_owed": True, "tool_calls_pending": 1}),
    Case("a response the server starts by itself is tracked too",
         [created("r1")], turn={"response_active": True, "response_requested": False}),
    Case("commit", [Commit()], sent=["input_audio_buffer.commit"], turn=IDLE),
    Case("interrupt cancels an active response",
         [created("r1"), Interrupt()], sent=["response.cancel"]),
    Case("interrupt before the response started cancels it when it starts",
         [RequestResponse(), Interrupt(), created("r1")],
         sent=["response.create", "response.cancel"]),
    Case("interrupt with nothing going on sends nothing", [Interrupt()], sent=[]),
    # errors
    Case("an error answering response.create clears the request: the next input is answered",
         [UserText("one"), error("bad_request", "nope", "rtd_2"), UserText("two")],
         sent=["conversation.item.create", "response.create", "conversation.item.create",
               "response.create"],
         logs=["server error bad_request: nope (answering response.create rtd_2)"]),
    Case("an error in place of response.done ends the response as failed",
         [UserText("one"), created("r1"), UserText("two"), error("server_error", "oops")],
         sent=["conversation.item.create", "response.create", "conversation.item.create",
               "response.create"],
         responses=[("r1", "failed")], turn={"response_requested": True},
         logs=["response r1 ended without response.done (server error server_error)"]),
    Case("a late response.done of a response ended by an error publishes nothing more",
         [created("r1"), error("server_error"), done("r1")],
         responses=[("r1", "failed")], turn=IDLE),
    Case("a late response.done still runs its completed calls, once",
         [created("r1"), args_done("r1", "c1"), error("server_error"),
          done("r1", "completed", [fc("c1")]), done("r1", "completed", [fc("c1")])],
         calls=["c1"], responses=[("r1", "failed")], turn={"tool_calls_pending": 1}),
    Case("the server says a response is still active: wait for it, then ask again",
         [created("r1"), error("server_error"), RequestResponse(),
          error("conversation_already_has_active_response", "busy", "rtd_1"), done("r1")],
         sent=["response.create", "response.create"],
         turn={"response_requested": True, "response_active": False}),
    Case("an error about the microphone stream ends no response",
         [created("r1"), error("input_audio_buffer_commit_empty")],
         responses=[], turn={"response_active": True}),
    Case("an uncorrelated error while a response is requested clears the request",
         [RequestResponse(), error("server_error"), RequestResponse()],
         sent=["response.create", "response.create"]),
    Case("an error naming an event rtd does not remember is logged as such",
         [error("bad_thing", "That was bad.", "evt_7")], sent=[],
         logs=["server error bad_thing: That was bad. (caused by event evt_7)"]),
    Case("a correlated error to response.cancel ends nothing",
         [created("r1"), Interrupt(), error("response_cancel_not_active", "no", "rtd_1")],
         turn={"response_active": True}, responses=[]),
    Case("an error whose error is text still ends the active response",
         [created("r1"), {"type": "error", "error": "boom"}],
         responses=[("r1", "failed")], turn=IDLE),
    Case("a response.done too malformed to read still ends the active response",
         [created("r1"), {"type": "response.done", "response": "done!"}],
         responses=[("r1", "failed")], turn=IDLE),
    Case("output items that are text cost those items, not the response",
         [created("r1"), done("r1", "completed", ["oops", fc("c1"), 3])],
         calls=["c1"], responses=[("r1", "completed")]),
    Case("a function call in the output without call_id is ignored",
         [created("r1"), done("r1", "completed", [{"type": "function_call", "name": "x"}])],
         calls=[], responses=[("r1", "completed")],
         logs=["function_call in response.output without call_id"]),
    Case("arguments.done without call_id is ignored",
         [created("r1"), {"type": "response.function_call_arguments.done", "name": "x",
                          "arguments": "{}", "response_id": "r1"}, done("r1")], calls=[]),
    # reordering
    Case("response.done before its response.created: nothing stays active",
         [RequestResponse(), done("r1"), created("r1")],
         sent=["response.create"], responses=[("r1", "completed")], turn=IDLE),
    Case("a repeated response.created starts one response",
         [created("r1"), created("r1"), done("r1")], responses=[("r1", "completed")],
         turn=IDLE),
    Case("a response.done for another response leaves the active one active",
         [created("r2"), done("r1")], turn={"response_active": True}),
    # connection
    Case("disconnecting resets the turn and says so",
         [UserText("one"), created("r1"), RequestResponse(), ("disconnect", "peer gone")],
         turn={**IDLE, "connected": False, "responses_done": 1},
         logs=["disconnected: peer gone"]),
    Case("input while disconnected is sent in order once connected",
         [UserText("remember the milk"), Commit(), Interrupt(), CONNECT],
         sent=["conversation.item.create", "response.create", "input_audio_buffer.commit"],
         connect=False),
    Case("events while disconnected are not the conversation's",
         [created("r1"), ("disconnect", "x"), created("r2"), delta("a")],
         turn={**IDLE, "connected": False}),
    Case("stopping answers running tools as cancelled and asks for nothing",
         [created("r"), done("r", "completed", [fc("a"), fc("b")]), result("a"), "stop",
          result("b")],
         sent=["conversation.item.create", "conversation.item.create"], turn=IDLE,
         logs=["stopping with 1 tool call(s) running: cancelled (told the model)",
               "dropped: the call was cancelled when rtd stopped"]),
    Case("stopping while disconnected sends nothing",
         ["stop"], sent=[], turn={"connected": False}, connect=False),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_flows(case: Case, caplog):
    caplog.set_level(logging.INFO)
    run = drive(case.steps, connect=case.connect)
    if case.sent is not None:
        assert run.sent_types() == case.sent
    if case.calls is not None:
        assert [c.call_id for c in run.of(ToolCall)] == case.calls
    if case.responses is not None:
        assert [(d.response_id, d.status) for d in run.of(ResponseDone)] == case.responses
    turn = run.conv.turn
    for name, value in (case.turn or {}).items():
        assert getattr(turn, name) == value, name
    for fragment in case.logs:
        assert caplog.text.count(fragment) == 1, fragment
    assert "Traceback" not in caplog.text
    turns = run.of(TurnState)
    assert (turns[-1] if turns else TurnState()) == turn  # the last published is the current
    assert all(a != b for a, b in zip(turns, turns[1:], strict=False))  # only changes


# -- details the table does not show ------------------------------------------------------------


def test_every_sent_event_has_its_own_event_id():
    run = drive([UserText("a"), created("r"), UserText("b"), Interrupt(), done("r"), Commit()])
    ids = [e["event_id"] for e in run.sent]
    assert run.sent_types() == ["conversation.item.create", "response.create",
                                "conversation.item.create", "response.cancel",
                                "response.create", "input_audio_buffer.commit"]
    assert len(set(ids)) == len(ids)


def test_a_stamped_session_update_is_named_by_its_errors(caplog):
    caplog.set_level(logging.WARNING)
    conv = Conversation()
    update = conv.stamp({"type": "session.update", "session": {"type": "realtime"}})
    assert update == {"type": "session.update", "event_id": "rtd_1",
                      "session": {"type": "realtime"}}
    conv.connected(URL)
    conv.server_event(error("invalid_value", "bad voice", update["event_id"]))
    assert "(answering session.update rtd_1)" in caplog.text


def test_tool_outputs_are_sent_exactly_and_kept_in_the_items():
    run = drive([*call_turn("r", "c1"), result("c1", '{"t": "ä"}')])
    sent = run.sent[0]
    assert sent["item"]["type"] == "function_call_output"
    assert (sent["item"]["call_id"], sent["item"]["output"]) == ("c1", '{"t": "ä"}')
    assert [(i.kind, i.call_id, i.output) for i in run.conv.items] == [
        ("function_call", "c1", None), ("function_call_output", "c1", '{"t": "ä"}')]


def test_stop_sends_a_cancelled_output_per_running_call():
    run = drive([created("r"), done("r", "completed", [fc("a"), fc("b")]), "stop"])
    assert [(e["item"]["call_id"], e["item"]["output"]) for e in run.sent] == [
        ("a", CANCELLED_OUTPUT), ("b", CANCELLED_OUTPUT)]
    assert json.loads(CANCELLED_OUTPUT)["error"].startswith("cancelled")


def test_too_many_calls_get_an_error_output_each():
    calls = [fc(f"c{i}") for i in range(MAX_CALLS_PER_RESPONSE + 1)]
    run = drive([created("r"), done("r", "completed", calls)])
    assert [e["item"]["output"] for e in run.sent] == [TOO_MANY_OUTPUT]


def test_disconnect_publishes_connection_and_error():
    run = drive([created("r"), ("disconnect", "peer gone")])
    assert run.of(ConnectionState) == [ConnectionState(True, URL),
                                       ConnectionState(False, "peer gone")]
    assert run.of(ErrorEvent) == [ErrorEvent("connection", "disconnected", "peer gone")]
    assert run.of(StateEvent) == []  # the state is the state actor's (rtd.actors.state)
    assert run.conv.disconnected("again") == []  # already down: nothing new


def test_held_input_is_bounded_and_keeps_the_newest(caplog):
    conv = Conversation()
    for i in range(MAX_PENDING_INPUT + 3):
        conv.sender_input(UserText(f"t{i}", respond=False))
    out = conv.connected(URL)
    texts = [c.event["item"]["content"][0]["text"] for c in out if isinstance(c, Send)]
    assert texts == [f"t{i}" for i in range(3, MAX_PENDING_INPUT + 3)]
    assert caplog.text.count("dropping the oldest") == 3


def test_the_servers_speech_events_are_published_for_the_state_actor():
    run = drive([{"type": "input_audio_buffer.speech_started", "audio_start_ms": 0,
                  "item_id": "u"},
                 {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 900,
                  "item_id": "u"},
                 created("r"), delta("a"), delta("a"), done("r"), error("x", "y")])
    assert run.of(SpeechStarted) == [SpeechStarted("u", 0)]
    assert run.of(SpeechStopped) == [SpeechStopped("u", 900, True)]
    assert run.of(ResponseStarted) == [ResponseStarted("r")]
    assert run.of(StateEvent) == []


def test_a_failed_response_is_published_as_failed(caplog):
    run = drive([created("r"), {"type": "response.done", "response": {
        "id": "r", "status": "failed", "status_details": {
            "error": {"message": "quota"}}}}])
    assert run.of(ResponseDone) == [ResponseDone("r", "failed")]
    assert "response failed: quota" in caplog.text


def test_audio_and_its_done_markers():
    parts = [b"\x01\x00" * 10, b"\x02\x00" * 10]
    run = drive([created("r"), *[delta("it", p) for p in parts],
                 {"type": "response.output_audio.done", "item_id": "it"},
                 {"type": "response.output_audio.done", "item_id": "it"}, done("r")])
    assert run.of(AudioChunk) == [AudioChunk("it", p) for p in parts]
    assert run.of(AudioEvent) == [AudioEvent("it", b"".join(parts))]
    assert run.of(OutputAudioDone) == [OutputAudioDone("it")]


def test_playing_is_the_item_whose_audio_arrives():
    run = drive([created("r"), delta("a1")])
    assert run.conv.playing == "a1"
    run.step({"type": "response.output_audio.done", "item_id": "a1"})
    assert run.conv.playing is None
    run.step(delta("a2"))
    run.step(done("r"))  # no audio.done came for a2: the end of the response ends it
    assert run.conv.playing is None
    assert run.of(OutputAudioDone) == [OutputAudioDone("a1"), OutputAudioDone("a2")]


def test_chunks_are_built_only_for_subscribers():
    run = drive([delta("x"),
                 {"type": "response.output_audio_transcript.delta", "item_id": "x",
                  "delta": "Hel"},
                 {"type": "response.output_text.delta", "item_id": "x", "delta": "Hel"},
                 {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u",
                  "delta": "Hi"},
                 {"type": "response.output_audio.done", "item_id": "x"}],
                wants=lambda t: False)
    for kind in (AudioChunk, AudioEvent, AudioTranscriptChunk, TextChunk, InputTranscriptChunk):
        assert run.of(kind) == []
    assert run.of(OutputAudioDone) == [OutputAudioDone("x")]


def test_chunks_for_subscribers():
    run = drive([{"type": "response.output_audio_transcript.delta", "item_id": "x",
                  "delta": "Hel"},
                 {"type": "response.output_text.delta", "item_id": "x", "delta": "Hel"},
                 {"type": "conversation.item.input_audio_transcription.delta", "item_id": "u",
                  "delta": "Hi"}])
    assert run.of(AudioTranscriptChunk) == [AudioTranscriptChunk("x", "Hel")]
    assert run.of(TextChunk) == [TextChunk("x", "Hel")]
    assert run.of(InputTranscriptChunk) == [InputTranscriptChunk("u", "Hi")]


def test_whole_item_audio_only_when_wanted():
    run = drive([delta("x"), {"type": "response.output_audio.done", "item_id": "x"}],
                wants=lambda t: t is AudioChunk)
    assert run.of(AudioEvent) == [] and len(run.of(AudioChunk)) == 1


@pytest.mark.parametrize("bad", [
    {"type": "response.output_audio.delta", "item_id": "x", "delta": 5},
    {"type": "response.output_audio.delta", "item_id": "x", "delta": "not base64!"},
    {"type": "response.output_audio.delta", "item_id": "x", "delta": "AAAA"},  # 3 bytes
    {"type": "response.output_audio.delta", "delta": B64},
])
def test_a_bad_audio_delta_costs_that_delta(bad, caplog):
    run = drive([created("r"), bad, delta("x")])
    assert run.of(AudioChunk) == [AudioChunk("x", PCM)]
    assert sum(run.conv.problems.values()) == 1
    assert caplog.text.count("server sent response.output_audio.delta") == 1


def test_transcripts_and_their_log_lines(caplog):
    caplog.set_level(logging.INFO, "rtd.conversation")
    done_transcript = {"type": "response.output_audio_transcript.done", "item_id": "it1",
                       "transcript": "Hello there."}
    user = {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
            "content_index": 0, "transcript": " Hi "}
    run = drive([user, user, done_transcript, done_transcript,
                 {"type": "response.output_text.done", "item_id": "t1", "text": "In text."},
                 {"type": "conversation.item.input_audio_transcription.completed",
                  "item_id": "u2", "transcript": "   "}])
    assert run.of(AudioTranscript) == [AudioTranscript("it1", "Hello there.")]
    assert run.of(InputTranscript) == [InputTranscript("u1", "Hi")]
    assert run.of(TextEvent) == [TextEvent("t1", "In text.")]
    lines = [r.getMessage() for r in caplog.records if r.name == "rtd.conversation"]
    assert lines == ["user: Hi", "assistant: Hello there.", "assistant: In text."]


def test_beta_event_names_work_like_ga_ones():
    run = drive([{"type": "response.audio.delta", "item_id": "b", "delta": B64},
                 {"type": "response.audio.done", "item_id": "b"},
                 {"type": "response.audio_transcript.done", "item_id": "b",
                  "transcript": "Beta."},
                 {"type": "response.text.done", "item_id": "c", "text": "Text."},
                 added(msg("u1", "user", "hi"), kind="conversation.item.created")])
    assert run.of(AudioChunk) == [AudioChunk("b", PCM)]
    assert run.of(AudioTranscript) == [AudioTranscript("b", "Beta.")]
    assert run.of(TextEvent) == [TextEvent("c", "Text.")]
    assert [i.id for i in run.conv.items] == ["b", "c", "u1"]


def test_session_updated_is_logged_even_with_audio_null(caplog):
    caplog.set_level(logging.INFO)
    drive([{"type": "session.updated", "session": {"model": "gpt-realtime-2", "audio": None}},
           {"type": "session.updated", "session": {"model": "m2", "audio": {
               "output": {"voice": "marin"}}}},
           {"type": "session.updated", "session": {"voice": "ara"}}])
    assert "session ready: model gpt-realtime-2, voice (not said)" in caplog.text
    assert "session ready: model m2, voice marin" in caplog.text
    assert "session ready: model (not said), voice ara" in caplog.text


def test_transcription_failure_is_logged(caplog):
    drive([{"type": "conversation.item.input_audio_transcription.failed", "item_id": "u",
            "content_index": 0, "error": {"code": "x", "message": "audio unclear"}}])
    assert "transcription of the user's speech failed: audio unclear" in caplog.text


def test_unknown_event_types_are_logged_once(caplog):
    caplog.set_level(logging.INFO)
    run = drive([{"type": "brand_new.thing"}, {"type": "brand_new.thing"}])
    assert caplog.text.count("brand_new.thing") == 1
    assert run.conv.problems[("brand_new.thing", "type")] == 2


def test_server_errors_are_published_and_left_to_the_session():
    """Fatal-looking codes are the session's to judge (with the transport's endings table)."""
    run = drive([error("invalid_api_key", "bad key"), error("session_expired", "60 min")])
    assert run.of(ErrorEvent) == [ErrorEvent("server", "invalid_api_key", "bad key"),
                                  ErrorEvent("server", "session_expired", "60 min")]
    assert run.conv.turn.connected


def test_an_error_without_code_uses_its_type():
    run = drive([{"type": "error", "error": {"type": "server_error", "message": "m"}},
                 {"type": "error", "error": {}}])
    assert [e.code for e in run.of(ErrorEvent)] == ["server_error", "error"]


# -- items ---------------------------------------------------------------------------------------


def kinds(conv: Conversation) -> list[tuple[str, str, str | None, str]]:
    return [(i.id, i.kind, i.role, i.text) for i in conv.items]


def test_items_in_order_without_duplicates_whatever_the_server_echoes():
    user = msg("u1", "user", status="completed", text=None)
    answer = msg("a1", "assistant", "Hello.", part="output_audio")
    run = drive([
        added(user), added(user, kind="conversation.item.created"),
        {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
         "transcript": "Hi"},
        added(user, kind="conversation.item.done"),
        created("r"),
        {"type": "response.output_item.added", "response_id": "r", "output_index": 0,
         "item": msg("a1", "assistant", status="in_progress")},
        added(msg("a1", "assistant", status="in_progress"), "u1"),
        delta("a1"),
        {"type": "response.output_audio_transcript.done", "item_id": "a1",
         "transcript": "Hello."},
        {"type": "response.output_item.done", "response_id": "r", "output_index": 0,
         "item": answer},
        {"type": "conversation.item.done", "item": answer},
        done("r", "completed", [answer]),
        done("r", "completed", [answer]),
    ])
    assert kinds(run.conv) == [("u1", "message", "user", "Hi"),
                               ("a1", "message", "assistant", "Hello.")]


def test_typed_text_is_an_item_and_its_echo_is_not_another():
    run = drive([UserText("hello"), UserText("again")])
    ids = [i.id for i in run.conv.items]
    echo = run.sent[0]["item"]
    run.step(added({**echo, "object": "realtime.item", "status": "completed"}))
    # a server that ignores the client's item id echoes the text under its own id
    run.step(added({"id": "srv_9", "type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "again"}]}, ids[0]))
    assert kinds(run.conv) == [(ids[0], "message", "user", "hello"),
                               ("srv_9", "message", "user", "again")]


def test_function_call_items_and_their_outputs_once_each():
    run = drive([created("r"), {"type": "response.output_item.added", "item": {
        **fc("c1"), "status": "in_progress", "arguments": ""}},
        args_done("r", "c1"), done("r", "completed", [fc("c1")]), result("c1", "out")])
    echo = run.sent[0]["item"]
    run.step(added({"id": "srv_out", "type": "function_call_output", "call_id": "c1",
                    "output": "something else"}))
    # the arguments the call finished with, not the empty ones it was announced with
    assert [(i.kind, i.call_id, i.name, i.arguments, i.output) for i in run.conv.items] == [
        ("function_call", "c1", "clock", "{}", None),
        ("function_call_output", "c1", None, None, "out")]
    assert run.conv.items[1].id == "srv_out" != echo["id"]


def test_previous_item_id_places_an_item():
    run = drive([added(msg("a", "user", "1")), added(msg("c", "user", "3"), "a"),
                 added(msg("b", "user", "2"), "a"), added(msg("d", "user", "4"), "unknown")])
    assert [i.id for i in run.conv.items] == ["a", "b", "c", "d"]


def test_deleted_truncated_and_incomplete_items():
    run = drive([added(msg("a", "assistant", "Long answer")), added(msg("b", "user", "x")),
                 {"type": "conversation.item.truncated", "item_id": "a", "content_index": 0,
                  "audio_end_ms": 500},
                 {"type": "conversation.item.deleted", "item_id": "b"},
                 created("r"),
                 done("r", "cancelled", [msg("c", "assistant", "Cut", status="incomplete")])])
    assert [(i.id, i.interrupted) for i in run.conv.items] == [("a", True), ("c", True)]


def test_a_refused_item_leaves_the_history():
    run = drive([UserText("bad", respond=False)])
    run.step(error("invalid_value", "no", run.sent[0]["event_id"]))
    assert run.conv.items == ()


def test_items_survive_a_reconnect_and_are_bounded():
    run = drive([added(msg(f"i{n}", "user", str(n))) for n in range(MAX_ITEMS + 5)])
    run.step(("disconnect", "gone"))
    run.step(CONNECT)
    items = run.conv.items
    assert len(items) == MAX_ITEMS
    assert items[0] == Item("i5", "message", "user", "5")
    assert items[-1].id == f"i{MAX_ITEMS + 4}"


def test_turn_state_idle():
    assert TurnState().idle and TurnState(connected=True, responses_done=3).idle
    for busy in ({"response_active": True}, {"response_requested": True},
                 {"response_owed": True}, {"tool_calls_pending": 1}):
        assert not TurnState(**busy).idle


def test_what_it_sends_passes_the_emulators_checks():
    """The emulator validates client events the way the service does: envelope and items."""
    from rtd.emulator import validation

    run = drive([UserText("hi"), created("r"), Interrupt(), Commit(),
                 done("r", "completed", [fc("c1")]), result("c1"), "stop"])
    assert set(run.sent_types()) == {"conversation.item.create", "response.create",
                                     "response.cancel", "input_audio_buffer.commit"}
    for event in run.sent:
        assert validation.check_event(event) == event["type"]
        if event["type"] == "conversation.item.create":
            assert validation.validate_item(event["item"])["id"] == event["item"]["id"]


def test_parsed_server_events_work_as_well_as_dicts():
    from rtd.protocol.events import parse_server_event

    run = drive([parse_server_event(json.dumps(e)) for e in call_turn("r", "c1")])
    assert [c.call_id for c in run.of(ToolCall)] == ["c1"]
