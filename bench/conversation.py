"""The audio path through the conversation: what checking and routing a delta costs.

Every assistant audio delta is checked (fields, base64, whole samples) and turned into an
`AudioChunk` by `rtd.conversation.Conversation.server_event`; on a Pi that runs on every
delta. Prints events per second and microseconds per delta for 200 ms and 20 ms deltas, beside
the bare base64 decode of the same payload (`binascii.a2b_base64` on the text, as the
previous session code decoded it; the chunk needs its bytes), and the
overhead on top of it beside a target. Nothing is asserted.

    python bench/conversation.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rtd.conversation import Conversation  # noqa: E402
from rtd.messages import AudioChunk  # noqa: E402

TARGET_OVERHEAD_US = 20.0
"""Microseconds per delta beyond the base64 decode, on this machine (a Pi is ~5x slower)."""


def per_second(fn, seconds: float) -> float:
    count, began = 0, time.perf_counter()
    deadline = began + seconds
    while True:
        for _ in range(200):
            fn()
        count += 200
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; {args.seconds:g} s per figure", flush=True)
    for ms in (200, 20):
        pcm = (b"\x10\x00\xf0\xff" * (24000 * ms // 1000 // 2))[: 24000 * ms // 1000 * 2]
        text = base64.b64encode(pcm).decode()
        event = {"type": "response.output_audio.delta", "event_id": "event_1",
                 "response_id": "resp_1", "item_id": "item_1", "output_index": 0,
                 "content_index": 0, "delta": text}
        conv = Conversation(wants=lambda t: t is AudioChunk)  # the speaker wants chunks
        conv.connected("ws://bench")
        conv.server_event({"type": "response.created", "response": {"id": "resp_1"}})
        conv.server_event(event)  # the first also says "speaking"
        out = conv.server_event(event)
        assert len(out) == 1 and out[0].message.pcm == pcm  # a chunk per delta, nothing else
        through = per_second(lambda c=conv, e=event: c.server_event(e), args.seconds)
        floor = per_second(lambda t=text: binascii.a2b_base64(t), args.seconds)
        unwanted = Conversation(wants=lambda t: False)
        unwanted.connected("ws://bench")
        skipped = per_second(lambda c=unwanted, e=event: c.server_event(e), args.seconds)
        us, floor_us = 1e6 / through, 1e6 / floor
        print(f"{ms:3d} ms deltas ({len(text)} base64 chars):")
        print(f"  server_event, chunk wanted: {through:10.0f} events/s  {us:7.2f} us/event")
        print(f"  base64 decode alone:        {floor:10.0f} events/s  {floor_us:7.2f} us/event")
        print(f"  nobody wants audio:         {skipped:10.0f} events/s  "
              f"{1e6 / skipped:7.2f} us/event")
        print(f"  overhead beyond decode:     {us - floor_us:7.2f} us/event "
              f"(target < {TARGET_OVERHEAD_US:g}); real time needs {1000 // ms} events/s")


if __name__ == "__main__":
    main()
