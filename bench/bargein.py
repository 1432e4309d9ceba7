"""Barge-in at the speaker: from an `Interrupt` arriving to the last loud sample leaving it.

rtd's speaker actor plays a long loud tone on the PulseAudio virtual speaker (sounddevice,
PortAudio, ALSA `pulse`, as on a Pi with a sound server); at a random moment an `Interrupt` is
published on its bus, as a button's sender or the session's barge-in would. A capture of the
speaker's monitor in this process finds the last loud sample after it. Each trial prints
nothing; the summary prints the median and worst beside the target. Nothing is asserted.

When the last loud sample left the speaker is known from the capture's blocks, two ways:
- "upper": the wall time its capture block arrived, less the block's samples after it: an
  upper bound, since a sample reaches the capture after it left the speaker;
- "estimate": PortAudio's own estimate of when the block was captured (inputBufferAdcTime),
  which corrects for the capture's reported latency.

    python bench/bargein.py [--trials 20]
"""

from __future__ import annotations

import argparse
import queue
import random
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

RATE = 24000
TARGET_MS = 30.0
WINDOW = 60
"""Samples per loudness window (2.5 ms)."""
LOUD = 2000.0
"""RMS above which a window counts as the tone (the tone's RMS is about 11600)."""
TAP_BLOCK = 60
"""Capture block of the speaker's monitor: 2.5 ms, so its own delay stays small."""


class Tap:
    """Captures the speaker's monitor; remembers the times of its last loud window."""

    def __init__(self) -> None:
        import sounddevice as sd

        dev = next(d["index"] for d in sd.query_devices() if d["name"] == "pulse")
        self._lock = threading.Lock()
        self.last_upper = 0.0
        self.last_estimate = 0.0
        self.loud_seen = threading.Event()
        self._stream = sd.RawInputStream(device=dev, samplerate=RATE, channels=1, dtype="int16",
                                         blocksize=TAP_BLOCK, latency="low",
                                         callback=self._callback)

    def _callback(self, data: Any, frames: int, info: Any, status: Any) -> None:
        now = time.time()
        x = np.frombuffer(bytes(data), "<i2").astype(np.float64)
        n = len(x) // WINDOW
        if not n:
            return
        rms = np.sqrt((x[: n * WINDOW].reshape(n, WINDOW) ** 2).mean(axis=1))
        loud = np.flatnonzero(rms > LOUD)
        if not len(loud):
            return
        end = (int(loud[-1]) + 1) * WINDOW  # just past the last loud sample
        after = len(x) - end
        adc_wall = info.inputBufferAdcTime + (now - info.currentTime)
        with self._lock:
            self.last_upper = now - after / RATE
            self.last_estimate = adc_wall + end / RATE
        self.loud_seen.set()

    def last(self) -> tuple[float, float]:
        with self._lock:
            return self.last_upper, self.last_estimate

    def __enter__(self) -> Tap:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close()


def tone(seconds: float) -> bytes:
    t = np.arange(int(seconds * RATE)) / RATE
    return np.rint(0.5 * 32767 * np.sin(2 * np.pi * 700 * t)).astype("<i2").tobytes()


def trials(n: int) -> tuple[list[float], list[float], float, int]:
    """Per trial: ms from the Interrupt to the last loud sample (upper bound, estimate)."""
    import pykka

    from rtd.actors.audio_output import AudioOutputActor
    from rtd.audio import open_output
    from rtd.messages import AudioChunk, Interrupt, OutputAudioDone, PlaybackStarted
    from rtd.supervisor import Bus, Ping

    bus = Bus()
    started: queue.Queue[str] = queue.Queue()
    bus.observe(lambda m: started.put(m.item_id) if isinstance(m, PlaybackStarted) else None)
    backend = open_output("sounddevice", device="pulse")
    bus.subscribe("audio_output", AudioOutputActor.receives)
    ref = AudioOutputActor.start(bus, lambda name, exc: None, backend)
    bus.attach("audio_output", ref)
    ref.ask(Ping(), timeout=5)
    rng = random.Random(30)
    upper: list[float] = []
    estimate: list[float] = []
    try:
        with Tap() as tap:
            time.sleep(1.0)
            audio = tone(3.0)
            for i in range(n):
                item = f"item_{i}"
                for k in range(0, len(audio), 4800):  # 100 ms deltas, faster than real time
                    bus.publish(AudioChunk(item, audio[k : k + 4800]))
                bus.publish(OutputAudioDone(item))
                while started.get(timeout=5) != item:
                    pass
                tap.loud_seen.clear()
                tap.loud_seen.wait(2)
                time.sleep(0.3 + rng.random() * 0.3)
                at = time.time()
                bus.publish(Interrupt())
                time.sleep(0.4)  # the tail is captured, and silence follows
                last_upper, last_estimate = tap.last()
                upper.append((last_upper - at) * 1000)
                estimate.append((last_estimate - at) * 1000)
                time.sleep(0.2)
        latency = backend.buffer.latency * 1000 / backend.rate
        block = getattr(backend, "block_ms", 0)
    finally:
        pykka.ActorRegistry.stop_all()
    return upper, estimate, latency, block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()

    from pulse import PulseUnavailable, cables_for_this_process

    try:
        # rtd plays into `speaker`; the tap records its monitor
        with cables_for_this_process(PULSE_SINK="speaker", PULSE_SOURCE="speaker.monitor"):
            upper, estimate, latency, block = trials(args.trials)
    except PulseUnavailable as exc:
        print(f"skipped: {exc}")
        return
    print(f"barge-in at the speaker: Interrupt -> last loud sample out of the virtual speaker "
          f"({len(upper)} trials; speaker block {block} ms, reported latency {latency:.0f} ms)")
    for name, ms in (("upper bound (capture arrival)", upper),
                     ("PortAudio's capture-time estimate", estimate)):
        med, worst = statistics.median(ms), max(ms)
        verdict = "met" if med <= TARGET_MS else "NOT met"
        print(f"  {name:36s} median {med:6.1f} ms   worst {worst:6.1f} ms"
              f"   (target <= {TARGET_MS:.0f} ms: {verdict})")


if __name__ == "__main__":
    main()
