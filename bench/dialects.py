"""What a dialect costs on the hottest frames: incoming audio deltas and outgoing appends.

Every server frame passes `Dialect.incoming` in the transport, and every control event
`Dialect.outgoing`; on a Pi that runs on each 20-200 ms audio delta. Prints microseconds per
event for the GA identity, the beta rename (``response.audio.delta`` -> GA) and xAI, beside
the `json.loads` every frame costs anyway, and a target for the translation alone. Nothing is
asserted.

    python bench/dialects.py [--seconds 1]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtd.protocol import dialects  # noqa: E402

TARGET_US = 2.0
"""Microseconds per event the translation may add on this machine (a Pi is ~5x slower)."""


def per_event_us(fn, seconds: float) -> float:
    count, began = 0, time.perf_counter()
    while True:
        for _ in range(500):
            fn()
        count += 500
        elapsed = time.perf_counter() - began
        if elapsed >= seconds:
            return elapsed / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    audio = base64.b64encode(bytes(4800)).decode()  # 100 ms at 24 kHz
    frames = {
        "ga": json.dumps({"type": "response.output_audio.delta", "delta": audio,
                          "item_id": "i", "response_id": "r"}),
        "beta": json.dumps({"type": "response.audio.delta", "delta": audio,
                            "item_id": "i", "response_id": "r"}),
        "xai": json.dumps({"type": "response.output_audio.delta", "delta": audio,
                           "item_id": "i", "response_id": "r"}),
    }
    commit = {"type": "input_audio_buffer.commit"}
    print(f"{'dialect':8} {'json.loads':>11} {'incoming':>9} {'outgoing':>9}   target")
    for name, frame in frames.items():
        dialect = dialects.get(name)
        parsed = json.loads(frame)
        bare = per_event_us(lambda f=frame: json.loads(f), args.seconds)
        # a fresh shallow copy each time (beta renames in place); the copy's cost subtracted
        copy = per_event_us(lambda p=parsed: dict(p), args.seconds)
        incoming = per_event_us(lambda p=parsed, d=dialect: d.incoming(dict(p)),
                                args.seconds) - copy
        out = per_event_us(lambda d=dialect: d.outgoing(commit), args.seconds)
        verdict = "ok" if max(incoming, out) <= TARGET_US else "over"
        print(f"{name:8} {bare:9.2f}us {incoming:7.2f}us {out:7.2f}us   <= {TARGET_US} us "
              f"each: {verdict}")


if __name__ == "__main__":
    main()
