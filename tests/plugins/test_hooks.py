"""Each hook of rtd/hookspecs.py, exercised through `rtd.plugins.load()`.

What a hook returns ends up in the registry; a wrong return is refused with a problem line,
and the plugin's other components still load. tests/test_docs.py requires a test named
``test_hook_<hookname>`` for every hookspec, so a new hook cannot land untested.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from rtd import hookimpl, tool
from rtd.components import Receiver, Sender, SenderContext
from rtd.plugins import PluginStatus, Registry, load
from rtd.tools import Tool


@tool
def weather(city: str) -> str:
    """Today's weather for a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


def not_a_tool(city: str) -> str:
    """Forgot @tool."""
    return city


class Beeper(Sender):
    name = "beeper"

    def run(self, ctx: SenderContext) -> None:
        ctx.wait(0)


class Nameless(Sender):
    def run(self, ctx: SenderContext) -> None:
        ctx.wait(0)


class Lamp(Receiver):
    name = "lamp"
    events = ("state", "error")

    def receive(self, event: Any) -> None:
        pass


class Deaf(Receiver):
    name = "deaf"
    events = ("speech",)  # not an event kind

    def receive(self, event: Any) -> None:
        pass


class Provides:
    """An in-process plugin whose hooks return whatever it was given (None: not implemented)."""

    def __init__(self, tools: Any = None, senders: Any = None, receivers: Any = None) -> None:
        self.results = {"tools": tools, "senders": senders, "receivers": receivers}

    @hookimpl
    def register_tools(self) -> Any:
        return self.results["tools"] if self.results["tools"] is not None else []

    @hookimpl
    def register_senders(self) -> Any:
        return self.results["senders"] if self.results["senders"] is not None else []

    @hookimpl
    def register_receivers(self) -> Any:
        return self.results["receivers"] if self.results["receivers"] is not None else []


def load_only(*plugins: tuple[str, object]) -> Registry:
    """A registry of just these in-process plugins (no installed entry points)."""
    return load(extra=list(plugins), entry_points=[])


def test_hook_register_tools(caplog: pytest.LogCaptureFixture) -> None:
    registry = load_only(("weather", Provides(tools=[weather])))
    assert registry.tools == {"weather": weather}
    assert registry.provider[("tools", "weather")] == "(script)"
    assert registry.plugins[0].provides["tools"] == ["weather"]
    assert registry.tools["weather"].run(None, '{"city": "Oslo"}') == "sunny in Oslo"

    with caplog.at_level(logging.WARNING, logger="rtd.plugins"):
        registry = load_only(("weather", Provides(tools=[weather])),
                             ("careless", Provides(tools=[not_a_tool, weather])),
                             ("unlisted", Provides(tools=weather)))
    assert list(registry.tools) == ["weather"]
    careless, unlisted = registry.plugins[1], registry.plugins[2]
    assert careless.status is PluginStatus.LOADED_WITH_PROBLEMS
    assert careless.problems[0].startswith("register_tools(): <function not_a_tool")
    assert careless.problems[0].endswith("is not a Tool (decorate the function with @rtd.tool)")
    assert "tool name 'weather' is already provided by (script)" in careless.problems[1]
    assert unlisted.problems == ["register_tools() returned Tool, expected a list"]
    assert unlisted.provides["tools"] == []
    assert any("plugin unlisted ((script)): register_tools() returned Tool" in m
               for m in caplog.messages)


def test_hook_register_senders() -> None:
    registry = load_only(("beeps", Provides(senders=[Beeper])))
    assert registry.senders == {"beeper": Beeper}
    assert registry.plugins[0].provides["senders"] == ["beeper"]
    assert registry.plugins[0].status is PluginStatus.LOADED

    registry = load_only(("wrong", Provides(senders=[Beeper(), Nameless, Lamp, Beeper])))
    info = registry.plugins[0]
    assert registry.senders == {"beeper": Beeper}  # the good one still loads
    assert info.status is PluginStatus.LOADED_WITH_PROBLEMS
    assert len(info.problems) == 3
    assert "is not a subclass of rtd.components.Sender" in info.problems[0]  # an instance
    assert info.problems[1] == "register_senders(): Nameless has no name"
    assert "Lamp'> is not a subclass of rtd.components.Sender" in info.problems[2]


def test_hook_register_receivers() -> None:
    registry = load_only(("lamp", Provides(receivers=[Lamp])))
    assert registry.receivers == {"lamp": Lamp}
    assert registry.plugins[0].provides == {"tools": [], "senders": [], "receivers": ["lamp"]}

    registry = load_only(("wrong", Provides(receivers=(Deaf, Beeper, Lamp))))
    info = registry.plugins[0]
    assert registry.receivers == {"lamp": Lamp}  # a tuple is a list too; the good one loads
    assert info.problems[0].startswith("register_receivers(): Deaf.events must list kinds from")
    assert info.problems[0].endswith("got ['speech']")
    assert "is not a subclass of rtd.components.Receiver" in info.problems[1]


def test_a_hook_that_raises_costs_its_own_components_only() -> None:
    class Raises(Provides):
        @hookimpl
        def register_senders(self) -> Any:
            raise RuntimeError("no serial port")

    registry = load_only(("flaky", Raises(tools=[weather], receivers=[Lamp])))
    info = registry.plugins[0]
    assert (list(registry.tools), list(registry.senders), list(registry.receivers)) == (
        ["weather"], [], ["lamp"])
    assert info.problems == ["register_senders() raised RuntimeError: no serial port"]


def test_the_installed_plugins_register_through_the_same_hooks() -> None:
    registry = load()
    by_name = {info.name: info for info in registry.plugins}
    assert by_name["example"].provides == {"tools": ["dice"], "senders": ["heartbeat"],
                                           "receivers": ["word_count"]}
    assert by_name["shell"].provides == {"tools": ["shell"], "senders": [], "receivers": []}
    assert (by_name["example"].package, by_name["example"].version) == ("rtd-example", "0.1.0")
    assert registry.provider[("tools", "shell")] == "rtd-shell"
    assert isinstance(registry.tools["dice"], Tool)
