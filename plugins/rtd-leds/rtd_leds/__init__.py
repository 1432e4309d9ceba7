"""rtd-leds: the conversation's state on Linux LEDs, through /sys/class/leds.

One receiver, ``leds``::

    [receivers.leds]
    leds = ["led0"]
    patterns = { listening = "on", thinking = "blink 100 100", speaking = "on" }
"""

from __future__ import annotations

from rtd import hookimpl
from rtd.components import Receiver

from rtd_leds.leds import SHOWN, LedsReceiver, LedsSettings, Pattern, parse_pattern

__version__ = "0.1.0"


@hookimpl
def register_receivers() -> list[type[Receiver]]:
    return [LedsReceiver]


__all__ = ["SHOWN", "LedsReceiver", "LedsSettings", "Pattern", "parse_pattern",
           "register_receivers"]
