"""The state actor: each transition of docs/states.md, with the real messages other actors send.

A real `StateActor` on a real `Bus`; each test tells it the facts in order, waits until it
handled them (a health-check ask), and compares the `StateEvent`s it published.
"""

from __future__ import annotations

import re
from pathlib import Path

import pykka
import pytest

from rtd.actors.state import StateActor
from rtd.messages import (
    STATES,
    AudioTranscriptChunk,
    CancelTurn,
    ConnectionState,
    EndTurn,
    ErrorEvent,
    Fatal,
    Mute,
    OutputAudioDone,
    PlaybackStarted,
    PlaybackStopped,
    ResponseDone,
    SpeechStarted,
    SpeechStopped,
    StartTurn,
    StateEvent,
    TextChunk,
    ToolCall,
    ToolCallEvent,
    TurnState,
)
from rtd.supervisor import Bus, Ping

UP = ConnectionState(True, "ws://127.0.0.1:9/v1/realtime")
REQUESTED = TurnState(True, response_requested=True)
ACTIVE = TurnState(True, response_active=True)
IDLE = TurnState(True, responses_done=1)
TOOL = TurnState(True, tool_calls_pending=1, responses_done=1)
OWED = TurnState(True, response_owed=True, responses_done=1)


class States:
    def __init__(self, *, speaker: bool = True) -> None:
        self.bus = Bus()
        self.events: list[StateEvent] = []
        self.bus.observe(lambda m: self.events.append(m) if isinstance(m, StateEvent) else None)
        self.bus.subscribe("state", StateActor.receives_for(speaker))
        self.ref = StateActor.start(self.bus, lambda n, e: None, speaker=speaker)
        self.bus.attach("state", self.ref)
        assert self.ref.ask(Ping(), timeout=5) is None

    def feed(self, *messages: object) -> list[str]:
        """Publish the messages; the states published for them."""
        before = len(self.events)
        for message in messages:
            self.bus.publish(message)
        assert self.ref.ask(Ping(), timeout=5) is None
        return [e.state for e in self.events[before:]]

    @property
    def last(self) -> StateEvent:
        return self.events[-1]


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def listening() -> States:
    s = States()
    assert s.feed(UP) == ["listening"]
    return s


def test_the_first_event_is_idle_with_no_previous_state():
    s = States()
    assert s.events == [StateEvent("idle", "rtd is starting", None, False)]


def test_idle_to_listening_on_connecting():
    s = States()
    assert s.feed(UP) == ["listening"]
    assert s.last == StateEvent("listening", f"connected to {UP.detail}", "idle", False)


def test_a_lost_connection_is_reconnecting_and_a_new_one_listening():
    s = listening()
    assert s.feed(ConnectionState(False, "peer gone")) == ["reconnecting"]
    assert s.last.detail == "connection lost: peer gone"
    assert s.feed(UP) == ["listening"]


def test_a_failed_first_attempt_is_reconnecting():
    s = States()
    assert s.feed(ConnectionState(False, "refused; retrying")) == ["reconnecting"]


def test_a_close_that_was_asked_for_is_idle():
    s = listening()
    assert s.feed(ConnectionState(False, "asleep", expected=True)) == ["idle"]
    assert s.last.detail == "conversation closed: asleep" and s.last.previous == "listening"


def test_speech_then_thinking_then_speaking_until_the_last_sample_played():
    s = listening()
    assert s.feed(SpeechStarted("u1", 100)) == ["user_speaking"]
    assert s.feed(SpeechStopped("u1", 900)) == ["thinking"]
    assert s.feed(ACTIVE) == []  # still thinking: nothing heard yet
    assert s.feed(PlaybackStarted("a1")) == ["speaking"]
    assert s.feed(ResponseDone("r", "completed"), IDLE) == []  # the server is done, the
    assert s.last.state == "speaking"                           # speaker is not
    assert s.feed(PlaybackStopped("a1", 2000, 2000, False)) == ["listening"]
    assert s.last.detail == "a1 played to its end"


def test_manual_turns():
    s = listening()
    assert s.feed(StartTurn()) == ["user_speaking"]
    assert s.feed(EndTurn()) == ["thinking"]
    assert s.feed(REQUESTED, ACTIVE, IDLE) == ["listening"]
    assert s.feed(StartTurn(), CancelTurn()) == ["user_speaking", "listening"]
    assert s.last.detail == "the user's turn was cancelled"


def test_typed_text_goes_straight_to_thinking():
    s = listening()
    assert s.feed(REQUESTED) == ["thinking"]
    assert s.last.detail == "waiting for the answer"


def test_a_tool_call_runs_then_its_answer_is_thought_about():
    s = listening()
    s.feed(REQUESTED, ACTIVE)
    assert s.feed(ToolCall("c1", "clock", "{}"), TOOL) == ["tool_running"]
    assert s.last.detail == "running clock"
    assert s.feed(ToolCallEvent("c1", "clock", "{}", '{"time": "10:00"}'), OWED) == ["thinking"]
    assert s.feed(REQUESTED, ACTIVE, PlaybackStarted("a2")) == ["speaking"]


