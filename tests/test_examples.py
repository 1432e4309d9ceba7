"""The scripts in examples/, each run as a real process against an in-process emulator."""

from __future__ import annotations

import subprocess
import sys
import wave
from pathlib import Path

import pytest

from rtd.audio.file_backend import read_wav
from rtd.emulator import DEMO_QUESTION_WAV, Emulator
from rtd.emulator.scenario import Scenario, Turn

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TIMEOUT = 30.0


def run_example(name: str, emu: Emulator, *args: str) -> list[str]:
    """Run examples/<name> against ``emu``; its stdout lines (a failure shows its stderr)."""
    try:
        proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--url", emu.url, *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=EXAMPLES.parent)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{name} did not finish within {TIMEOUT} s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.splitlines()


def test_text_chat_sends_its_messages_and_uses_the_tool():
    scenario = Scenario(turns=(
        Turn(reply="Hi!"),
        Turn(call="switch_lights", arguments={"room": "kitchen", "on": True},
             then="The {room} lights are {state}."),
        Turn(reply="Bye."),
    ))
    with Emulator(scenario=scenario, voice_engine="tones") as emu:
        lines = run_example("text_chat.py", emu)
    talk = [ln for ln in lines if ln.startswith(("you:", "assistant:"))]
    assert talk == [
        "you: Hello!",
        "assistant: Hi!",
        "you: Please switch on the kitchen lights.",
        "assistant: The kitchen lights are on.",
        "you: Thank you, that's all.",
        "assistant: Bye.",
    ]
    assert ('(tool switch_lights {"room": "kitchen", "on": true} -> '
            '{"room": "kitchen", "state": "on"})') in lines
    assert lines[-1] == "lights now: {'kitchen': True}"
    update = next(e for e in emu.received if e["type"] == "session.update")
    assert update["session"]["output_modalities"] == ["text"]


def test_audio_io_streams_the_wav_and_writes_the_spoken_reply(tmp_path):
    out = tmp_path / "reply.wav"
    with Emulator(voice_engine="tones") as emu:
        lines = run_example("audio_io.py", emu, "--out", str(out))
    question = read_wav(DEMO_QUESTION_WAV)[0]
    assert emu.input_audio == question + bytes(48000)  # the file, then a second of silence
    assert "input_audio_buffer.commit" not in [e["type"] for e in emu.received]  # server VAD
    assert "you said: [emulator: 1.6 s of speech]" in lines
    assert "assistant: I heard you." in lines
    sent = sum(e["delta_bytes"] for e in emu.sent if e["type"] == "response.output_audio.delta")
    with wave.open(str(out), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() * 2 == sent > 0
    assert lines[-1] == f"wrote {out} ({sent / 48000:.1f} s of speech)"


def test_manual_turns_commits_and_asks_for_each_answer():
    with Emulator(voice_engine="tones") as emu:
        lines = run_example("manual_turns.py", emu, "--times", "2")
    question = read_wav(DEMO_QUESTION_WAV)[0]
    assert emu.input_audio == question * 2
    flow = [e["type"] for e in emu.received
            if e["type"] in ("input_audio_buffer.commit", "response.create")]
    assert flow == ["input_audio_buffer.commit", "response.create"] * 2
    update = next(e for e in emu.received if e["type"] == "session.update")
    assert update["session"]["audio"]["input"]["turn_detection"] is None
    for turn in (1, 2):
        assert f"turn {turn}: sending 3.1 s of audio" in lines
        assert f"turn {turn}: heard: [emulator: 3.1 s of speech]" in lines
        assert f"turn {turn}: assistant: I heard you." in lines
