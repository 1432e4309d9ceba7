"""Plugin loading: every entry point isolated; bad plugins cost a status line, not the daemon."""

from __future__ import annotations

import importlib.metadata
import logging
import sys
import textwrap

import pytest

from rtd import plugins
from rtd.plugins import PluginStatus

GOOD = '''
from rtd import hookimpl, tool
from rtd.components import Receiver, Sender

@tool
def weather(city: str) -> str:
    """Today's weather."""
    return "sunny"

class Beeper(Sender):
    name = "beeper"
    def run(self, ctx):
        pass

class Lamp(Receiver):
    name = "lamp"
    events = ("state",)
    def receive(self, event):
        pass

@hookimpl
def register_tools():
    return [weather]

@hookimpl
def register_senders():
    return [Beeper]

@hookimpl
def register_receivers():
    return [Lamp]
'''

MODULES = {
    "rtdtest_good": GOOD,
    "rtdtest_broken": "raise ImportError('needs libfoo')\n",
    "rtdtest_raising": textwrap.dedent('''
        from rtd import hookimpl
        @hookimpl
        def register_tools():
            raise RuntimeError("boom")
        '''),
    "rtdtest_wrong": textwrap.dedent('''
        from rtd import hookimpl
        from rtd.components import Receiver
        class NoEvents(Receiver):
            name = "silent"
        @hookimpl
        def register_tools():
            return "clock"
        @hookimpl
        def register_senders():
            return [object]
        @hookimpl
        def register_receivers():
            return [NoEvents]
        '''),
    "rtdtest_duplicate": textwrap.dedent('''
        from rtd import hookimpl, tool
        @tool
        def clock() -> str:
            """A clock that shadows the built-in one."""
            return "noon"
        @hookimpl
        def register_tools():
            return [clock]
        '''),
    "rtdtest_misspelt": textwrap.dedent('''
        from rtd import hookimpl, tool
        @tool
        def dice() -> int:
            """Roll a die."""
            return 4
        @hookimpl
        def register_tool():
            return [dice]
        @hookimpl
        def register_receiver():
            return []
        '''),
    "rtdtest_badargument": textwrap.dedent('''
        from rtd import hookimpl
        @hookimpl
        def register_tools(setting):
            return []
        '''),
}


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    for name, source in MODULES.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield [importlib.metadata.EntryPoint("builtin", "rtd.builtin.plugin", "rtd")] + [
        importlib.metadata.EntryPoint(name.removeprefix("rtdtest_"), name, "rtd")
        for name in MODULES]
    for name in MODULES:
        sys.modules.pop(name, None)


def test_each_plugin_is_isolated(entry_points, caplog):
    caplog.set_level(logging.WARNING, "rtd.plugins")
    reg = plugins.load(entry_points=entry_points)
    status = {p.name: p for p in reg.plugins}
    # the good plugin and the built-ins loaded whatever the others did
    assert set(reg.tools) == {"clock", "weather"}
    assert set(reg.senders) == {"socket", "stdin", "push_to_talk", "beeper"}
    assert set(reg.receivers) == {"console", "transcript_log", "lamp"}
    assert status["good"].status is PluginStatus.LOADED
    assert status["good"].status_text == "loaded"
    assert status["good"].provides == {"tools": ["weather"], "senders": ["beeper"],
                                       "receivers": ["lamp"]}
    assert status["broken"].status is PluginStatus.FAILED_TO_IMPORT
    assert status["broken"].status_text == ("failed to import rtdtest_broken: ImportError: "
                                            "needs libfoo")
    assert status["raising"].status is PluginStatus.LOADED_WITH_PROBLEMS
    assert status["raising"].problems == ["register_tools() raised RuntimeError: boom"]
    wrong = status["wrong"].problems
    assert "register_tools() returned str, expected a list" in wrong
    assert any("is not a subclass of rtd.components.Sender" in p for p in wrong)
    assert any("NoEvents.events must list kinds from" in p for p in wrong)
    assert status["duplicate"].problems == [
        "register_tools(): tool name 'clock' is already provided by rtd.builtin.plugin; this one "
        "is ignored"]
    assert reg.tools["clock"].description.startswith("Get the current local date")
    # each problem was one log line naming the plugin
    for name in ("broken", "raising", "wrong", "duplicate", "misspelt", "badargument"):
        assert f"plugin {name} (" in caplog.text
    assert "Traceback" not in caplog.text
    assert all("\n" not in r.getMessage() for r in caplog.records)


def test_a_misspelt_hook_is_reported_with_the_hook_it_meant(entry_points, caplog):
    """pluggy's check_pending(): a hookimpl for no hookspec is never called; say so, per plugin."""
    caplog.set_level(logging.WARNING, "rtd.plugins")
    reg = plugins.load(entry_points=entry_points)
    misspelt = next(p for p in reg.plugins if p.name == "misspelt")
    assert misspelt.status is PluginStatus.LOADED_WITH_PROBLEMS
    hooks = "rtd's hooks: register_receivers, register_senders, register_tools"
    assert misspelt.problems == [
        "register_receiver is not an rtd hook (did you mean 'register_receivers'?), so it is "
        f"never called; {hooks}",
        "register_tool is not an rtd hook (did you mean 'register_tools'?), so it is never "
        f"called; {hooks}"]
    assert "dice" not in reg.tools  # nothing was registered through the misspelt hook
    line = ("plugin misspelt (rtdtest_misspelt): register_tool is not an rtd hook (did you mean "
            "'register_tools'?)")
    assert line in caplog.text
    # the other plugins loaded as if the misspelt one were not there
    assert {"clock", "weather"} <= set(reg.tools)


def test_a_hook_taking_an_argument_rtd_does_not_pass_is_not_registered(entry_points):
    reg = plugins.load(entry_points=entry_points)
    bad = next(p for p in reg.plugins if p.name == "badargument")
    assert bad.status is PluginStatus.NOT_REGISTERED
    assert bad.status_text == (
        "not registered: register_tools() takes argument 'setting' (did you mean 'settings'?), "
        "which rtd does not pass; it passes only settings")
    assert reg.manager is not None and reg.manager.get_plugin("badargument") is None


def test_every_status_is_an_enum_member_shown_by_its_value():
    assert [s.value for s in PluginStatus] == [
        "loaded", "loaded with problems", "failed to import", "not registered"]
    info = plugins.PluginInfo("x", "rtd-x", "1.0", PluginStatus.NOT_REGISTERED,
                              "Plugin name already registered: x")
    assert info.status_text == "not registered: Plugin name already registered: x"


def test_tracing_logs_every_hook_call(entry_points, monkeypatch, caplog):
    monkeypatch.setenv("RTD_TRACE_PLUGINS", "1")
    caplog.set_level(logging.INFO, "rtd.plugins.trace")
    plugins.load(entry_points=entry_points[:2])
    calls = [r.getMessage() for r in caplog.records if r.name == "rtd.plugins.trace"]
    assert any("register_tools" in c for c in calls)
    assert any("register_receivers" in c for c in calls)


def test_installed_builtin_comes_through_its_entry_point():
    reg = plugins.load()
    builtin = next(p for p in reg.plugins if p.name == "builtin")
    assert builtin.package == "rtd-voice"
    assert reg.provider[("tools", "clock")] == "rtd-voice"
    assert "socket (rtd-voice), stdin (rtd-voice)" in reg.describe("senders")
