"""Audio without turn detection: the script, not the server, says when the user's turn ends.

Shows ``turn_detection=None``: the sender returns the whole question as one ``bytes`` value
and rtd appends it, commits the input buffer and asks for the response by hand (what a
push-to-talk button does). Receivers print what the server heard and the answer's words.

    python examples/manual_turns.py                   # real OpenAI: needs $OPENAI_API_KEY
    rtd emulate &                                     # or rtd's offline emulator (no key):
    python examples/manual_turns.py --url ws://127.0.0.1:8765/v1/realtime

By default it asks "What time is it?" (rtd's demo recording) --times times; --wav takes any WAV.
"""

from __future__ import annotations

import argparse
import sys

import rtd
from rtd.audio.file_backend import read_wav
from rtd.emulator import DEMO_QUESTION_WAV
from rtd.exceptions import RtdError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a realtime server, e.g. `rtd emulate`'s (default: OpenAI)")
    parser.add_argument("--wav", default=str(DEMO_QUESTION_WAV), help="the question to ask")
    parser.add_argument("--times", type=int, default=2, help="how many times to ask it")
    args = parser.parse_args()
    question, _ = read_wav(args.wav)  # pcm24: 24 kHz mono 16-bit

    app = rtd.Realtime(
        instructions="You are a voice assistant. Answer in one short sentence.",
        turn_detection=None,  # manual turns: append, commit, response.create
        provider="custom" if args.url else "openai",
        url=args.url,
    )

    @app.sender
    def push_to_talk(context: dict) -> bytes:
        turn = context["turn"] = context.get("turn", 0) + 1
        if turn > args.times:
            raise rtd.Stop
        print(f"turn {turn}: sending {len(question) / 48000:.1f} s of audio\n", end="", flush=True)
        return question  # rtd commits the turn and asks for the answer, then waits for it

    # Each receiver runs on a thread of its own: print each line in one write, so two
    # receivers printing at once cannot run their lines together.
    @app.receiver("input_transcript")
    def heard(text: str, context: dict) -> None:
        print(f"turn {context['turn']}: heard: {text}\n", end="", flush=True)

    @app.receiver("audio_transcript")
    def answer(text: str, context: dict) -> None:
        print(f"turn {context['turn']}: assistant: {text}\n", end="", flush=True)

    try:
        app.run()
    except RtdError as exc:
        sys.exit(f"manual_turns: {exc}")


if __name__ == "__main__":
    main()
