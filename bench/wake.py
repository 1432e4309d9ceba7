"""From a wake to an open connection, and from a sleep to the close frame, against the emulator.

With ``[session] start = "on_demand"`` a wake (``rtd wake``, a button, a wake word) must have
the connection up within 2 s. This starts the real session actor with its real transport
against the emulator on loopback and prints, over several wakes, the median and worst time
from `Wake` to the `ConnectionState` that says connected, and from `Sleep` to the emulator
seeing the client's close frame. Nothing is asserted: loopback shows rtd's own share (a real
service adds its TLS handshake and round trips).

    python bench/wake.py [--rounds 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pykka  # noqa: E402

from rtd.actors.session import SessionActor, SessionPolicy  # noqa: E402
from rtd.emulator import Emulator  # noqa: E402
from rtd.messages import ConnectionState, Sleep, Wake  # noqa: E402
from rtd.protocol import events  # noqa: E402
from rtd.protocol.providers import Endpoint  # noqa: E402
from rtd.supervisor import Bus  # noqa: E402

TARGET_WAKE_S = 2.0
"""Seconds from a wake to an open connection (issue: "within 2 s of rtd wake")."""


class _Settings:
    instructions, voice, output, turn_detection = "bench", "marin", "audio", "none"
    transcription_model, language, vad_threshold, silence_ms = "", "", 0.5, 500
    eagerness, noise_reduction, speed = "auto", "none", 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    opened: list[float] = []
    closed: list[float] = []
    with Emulator(voice_engine="tones") as emu:
        bus = Bus()
        up = threading.Event()
        bus.observe(lambda m: up.set() if isinstance(m, ConnectionState) and m.connected
                    else None)
        bus.subscribe("session", SessionActor.receives)
        ref = SessionActor.start(bus, lambda n, e: None, Endpoint(emu.url),
                                 events.session_update(_Settings(), "gpt-realtime-2"),
                                 policy=SessionPolicy(start="on_demand"))
        bus.attach("session", ref)
        try:
            for i in range(args.rounds):
                up.clear()
                began = time.perf_counter()
                bus.publish(Wake("bench"))
                if not up.wait(10):
                    print(f"round {i + 1}: no connection within 10 s")
                    return
                opened.append(time.perf_counter() - began)
                began = time.perf_counter()
                bus.publish(Sleep("bench"))
                if not emu.sessions[i].ended.wait(10):
                    print(f"round {i + 1}: the connection did not close within 10 s")
                    return
                closed.append(time.perf_counter() - began)
        finally:
            pykka.ActorRegistry.stop_all()
    print(f"wake -> connected: median {statistics.median(opened) * 1000:.0f} ms, worst "
          f"{max(opened) * 1000:.0f} ms over {len(opened)} wakes (target under "
          f"{TARGET_WAKE_S * 1000:.0f} ms)")
    print(f"sleep -> closed:   median {statistics.median(closed) * 1000:.0f} ms, worst "
          f"{max(closed) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
