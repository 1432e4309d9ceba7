"""rtd-example: one tool, one sender and one receiver, written to be copied.

This module is the plugin. pyproject.toml names it in the entry-point group ``rtd``::

    [project.entry-points.rtd]
    example = "rtd_example"

When rtd starts it imports this module and calls the three hooks below. Each returns the
components this plugin *provides*; providing one does not run it. A component runs only when
the user's rtd.toml has a table for it, which is also where its settings come from::

    [tools.dice]             # the model may call `dice`
    [senders.heartbeat]      # a message every `interval` seconds
    [receivers.word_count]   # counts the words of each turn

Keep this module cheap to import: rtd imports every installed plugin, including for
`rtd plugins` and `rtd check`, so open files, devices or connections in a component's
start()/run(), never at import time.
"""

from __future__ import annotations

# Every hook implementation is marked with rtd's hookimpl; a plain function of the same name
# would be ignored by the plugin manager.
from rtd import Tool, hookimpl
from rtd.components import Receiver, Sender

# Each component lives in a module of its own, so this file shows the plugin at a glance.
from rtd_example.dice import DiceSettings, dice
from rtd_example.heartbeat import HeartbeatSender, HeartbeatSettings
from rtd_example.word_count import WordCountReceiver, WordCountSettings

__version__ = "0.1.0"


@hookimpl
def register_tools() -> list[Tool]:
    """The tools the model may call: `Tool` objects, which is what ``@tool`` makes."""
    return [dice]


@hookimpl
def register_senders() -> list[type[Sender]]:
    """The sender *classes* (not instances): rtd makes a fresh instance per (re)start."""
    return [HeartbeatSender]


@hookimpl
def register_receivers() -> list[type[Receiver]]:
    """The receiver classes; each names the event kinds it wants in ``events``."""
    return [WordCountReceiver]


__all__ = [
    "DiceSettings", "HeartbeatSender", "HeartbeatSettings", "WordCountReceiver",
    "WordCountSettings", "dice", "register_receivers", "register_senders", "register_tools",
]
