"""Text in, text out: a chat with the model through rtd, with one tool it may call.

Shows `rtd.Realtime` with ``output="text"``: a sender returning one message per round (rtd
waits for the whole answer, tool calls included, before asking it for the next), a "text"
receiver printing the answers, a "tool_call" receiver showing tool use, and a tool.

    python examples/text_chat.py                      # real OpenAI: needs $OPENAI_API_KEY
    rtd emulate &                                     # or rtd's offline emulator (no key):
    python examples/text_chat.py --url ws://127.0.0.1:8765/v1/realtime

It sends a few scripted messages, or reads your lines when run in a terminal (Ctrl-D ends).
The emulator answers "I heard you." unless started with a scenario (see `rtd emulate --help`).
"""

from __future__ import annotations

import argparse
import select
import sys

import rtd
from rtd.exceptions import RtdError

MESSAGES = ["Hello!", "Please switch on the kitchen lights.", "Thank you, that's all."]


def say(line: str) -> None:
    """Print a whole line at once: receivers run on threads of their own."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a realtime server, e.g. `rtd emulate`'s (default: OpenAI)")
    args = parser.parse_args()

    app = rtd.Realtime(
        instructions="You are a terse home assistant. Answer in one short sentence.",
        output="text",
        provider="custom" if args.url else "openai",
        url=args.url,
    )
    interactive = sys.stdin.isatty()
    lights: dict[str, bool] = {}

    @app.tool
    def switch_lights(room: str, on: bool) -> dict:
        """Switch the lights of one room on or off.

        Args:
            room: The room, e.g. "kitchen".
            on: True to switch on, False to switch off.
        """
        lights[room] = on
        return {"room": room, "state": "on" if on else "off"}

    @app.receiver("text")
    def show(text: str) -> None:
        say(f"assistant: {text}")

    @app.receiver("tool_call")
    def tool_used(call) -> None:  # the event: call.name, call.arguments, call.output
        say(f"(tool {call.name} {call.arguments} -> {call.output})")

    @app.sender
    def ask(context: dict) -> str | None:
        if not interactive:
            if context.setdefault("next", 0) >= len(MESSAGES):
                raise rtd.Stop
            message = MESSAGES[context["next"]]
            context["next"] += 1
            say(f"you: {message}")
            return message
        if not context.get("prompted"):
            print("you: ", end="", flush=True)
            context["prompted"] = True
        # poll, so that the sender notices when the app stops instead of blocking in input()
        if not select.select([sys.stdin], [], [], 0.2)[0]:
            return None
        line = sys.stdin.readline()
        if not line:  # Ctrl-D
            print()
            raise rtd.Stop
        context["prompted"] = False
        return line.strip() or None

    try:
        app.run()
    except RtdError as exc:
        sys.exit(f"text_chat: {exc}")
    print(f"lights now: {lights or 'unchanged'}")


if __name__ == "__main__":
    main()
