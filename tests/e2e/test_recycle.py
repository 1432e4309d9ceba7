"""Recycling as the daemon does it: `rtd run` against an emulator whose sessions last seconds."""

from __future__ import annotations

import json
import wave

import numpy as np
from rtdproc import wait_until, write_config

from rtd.emulator import DEMO_QUESTION_WAV, DEMO_SCENARIO, Emulator, load_scenario


def test_the_daemon_recycles_its_sessions_and_keeps_the_conversation(run_rtd, tmp_path):
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones",
                  max_session_seconds=6) as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                            output_wav=tmp_path / "out.wav",
                            extra="[session]\nrecycle_before_s = 3.0\n")
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("assistant: It is", timeout=30)
        d.wait_for_count("recycled the session onto connection", 2, timeout=30)

        s = run_rtd("status", "--json", "--config", str(conf))
        assert s.wait() == 0, s.output
        status = json.loads(s.output)
        assert status["recycles"] >= 2 and status["reconnects"] == 0
        assert status["connected"] is True and status["tool_calls"] == 1
        assert 0 <= status["expires_in_s"] <= 7  # expires_at is whole seconds, rounded up

        sessions = emu.sessions
        for old in sessions[:2]:
            assert old.client_close is not None and old.client_close[0] == 1000
        asked = [e for e in sessions[0].server_events
                 if e["type"] == "response.function_call_arguments.done"][0]
        replayed = [e["item"] for e in sessions[2].client_events
                    if e["type"] == "conversation.item.create"]
        kinds = [(i["type"], i.get("role")) for i in replayed]
        assert kinds == [("message", "user"), ("function_call", None),
                         ("function_call_output", None), ("message", "assistant")]
        assert replayed[0]["content"][0]["text"] == "What time is it?"  # the transcription
        assert replayed[1]["call_id"] == replayed[2]["call_id"] == asked["call_id"]
        assert replayed[3]["content"][0]["text"].startswith("It is ")
        assert wait_until(lambda: d.proc.poll() is None, timeout=1)
        assert d.stop() == 0
        assert "Traceback" not in d.output


def test_no_microphone_audio_is_lost_or_doubled_across_the_daemons_recycles(run_rtd, tmp_path):
    """A file microphone with a known signal (low noise from a fixed seed: never speech), and
    sessions of 4 s: what all sessions received, in order, is the file, then the quiet room."""
    signal = np.random.default_rng(5).integers(-8, 9, 24000 * 10).astype("<i2").tobytes()
    mic = tmp_path / "noise.wav"
    with wave.open(str(mic), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(signal)
    with Emulator(voice_engine="tones", max_session_seconds=4) as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=mic,
                            output_wav=tmp_path / "out.wav",
                            extra="[session]\nrecycle_before_s = 2.0\n")
        d = run_rtd("run", "--config", str(conf))

        def received() -> bytes:
            return b"".join(s.input_audio for s in emu.sessions)

        assert wait_until(lambda: len(received()) >= len(signal) + 9600, timeout=30), d.output
        assert d.count("recycled the session onto connection") >= 2
        got = received()
        assert got[:len(signal)] == signal  # every sample once, in order
        assert not any(got[len(signal):])   # then only the silence after the file
        assert "session_expired" not in d.output
        assert d.stop() == 0
