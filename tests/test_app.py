"""rtd.Realtime, the decorator API, against the in-process emulator (voice engine "tones").

Every run has a timeout, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

import rtd
from rtd.audio.file_backend import read_wav
from rtd.components import StateEvent, ToolCallEvent
from rtd.emulator import DEMO_QUESTION_WAV, Emulator
from rtd.emulator.scenario import Scenario, Turn
from rtd.exceptions import AudioFileError, AuthenticationError, ConfigError
from rtd.protocol.transport import MAX_APPEND_BYTES

RUN = 20.0  # seconds any one app may run before the test fails


@pytest.fixture
def emu():
    with Emulator(voice_engine="tones") as emulator:
        yield emulator


def scripted(*turns: Turn) -> Emulator:
    return Emulator(scenario=Scenario(turns=turns), voice_engine="tones")


def app_for(emulator: Emulator, **kwargs) -> rtd.Realtime:
    return rtd.Realtime(provider="custom", url=emulator.url, **kwargs)


def messages(*texts: str):
    """A sender function sending ``texts`` one per round, then raising rtd.Stop."""
    pending = list(texts)

    def send() -> str:
        if not pending:
            raise rtd.Stop
        return pending.pop(0)

    return send


def types(emulator: Emulator) -> list[str]:
    return [e["type"] for e in emulator.received]


@pytest.fixture(scope="module")
def question() -> bytes:
    return read_wav(DEMO_QUESTION_WAV)[0]


def test_text_turns_reach_a_text_receiver_in_order():
    with scripted(Turn(reply="Hello there."), Turn(reply="Bye now.")) as emu:
        app = app_for(emu, output="text")
        got: list[str] = []
        seen_by_sender: list[int] = []
        texts = ["hi", "bye"]

        @app.receiver("text")
        def show(text):
            got.append(text)

        @app.sender
        def ask():
            seen_by_sender.append(len(got))
            if not texts:
                raise rtd.Stop
            return texts.pop(0)

        app.run(timeout=RUN)
    assert got == ["Hello there.", "Bye now."]
    # each round starts after the receivers handled the previous answer
    assert seen_by_sender == [0, 1, 2]
    items = [e for e in emu.received if e["type"] == "conversation.item.create"]
    assert [i["item"]["content"][0]["text"] for i in items] == ["hi", "bye"]
    assert not app.running


def test_a_decorated_tool_is_called_and_its_result_comes_back():
    turn = Turn(call="lights", arguments={"room": "kitchen", "on": True},
                then="The {room} lights are {state}.")
    with scripted(turn) as emu:
        app = app_for(emu, output="text")
        calls: list[tuple[str, bool]] = []
        events: list[object] = []
        replies: list[str] = []

        @app.tool
        def lights(room: str, on: bool) -> dict:
            """Switch the lights of a room."""
            calls.append((room, on))
            return {"room": room, "state": "on" if on else "off"}

        @app.receiver("tool_call")
        def called(event):
            events.append(event)

        @app.receiver("text")
        def show(text):
            replies.append(text)

        app.sender(messages("Lights on in the kitchen, please."))
        app.run(timeout=RUN)
    assert isinstance(lights, rtd.Tool)
    assert calls == [("kitchen", True)]
    # the wait for the response covered the tool round and the answer after it
    assert replies == ["The kitchen lights are on."]
    assert len(events) == 1 and isinstance(events[0], ToolCallEvent)
    assert events[0].name == "lights"
    update = next(e for e in emu.received if e["type"] == "session.update")
    assert [t["name"] for t in update["session"]["tools"]] == ["lights"]


def test_tool_decorator_takes_a_name_and_an_existing_tool():
    app = rtd.Realtime(provider="custom", url="ws://127.0.0.1:9/")

    @app.tool(name="switch", timeout=3)
    def lights(room: str) -> str:
        """Switch."""
        return room

    assert lights.name == "switch" and lights.timeout == 3
    made = rtd.tool(lambda: "x", name="other", description="Other.")
    assert app.tool(made) is made
    with pytest.raises(ValueError, match="already has a tool named 'switch'"):
        app.tool(name="switch", description="Again.")(lambda: None)


def test_a_generator_sender_streams_its_chunks_and_vad_takes_the_turn(emu, question):
    app = app_for(emu)  # server_vad, audio output
    chunks = [question[i:i + 4800] for i in range(0, len(question), 4800)]
    transcripts: list[str] = []
    audio: list[bytes] = []

    @app.sender
    def speak(context):
        if context.get("spoke"):
            raise rtd.Stop
        context["spoke"] = True
        yield from chunks

    @app.receiver("audio_transcript")
    def said(text):
        transcripts.append(text)

    @app.receiver("audio")
    def heard(pcm):
        audio.append(pcm)

    app.run(timeout=RUN)
    assert emu.input_audio == b"".join(chunks)
    # the transport may merge queued chunks into appends of at most 500 ms, never split them
    appends = [e for e in emu.received if e["type"] == "input_audio_buffer.append"]
    assert 0 < len(appends) <= len(chunks)
    assert all(e["audio_bytes"] <= MAX_APPEND_BYTES for e in appends)
    assert "input_audio_buffer.commit" not in types(emu)  # the server's VAD ended the turn
    assert transcripts == ["I heard you."]
    sent = sum(e["delta_bytes"] for e in emu.sent if e["type"] == "response.output_audio.delta")
    assert len(audio) == 1 and isinstance(audio[0], bytes) and len(audio[0]) == sent > 0


def test_manual_turns_append_then_commit_then_ask_for_the_response(emu, question):
    app = app_for(emu, turn_detection=None, output="text")
    replies: list[str] = []

    @app.sender
    def push_to_talk(context):
        context["n"] = context.get("n", 0) + 1
        if context["n"] > 2:
            raise rtd.Stop
        return question

    app.receiver("text")(replies.append)
    app.run(timeout=RUN)
    assert replies == ["I heard you.", "I heard you."]
    assert emu.input_audio == question * 2
    flow = [t for t in types(emu) if t != "session.update"]
    turn = ["input_audio_buffer.append", "input_audio_buffer.commit", "response.create"]
    assert flow == turn * 2
    update = next(e for e in emu.received if e["type"] == "session.update")
    assert update["session"]["audio"]["input"]["turn_detection"] is None


def test_manual_turns_commit_after_a_streamed_generator(emu, question):
    app = app_for(emu, turn_detection=None, output="text")
    replies: list[str] = []

    @app.sender
    def speak(context):
        if context.get("spoke"):
            raise rtd.Stop
        context["spoke"] = True
        yield question[:24000]
        yield question[24000:]

    app.receiver("text")(replies.append)
    app.run(timeout=RUN)
    assert replies == ["I heard you."]
    assert emu.input_audio == question
    assert [t for t in types(emu) if t != "session.update"] == [
        "input_audio_buffer.append", "input_audio_buffer.append",
        "input_audio_buffer.commit", "response.create"]


def test_async_sender_async_generator_and_async_receiver(emu, question):
    app = app_for(emu, turn_detection=None)
    got: list[tuple[str, str]] = []

    @app.sender
    async def ask(context):
        await asyncio.sleep(0)
        context["round"] = context.get("round", 0) + 1
        if context["round"] > 1:
            raise rtd.Stop
        return "written question"

    @app.sender
    async def speak(context):
        if context.get("spoke"):
            raise rtd.Stop
        context["spoke"] = True
        for start in range(0, len(question), 9600):
            await asyncio.sleep(0)
            yield question[start:start + 9600]

    @app.receiver("audio_transcript")
    async def said(text, context):
        await asyncio.sleep(0.01)
        got.append(("said", text))

    app.run(timeout=RUN)
    assert got == [("said", "I heard you."), ("said", "I heard you.")]
    assert emu.input_audio == question
    assert "written question" in str(emu.received)


def test_one_context_dict_is_shared_by_senders_and_receivers(emu):
    app = app_for(emu, output="text")
    seen: list[object] = []

    @app.sender
    def ask(context):
        seen.append(context)
        if context.get("asked"):
            raise rtd.Stop
        context["asked"] = True
        return "hello"

    @app.receiver("text")
    def show(text, context):
        seen.append(context)
        context["reply"] = text

    @app.receiver("state")
    def state(event, context):
        assert isinstance(event, StateEvent)
        context.setdefault("states", []).append(event.state)

    app.run(timeout=RUN)
    assert len(seen) == 3 and all(c is app.context for c in seen)
    assert app.context["reply"] == "I heard you."
    assert "speaking" in app.context["states"]


def test_a_failing_receiver_does_not_stop_the_app(emu):
    app = app_for(emu, output="text")
    calls: list[str] = []
    good: list[str] = []

    @app.receiver("text")
    def broken(text):
        calls.append(text)
        raise RuntimeError("receiver bug")

    @app.receiver("text")
    def show(text):
        good.append(text)

    app.sender(messages("one", "two"))
    app.run(timeout=RUN)
    assert calls == ["I heard you."] * 2
    assert good == ["I heard you."] * 2


def test_the_same_function_may_receive_several_kinds(emu):
    app = app_for(emu)
    got: list[tuple[str, type]] = []

    def record(value):
        got.append(type(value))

    app.receiver("audio_transcript", "audio")(record)
    app.receiver("audio_transcript_chunk")(record)
    app.sender(messages("hello"))
    app.run(timeout=RUN)
    assert set(got) == {str, bytes}
    assert got.count(bytes) == 1  # the whole answer's audio, once


def test_stop_ends_run_and_sends_nothing(emu):
    app = app_for(emu)
    calls: list[int] = []

    @app.sender
    def nothing():
        calls.append(1)
        raise rtd.Stop

    app.run(timeout=RUN)
    assert calls == [1]  # called once the session was up (it sent session.update) ...
    emu.wait_for(lambda e: e["type"] == "session.update", timeout=RUN)
    assert types(emu) == ["session.update"]  # ... and nothing after it


def test_run_returns_when_every_sender_stopped(emu):
    app = app_for(emu, output="text")
    replies: list[str] = []
    app.receiver("text")(replies.append)
    app.sender(messages("a"))
    app.sender(wait_for_response=False)(messages("b"))
    app.run(timeout=RUN)
    assert sorted(replies) == ["I heard you."] * 2


def test_a_sender_returning_none_is_called_again(emu):
    app = app_for(emu, output="text")
    results = [None, "", "now", None]
    replies: list[str] = []

    @app.sender
    def poll():
        if not results:
            raise rtd.Stop
        return results.pop(0)

    app.receiver("text")(replies.append)
    app.run(timeout=RUN)
    assert replies == ["I heard you."]


def test_stop_from_a_receiver_ends_run(emu):
    app = app_for(emu, output="text")

    @app.sender
    def chatter():
        return "again"  # never stops by itself

    @app.receiver("text")
    def show(text):
        app.stop()

    app.run(timeout=RUN)
    assert not app.running and app.daemon is None


def test_start_and_stop_for_embedding(emu):
    app = app_for(emu, output="text")
    replied = threading.Event()
    app.receiver("text")(lambda text: replied.set())
    app.sender(messages("hello"))
    app.start()
    try:
        assert app.running
        with pytest.raises(RuntimeError, match="already running"):
            app.start()
        assert replied.wait(RUN)
    finally:
        app.stop()
    assert not app.running
    # an app runs again after a stop
    replied.clear()
    app.sender(messages("again"))
    app.run(timeout=RUN)
    assert replied.is_set()


def test_run_timeout_stops_the_app(emu):
    app = app_for(emu)  # no senders: it would run until stopped
    with pytest.raises(TimeoutError, match="did not finish"):
        app.run(timeout=0.5)
    assert not app.running


def test_a_failing_sender_is_restarted(emu):
    app = app_for(emu, output="text")
    rounds: list[int] = []
    replies: list[str] = []

    @app.sender
    def flaky():
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("first call fails")
        if len(rounds) > 2:
            raise rtd.Stop
        return "hello"

    app.receiver("text")(replies.append)
    app.run(timeout=RUN)
    assert replies == ["I heard you."]


def test_refused_key_raises_authentication_error():
    with Emulator(voice_engine="tones", api_key="right-key") as emu:
        app = app_for(emu, api_key="wrong-key")
        app.sender(messages("hello"))
        with pytest.raises(AuthenticationError):
            app.run(timeout=RUN)
    assert not app.running


def test_invalid_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="session.voice") as exc:
        rtd.Realtime(voice="nobody", output="video")
    assert any("session.output" in p for p in exc.value.problems)
    with pytest.raises(ConfigError, match="provider.url"):
        rtd.Realtime(provider="custom")
    with pytest.raises(TypeError, match="'silense_ms' \\(did you mean 'silence_ms'\\?\\)"):
        rtd.Realtime(provider="custom", url="ws://x/", silense_ms=3)
    with pytest.raises(ConfigError, match="audio_input"):
        rtd.Realtime(provider="custom", url="ws://x/", audio_input=3)


def test_a_missing_api_key_is_a_config_error_from_run(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    app = rtd.Realtime()
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        app.run(timeout=RUN)
    assert not app.running


def test_a_missing_input_wav_is_reported_by_run(emu, tmp_path):
    app = app_for(emu, audio_input=tmp_path / "missing.wav")
    with pytest.raises(AudioFileError, match="missing.wav"):
        app.run(timeout=RUN)
    assert not app.running


def test_decorator_mistakes_fail_at_decoration():
    app = rtd.Realtime(provider="custom", url="ws://x/")
    with pytest.raises(ValueError, match="unknown event kind"):
        app.receiver("transcript")
    with pytest.raises(TypeError, match="name the event kinds"):
        app.receiver(lambda text: None)


def test_components_get_unique_names(emu):
    app = app_for(emu, output="text")

    def show(text):
        pass

    app.receiver("text")(show)
    app.receiver("text")(show)
    app.sender(messages())
    app.run(timeout=RUN)
    names = [c.name for c in app.config.components]
    assert names == ["script_receiver_show", "script_receiver_show_2", "script_sender_send"]
