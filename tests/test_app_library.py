"""rtd.Realtime as a library for ported scripts: beta-era session keywords, per-response tools,
WAV input, asyncio (run_async, async with, the caller's loop), CancelledError, EOFError, Ctrl-C.

One emulator for the module ("tones"), rescripted per test.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import wave

import numpy as np
import pytest

import rtd
from rtd.app import session_keywords
from rtd.audio.file_backend import read_wav
from rtd.emulator import DEMO_QUESTION_WAV, Emulator
from rtd.emulator.scenario import Scenario, Turn
from rtd.exceptions import AudioFileError, ConfigError

RUN = 20.0
STOP_WITHIN = 5.0
"""Seconds Ctrl-C may take to end run()."""


@pytest.fixture(scope="module")
def emu():
    with Emulator(voice_engine="tones") as emulator:
        yield emulator


class Since:
    def __init__(self, emu: Emulator, *turns: Turn) -> None:
        emu.rescript(Scenario(turns=turns))
        self.emu = emu
        self.at = len(emu.received)
        self.sent_at = len(emu.sent)
        self.audio_at = len(emu.input_audio)

    @property
    def received(self) -> list[dict]:
        return self.emu.received[self.at:]

    @property
    def errors(self) -> list[dict]:
        return [e for e in self.emu.sent[self.sent_at:] if e["type"] == "error"]

    def session(self) -> dict:
        return next(e for e in self.received if e["type"] == "session.update")["session"]

    def input_audio(self) -> bytes:
        return self.emu.input_audio[self.audio_at:]


def app_for(emu: Emulator, **kwargs) -> rtd.Realtime:
    return rtd.Realtime(provider="custom", url=emu.url, **kwargs)


def once(value):
    """A sender function returning ``value`` once, then stopping."""
    pending = [value]

    def send():
        if not pending:
            raise rtd.Stop
        return pending.pop()

    return send


# -- session keywords ---------------------------------------------------------------------------


def test_beta_session_keywords_become_the_ga_session(emu):
    seen = Since(emu)
    app = app_for(emu, modalities=["text"], instructions="Be brief.", voice="alloy",
                  turn_detection={"type": "server_vad", "threshold": 0.7,
                                  "silence_duration_ms": 800, "prefix_padding_ms": 200},
                  input_audio_transcription={"model": "whisper-1", "language": "en"},
                  input_audio_format="pcm16", output_audio_format="pcm16",
                  tool_choice="none", max_response_output_tokens=300, temperature=0.8)
    app.sender(once("hi"))
    app.run(timeout=RUN)
    session = seen.session()
    assert session["output_modalities"] == ["text"]
    assert session["instructions"] == "Be brief."
    assert session["audio"]["output"]["voice"] == "alloy"
    vad = session["audio"]["input"]["turn_detection"]
    assert (vad["type"], vad["threshold"], vad["silence_duration_ms"],
            vad["prefix_padding_ms"]) == ("server_vad", 0.7, 800, 200)
    assert vad["interrupt_response"] is True  # rtd's explicit default stays
    assert session["audio"]["input"]["transcription"] == {"model": "whisper-1",
                                                          "language": "en"}
    assert session["tool_choice"] == "none" and session["max_output_tokens"] == 300
    assert "temperature" not in session  # GA has none: accepted, not sent
    assert seen.errors == []  # the emulator checks fields as the service does


def test_session_keywords_map_in_one_place():
    assert session_keywords(turn_detection=None) == ({"turn_detection": "none"}, {})
    assert session_keywords(modalities=["text", "audio"]) == ({"output": "audio"}, {})
    assert session_keywords(turn_detection={"type": "semantic_vad", "eagerness": "high"}) == (
        {"turn_detection": "semantic_vad", "eagerness": "high"}, {})
    assert session_keywords(input_audio_transcription=None) == (
        {"transcription_model": ""}, {})
    assert session_keywords(max_response_output_tokens=float("inf"))[1] == {
        "max_output_tokens": "inf"}


def test_bad_session_keywords_are_named():
    with pytest.raises(ConfigError) as exc:
        rtd.Realtime(turn_detection={"type": "server_vad", "treshold": 0.5},
                     input_audio_format="g711_ulaw", modalities=["video"],
                     max_response_output_tokens=0)
    text = "\n".join(exc.value.problems)
    assert "turn_detection.treshold: not a server_vad setting (did you mean 'threshold'?)" in text
    assert "input_audio_format: rtd's audio path is pcm16 at 24 kHz" in text
    assert "modalities: expected ['text'] or ['audio']" in text
    assert "max_response_output_tokens: expected 1..4096 or 'inf'" in text
    with pytest.raises(TypeError, match="'modality' \\(did you mean 'modalities'\\?\\)"):
        rtd.Realtime(modality=["text"])


# -- tools per response -------------------------------------------------------------------------


def test_a_senders_tools_are_offered_with_its_responses_only(emu):
    seen = Since(emu, Turn(call="lookup", arguments={"word": "rtd"}), Turn(reply="Plain."))
    app = app_for(emu, output="text")
    looked: list[str] = []

    def lookup(word: str) -> str:
        """Look a word up."""
        looked.append(word)
        return f"{word}: a daemon"

    @app.sender(tools=[lookup])
    def ask():
        if looked:
            raise rtd.Stop
        return "What is rtd?"

    texts: list[str] = []
    app.receiver("text")(texts.append)
    other = ["Anything else?"]

    @app.sender(wait_for_response=True)
    def later():
        if not looked or not other:
            if looked:
                raise rtd.Stop
            return None
        return other.pop()

    app.run(timeout=RUN)
    assert looked == ["rtd"]
    assert seen.session()["tools"] == []
    creates = [e.get("response") for e in seen.received if e["type"] == "response.create"]
    assert [t["name"] for t in creates[0]["tools"]] == ["lookup"]
    assert None in creates[1:]  # the tool's follow-up and the other sender's: the session's


def test_a_message_with_tools_offers_them_for_its_answer(emu):
    seen = Since(emu, Turn(call="lookup", arguments={"word": "x"}))
    app = app_for(emu, output="text")

    @app.tool(offered=False)
    def lookup(word: str) -> str:
        """Look a word up."""
        return "found"

    app.sender(once(("Use lookup.", [lookup])))
    app.run(timeout=RUN)
    create = next(e for e in seen.received if e["type"] == "response.create")
    assert [t["name"] for t in create["response"]["tools"]] == ["lookup"]
    output = next(e["item"] for e in seen.received if e["type"] == "conversation.item.create"
                  and e["item"]["type"] == "function_call_output")
    assert output["output"] == "found"


# -- WAV input ----------------------------------------------------------------------------------


def stereo_wav(rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.column_stack([tone, tone]).tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("wrap", [bytes, io.BytesIO], ids=["bytes", "BytesIO"])
def test_a_wav_from_a_sender_is_decoded_and_resampled(emu, wrap):
    seen = Since(emu)
    app = app_for(emu, turn_detection=None, output="text")
    app.sender(once(wrap(DEMO_QUESTION_WAV.read_bytes())))  # 16 kHz
    app.run(timeout=RUN)
    assert seen.input_audio() == read_wav(DEMO_QUESTION_WAV)[0]  # pcm24, header gone
    assert b"RIFF" not in seen.input_audio()


def test_a_streamed_wav_per_chunk_any_rate_and_channels(emu):
    seen = Since(emu)
    app = app_for(emu, turn_detection=None, output="text")

    def chunks():
        yield stereo_wav(48000, 0.5)
        yield io.BytesIO(stereo_wav(16000, 0.25))
        raise rtd.Stop

    app.sender(chunks)
    app.run(timeout=RUN)
    assert len(seen.input_audio()) == (12000 + 6000) * 2  # 0.75 s of 24 kHz mono


def test_a_wav_that_cannot_be_decoded_is_named(emu):
    from rtd.app import _as_audio

    with pytest.raises(AudioFileError, match="senders.script_sender_x: returned WAV audio"):
        _as_audio(b"RIFF\0\0\0\0WAVEjunk", "script_sender_x")


# -- ending -------------------------------------------------------------------------------------


def test_cancelled_error_in_a_sender_stops_the_app(emu):
    Since(emu)
    app = app_for(emu, output="text")
    rounds: list[int] = []

    @app.sender
    async def ask():
        rounds.append(1)
        if len(rounds) > 1:
            raise asyncio.CancelledError
        return "hi"

    @app.sender(wait_for_response=False)
    def forever():
        return None  # would keep the app up: the CancelledError ends it anyway

    app.run(timeout=RUN)  # returns: no TimeoutError
    assert len(rounds) == 2 and not app.running


def test_eof_ends_a_sender_like_stop(emu):
    seen = Since(emu)
    app = app_for(emu, output="text")
    lines = iter(["one"])

    @app.sender
    def read():
        return next(lines, None) or (_ for _ in ()).throw(EOFError)

    texts: list[str] = []
    app.receiver("text")(texts.append)
    app.run(timeout=RUN)
    assert texts == ["I heard you."]
    assert [e["item"]["content"][0]["text"] for e in seen.received
            if e["type"] == "conversation.item.create"] == ["one"]


@pytest.mark.parametrize("waits", ["time.sleep(0.05)", "input('you: ')"],
                         ids=["idle", "in-input-on-a-pipe"])
def test_ctrl_c_stops_run_within_a_few_seconds(emu, tmp_path, waits):
    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent(f"""
        import rtd, time
        app = rtd.Realtime(provider="custom", url={emu.url!r}, output="text")
        started = []

        @app.sender
        def wait():
            if not started:
                started.append(print("connected", flush=True))
            {waits}
            return None

        app.run()
        print("run returned", flush=True)
    """))
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    # stdin stays an open, silent pipe: input() waits for a line that never comes
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "connected\n"  # senders start once connected
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=STOP_WITHIN)  # stdin still open: no EOF ends it instead
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()
    assert proc.returncode == 0, err  # no abort over a thread holding stdin's lock
    assert out.endswith("run returned\n") and "Traceback" not in err and "Fatal" not in err


# -- asyncio ------------------------------------------------------------------------------------


def test_run_async_runs_async_code_on_the_callers_loop(emu):
    Since(emu, Turn(reply="First."), Turn(reply="Second."))
    app = app_for(emu, output="text")
    questions: asyncio.Queue[str | None] = asyncio.Queue()
    answers: asyncio.Queue[str] = asyncio.Queue()
    threads: set[str] = set()

    @app.sender
    async def ask() -> str:
        threads.add(threading.current_thread().name)
        question = await questions.get()  # this loop's queue: it fails on any other loop
        if question is None:
            raise rtd.Stop
        return question

    @app.receiver("text")
    async def show(text: str) -> None:
        threads.add(threading.current_thread().name)
        await answers.put(text)

    async def main() -> list[str]:
        running = asyncio.create_task(app.run_async(timeout=RUN))
        got = []
        for question in ("one", "two"):
            await questions.put(question)
            got.append(await asyncio.wait_for(answers.get(), RUN))
        await questions.put(None)
        await running
        return got

    assert asyncio.run(main()) == ["First.", "Second."]
    assert threads == {"MainThread"}


def test_async_with_runs_the_app_for_the_block(emu):
    Since(emu)
    app = app_for(emu, output="text")
    heard: asyncio.Queue[str] = asyncio.Queue()
    app.receiver("text")(heard.put)
    app.sender(once("hello"))

    async def main() -> str:
        async with app:
            assert app.running
            return await asyncio.wait_for(heard.get(), RUN)

    assert asyncio.run(main()) == "I heard you."
    assert not app.running


def test_cancelling_run_async_stops_the_app(emu):
    Since(emu)
    app = app_for(emu, output="text")

    @app.sender
    async def wait_forever():
        await asyncio.Event().wait()

    async def main() -> None:
        task = asyncio.create_task(app.run_async())
        while not app.running:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, STOP_WITHIN)

    asyncio.run(main())
    assert not app.running


def test_the_guides_examples_run(emu, tmp_path):
    """docs/realtime.md's scripts, unchanged, against the emulator through $OPENAI_BASE_URL."""
    import re
    from pathlib import Path

    guide = Path(__file__).resolve().parents[1] / "docs" / "realtime.md"
    blocks = re.findall(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) == 2
    Since(emu)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RTD_"))}
    env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{emu.port}/v1", OPENAI_API_KEY="sk-test")
    outputs = []
    for block in blocks:
        proc = subprocess.run([sys.executable, "-c", block], input="Hi!\n", capture_output=True,
                              text=True, env=env, timeout=RUN, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs == ["you: assistant: I heard you.\nyou: ", "assistant: I heard you.\n"]


@pytest.mark.parametrize("dialect", ["beta", "xai"])
def test_per_response_tools_and_wav_input_in_other_dialects(dialect):
    turns = (Turn(call="lookup", arguments={"word": "x"}), Turn(reply="Heard."))
    with Emulator(voice_engine="tones", dialect=dialect,
                  scenario=Scenario(turns=turns)) as emu:
        app = app_for(emu, dialect=dialect, output="text", turn_detection=None)

        @app.tool(offered=False)
        def lookup(word: str) -> str:
            """Look a word up."""
            return "found"

        inputs = [("Use lookup.", [lookup]), io.BytesIO(DEMO_QUESTION_WAV.read_bytes())]

        @app.sender
        def send():
            if not inputs:
                raise rtd.Stop
            return inputs.pop(0)

        texts: list[str] = []
        app.receiver("text", "audio_transcript")(texts.append)  # xAI answers in audio only
        app.run(timeout=RUN)
        create = next(e for e in emu.received if e["type"] == "response.create")
        assert [t["name"] for t in create["response"]["tools"]] == ["lookup"]
        assert emu.input_audio == read_wav(DEMO_QUESTION_WAV)[0]
    assert texts == ["found", "Heard."]