def test_barge_in_goes_from_speaking_to_the_user():
    s = listening()
    s.feed(ACTIVE, PlaybackStarted("a1"))
    assert s.feed(SpeechStarted("u2", 3000)) == []  # the speaker has not stopped yet
    assert s.feed(PlaybackStopped("a1", 700, 4000, True)) == ["user_speaking"]
    assert s.last.detail == "a1 interrupted after 700 ms"


def test_a_cough_under_barge_in_min_ms_leaves_the_assistant_speaking():
    s = listening()
    s.feed(ACTIVE, PlaybackStarted("a1"), IDLE)
    assert s.feed(SpeechStarted("u2", 3000), SpeechStopped("u2", 3150, answered=False)) == []
    assert s.feed(PlaybackStopped("a1", 4000, 4000, False)) == ["listening"]  # not thinking


def test_an_answer_sent_in_full_before_it_plays_stays_thinking_until_the_first_sample():
    s = listening()
    s.feed(SpeechStarted("u1", 0), SpeechStopped("u1", 500), ACTIVE)
    assert s.feed(OutputAudioDone("a1"), ResponseDone("r", "completed"), IDLE) == []
    assert s.last.state == "thinking"  # no flicker through listening
    assert s.feed(PlaybackStarted("a1")) == ["speaking"]
    assert s.feed(PlaybackStopped("a1", 900, 900, False)) == ["listening"]


def test_a_cut_item_that_never_played_ends_the_wait():
    s = listening()
    s.feed(REQUESTED, ACTIVE, OutputAudioDone("a1"), IDLE)
    assert s.feed(PlaybackStopped("a1", 0, 900, True)) == ["listening"]
    assert s.last.detail == "nothing of it was played"
    assert s.feed(OutputAudioDone("a1")) == []  # late: the speaker is done with it


def test_speaking_then_thinking_while_the_response_goes_on():
    s = listening()
    s.feed(ACTIVE, PlaybackStarted("a1"))
    assert s.feed(PlaybackStopped("a1", 500, 500, False)) == ["thinking"]


def test_an_answer_that_never_played_ends_in_listening():
    s = listening()
    s.feed(SpeechStarted("u1", 0), SpeechStopped("u1", 500), ACTIVE)
    assert s.feed(ResponseDone("r", "cancelled"), IDLE) == ["listening"]


def test_a_failed_response_is_an_error_until_the_next_activity():
    s = listening()
    s.feed(REQUESTED, ACTIVE)
    assert s.feed(ResponseDone("r", "failed"), IDLE) == ["error"]
    assert s.last.detail == "response failed"
    assert s.feed(SpeechStarted("u2", 0)) == ["user_speaking"]


def test_a_server_error_shows_once_nothing_else_goes_on():
    s = listening()
    assert s.feed(ErrorEvent("server", "rate_limit_exceeded", "slow down")) == ["error"]
    assert s.last.detail == "rate_limit_exceeded"
    assert s.feed(ErrorEvent("tool", "timeout", "clock")) == []  # not the server's
    assert s.feed(REQUESTED) == ["thinking"]


def test_fatal_is_an_error_whatever_else_holds():
    s = listening()
    s.feed(ACTIVE, PlaybackStarted("a1"))
    assert s.feed(Fatal("invalid_api_key", 77)) == ["error"]
    assert s.last.detail == "stopping: invalid_api_key"
    assert s.feed(PlaybackStopped("a1", 10, 10, False), UP) == []


def test_mute_is_an_event_with_the_state_unchanged():
    s = listening()
    assert s.feed(Mute(True)) == ["listening"]
    assert s.last == StateEvent("listening", "microphone muted", "listening", True)
    assert s.feed(Mute(True)) == []
    assert s.feed(SpeechStarted("u", 0)) == ["user_speaking"] and s.last.muted
    assert s.feed(Mute(False)) == ["user_speaking"] and not s.last.muted


def test_without_a_speaker_streaming_text_is_speaking():
    s = States(speaker=False)
    s.feed(UP, REQUESTED)
    assert s.feed(ACTIVE, TextChunk("t1", "It")) == ["speaking"]
    assert s.feed(TextChunk("t1", " is"), AudioTranscriptChunk("t1", "x")) == []
    assert s.feed(ResponseDone("r", "completed"), IDLE) == ["listening"]


def test_every_transition_row_of_the_docs_names_states_that_exist():
    table = (Path(__file__).parents[2] / "docs" / "states.md").read_text()
    table = table.split("## Transitions", 1)[1]
    rows = [r for r in table.splitlines() if r.startswith("| `") or r.startswith("| any")]
    named = set(re.findall(r"`(\w+)`", "\n".join(r.split("|")[1] + r.split("|")[2]
                                                 for r in rows)))
    assert named <= set(STATES) | {"same"}
    assert set(STATES) <= named


def test_muting_in_an_error_says_so():
    s = listening()
    s.feed(ErrorEvent("server", "rate_limit_exceeded", "slow down"))
    assert s.feed(Mute(True)) == ["error"]
    assert s.last == StateEvent("error", "microphone muted", "error", True)
