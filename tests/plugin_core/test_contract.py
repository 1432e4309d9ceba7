"""The plugin contract: hooks with context arguments, called twice; components checking themselves.

The ``register_*`` hooks take a ``settings`` argument that an implementation may name or leave
out (pluggy passes only what it names). `rtd.plugins.load` calls them with an empty mapping to
learn what is installed; `rtd.config.parse` calls them again, through `Registry.configure`,
with the validated settings of each plugin's own enabled components, and runs what that second
call returned. Plugins here are in-process objects (no entry points).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from rtd import config as cfg
from rtd import hookimpl, setting, tool
from rtd.components import Receiver, Sender, SenderContext
from rtd.daemon import Daemon
from rtd.plugins import PluginStatus, Registry, check_component, load, self_check
from rtd.tools import Tool


@dataclass(frozen=True)
class GreetSettings:
    """[tools.greet]"""

    names: list[str] = setting([], "who may be greeted")


@tool(settings=GreetSettings)
def greet(name: str, *, settings: GreetSettings) -> str:
    """Greet someone by name."""
    return f"hello {name}"


def greet_for(settings: GreetSettings) -> Tool:
    """The tool whose `name` argument is an enum of the configured names."""
    parameters = json.loads(json.dumps(dict(greet.parameters)))
    parameters["properties"]["name"]["enum"] = list(settings.names)
    return dataclasses.replace(greet, parameters=parameters)


class Configurable:
    """A plugin whose hooks name the ``settings`` argument and record every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def register_tools(self, settings: Mapping[str, Any]) -> list[Tool]:
        self.calls.append(("tools", dict(settings)))
        configured = settings.get("greet")
        return [greet_for(configured) if configured is not None else greet]

    @hookimpl
    def register_receivers(self, settings: Mapping[str, Any]) -> list[type[Receiver]]:
        self.calls.append(("receivers", dict(settings)))
        return [Lamp]


class ArgumentLess:
    """A plugin whose hook names no argument: pluggy calls it as ``register_tools()``."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def register_tools(self) -> list[Tool]:
        self.calls += 1
        return [clock_like]


@tool
def clock_like() -> str:
    """Say what time it is, roughly."""
    return "teatime"


class Lamp(Receiver):
    name = "lamp"
    events = ("state",)

    def receive(self, event: Any) -> None:
        pass


def parse(tables: dict[str, Any], registry: Registry) -> cfg.Config:
    return cfg.parse(tables, require_key=False, registry=registry)


def test_argument_less_and_argument_taking_hooks_are_both_called() -> None:
    configurable, argless = Configurable(), ArgumentLess()
    registry = load(extra=[("mine", configurable), ("old", argless)], entry_points=[])
    assert [info.status for info in registry.plugins] == [PluginStatus.LOADED] * 2
    assert set(registry.tools) == {"greet", "clock_like"}
    # the discovery round: an empty mapping for every kind the plugin implements
    assert configurable.calls == [("tools", {}), ("receivers", {})]
    assert argless.calls == 1

    config = parse({"tools": {"greet": {"names": ["Ada", "Alan"]}, "clock_like": {}},
                    "receivers": {"lamp": {}}}, registry)
    # the second round: each plugin with its own enabled components' settings only
    assert configurable.calls[2:] == [("tools", {"greet": GreetSettings(["Ada", "Alan"])}),
                                      ("receivers", {"lamp": None})]
    assert argless.calls == 2
    assert config.component_problems == ()
    assert [c.name for c in config.components] == ["greet", "clock_like", "lamp"]


def test_the_component_built_for_the_settings_is_the_one_that_runs() -> None:
    registry = load(extra=[("mine", Configurable())], entry_points=[])
    config = parse({"tools": {"greet": {"names": ["Ada", "Alan"]}}}, registry)
    (component,) = config.components
    assert component.component.parameters["properties"]["name"]["enum"] == ["Ada", "Alan"]
    assert "enum" not in registry.tools["greet"].parameters["properties"]["name"]  # discovery's
    daemon = Daemon(dataclasses.replace(config, provider=cfg.ProviderConfig(
        name="custom", url="ws://127.0.0.1:9/v1/realtime")), registry=registry)
    (sent,) = daemon.session_update["session"]["tools"]
    assert sent["parameters"]["properties"]["name"]["enum"] == ["Ada", "Alan"]


def test_a_component_without_a_table_is_not_asked_for_again() -> None:
    configurable = Configurable()
    registry = load(extra=[("mine", configurable)], entry_points=[])
    parse({"tools": {"greet": {"enabled": False}}}, registry)
    assert configurable.calls == [("tools", {}), ("receivers", {})]


class Shifty:
    """A plugin whose second call breaks the contract in the way ``mode`` says."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    @hookimpl
    def register_tools(self, settings: Mapping[str, Any]) -> Any:
        if not settings:
            return [greet]
        if self.mode == "raise":
            raise RuntimeError("no greeter today")
        if self.mode == "schema":
            return [dataclasses.replace(greet, settings=None, takes_settings=False)]
        if self.mode == "new name":
            return [greet, clock_like]
        if self.mode == "not a list":
            return greet
        return []  # "omit": the discovery component stays


