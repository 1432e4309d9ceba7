"""Does the speaker run dry while other Python threads are busy?

Every PortAudio callback is Python and needs the GIL once per block (10 ms on the speaker). A
thread that keeps the GIL makes it wait; when the waits add up to the device's buffer (about two
blocks), the speaker underruns and the listener hears a gap. rtd shortens the interpreter's
switch interval while streams are open (`SWITCH_INTERVAL` in rtd/audio/sounddevice_backend.py);
this plays 10 s of the tones voice through the real path (SoundDeviceOutput -> PortAudio -> ALSA
`pulse` -> a PulseAudio null sink, as tests/pulse.py makes them), with ``--hogs`` pure-Python
busy threads and ``--burners`` busy processes beside it, once with CPython's default interval
and once with rtd's, and prints the underflows PortAudio flagged and the gaps (runs of at least
2 ms of silence the reference does not have) in a recording of the speaker's monitor. Target: 0
of both with rtd's interval. Nothing is asserted.

    python bench/underruns.py [--hogs 2] [--burners 0] [--seconds 10]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

RATE = 24000
GAP = RATE * 2 // 1000
"""Shortest run of exact zeros that counts as a gap: 2 ms."""
TARGET = 0


def zero_runs(pcm: np.ndarray) -> int:
    """Runs of at least GAP zero samples between the first and the last sound."""
    loud = np.flatnonzero(pcm != 0)
    if len(loud) == 0:
        return 0
    edges = np.diff(np.concatenate([[0], (pcm[loud[0]:loud[-1]] == 0).astype(np.int8), [0]]))
    return int(((np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)) >= GAP).sum())


def play_once(cables: Any, speech: np.ndarray, interval: float, block_ms: int) -> tuple[int, int]:
    import rtd.audio.sounddevice_backend as backend

    backend.SWITCH_INTERVAL = interval
    out = backend.SoundDeviceOutput("pulse", block_ms=block_ms)
    out.start()
    try:
        time.sleep(1.0)  # the stream settles before the speech is queued
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "speaker.wav"
            with cables.record_speaker(path):
                out.play("bench", speech.tobytes())
                out.end_item("bench")
                time.sleep(len(speech) / RATE + 1.0)
            with wave.open(str(path)) as w:
                recorded = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    finally:
        out.stop()
    return out.underflows, max(0, zero_runs(recorded) - zero_runs(speech))


def measure(cables: Any, args: argparse.Namespace) -> None:
    from rtd.emulator.voice import synthesize

    sentence = np.frombuffer(synthesize("It is a quarter past six on Wednesday. ", "tones"),
                             np.int16)
    speech = np.tile(sentence, max(1, int(args.seconds * RATE / len(sentence))))
    stop = threading.Event()

    def hog() -> None:
        while not stop.is_set():
            sum(i * i for i in range(20000))

    hogs = [threading.Thread(target=hog, daemon=True) for _ in range(args.hogs)]
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
               for _ in range(args.burners)]
    try:
        for hog_thread in hogs:
            hog_thread.start()
        print(f"{len(speech) / RATE:.1f} s of speech, {args.block_ms} ms blocks, "
              f"{args.hogs} busy threads, {args.burners} busy processes; target {TARGET}")
        for label, interval in (("CPython's default 5 ms", 0.005),
                                ("rtd's 1 ms", 0.001)):
            underflows, gaps = play_once(cables, speech, interval, args.block_ms)
            print(f"  switch interval {label:22s} underflows {underflows:4d}   gaps heard "
                  f"{gaps:4d}   (target {TARGET})", flush=True)
    finally:
        stop.set()
        for proc in burners:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hogs", type=int, default=2, help="busy Python threads in-process")
    parser.add_argument("--burners", type=int, default=0, help="busy processes beside it")
    parser.add_argument("--seconds", type=float, default=10.0, help="speech to play")
    parser.add_argument("--block-ms", type=int, default=10, help="speaker callback period")
    args = parser.parse_args()

    from pulse import PulseUnavailable, cables_for_this_process

    try:
        with cables_for_this_process(PULSE_SINK="speaker") as cables:
            measure(cables, args)
    except PulseUnavailable as exc:
        print(f"skipped: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
