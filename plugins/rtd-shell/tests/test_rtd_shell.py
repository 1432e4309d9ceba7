"""Tests of the shell tool, run from the plugin's folder: ``python -m pytest -q``.

Each test calls the tool the way rtd does, ``run_command.run(settings, json_arguments)``, so the
schema check, the function and the JSON encoding of the result are all exercised.
"""

from __future__ import annotations

import json
import sys

import pytest
from rtd.plugins import load

import rtd_shell
from rtd_shell import ShellSettings, run_command


def call(settings: ShellSettings, **arguments) -> dict:
    return json.loads(run_command.run(settings, json.dumps(arguments)))


SETTINGS = ShellSettings(commands={"hello": ["echo", "hello"], "say": ["echo"],
                                   "fail": ["false"]},
                         allow_arguments=["say"])


def test_runs_a_configured_command():
    assert call(SETTINGS, command="hello") == {"command": "hello", "exit_code": 0,
                                               "stdout": "hello", "stderr": ""}
    assert call(SETTINGS, command="fail")["exit_code"] == 1


def test_arguments_are_words_never_shell_syntax():
    words = ["$HOME", ";", "rm -rf /", "`id`", "*"]
    assert call(SETTINGS, command="say", arguments=words)["stdout"] == " ".join(words)


def test_refusals_are_error_outputs():
    assert call(SETTINGS, command="reboot")["error"] == (
        "no command named 'reboot'; allowed commands: fail, hello, say")
    assert "takes no arguments" in call(SETTINGS, command="hello", arguments=["x"])["error"]
    missing = ShellSettings(commands={"x": ["/nonexistent/rtd-shell-test"]})
    assert "not found" in call(missing, command="x")["error"]


def test_a_slow_command_is_killed():
    slow = ShellSettings(commands={"slow": [sys.executable, "-c", "import time; time.sleep(30)"]},
                         command_timeout=0.2)
    assert "did not finish within 0.2 seconds" in call(slow, command="slow")["error"]


def test_mistakes_in_the_table_are_found_when_it_is_loaded():
    with pytest.raises(ValueError, match="allow_arguments names 'lights', not in commands"):
        ShellSettings(commands={"disk": ["df", "-h", "/"]}, allow_arguments=["lights"])
    with pytest.raises(ValueError, match="commands.x is empty"):
        ShellSettings(commands={"x": []})


def test_rtd_loads_the_plugin():
    registry = load(extra=[("shell", rtd_shell)], entry_points=[])
    assert registry.tools["shell"] is run_command


def test_the_tool_rtd_runs_offers_the_configured_names():
    # rtd calls register_tools again with the validated [tools.shell] settings
    (tool,) = rtd_shell.register_tools({"shell": SETTINGS})
    assert tool.parameters["properties"]["command"]["enum"] == ["fail", "hello", "say"]
    assert call(SETTINGS, command="hello")["exit_code"] == 0
    assert json.loads(tool.run(SETTINGS, '{"command": "reboot"}'))["error"].startswith(
        "invalid arguments: command: expected one of 'fail', 'hello', 'say'")
    # before the configuration is read there are no names to offer
    assert rtd_shell.register_tools({}) == [run_command]