@pytest.mark.parametrize(("mode", "problem"), [
    ("raise", "register_tools(settings) raised RuntimeError: no greeter today"),
    ("schema", "register_tools(settings) returned tool 'greet' with settings none instead of "
               "GreetSettings, which its table was checked against; a component must keep its "
               "Settings"),
    ("not a list", "register_tools(settings) returned Tool, expected a list"),
])
def test_a_second_call_that_breaks_the_contract_disables_the_component(mode, problem) -> None:
    registry = load(extra=[("shifty", Shifty(mode))], entry_points=[])
    config = parse({"tools": {"greet": {"names": ["Ada"]}}}, registry)
    assert config.components == ()
    assert config.component_problems == (f"tools.greet: {problem} (tools.greet is disabled)",)
    info = registry.plugins[0]
    assert info.status is PluginStatus.LOADED_WITH_PROBLEMS and info.problems == [problem]
    parse({"tools": {"greet": {"names": ["Ada"]}}}, registry)
    assert info.problems == [problem]  # checking the same configuration again adds nothing


def test_a_name_only_the_second_call_returns_is_a_problem_and_ignored() -> None:
    registry = load(extra=[("shifty", Shifty("new name"))], entry_points=[])
    config = parse({"tools": {"greet": {}}}, registry)
    assert [c.name for c in config.components] == ["greet"]
    assert "clock_like" not in registry.tools
    assert registry.plugins[0].problems == [
        "register_tools(settings) returned tool 'clock_like', which register_tools() without "
        "settings did not; ignored (rtd learns a plugin's components from the call without "
        "settings)"]


def test_a_component_the_second_call_leaves_out_keeps_its_discovery_version() -> None:
    registry = load(extra=[("shifty", Shifty("omit"))], entry_points=[])
    (component,) = parse({"tools": {"greet": {}}}, registry).components
    assert component.component is greet
    assert registry.plugins[0].status is PluginStatus.LOADED


# -- self-checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PortSettings:
    device: str = setting("/dev/ttyUSB0", "serial port")


class Serial(Sender):
    name = "serial"
    Settings = PortSettings

    @classmethod
    def check(cls, settings: PortSettings) -> list[str]:
        return [] if settings.device.startswith("/dev/") else [
            f"device: {settings.device} is not a device path", "the cable looks unplugged"]

    def run(self, ctx: SenderContext) -> None:
        ctx.wait(0)


def broken_check(settings: Any) -> list[str]:
    raise RuntimeError("cannot even look")


@tool(check=broken_check)
def fragile() -> str:
    """Break on purpose."""
    return "x"


@tool(check=lambda settings: [5])
def confused() -> str:
    """Return a non-string from the check."""
    return "x"


class Checked:
    @hookimpl
    def register_tools(self) -> list[Tool]:
        return [fragile, confused]

    @hookimpl
    def register_senders(self) -> list[type[Sender]]:
        return [Serial]


def test_check_lines_name_the_key_and_a_broken_check_is_one_line() -> None:
    assert check_component("senders", "serial", Serial, PortSettings("COM3")) == [
        "senders.serial.device: COM3 is not a device path",
        "senders.serial: the cable looks unplugged"]
    assert check_component("senders", "serial", Serial, PortSettings()) == []
    assert check_component("tools", "fragile", fragile, None) == [
        "tools.fragile: its self-check failed: RuntimeError: cannot even look"]
    assert check_component("tools", "confused", confused, None) == [
        "tools.confused: its self-check returned 5, expected 'key: message' strings"]


def test_self_check_leaves_out_the_components_that_reported_problems() -> None:
    registry = load(extra=[("checked", Checked())], entry_points=[])
    config = parse({"tools": {"fragile": {}, "confused": {}},
                    "senders": {"serial": {"device": "COM3"}}}, registry)
    passed, problems = self_check(config.components, registry)
    assert passed == ()
    assert problems == (
        "tools.fragile: its self-check failed: RuntimeError: cannot even look "
        "(tools.fragile is disabled)",
        "tools.confused: its self-check returned 5, expected 'key: message' strings "
        "(tools.confused is disabled)",
        "senders.serial.device: COM3 is not a device path (senders.serial is disabled)",
        "senders.serial: the cable looks unplugged (senders.serial is disabled)")
    good = parse({"senders": {"serial": {}}}, registry)
    assert self_check(good.components, registry) == (good.components, ())


def test_a_hand_built_component_config_is_checked_through_the_registry() -> None:
    registry = load(extra=[("checked", Checked())], entry_points=[])
    hand_built = cfg.ComponentConfig("senders", "serial", PortSettings("COM3"))
    passed, problems = self_check([hand_built], registry)
    assert passed == () and len(problems) == 2
