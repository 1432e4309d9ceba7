"""Mirascope's seven realtime examples, unchanged but for the import, against the emulator.

Each copy in tests/mirascope_examples/ differs from Mirascope's (v1.23.3) only in
``from rtd.mirascope import ...``. Each runs as a real process pointed at one shared emulator
through ``$OPENAI_BASE_URL``, as the OpenAI SDK reads it. The audio examples record the `mic`
cable through sounddevice's default input and "play" through pydub, whose player a
sitecustomize replaces by a recorder that logs each segment and plays it into the `speaker`
cable, which the test records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from rtd.audio.file_backend import read_wav
from rtd.emulator import DEMO_QUESTION_WAV, Emulator
from rtd.emulator.scenario import Scenario, Turn

EXAMPLES = Path(__file__).resolve().parent / "mirascope_examples"
#: sha256 of Mirascope's examples (github.com/Mirascope/mirascope, v1.23.3,
#: examples/learn/provider_specific_features/openai/realtime/)
ORIGINAL_SHA256 = {
    "audio_input_output_manually.py":
        "cb2c15bdc3747e4d3949bc25d5cc6ed6b765bec978cd4570c8da959b9e05a930",
    "audio_stream_input_output.py":
        "d162d6fc090e861e027328414b99fc79df23a9c43e95c7336b86828b8df7c651",
    "audio_stream_input_output_manually.py":
        "c0d8367338ee81a9592220969472a731e10cd06ee8889d90dcbcd28bed219632",
    "audio_stream_input_output_tools.py":
        "1b4e94bbe5520daba35ce8ee0e82ab3223723e2622b022c89331318ee389bbbb",
    "text_input_output.py": "47c8ccb086afd862125cc47e6d55b53d37e497103591b77077f3893d023a7962",
    "text_input_output_dynamic_tools.py":
        "907b6d3eba64836caab8e98898b136347af8e20fdee869236465720c96528def",
    "text_input_output_tools.py":
        "3248a153deeebeba81cbb4c5ec66d3c94a211aa88c7fd6d71026ccdf9a0b451d",
}
TIMEOUT = 30.0
"""Seconds any one wait may take before the test fails."""
STOP_WITHIN = 5.0
"""Seconds a Ctrl-C'd example has to exit."""
MODEL = "gpt-4o-realtime-preview-2024-10-01"
BOOK = {"title": "Dune", "author": "Frank Herbert"}

PLAYER = '''"""Test harness: pydub's player replaced by a recorder (loaded as sitecustomize)."""
import asyncio
import hashlib
import json
import os
import warnings

import numpy as np
import sounddevice as sd

with warnings.catch_warnings():  # pydub warns that ffmpeg is missing: it is, on purpose
    warnings.simplefilter("ignore", RuntimeWarning)
    import pydub.playback


def play(segment):
    log = os.environ["RTD_TEST_PLAYED"]
    entry = {"type": f"{type(segment).__module__}.{type(segment).__name__}",
             "frame_rate": segment.frame_rate, "channels": segment.channels,
             "sample_width": segment.sample_width, "bytes": len(segment.raw_data)}
    samples = np.frombuffer(segment.raw_data, dtype="<i2")
    sd.play(samples, samplerate=segment.frame_rate, blocking=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\\n")


pydub.playback.play = play
'''


@pytest.fixture(scope="module")
def emu():
    with Emulator(voice_engine="tones") as emulator:
        yield emulator


