"""Two-way audio for a minute against the emulator: what does the daemon process cost?

Prints, for the `rtd run` process (the emulator runs in this process and is not counted):
CPU seconds per minute of audio after start-up, with file backends and through the real
sounddevice path on PulseAudio virtual cables; peak RSS; time from process start to the first
`session.update` on the wire. Figures are printed beside their targets; nothing is asserted.

    python bench/duplex.py [--seconds 60] [--only file|sounddevice] [--echo cancel|mute|none]

`--echo` sets `[audio] echo` for the sound-device run (rtd's default when not given: cancel,
WebRTC AEC3 on every microphone block); file backends have no echo to handle.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtd.emulator import DEMO_QUESTION_WAV, Emulator  # noqa: E402

TARGET_CPU_FILE = 0.6      # CPU-s per audio minute, file backends
TARGET_RSS_MB = 80.0
TARGET_FIRST_UPDATE = 1.0  # s
PORTAUDIO_FLOOR = 7.0      # CPU-s per minute: separate pulse streams on their own, measured here
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def conversation_wav(path: Path, seconds: float) -> None:
    """The demo question every 8 s, silence between: a minute of turn-taking."""
    with wave.open(str(DEMO_QUESTION_WAV)) as w:
        rate = w.getframerate()
        q = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    period = np.zeros(int(rate * 8), np.int16)
    period[: len(q)] = q[: len(period)]
    reps = int(np.ceil(seconds / 8))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.tile(period, reps)[: int(rate * seconds)].tobytes())


def run(kind: str, seconds: float, tmp: Path, env: dict[str, str],
        echo: str | None = None, blocks: tuple[int, int] | None = None) -> dict[str, float]:
    wav = tmp / "talk.wav"
    conversation_wav(wav, seconds)
    with Emulator(voice_engine="tones") as emu:
        if kind == "file":
            audio = (f'[audio.input]\nbackend = "file"\npath = "{wav}"\n'
                     f'[audio.output]\nbackend = "file"\npath = "{tmp / "out.wav"}"\n')
        else:
            mic, speaker = blocks or (0, 10)
            audio = (f'[audio.input]\nbackend = "sounddevice"\ndevice = "pulse"\n'
                     f'block_ms = {mic}\n'
                     f'[audio.output]\nbackend = "sounddevice"\ndevice = "pulse"\n'
                     f'block_ms = {speaker}\n')
        conf = tmp / f"{kind}.toml"
        if echo is not None:
            audio += f'[audio]\necho = "{echo}"\n'
        conf.write_text(f'[provider]\nname = "custom"\nurl = "{emu.url}"\n{audio}'
                        f'[control]\npath = "{tmp / "control.sock"}"\n'
                        '[log]\nlevel = "warning"\n[tools.clock]\n')
        player = None
        began = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "rtd", "run", "--config", str(conf)],
                                env=env, stderr=subprocess.DEVNULL)
        try:
            emu.wait_for(lambda e: e.get("type") == "session.update", timeout=30)
            first_update = time.monotonic() - began
            if kind == "sounddevice":
                player = subprocess.Popen(["paplay", "--device=mic", str(wav)], env=env)
            time.sleep(2.0)  # start-up settles: imports done, streams open
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            rss = peak_rss_mb(proc.pid)
            turns = sum(1 for e in emu.sent if e.get("type") == "response.done")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
            if player:
                player.kill()
    return {"cpu_per_min": (cpu1 - cpu0) * 60 / (t1 - t0), "rss": rss,
            "first_update": first_update, "turns": turns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--only", choices=["file", "sounddevice"])
    parser.add_argument("--echo", choices=["cancel", "mute", "none"])
    parser.add_argument("--blocks", type=int, nargs=2, metavar=("MIC_MS", "SPEAKER_MS"),
                        help="sound devices: [audio.input] and [audio.output] block_ms "
                        "(default: 0 10, the shipped defaults)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = dict(os.environ)
        if args.only != "sounddevice":
            r = run("file", args.seconds, tmp, env)
            print(f"file backends, {args.seconds:.0f} s of two-way audio, {r['turns']} replies")
            print(f"  CPU after start-up   {r['cpu_per_min']:6.2f} CPU-s per audio minute"
                  f"   (target <= {TARGET_CPU_FILE})")
            print(f"  peak RSS             {r['rss']:6.1f} MB"
                  f"                       (target <= {TARGET_RSS_MB:.0f})")
            print(f"  first session.update {r['first_update']:6.2f} s after process start"
                  f"      (target <= {TARGET_FIRST_UPDATE})")
        if args.only != "file":
            sys.path.insert(0, str(ROOT / "tests"))
            from pulse import PulseServer, PulseUnavailable  # the test suite's virtual cables

            cables = PulseServer()
            try:
                cables.start()
            except PulseUnavailable as exc:
                print(f"sounddevice path skipped: {exc}")
                return
            try:
                env.update(cables.env)
                env.update({"PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"})
                r = run("sounddevice", args.seconds, tmp, env, args.echo,
                              tuple(args.blocks) if args.blocks else None)
            finally:
                cables.stop()
            print(f"sounddevice on PulseAudio virtual cables, {args.seconds:.0f} s, "
                  f"{r['turns']} replies, echo = {args.echo or 'default (cancel)'}")
            print(f"  CPU after start-up   {r['cpu_per_min']:6.2f} CPU-s per audio minute"
                  f"   (PortAudio's own floor here ~{PORTAUDIO_FLOOR:.0f})")
            print(f"  peak RSS             {r['rss']:6.1f} MB"
                  f"                       (target <= {TARGET_RSS_MB:.0f})")


if __name__ == "__main__":
    main()
