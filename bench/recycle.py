"""Recycling a session near its limit: how long two connections overlap, and what the
microphone loses.

Runs the real session actor with its real transport against the emulator with a short session
limit (``--session`` seconds) and ``recycle_before_s`` of half of it, feeds a noise signal as
the microphone in real time for ``--seconds``, and prints per recycle the overlap (from the
emulator accepting the new connection to the old one ending; the issue's bound is 10 s) and,
at the end, the microphone audio lost and doubled across all switches (targets: at most
500 ms lost, none doubled). Nothing is asserted.

    python bench/recycle.py [--session 4] [--seconds 20]
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

import numpy as np  # noqa: E402
import pykka  # noqa: E402

from rtd.actors.session import SessionActor, SessionPolicy  # noqa: E402
from rtd.emulator import Emulator  # noqa: E402
from rtd.messages import InputAudio  # noqa: E402
from rtd.protocol.providers import Endpoint  # noqa: E402
from rtd.supervisor import Bus  # noqa: E402

UPDATE = {"type": "session.update", "session": {
    "type": "realtime", "output_modalities": ["audio"],
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None},
              "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}}}}
TARGET_OVERLAP_S = 10.0
TARGET_LOST_MS = 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", type=float, default=4.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    pcm = np.random.default_rng(3).integers(-8, 9, int(24000 * args.seconds)).astype(
        "<i2").tobytes()
    opened: dict[int, float] = {}
    overlaps: list[float] = []
    with Emulator(voice_engine="tones", max_session_seconds=args.session) as emu:
        ref = SessionActor.start(Bus(), lambda n, e: None, Endpoint(emu.url), UPDATE,
                                 policy=SessionPolicy(recycle_before_s=args.session / 2))
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.005):
                for i in range(len(emu.sessions)):
                    opened.setdefault(i, time.perf_counter())
                    if i + 1 in opened and i not in ended and emu.sessions[i].ended.is_set():
                        ended[i] = time.perf_counter()
                        overlaps.append(ended[i] - opened[i + 1])

        ended: dict[int, float] = {}
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            began = time.perf_counter()
            for n, i in enumerate(range(0, len(pcm), 2400)):
                ref.tell(InputAudio(pcm[i:i + 2400]))
                time.sleep(max(0.0, began + (n + 1) * 0.05 - time.perf_counter()))
            deadline = time.monotonic() + 5
            while (sum(len(s.input_audio) for s in emu.sessions) < len(pcm)
                   and time.monotonic() < deadline):
                time.sleep(0.05)
        finally:
            done.set()
            pykka.ActorRegistry.stop_all()
        got = b"".join(s.input_audio for s in emu.sessions)
    lost = max(0, len(pcm) - len(got)) // 48
    doubled = max(0, len(got) - len(pcm)) // 48
    whole = "identical to what was fed" if got == pcm else "NOT identical to what was fed"
    if overlaps:
        print(f"{len(overlaps)} recycles; two connections open for median "
              f"{statistics.median(overlaps) * 1000:.0f} ms, worst {max(overlaps) * 1000:.0f} ms "
              f"(bound {TARGET_OVERLAP_S:g} s)")
    else:
        print("no recycle happened")
    print(f"microphone: {lost} ms lost (target at most {TARGET_LOST_MS}), {doubled} ms doubled "
          f"(target 0); the stream the server got is {whole}")


if __name__ == "__main__":
    main()
