"""The conversation's side of talking: barge-in, what the user heard, manual turns, typed text.

Real `Conversation` objects fed server events, sender messages and the speaker's
`PlaybackStopped` reports; the expectations are the client events it sends and the messages it
publishes. The end-to-end tests (tests/e2e/test_talking.py) run the same flows through `rtd run`.
"""

from __future__ import annotations

import logging
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_conversation import PCM, URL, Run, added, created, delta, done, error, msg

from rtd.conversation import Conversation
from rtd.messages import (
    AudioChunk,
    AudioTranscript,
    CancelTurn,
    EndTurn,
    InputTranscript,
    Interrupt,
    PlaybackStopped,
    SpeechStopped,
    StartTurn,
    UserText,
)

MS = len(PCM) // 48  # 20 ms of audio per delta


def session(td: dict[str, Any] | None) -> dict[str, Any]:
    return {"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": td}}}}


VAD = {"type": "server_vad", "create_response": True, "interrupt_response": True}
VAD_CLIENT = {"type": "server_vad", "create_response": False, "interrupt_response": False}


def talk(td: dict[str, Any] | None = VAD, *, barge_in_min_ms: int = 0) -> Run:
    conv = Conversation(playback=True, barge_in_min_ms=barge_in_min_ms)
    conv.stamp(session(td))  # as the transport's hello does
    run = Run(conv)
    run.step(("connect", URL))
    return run


def speech_started(at: int = 0, item: str = "u1") -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_started", "audio_start_ms": at, "item_id": item}


def speech_stopped(at: int, item: str = "u1") -> dict[str, Any]:
    return {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at, "item_id": item}


def committed(item: str = "u1") -> dict[str, Any]:
    return {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None}


def transcript_done(item: str, text: str) -> dict[str, Any]:
    return {"type": "response.output_audio_transcript.done", "response_id": "r",
            "item_id": item, "output_index": 0, "content_index": 0, "transcript": text}


def truncated(item: str, end: int) -> dict[str, Any]:
    return {"type": "conversation.item.truncated", "item_id": item, "content_index": 0,
            "audio_end_ms": end}


def retrieved(item: str, text: str) -> dict[str, Any]:
    return {"type": "conversation.item.retrieved",
            "item": msg(item, "assistant", text, status="incomplete")}


def stopped(item: str, played: int, received: int = 1000, interrupted: bool = True
            ) -> PlaybackStopped:
    return PlaybackStopped(item, played, received, interrupted)


def feed(run: Run, *steps: Any) -> None:
    for step in steps:
        if isinstance(step, PlaybackStopped):
            run.commands.extend(run.conv.playback_stopped(step))
        elif isinstance(step, (StartTurn, EndTurn, CancelTurn, Interrupt, UserText)):
            run.commands.extend(run.conv.sender_input(step))
        elif isinstance(step, int):
            run.commands.extend(run.conv.input_audio(step))
        else:
            run.step(step)


def playing(run: Run, item: str = "a1", deltas: int = 5) -> None:
    """A response whose item is at the speaker (5 deltas: 100 ms received)."""
    feed(run, created("r"), added(msg(item, "assistant", status="in_progress")),
         *[delta(item) for _ in range(deltas)])


def test_speech_over_the_assistant_stops_it_and_truncates_at_what_was_heard(caplog):
    caplog.set_level(logging.INFO)
    run = talk()
    playing(run)
    feed(run, speech_started())
    assert run.of(Interrupt) == [Interrupt("barge_in")]
    assert "response.cancel" not in run.sent_types()  # interrupt_response: the server did
    feed(run, delta("a1"))  # late: dropped, never reaches the speaker
    assert len(run.of(AudioChunk)) == 5
    feed(run, transcript_done("a1", "one two three four five"), stopped("a1", 30))
    assert run.sent[-1] == {"type": "conversation.item.truncate", "event_id": run.sent[-1][
        "event_id"], "item_id": "a1", "content_index": 0, "audio_end_ms": 30}
    feed(run, truncated("a1", 30))
    assert "conversation.item.retrieve" not in run.sent_types()  # the response still runs
    feed(run, done("r", "cancelled"))
    assert run.sent_types()[-1] == "conversation.item.retrieve"
    assert run.of(AudioTranscript) == []  # the full text was never heard: not published
    feed(run, retrieved("a1", "one two three"))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "one two three", True)]
    assert "assistant (interrupted): one two three" in caplog.text
    assert [i.interrupted for i in run.conv.items if i.id == "a1"] == [True]
    # a new session gets the answer as it was heard, not as it was written
    assert [e["item"]["content"][0]["text"] for e in run.conv.replay(1000)
            if e["item"].get("role") == "assistant"] == ["one two three"]


def test_without_interrupt_response_rtd_cancels_the_response_itself():
    run = talk({**VAD, "interrupt_response": False})
    playing(run)
    feed(run, speech_started())
    assert run.sent_types()[-1] == "response.cancel"


