"""A script in the OpenAI SDK's shape, run on rtd: an ephemeral session, then a text turn
with a function call, through `rtd.Client` and the connection's resource helpers.

Only the client line differs from the SDK (`rtd.Client()` for `openai.OpenAI()`), so the
server and the key come from the environment as the SDK reads them:

    OPENAI_API_KEY=sk-... python examples/sdk_style.py          # real OpenAI
    rtd emulate &                                               # or the offline emulator:
    OPENAI_BASE_URL=http://127.0.0.1:8765/v1 OPENAI_API_KEY=any python examples/sdk_style.py

The emulator answers "I heard you." and calls no function unless started with a scenario.
"""

from __future__ import annotations

import json
import sys

import rtd
from rtd.exceptions import RtdError

LIGHTS: dict[str, bool] = {}
TOOLS = [{
    "type": "function", "name": "switch_lights", "description": "Switch a room's lights.",
    "parameters": {"type": "object", "properties": {
        "room": {"type": "string"}, "on": {"type": "boolean"}}, "required": ["room", "on"]},
}]


def switch_lights(room: str, on: bool) -> dict[str, str]:
    LIGHTS[room] = on
    return {"room": room, "state": "on" if on else "off"}


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    client = rtd.Client()
    # a short-lived key for this one conversation, as a server hands one to a browser
    session = client.beta.realtime.sessions.create(
        model="gpt-realtime-2", modalities=["text"], tools=TOOLS, tool_choice="auto",
        instructions="You are a terse home assistant.", temperature=0.8)
    say(f"session {session.id}, key valid until {session.client_secret.expires_at}")
    ephemeral = rtd.Client(api_key=session.client_secret.value)
    with ephemeral.beta.realtime.connect(model="gpt-realtime-2") as conn:
        say(f"connected: {conn.recv().type}")
        conn.conversation.item.create(item={
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "Switch on the kitchen lights."}]})
        conn.response.create()
        calls = []
        for event in conn:
            if event.type == "response.output_text.delta":
                sys.stdout.write(event.delta)
            elif event.type == "response.output_text.done":
                say("")
            elif event.type == "response.function_call_arguments.done":
                calls.append(event)
            elif event.type == "error":
                say(f"error: {event.error.message}")
            elif event.type == "response.done":
                if not calls:
                    break
                for call in calls:  # answered once the response that asked is done
                    result = switch_lights(**json.loads(call.arguments))
                    say(f"(tool {call.name} -> {json.dumps(result)})")
                    conn.conversation.item.create(item={
                        "type": "function_call_output", "call_id": call.call_id,
                        "output": json.dumps(result)})
                calls = []
                conn.response.create()
    say(f"lights now: {LIGHTS}")


if __name__ == "__main__":
    try:
        main()
    except RtdError as exc:
        sys.exit(f"sdk_style: {exc}")
