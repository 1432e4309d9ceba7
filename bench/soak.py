"""An hour of emulated conversation with a fault a minute: does rtd keep talking?

The real `rtd run` process talks to the emulator on loopback (the offline peer, not the
service): a typed turn every ``--every`` seconds through `rtd say`, and on every turn that
falls on a new minute the emulator injects the next fault of a rotating list (dropped and reset
connections, closes, stalls, malformed events, duplicates, errors in place of events). A fault
counts as recovered when the turn after it is answered (its reply is in the transcript file).

    python bench/soak.py                  # 60 minutes
    python bench/soak.py --minutes 3      # a quick look

Prints the faults injected and recovered, crashes (actor crashes logged, or the process
dying; target 0) and rtd's resident memory at start and end (target: growth under 5 MB),
beside their targets. Not part of the test suite: it prints figures, it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rtd.emulator import Emulator  # noqa: E402

FAULTS = [
    {"at": "response.output_audio.delta", "nth": 2, "do": "drop"},
    {"at": "response.output_audio.delta", "nth": 2, "do": "reset"},
    {"at": "response.created", "do": "close", "code": 1011},
    {"at": "response.created", "when": "before", "do": "stall_sending"},
    {"at": "response.created", "when": "before", "do": "stall_reading"},
    {"at": "response.output_audio.delta", "do": "replace", "set": {"delta": 5}},
    {"at": "response.done", "do": "replace", "set": {"response": "oops"}},
    {"at": "response.done", "do": "duplicate", "copies": 2},
    {"at": "response.done", "when": "instead", "do": "error",
     "error": {"type": "server_error", "code": "overloaded", "message": "Busy."}},
    {"at": "response.created", "do": "send", "text": "not json"},
]
TARGET_RSS_GROWTH_MB = 5.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between turns")
    args = parser.parse_args()
    turns = int(args.minutes * 60 / args.every)
    per_minute = max(1, int(60 / args.every))
    faulted = {n: {**FAULTS[i % len(FAULTS)], "turn": n}
               for i, n in enumerate(range(per_minute, turns + 1, per_minute))}
    tmp = Path(tempfile.mkdtemp(prefix="rtd-soak-"))
    conf = tmp / "rtd.toml"
    with Emulator(voice_engine="tones", faults=list(faulted.values())) as emu:
        conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
ping_interval = 2.0
pong_timeout = 3.0
response_timeout = 5.0

[session]
transcription_model = ""

[audio.input]
backend = "none"

[audio.output]
backend = "file"
path = "{tmp / 'speaker.wav'}"

[senders.socket]
path = "{tmp / 'rtd.sock'}"

[receivers.transcript_log]
path = "{tmp / 'transcript.jsonl'}"
""")
        env = {**os.environ, "OPENAI_API_KEY": "sk-soak"}
        log = (tmp / "rtd.log").open("w")
        proc = subprocess.Popen([sys.executable, "-m", "rtd", "run", "--config", str(conf)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
        time.sleep(3)
        rss_start = rss_mb(proc.pid)
        rss_at: list[float] = []  # after each turn: a leak keeps climbing, a warm-up levels off
        answered_after: dict[int, bool] = {}
        replies_seen = 0
        transcript = tmp / "transcript.jsonl"
        for n in range(1, turns + 1):
            if proc.poll() is not None:
                break
            subprocess.run([sys.executable, "-m", "rtd", "say", "--config", str(conf),
                            f"turn {n}"], capture_output=True, timeout=30, env=env)
            time.sleep(args.every)
            lines = transcript.read_text().splitlines() if transcript.exists() else []
            replies = sum(json.loads(line)["role"] == "assistant" for line in lines)
            if n - 1 in faulted:
                answered_after[n - 1] = replies > replies_seen
            replies_seen = replies
            if proc.poll() is None:
                rss_at.append(rss_mb(proc.pid))
            print(f"\r{n}/{turns} turns, {len(emu.injected)} faults", end="", flush=True)
        print()
        alive = proc.poll() is None
        rss_end = rss_mb(proc.pid) if alive else 0.0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
        text = (tmp / "rtd.log").read_text()
        crashes = text.count(" crashed") + (0 if alive else 1)
        print(f"faults injected: {len(emu.injected)} of {len(faulted)} planned")
        print(f"recovered (the next turn answered): {sum(answered_after.values())} of "
              f"{len(answered_after)} (target: all)")
        print(f"crashes: {crashes} (target: 0); tracebacks: {text.count('Traceback')}")
        print(f"rtd RSS: {rss_start:.1f} MB at start, {rss_end:.1f} MB at the end, growth "
              f"{rss_end - rss_start:+.1f} MB (target: under {TARGET_RSS_GROWTH_MB:g} MB)")
        if len(rss_at) >= 4:
            half = len(rss_at) // 2
            print(f"rtd RSS after turn 1: {rss_at[0]:.1f} MB; at the middle turn: "
                  f"{rss_at[half]:.1f} MB; second half's growth {rss_at[-1] - rss_at[half]:+.1f} "
                  "MB (a leak grows as much in the second half as in the first)")
        print(f"log and files: {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