def test_the_cut_is_capped_at_the_audio_received():
    run = talk()
    playing(run, deltas=3)
    feed(run, speech_started(), stopped("a1", 500, received=500))
    assert run.sent[-1]["audio_end_ms"] == 3 * MS


def test_an_item_nobody_heard_is_deleted_and_has_no_transcript():
    run = talk()
    playing(run)
    feed(run, transcript_done("a1", "never heard"), speech_started(), stopped("a1", 0))
    assert run.sent[-1]["type"] == "conversation.item.delete"
    assert run.sent[-1]["item_id"] == "a1"
    feed(run, done("r", "cancelled"))
    assert run.of(AudioTranscript) == []


def test_a_transcript_waits_for_the_speaker_to_play_its_item():
    run = talk()
    playing(run)
    feed(run, transcript_done("a1", "all of it"), done("r"))
    assert run.of(AudioTranscript) == []
    feed(run, stopped("a1", 5 * MS, 5 * MS, interrupted=False))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "all of it", False)]


def test_an_item_a_restarted_speaker_never_reported_is_published_when_a_later_one_is():
    run = talk()
    playing(run, "a1")
    feed(run, transcript_done("a1", "first"), done("r"))
    feed(run, created("r2"), added(msg("a2", "assistant", status="in_progress")), delta("a2"),
         transcript_done("a2", "second"), stopped("a2", MS, MS, interrupted=False))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "first"),
                                       AudioTranscript("a2", "second")]


def test_without_a_speaker_the_transcript_is_published_at_once():
    run = Run(Conversation(playback=False))
    run.step(("connect", URL))
    playing(run)
    feed(run, transcript_done("a1", "all of it"))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "all of it", False)]


def test_a_refused_truncation_publishes_rtds_own_estimate():
    run = talk()
    playing(run, deltas=4)
    feed(run, transcript_done("a1", "one two three four"), speech_started(),
         stopped("a1", 2 * MS))
    truncate = run.sent[-1]
    feed(run, error("invalid_value", "no truncation here", truncate["event_id"]))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "one two", True)]


def test_a_connection_lost_before_the_truncation_answered_still_reports_what_was_heard():
    run = talk()
    playing(run, deltas=4)
    feed(run, transcript_done("a1", "one two three four"), speech_started(),
         stopped("a1", 3 * MS), ("disconnect", "gone"))
    assert run.of(AudioTranscript) == [AudioTranscript("a1", "one two three", True)]


def test_a_sender_interrupt_cancels_and_the_sessions_own_comes_back_harmlessly():
    run = talk()
    playing(run)
    feed(run, Interrupt("sender"))
    assert run.sent_types()[-1] == "response.cancel"
    sent = len(run.sent)
    feed(run, Interrupt("barge_in"), Interrupt("turn"))
    assert len(run.sent) == sent
    feed(run, delta("a1"))
    assert len(run.of(AudioChunk)) == 5


def test_speech_shorter_than_barge_in_min_ms_is_a_cough():
    run = talk(VAD_CLIENT, barge_in_min_ms=400)
    playing(run)
    feed(run, speech_started(0), 48 * 100)  # 100 ms of speech: not yet
    assert run.of(Interrupt) == []
    feed(run, speech_stopped(200), committed(),
         {"type": "conversation.item.input_audio_transcription.completed", "item_id": "u1",
          "content_index": 0, "transcript": "ahem"})
    assert run.of(SpeechStopped) == [SpeechStopped("u1", 200, False)]
    assert run.of(Interrupt) == []
    assert run.sent_types()[-1] == "conversation.item.delete"
    assert run.sent[-1]["item_id"] == "u1"
    assert "response.create" not in run.sent_types()
    assert run.of(InputTranscript) == []


def test_speech_that_lasts_barge_in_min_ms_interrupts_while_it_goes_on():
    run = talk(VAD_CLIENT, barge_in_min_ms=300)
    feed(run, 48 * 1000)  # 1 s of microphone audio before
    playing(run)
    feed(run, speech_started(1000), 48 * 200)
    assert run.of(Interrupt) == []
    feed(run, 48 * 100)  # 300 ms of speech now
    assert run.of(Interrupt) == [Interrupt("barge_in")]
    assert run.sent_types()[-1] == "response.cancel"  # interrupt_response false: rtd's job
    feed(run, speech_stopped(2000), committed())
    assert "response.create" not in run.sent_types()  # the cancelled response is still active
    feed(run, done("r", "cancelled"))
    assert run.sent_types()[-1] == "response.create"  # create_response false: rtd asks