@pytest.fixture(scope="module")
def harness(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("player")
    (directory / "sitecustomize.py").write_text(PLAYER, encoding="utf-8")
    return directory


class Example:
    """One example running as a process, its stdout read as it comes (prompts end no line)."""

    def __init__(self, name: str, emu: Emulator, harness: Path, tmp_path: Path,
                 extra_env: dict[str, str] | None = None) -> None:
        self.played_log = tmp_path / "played.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RTD_"))}
        env.update({
            "OPENAI_BASE_URL": f"http://127.0.0.1:{emu.port}/v1",
            "OPENAI_API_KEY": "sk-test-mirascope",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(harness),
            "RTD_TEST_PLAYED": str(self.played_log),
            **(extra_env or {}),
        })
        self.proc = subprocess.Popen([sys.executable, str(EXAMPLES / name)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=env, cwd=tmp_path)
        self._out = bytearray()
        self._err = bytearray()
        self._cond = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out),
                                      (self.proc.stderr, self._err))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, into: bytearray) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            with self._cond:
                into += chunk
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return self._out.decode()

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._err.decode()

    def wait_for(self, text: str, count: int = 1, timeout: float = TIMEOUT) -> None:
        """Until ``text`` appeared ``count`` times on stdout."""
        def seen() -> bool:
            return self._out.decode().count(text) >= count or self.proc.poll() is not None

        with self._cond:
            self._cond.wait_for(seen, timeout)
        if self.stdout.count(text) < count:
            pytest.fail(f"{text!r} not printed {count} time(s) within {timeout} s "
                        f"(exit {self.proc.poll()}):\n{self.stdout}\n{self.stderr}")

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = TIMEOUT) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the example did not exit within {timeout} s:\n{self.stdout}\n"
                        f"{self.stderr}")
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def played(self, count: int = 1, timeout: float = TIMEOUT) -> list[dict]:
        """The segments pydub's player got, once ``count`` of them finished playing."""
        deadline = threading.Event()
        for _ in range(int(timeout / 0.1)):
            if self.played_log.exists():
                lines = self.played_log.read_text(encoding="utf-8").splitlines()
                if len(lines) >= count:
                    return [json.loads(line) for line in lines]
            if self.proc.poll() is not None:
                break
            deadline.wait(0.1)
        pytest.fail(f"pydub's player got fewer than {count} segment(s):\n{self.stdout}\n"
                    f"{self.stderr}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run_example(emu, harness, tmp_path):
    started: list[Example] = []

    def start(name: str, **kwargs) -> Example:
        example = Example(name, emu, harness, tmp_path, **kwargs)
        started.append(example)
        return example

    yield start
    for example in started:
        example.kill()


class Since:
    """What the shared emulator saw from now on."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.received_at = len(emu.received)
        self.sent_at = len(emu.sent)
        self.audio_at = len(emu.input_audio)

    @property
    def received(self) -> list[dict]:
        return self.emu.received[self.received_at:]

    @property
    def sent(self) -> list[dict]:
        return self.emu.sent[self.sent_at:]

    def types(self) -> list[str]:
        return [e["type"] for e in self.received]

    def session(self) -> dict:
        return next(e for e in self.received if e["type"] == "session.update")["session"]

    def input_audio(self) -> bytes:
        return self.emu.input_audio[self.audio_at:]

    def reply_bytes(self) -> int:
        return sum(e["delta_bytes"] for e in self.sent
                   if e["type"] == "response.output_audio.delta")


def scripted(emu: Emulator, *turns: Turn) -> Since:
    emu.rescript(Scenario(turns=turns))
    return Since(emu)


def speech_seconds(pcm: bytes, rate: int = 24000) -> float:
    """Seconds of 20 ms frames louder than -40 dBFS: how much of a recording is speech."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    frame = rate // 50
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    rms = np.sqrt((frames ** 2).mean(axis=1)) / 32768.0
    return float((rms > 10 ** (-40 / 20)).sum()) / 50


def wav_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def test_the_copies_differ_from_mirascope_only_in_the_import():
    """With the import put back, each copy is byte for byte Mirascope's file (v1.23.3)."""
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(ORIGINAL_SHA256)
    for name, digest in ORIGINAL_SHA256.items():
        ours = (EXAMPLES / name).read_bytes()
        assert b"mirascope.beta" not in ours and b"from rtd.mirascope import" in ours
        restored = ours.replace(b"from rtd.mirascope import", b"from mirascope.beta.openai import")
        assert hashlib.sha256(restored).hexdigest() == digest, name


# -- text ---------------------------------------------------------------------------------------


def run_text(name: str, emu: Emulator, tmp_path: Path, lines: str
             ) -> subprocess.CompletedProcess[str]:
    """Run a text example with ``lines`` as its whole stdin (it ends at their end)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "RTD_"))}
    env.update(OPENAI_BASE_URL=f"http://127.0.0.1:{emu.port}/v1",
               OPENAI_API_KEY="sk-test-mirascope")
    try:
        proc = subprocess.run([sys.executable, str(EXAMPLES / name)], input=lines,
                              capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not finish within {TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_text_input_output(emu, tmp_path):
    seen = scripted(emu, Turn(reply="Hello there."), Turn(reply="Bye now."))
    proc = run_text("text_input_output.py", emu, tmp_path, "Hi!\nThat's all.\n")
    # each prompt waits for the answer before it (wait_for_text_response); the end of input
    # ends the sender, and with it the app
    assert proc.stdout == ("Enter your message: AI(text): Hello there.\n"
                           "Enter your message: AI(text): Bye now.\n"
                           "Enter your message: ")
    session = seen.session()
    assert session["output_modalities"] == ["text"] and session["model"] == MODEL
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert "transcription" not in session["audio"]["input"]  # beta's default: none
    # not given, so not sent: the server's own instructions and voice apply, as with Mirascope
    assert "instructions" not in session and "voice" not in session["audio"]["output"]
    said = [e["item"]["content"][0]["text"] for e in seen.received
            if e["type"] == "conversation.item.create"]
    assert said == ["Hi!", "That's all."]
    assert emu.sessions[-1].client_close is not None  # it hung up properly


def test_text_input_output_tools(emu, tmp_path):
    seen = scripted(emu, Turn(call="format_book", arguments=BOOK))
    proc = run_text("text_input_output_tools.py", emu, tmp_path, "science fiction\n")
    assert proc.stdout == ("Enter a genre: AI(text): Dune by Frank Herbert\n"
                           "Enter a genre: ")
    (offered,) = seen.session()["tools"]
    assert offered["name"] == "format_book" and offered["type"] == "function"
    assert offered["parameters"]["properties"] == {"title": {"type": "string"},
                                                   "author": {"type": "string"}}
    assert offered["parameters"]["required"] == ["title", "author"]
    items = [e["item"] for e in seen.received if e["type"] == "conversation.item.create"]
    assert items[0]["content"][0]["text"] == ("Recommend a science fiction book. please use "
                                              "the tool `format_book`.")
    assert items[1]["type"] == "function_call_output"
    assert items[1]["output"] == "Dune by Frank Herbert"  # the handler's result


def test_text_input_output_dynamic_tools(emu, tmp_path):
    seen = scripted(emu, Turn(call="format_book", arguments=BOOK))
    proc = run_text("text_input_output_dynamic_tools.py", emu, tmp_path, "fantasy\n")
    # the handler prints the tool's result, then the answer after it arrives
    assert proc.stdout == ("Enter a genre: Dune by Frank Herbert\n"
                           "AI(text): Dune by Frank Herbert\n"
                           "Enter a genre: ")
    assert seen.session()["tools"] == []  # offered with the message only
    creates = [e.get("response") for e in seen.received if e["type"] == "response.create"]
    assert [t["name"] for t in creates[0]["tools"]] == ["format_book"]
    assert creates[1:] == [None]  # the answer after the tool output: the session's tools


# -- audio --------------------------------------------------------------------------------------


def check_reply_played(example: Example, seen: Since, recording: Path) -> None:
    (segment,) = example.played()
    assert segment["type"] == "pydub.audio_segment.AudioSegment"
    assert (segment["frame_rate"], segment["channels"], segment["sample_width"]) == (24000, 1, 2)
    assert segment["bytes"] == seen.reply_bytes() > 0  # the whole response, as one segment
    heard = speech_seconds(wav_pcm(recording))
    assert heard >= 0.5 * segment["bytes"] / 48000, "the speaker cable stayed (nearly) silent"


def check_question_sent(seen: Since) -> None:
    """The WAV played into the mic cable reached the server, all its speech."""
    spoken = speech_seconds(read_wav(DEMO_QUESTION_WAV)[0])
    assert abs(speech_seconds(seen.input_audio()) - spoken) <= 0.2


@pytest.mark.pulse
@pytest.mark.parametrize("name", ["audio_input_output_manually.py",
                                  "audio_stream_input_output_manually.py"])
def test_manual_recording_turns(name, pulse, emu, run_example, tmp_path):
    seen = scripted(emu, Turn(reply="I heard you."))
    start_prompt = "Press Enter to start recording or enter exit to shutdown app"
    example = run_example(name, extra_env={"PULSE_SOURCE": "mic.monitor",
                                           "PULSE_SINK": "speaker"})
    example.wait_for(start_prompt)
    with pulse.record_speaker(tmp_path / "speaker.wav") as recording:
        example.send("")
        example.wait_for("Press Enter to stop recording...")
        pulse.play_into_mic(DEMO_QUESTION_WAV)
        example.send("")
        example.wait_for("AI(audio_transcript): I heard you.\n")
        example.played()
    example.wait_for(start_prompt, count=2)  # after the transcript: the next turn
    example.send("exit")  # the sender raises asyncio.CancelledError: the app stops
    assert example.finish() == 0, example.stderr
    check_reply_played(example, seen, recording)
    check_question_sent(seen)
    flow = [t for t in seen.types() if t in ("input_audio_buffer.commit", "response.create")]
    assert flow == ["input_audio_buffer.commit", "response.create"]
    assert seen.session()["audio"]["input"]["turn_detection"] is None
    appends = seen.types().count("input_audio_buffer.append")
    if "stream" in name:
        assert appends >= 3  # chunk by chunk while recording
    assert emu.sessions[-1].client_close is not None


@pytest.mark.pulse
@pytest.mark.parametrize("name, turn, printed", [
    ("audio_stream_input_output.py", Turn(reply="I heard you."), ["I heard you."]),
    ("audio_stream_input_output_tools.py",
     Turn(call="format_book", arguments=BOOK, then="Try {title}."),
     ["Dune by Frank Herbert", "Dune by Frank Herbert"]),
])
def test_streamed_turns_with_server_vad(name, turn, printed, pulse, emu, run_example,
                                        tmp_path):
    seen = scripted(emu, turn)
    example = run_example(name, extra_env={"PULSE_SOURCE": "mic.monitor",
                                           "PULSE_SINK": "speaker"})
    example.wait_for("Sending audio...\n")
    emu.wait_for(lambda e: e["type"] == "input_audio_buffer.append"
                 and e in seen.received, timeout=TIMEOUT)  # the microphone is streaming
    with pulse.record_speaker(tmp_path / "speaker.wav") as recording:
        pulse.play_into_mic(DEMO_QUESTION_WAV)
        example.wait_for(f"AI(audio_transcript): {printed[-1]}\n")
        example.played()
    example.proc.send_signal(signal.SIGINT)  # it streams until Ctrl-C
    code = example.finish(timeout=STOP_WITHIN)
    assert code in (-signal.SIGINT, 130), example.stderr  # KeyboardInterrupt, as asyncio.run
    check_reply_played(example, seen, recording)
    check_question_sent(seen)
    assert "input_audio_buffer.commit" not in seen.types()  # the server's VAD took the turn
    assert any(e["type"] == "input_audio_buffer.speech_started" for e in seen.sent)
    lines = example.stdout.splitlines()
    assert lines[0] == "Sending audio..."
    if "tools" in name:
        assert [t["name"] for t in seen.session()["tools"]] == ["format_book"]
        assert lines[1:] == ["Dune by Frank Herbert", "AI(audio_transcript): Dune by Frank Herbert"]
    else:
        assert lines[1:] == ["AI(audio_transcript): I heard you."]


# -- the API beyond the examples -----------------------------------------------------------------


@pytest.fixture
def endpoint(emu, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{emu.port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-mirascope")
    return emu


def test_chunk_receivers_get_the_servers_delta_events(endpoint):
    from rtd.mirascope import Context, Realtime

    seen = scripted(endpoint, Turn(call="format_book", arguments=BOOK, then="Read {title}."))
    app = Realtime(MODEL, modalities=["text"], context={"shown": 0})
    got: dict[str, list] = {"text_chunk": [], "tool_chunk": [], "all": [], "text": []}

    def format_book(title: str, author: str) -> dict:
        return {"title": title}

    @app.function_call(format_book)
    def handle(tool, context: Context) -> str:
        context["shown"] += 1
        return json.dumps(tool.call())

    @app.receiver("text_chunk")
    async def chunk(message: dict, context: Context) -> None:
        got["text_chunk"].append(message)

    @app.receiver("tool_chunk")
    async def tool_chunk(message: dict, context: Context) -> None:
        got["tool_chunk"].append(message)

    @app.receiver(None)
    async def every(message: dict, context: Context) -> None:
        got["all"].append(message["type"])

    @app.receiver("text")
    async def text(response: str, context: Context) -> None:
        got["text"].append(response)

    asked = []

    @app.sender(wait_for_text_response=True, tools=[format_book])
    async def ask(context: Context) -> str:
        if asked:
            raise asyncio.CancelledError
        asked.append(1)
        return "A book, please."

    asyncio.run(app.run())
    assert got["text"] == ["Read Dune."]
    assert "".join(m["delta"] for m in got["text_chunk"]) == "Read Dune."
    assert {m["type"] for m in got["text_chunk"]} == {"response.output_text.delta"}
    assert all(m["response_id"] and m["item_id"] for m in got["text_chunk"])
    assert json.loads("".join(m["delta"] for m in got["tool_chunk"])) == BOOK
    assert {"session.created", "response.created", "response.done"} <= set(got["all"])
    assert app.context["shown"] == 1
    create = next(e for e in seen.received if e["type"] == "response.create")
    assert [t["name"] for t in create["response"]["tools"]] == ["format_book"]


def test_audio_receivers_get_bytes_without_pydub(endpoint, monkeypatch):
    from rtd.mirascope import Realtime

    monkeypatch.setitem(sys.modules, "pydub", None)  # not installed
    seen = scripted(endpoint, Turn(reply="Hello."))
    app = Realtime(MODEL, turn_detection=None)
    audio: list = []

    @app.receiver("audio")
    async def receive(response, context) -> None:
        audio.append(response)

    @app.sender(wait_for_audio_transcript_response=True)
    async def send(context):
        if audio:
            raise asyncio.CancelledError
        return "Say hello."

    asyncio.run(app.run())
    assert [type(a) for a in audio] == [bytes] and len(audio[0]) == seen.reply_bytes() > 0


def test_async_input_is_input_without_blocking_the_loop(tmp_path):
    script = ("import asyncio\n"
              "from rtd.mirascope import async_input\n"
              "async def main():\n"
              "    print(repr(await async_input('first? ')))\n"
              "    try:\n"
              "        await async_input('second? ')\n"
              "    except EOFError:\n"
              "        print('EOFError')\n"
              "asyncio.run(main())\n")
    proc = subprocess.run([sys.executable, "-c", script], input="one\n", capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert proc.stdout == "first? 'one'\nsecond? EOFError\n", proc.stderr


def test_wrong_keywords_name_the_closest_real_one():
    from rtd.mirascope import Realtime

    with pytest.raises(TypeError, match="'modality' \\(did you mean 'modalities'\\?\\)"):
        Realtime(MODEL, modality=["text"])
    with pytest.raises(ValueError, match="unknown response type 'texts'"):
        Realtime(MODEL).receiver("texts")


def test_tool_classes_and_functions_have_mirascopes_schema():
    from rtd.mirascope import OpenAIRealtimeTool
    from rtd.mirascope.tool import DEFAULT_TOOL_DOCSTRING

    class FormatBook(OpenAIRealtimeTool):
        """Format a book."""

        title: str
        author: str = "anonymous"

        def call(self) -> str:
            return f"{self.title} by {self.author}"

    assert FormatBook.tool_schema() == {
        "type": "function", "name": "FormatBook", "description": "Format a book.",
        "parameters": {"type": "object", "properties": {
            "title": {"type": "string"}, "author": {"type": "string", "default": "anonymous"}},
            "required": ["title"], "additionalProperties": False}}
    call = FormatBook.from_tool_call({"call_id": "c1", "arguments": '{"title": "Emma"}'})
    assert call.call() == "Emma by anonymous" and call.tool_call["call_id"] == "c1"

    def shout() -> str:
        return "HI"

    kind = OpenAIRealtimeTool.type_from_fn(shout)
    assert kind.tool_schema() == {"type": "function", "name": "shout",
                                  "description": DEFAULT_TOOL_DOCSTRING}
    assert kind.from_tool_call({"arguments": ""}).call() == "HI"
    with pytest.raises(ValueError, match="missing required argument 'title'"):
        FormatBook.from_tool_call({"arguments": "{}"})


def test_ctrl_c_at_a_prompt_ends_the_example_within_seconds(emu, run_example):
    scripted(emu)
    example = run_example("text_input_output.py")
    example.wait_for("Enter your message: ")
    example.proc.send_signal(signal.SIGINT)
    code = example.finish(timeout=STOP_WITHIN)
    assert code == -signal.SIGINT, example.stderr  # asyncio.run's KeyboardInterrupt
    assert example.stderr.rstrip().endswith("KeyboardInterrupt")  # no fatal error after it
    assert emu.sessions[-1].client_close is not None  # the app hung up before exiting


def test_a_missing_key_says_which_variable_to_set(monkeypatch):
    from rtd.exceptions import ConfigError
    from rtd.mirascope import Realtime

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    app = Realtime(MODEL)

    @app.sender()
    async def send(context):
        return "hi"

    with pytest.raises(ConfigError, match=r"no API key: set \$OPENAI_API_KEY"):
        asyncio.run(app.run())
    assert not app.is_running()
