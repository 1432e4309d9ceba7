"""The session's part of `rtd status`: its counters, as `StatusReport("session", ...)`.

The session actor with its real transport against the emulator, its server VAD on: typed and
spoken turns, a barge-in while the answer plays, a tool call.
"""

from __future__ import annotations

import threading

import numpy as np
import pykka
import pytest
from rtdproc import wait_until

from rtd.actors.session import SessionActor, TransportSettings
from rtd.emulator import Emulator
from rtd.messages import AudioChunk, InputAudio, StatusReport, UserText
from rtd.protocol.providers import Endpoint
from rtd.supervisor import Bus, Ping

UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                        "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                           "silence_duration_ms": 300,
                                           "create_response": True,
                                           "interrupt_response": True}},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}}
SCENARIO = """
default_reply = "This is a long answer that goes on for quite a while, long enough to talk over."
"""
BLOCK = 2400  # bytes: 50 ms


def tone(seconds: float) -> bytes:
    t = np.arange(int(24000 * seconds)) / 24000
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2").tobytes()


def quiet(seconds: float) -> bytes:
    return np.zeros(int(24000 * seconds), "<i2").tobytes()


@pytest.fixture(autouse=True)
def _stop_actors():
    yield
    pykka.ActorRegistry.stop_all()


def test_turns_interruptions_and_rate_limited_reports(tmp_path):
    (tmp_path / "s.toml").write_text(SCENARIO)
    with Emulator(scenario=tmp_path / "s.toml", voice_engine="tones") as emu:
        bus = Bus()
        seen: list[object] = []
        bus.observe(seen.append)
        bus.subscribe("audio_output", [AudioChunk])
        ref = SessionActor.start(bus, lambda n, e: None, Endpoint(emu.url), UPDATE,
                                 transport=TransportSettings(ping_interval=0.5))
        assert ref.ask(Ping(), timeout=5) is None

        def reports() -> list[dict]:
            return [dict(m.fields) for m in seen if isinstance(m, StatusReport)]

        assert wait_until(lambda: reports() and reports()[-1]["connected"], timeout=10)
        ref.tell(UserText("Talk for a while."))
        assert wait_until(lambda: any(isinstance(m, AudioChunk) for m in seen), timeout=10)
        # the user talks over the answer (it takes seconds to play): a barge-in
        before = len(reports())
        stop = threading.Event()

        def speak() -> None:
            pcm = tone(0.6) + quiet(1.5)
            for i in range(0, len(pcm), BLOCK):
                ref.tell(InputAudio(pcm[i:i + BLOCK]))
                if stop.wait(0.05):
                    return

        mic = threading.Thread(target=speak, daemon=True)
        mic.start()
        assert wait_until(lambda: reports()[-1]["interruptions"] == 1, timeout=10)
        assert wait_until(lambda: reports()[-1]["turns"] == 2, timeout=10)  # typed, spoken
        mic.join(10)
        # 42 microphone blocks and a reply's deltas, but reports at most about once a second
        assert len(reports()) - before < 10
        last = reports()[-1]
        assert last["tool_calls"] == 0 and last["reconnects"] == 0
        assert last["dropped_audio_ms"] == 0 and last["offline"] is None
        assert emu.sessions[0].server_events  # the emulator saw it all on one connection
        assert len(emu.sessions) == 1