def test_the_servers_padding_and_silence_are_not_counted_as_speech():
    td = {**VAD_CLIENT, "prefix_padding_ms": 300, "silence_duration_ms": 500}
    run = talk(td, barge_in_min_ms=300)
    feed(run, 48 * 1000)
    playing(run)
    # a 200 ms cough from 1.3 s: the server says 1000 (less the padding) .. 2000 (plus silence)
    feed(run, speech_started(1000), 48 * 950)  # 1950 ms sent: not stopped yet, not decided
    assert run.of(Interrupt) == []
    feed(run, speech_stopped(2000))
    assert run.of(SpeechStopped)[-1].answered is False and run.of(Interrupt) == []
    # speech from 5.3 s still going at 5.3 + 0.3 + 0.5 s: it lasted 300 ms
    feed(run, 48 * 3000, speech_started(5000), 48 * 1140)  # 6090 ms sent
    assert run.of(Interrupt) == []
    feed(run, 48 * 10)
    assert run.of(Interrupt) == [Interrupt("barge_in")]


def test_without_create_response_rtd_answers_each_committed_turn():
    run = talk(VAD_CLIENT, barge_in_min_ms=300)
    feed(run, speech_started(0), speech_stopped(900), committed())
    assert run.sent_types() == ["response.create"]
    assert run.of(Interrupt) == []


def test_manual_turns_start_end_and_cancel():
    run = talk(None)
    playing(run)
    feed(run, StartTurn())
    assert run.of(Interrupt) == [Interrupt("turn")]
    assert run.sent_types()[-2:] == ["response.cancel", "input_audio_buffer.clear"]
    feed(run, EndTurn())
    assert run.sent_types()[-1] == "input_audio_buffer.commit"
    feed(run, done("r", "cancelled"), committed("u2"))
    assert run.sent_types()[-1] == "response.create"
    feed(run, created("r2"), done("r2"), StartTurn(), CancelTurn())
    assert run.sent_types()[-2:] == ["input_audio_buffer.clear", "input_audio_buffer.clear"]


def test_an_empty_manual_turn_gets_no_answer():
    run = talk(None)
    feed(run, StartTurn(), EndTurn())
    commit = run.sent[-1]
    feed(run, error("input_audio_buffer_commit_empty", "buffer too small", commit["event_id"]),
         committed("late"))
    assert "response.create" not in run.sent_types()


def test_manual_turns_are_not_held_while_disconnected():
    conv = Conversation(playback=True)
    for message in (StartTurn(), EndTurn(), CancelTurn()):
        assert conv.sender_input(message) == []
    assert [c for c in conv.connected(URL) if getattr(c, "event", None)] == []


def test_typed_text_is_part_of_the_transcript(caplog):
    caplog.set_level(logging.INFO)
    run = talk()
    feed(run, UserText("is the oven on?"))
    [typed] = run.of(InputTranscript)
    assert typed.text == "is the oven on?" and typed.item_id.startswith("rtd_item_")
    assert "user: is the oven on?" in caplog.text


# -- properties ----------------------------------------------------------------------------------

STEP = st.one_of(
    st.tuples(st.just("delta"), st.sampled_from(["a1", "a2"])),
    st.tuples(st.just("speech"), st.integers(0, 5000)),
    st.tuples(st.just("stopped"), st.sampled_from(["a1", "a2"]), st.integers(-50, 10_000),
              st.booleans()),
    st.tuples(st.just("audio"), st.integers(0, 48 * 500)),
    st.tuples(st.just("interrupt"), st.sampled_from(["sender", "barge_in", "turn"])),
    st.tuples(st.just("done"), st.sampled_from(["completed", "cancelled"])),
    st.tuples(st.just("truncated"), st.sampled_from(["a1", "a2"])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=30), st.sampled_from([0, 300]),
       st.sampled_from([VAD, VAD_CLIENT, None]))
def test_a_truncation_never_asks_for_more_audio_than_arrived(steps, min_ms, td):
    run = talk(td, barge_in_min_ms=min_ms)
    feed(run, created("r"), added(msg("a1", "assistant", status="in_progress")),
         added(msg("a2", "assistant", status="in_progress")))
    received = {"a1": 0, "a2": 0}
    for step in steps:
        before = len(run.of(AudioChunk))
        if step[0] == "delta":
            feed(run, delta(step[1]))
            if len(run.of(AudioChunk)) > before:
                received[step[1]] += MS
        elif step[0] == "speech":
            feed(run, speech_started(step[1]))
        elif step[0] == "stopped":
            feed(run, stopped(step[1], step[2], interrupted=step[3]))
        elif step[0] == "audio":
            feed(run, step[1])
        elif step[0] == "interrupt":
            feed(run, Interrupt(step[1]))
        elif step[0] == "done":
            feed(run, done("r", step[1]))
        else:
            feed(run, truncated(step[1], 0))
    for event in run.sent:
        if event["type"] == "conversation.item.truncate":
            assert 0 < event["audio_end_ms"] <= received[event["item_id"]]
            assert event["content_index"] == 0
    published = [t.item_id for t in run.of(AudioTranscript)]
    assert len(published) == len(set(published))  # each answer told once
    own = [m for m in run.of(Interrupt) if m.source not in ("barge_in", "turn")]
    assert own == []  # the session only ever publishes its own kinds
