"""The `heartbeat` sender: input that does not come from the microphone.

A sender is a class. rtd makes an instance with the validated settings and calls its run(ctx)
on a thread of its own; everything the sender does goes through the `SenderContext`:
``ctx.send_text``, ``ctx.respond``, ``ctx.mute``... When rtd stops (or restarts) the sender it
sets ``ctx.stopping``; run() must then return soon, so wait with ``ctx.wait(seconds)``, which
wakes up at once on stopping, never with time.sleep().

This one sends the same text every ``interval`` seconds: a reminder to stretch, a prompt to
check the news, a nudge to a model that should report something on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from rtd import setting
from rtd.components import Sender, SenderContext


@dataclass(frozen=True)
class HeartbeatSettings:
    """Settings of the heartbeat sender: the ``[senders.heartbeat]`` table."""

    interval: float = setting(3600.0, "seconds between messages (the first one too)",
                              min=0.1, max=7 * 24 * 3600.0)
    text: str = setting("Remind me to stand up and stretch.",
                        "the message sent, as if the user had typed it")
    respond: bool = setting(True, "ask the model to answer each message right away")
    count: int = setting(0, "messages to send before the sender is done; 0: no limit",
                         min=0)


class HeartbeatSender(Sender):
    """Sends ``text`` every ``interval`` seconds until rtd stops (or ``count`` were sent)."""

    # `name` is the NAME in [senders.NAME]; unique across every installed plugin.
    name = "heartbeat"
    # The dataclass rtd validates the table against. With Settings set, rtd calls
    # HeartbeatSender(settings); without, HeartbeatSender().
    Settings = HeartbeatSettings

    def __init__(self, settings: HeartbeatSettings | None = None) -> None:
        # Defaults when built by hand (tests, scripts); rtd always passes validated settings.
        super().__init__(settings or HeartbeatSettings())
        self.sent = 0

    def run(self, ctx: SenderContext) -> None:
        # ctx.wait() returns True when rtd is stopping this sender and False when the time
        # ran out: the loop sleeps, sends, and ends within moments of a stop.
        while not ctx.wait(self.settings.interval):
            # Every ctx method returns False once stopping: nothing is sent after a stop.
            if not ctx.send_text(self.settings.text, respond=self.settings.respond):
                return
            self.sent += 1
            # ctx.log is the logger "rtd.sender.heartbeat": lines carry the sender's name.
            ctx.log.debug("sent message %d: %s", self.sent, self.settings.text)
            if self.settings.count and self.sent >= self.settings.count:
                # Returning from run() is a normal end: rtd logs it and does not restart it.
                ctx.log.info("sent %d message(s); done", self.sent)
                return
        # Raising instead would make rtd restart the sender after a growing delay (1 s, 2 s,
        # 4 s ... up to 60 s): the right thing for a lost device or connection, not for a stop.

    # stop() is for senders blocked on something other than ctx.stopping (a socket accept(),
    # a pipe read): unblock it there. This one only ever waits on ctx.wait(), so the base
    # class's do-nothing stop() is enough.


__all__ = ["HeartbeatSender", "HeartbeatSettings"]
