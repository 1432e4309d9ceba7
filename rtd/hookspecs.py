"""The hooks plugins implement. Every hook rtd calls is declared here, and only here.

A plugin is a module or object registered under the entry-point group ``rtd``:

    # pyproject.toml of rtd-weather
    [project.entry-points.rtd]
    weather = "rtd_weather"

    # rtd_weather.py
    from rtd import hookimpl, tool

    @tool
    def weather(city: str) -> str:
        "Today's weather for a city."
        ...

    @hookimpl
    def register_tools():
        return [weather]

Registering a component makes it available; nothing runs until ``etc/rtd.toml`` declares it in a
``[tools.NAME]``, ``[senders.NAME]`` or ``[receivers.NAME]`` table. docs/plugins.md documents each
hook with its exact signature; a test keeps the two in step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from rtd.components import Receiver, Sender
    from rtd.tools import Tool

PROJECT = "rtd"
"""The pluggy project name, the hook marker's name and the entry-point group: one name."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tools() -> list[Tool]:
    """Return the tools this plugin provides: `rtd.tools.Tool` objects, usually made with `@tool`.

    Each tool's ``name`` must be unique across all installed plugins. A tool runs only when the
    configuration has a ``[tools.NAME]`` table for it (``enabled = false`` turns it off).
    """


@hookspec
def register_senders() -> list[type[Sender]]:
    """Return the sender classes this plugin provides: subclasses of `rtd.components.Sender`.

    Each class's ``name`` must be unique across all installed plugins. A sender runs, in an
    actor of its own, only when the configuration has a ``[senders.NAME]`` table for it.
    """


@hookspec
def register_receivers() -> list[type[Receiver]]:
    """Return the receiver classes this plugin provides: subclasses of `rtd.components.Receiver`.

    Each class's ``name`` must be unique across all installed plugins. A receiver runs, in an
    actor of its own, only when the configuration has a ``[receivers.NAME]`` table for it.
    """
