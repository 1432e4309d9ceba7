"""Audio in, audio out, with the server deciding when the user finished speaking (server VAD).

Shows a sender that *streams* audio from a generator (here a WAV file, in 100 ms chunks, as a
microphone would), an "audio" receiver writing each spoken answer to a WAV file, and
"input_transcript" / "audio_transcript" receivers printing what was heard and said. No sound
devices are used: rtd's own audio_input/audio_output stay "none".

    python examples/audio_io.py                       # real OpenAI: needs $OPENAI_API_KEY
    rtd emulate &                                     # or rtd's offline emulator (no key):
    python examples/audio_io.py --url ws://127.0.0.1:8765/v1/realtime --out reply.wav

By default it asks "What time is it?" (rtd's demo recording); --wav takes any WAV file.
"""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

import rtd
from rtd.audio.file_backend import read_wav
from rtd.emulator import DEMO_QUESTION_WAV
from rtd.exceptions import RtdError

RATE = 24000        # rtd's audio is pcm24: 24 kHz mono signed 16-bit little-endian
CHUNK = RATE // 10 * 2  # 100 ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a realtime server, e.g. `rtd emulate`'s (default: OpenAI)")
    parser.add_argument("--wav", default=str(DEMO_QUESTION_WAV), help="the question to ask")
    parser.add_argument("--out", default="reply.wav", help="where to write the spoken answer")
    args = parser.parse_args()

    question, fmt = read_wav(args.wav)  # any rate and channel count, converted to pcm24
    print(f"asking with {args.wav} ({fmt}, {len(question) / (2 * RATE):.1f} s)")
    out = Path(args.out)

    app = rtd.Realtime(
        instructions="You are a friendly voice assistant. Answer in one short sentence.",
        output="audio",
        turn_detection="server_vad",
        provider="custom" if args.url else "openai",
        url=args.url,
    )

    @app.sender
    def speak(context: dict):
        if context.get("asked"):
            raise rtd.Stop  # one question is enough: run() returns once it is answered
        context["asked"] = True
        for start in range(0, len(question), CHUNK):
            yield question[start:start + CHUNK]
        yield bytes(RATE * 2)  # a second of silence, so the server's VAD sees the turn end

    # Each receiver runs on a thread of its own: print each line in one write, so two
    # receivers printing at once cannot run their lines together.
    @app.receiver("input_transcript")
    def heard(text: str) -> None:
        print(f"you said: {text}\n", end="", flush=True)

    @app.receiver("audio_transcript")
    def said(text: str) -> None:
        print(f"assistant: {text}\n", end="", flush=True)

    @app.receiver("audio")
    def save(pcm: bytes, context: dict) -> None:
        context["reply"] = context.get("reply", b"") + pcm  # every answer, one after another
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(context["reply"])

    try:
        app.run()
    except RtdError as exc:
        sys.exit(f"audio_io: {exc}")
    seconds = len(app.context.get("reply", b"")) / (2 * RATE)
    print(f"wrote {out} ({seconds:.1f} s of speech)")


if __name__ == "__main__":
    main()
