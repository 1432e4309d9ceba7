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

rtd calls each hook twice: first with an empty ``settings`` to learn what is installed, then,
once the tables are valid, with the validated settings of this plugin's enabled components
(``{"dice": DiceSettings(...)}``), so a component can be built for its table. A hook takes
only the arguments it names: ``register_senders()`` below takes none, and that works too.

Keep this module cheap to import: rtd imports every installed plugin, including for
`rtd plugins` and `rtd check`, so open files, devices or connections in a component's
start()/run(), never at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
def register_tools(settings: Mapping[str, Any]) -> list[Tool]:
    """The tools the model may call: `Tool` objects, which is what ``@tool`` makes.

    ``settings`` maps each of this plugin's enabled tools to its validated settings, and is
    empty when rtd only asks what is installed. The dice tool is the same for every table, so
    it is returned as it is; a tool whose schema depends on its table would be built here
    (rtd-shell makes its ``command`` an enum of the configured names). Whatever is returned,
    the names and the Settings classes must be the same with and without ``settings``.
    """
    return [dice]


@hookimpl
def register_senders() -> list[type[Sender]]:
    """The sender *classes* (not instances): rtd makes a fresh instance per (re)start.

    No ``settings`` argument: a hook implementation names only the arguments it needs.
    """
    return [HeartbeatSender]


@hookimpl
def register_receivers() -> list[type[Receiver]]:
    """The receiver classes; each names the event kinds it wants in ``events``."""
    return [WordCountReceiver]


__all__ = [
    "DiceSettings", "HeartbeatSender", "HeartbeatSettings", "WordCountReceiver",
    "WordCountSettings", "dice", "register_receivers", "register_senders", "register_tools",
]
