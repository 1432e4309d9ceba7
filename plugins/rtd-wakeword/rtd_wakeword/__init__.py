"""rtd-wakeword: a wake word heard on the Pi itself opens the conversation.

One sender, ``wakeword``, for use with on-demand conversations::

    [session]
    start = "on_demand"

    [senders.wakeword]
    model = "okay_nabu"
"""

from __future__ import annotations

from rtd import hookimpl
from rtd.components import Sender

from rtd_wakeword.wakeword import SHIPPED, WakeWordSender, WakeWordSettings

__version__ = "0.1.0"


@hookimpl
def register_senders() -> list[type[Sender]]:
    return [WakeWordSender]


__all__ = ["SHIPPED", "WakeWordSender", "WakeWordSettings", "register_senders"]
