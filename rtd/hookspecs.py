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

Hooks take context arguments as pytest's do: pluggy passes an implementation only the arguments
it names, so ``def register_tools():`` and ``def register_tools(settings):`` both work, and a hook
may gain arguments without breaking a plugin. An implementation naming an argument that is not
in the hookspec below is refused when the plugin is registered, and a ``@hookimpl`` function
whose name is not a hook here is reported with the closest real hook.

The ``register_*`` hooks are called twice (see rtd.plugins): with an empty ``settings`` to learn
what is installed, then, once the configuration is valid, with the validated settings of the
plugin's enabled components of that kind. Both calls must return the same names with the same
Settings schemas; the components of the second call are the ones that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from rtd.components import Receiver, Sender
    from rtd.tools import Tool

PROJECT = "rtd"
"""The pluggy project name, the hook marker's name and the entry-point group: one name."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_tools(settings: Mapping[str, Any]) -> list[Tool]:
    """Return the tools this plugin provides: `rtd.tools.Tool` objects, usually made with `@tool`.

    Each tool's ``name`` must be unique across all installed plugins. A tool runs only when the
    configuration has a ``[tools.NAME]`` table for it (``enabled = false`` turns it off).

    ``settings`` maps the name of each of this plugin's tools that the configuration enables
    to its validated Settings instance (None for a tool without settings); it is empty when rtd
    asks what is installed. A tool returned for a configuration (its schema built from the
    table, say) replaces the one returned without; it must keep its name and Settings class.
    """


@hookspec
def register_senders(settings: Mapping[str, Any]) -> list[type[Sender]]:
    """Return the sender classes this plugin provides: subclasses of `rtd.components.Sender`.

    Each class's ``name`` must be unique across all installed plugins. A sender runs, in an
    actor of its own, only when the configuration has a ``[senders.NAME]`` table for it.
    ``settings`` is as for `register_tools`, for this plugin's enabled senders.
    """


@hookspec
def register_receivers(settings: Mapping[str, Any]) -> list[type[Receiver]]:
    """Return the receiver classes this plugin provides: subclasses of `rtd.components.Receiver`.

    Each class's ``name`` must be unique across all installed plugins. A receiver runs, in an
    actor of its own, only when the configuration has a ``[receivers.NAME]`` table for it.
    ``settings`` is as for `register_tools`, for this plugin's enabled receivers.
    """

