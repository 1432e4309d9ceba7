"""rtd's own components, registered through the same hooks as any installed plugin."""

from __future__ import annotations

from rtd.builtin.receivers import ConsoleReceiver, TranscriptLogReceiver
from rtd.builtin.senders import PushToTalkSender, SocketSender, StdinSender
from rtd.hookspecs import hookimpl


@hookimpl
def register_tools() -> list:
    from rtd.builtin.clock import clock

    return [clock]


@hookimpl
def register_senders() -> list:
    return [SocketSender, StdinSender, PushToTalkSender]


@hookimpl
def register_receivers() -> list:
    return [ConsoleReceiver, TranscriptLogReceiver]
