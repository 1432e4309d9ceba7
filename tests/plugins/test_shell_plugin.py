"""rtd-shell's `shell` tool: allowed commands run without a shell; every refusal is an error output.

Mistakes in the `[tools.shell]` table itself (a wrong type, an empty command, a NUL byte, an
``allow_arguments`` name that is not a command) are found when the configuration is loaded and
disable the tool with a `tools.shell...` problem line, before the model can call it.

Commands are run through ``run_command.run(settings, json_arguments)``, as the tools actor does,
so schema validation and JSON encoding are part of every test. Only POSIX tools every Debian
has (echo, sh, cat, env, pwd, true, false) and this Python are used.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from rtd import config as cfg
from rtd import plugins

PY = sys.executable


@pytest.fixture(scope="module")
def shell():
    import rtd_shell.shell

    return rtd_shell.shell


def run(shell, arguments: dict, **settings) -> dict:
    """The tool's output for ``arguments`` under ``ShellSettings(**settings)``, decoded."""
    return json.loads(shell.run_command.run(shell.ShellSettings(**settings),
                                            json.dumps(arguments)))


# -- running ----------------------------------------------------------------------------------


def test_tool_is_named_shell_and_takes_a_name_and_words(shell):
    schema = shell.run_command.schema()
    assert schema["name"] == "shell"
    parameters = schema["parameters"]
    assert parameters["required"] == ["command"]
    assert parameters["properties"]["command"]["type"] == "string"
    assert parameters["properties"]["arguments"]["type"] == ["array", "null"]
    assert parameters["properties"]["arguments"]["items"] == {"type": "string"}
    assert shell.run_command.timeout == shell.TOOL_TIMEOUT


def test_runs_the_configured_words_as_given(shell):
    result = run(shell, {"command": "greet"},
                 commands={"greet": ["echo", "hello  world", "again"]})
    assert result == {"command": "greet", "exit_code": 0, "stdout": "hello  world again",
                      "stderr": ""}


def test_configured_words_are_never_split_or_expanded(shell):
    words = ["$HOME", "*", "a|b", "'quoted'", "~", "x; y"]
    result = run(shell, {"command": "say"}, commands={"say": ["echo", *words]})
    assert result["stdout"] == " ".join(words)


def test_reports_exit_code_and_stderr(shell):
    code = 'import sys; print("out"); print("bad", file=sys.stderr); sys.exit(3)'
    result = run(shell, {"command": "x"}, commands={"x": [PY, "-c", code]})
    assert (result["exit_code"], result["stdout"], result["stderr"]) == (3, "out", "bad")


def test_a_command_killed_by_a_signal_says_which(shell):
    result = run(shell, {"command": "x"}, commands={"x": ["sh", "-c", "kill -9 $$"]})
    assert result["exit_code"] == -9 and result["signal"] == "SIGKILL"


def test_allowed_arguments_are_passed_as_words_without_a_shell(shell):
    words = ["$HOME", "; rm -rf /", "$(id)", "`id`", "*", "a|b", "> /tmp/x", "'quoted'"]
    result = run(shell, {"command": "say", "arguments": words},
                 commands={"say": ["echo", "--"], "other": ["true"]},
                 allow_arguments=["other", "say"])
    assert result["stdout"] == "-- " + " ".join(words)


def test_null_or_empty_arguments_are_no_arguments(shell):
    for arguments in (None, []):
        result = run(shell, {"command": "hi", "arguments": arguments},
                     commands={"hi": ["echo", "hi"]})
        assert result["stdout"] == "hi"


def test_output_is_trimmed_in_the_middle(shell):
    code = 'print("A" * 3000 + "B" * 3000)'
    result = run(shell, {"command": "big"}, commands={"big": [PY, "-c", code]}, max_output=1000)
    out = result["stdout"]
    assert out.startswith("A" * 500 + "\n[... 5000 characters cut ...]\n")
    assert out.endswith("\n" + "B" * 500) and len(out) < 1100


def test_trim_keeps_short_text_and_drops_trailing_whitespace(shell):
    assert shell.trim("  indented\n\n", 100) == "  indented"
    assert shell.trim("abcdefgh", 4) == "ab\n[... 4 characters cut ...]\ngh"


def test_commands_get_empty_stdin(shell):
    result = run(shell, {"command": "cat"}, commands={"cat": ["cat"]}, command_timeout=5.0)
    assert result["exit_code"] == 0 and result["stdout"] == ""


def test_commands_do_not_see_rtds_secrets(shell, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-passed")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    result = run(shell, {"command": "env"}, commands={"env": ["env"]},
                 environment={"LIGHTS_HOST": "10.0.0.7"})
    variables = dict(line.split("=", 1) for line in result["stdout"].splitlines())
    assert "OPENAI_API_KEY" not in variables
    assert variables["LIGHTS_HOST"] == "10.0.0.7" and variables["LC_ALL"] == "C.UTF-8"
    assert "PATH" in variables


def test_directory_is_the_working_directory(shell, tmp_path):
    result = run(shell, {"command": "pwd"}, commands={"pwd": ["pwd"]}, directory=str(tmp_path))
    assert Path(result["stdout"]).resolve() == tmp_path.resolve()


# -- refusals ---------------------------------------------------------------------------------


def error(result: dict) -> str:
    assert list(result) == ["error"], result
    return result["error"]


def test_unknown_command_lists_the_allowed_names(shell):
    result = run(shell, {"command": "rm -rf /"},
                 commands={"uptime": ["uptime"], "disk": ["df"]})
    assert error(result) == "no command named 'rm -rf /'; allowed commands: disk, uptime"


def test_no_commands_configured(shell):
    assert "tools.shell.commands is empty" in error(run(shell, {"command": "uptime"}))


def test_arguments_for_a_command_that_takes_none(shell):
    result = run(shell, {"command": "hi", "arguments": ["x"]},
                 commands={"hi": ["echo"], "other": ["true"]}, allow_arguments=["other"])
    assert error(result) == "command 'hi' takes no arguments; call it without 'arguments'"


@pytest.mark.parametrize(("arguments", "problem"), [
    (["x"] * 33, "at most 32 arguments, got 33"),
    (["x" * 1001], "an argument is longer than 1000 characters"),
    (["a\0b"], "an argument contains a NUL character"),
])
def test_unreasonable_arguments(shell, arguments, problem):
    result = run(shell, {"command": "say", "arguments": arguments}, commands={"say": ["echo"]},
                 allow_arguments=["say"])
    assert error(result) == problem


def test_arguments_must_be_strings(shell):
    result = run(shell, {"command": "say", "arguments": [1]}, commands={"say": ["echo"]},
                 allow_arguments=["say"])
    assert error(result).startswith("invalid arguments: arguments[0]: expected a string")


def test_missing_executable(shell):
    result = run(shell, {"command": "x"},
                 commands={"x": ["/nonexistent/rtd-shell-test", "--flag"]})
    assert error(result) == ("command 'x': executable '/nonexistent/rtd-shell-test' not found "
                             "(tools.shell.commands.x)")


def test_file_that_is_not_executable(shell, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run(shell, {"command": "x"}, commands={"x": [str(script)]})
    assert error(result) == f"command 'x': '{script}' is not executable (permission denied)"


def test_missing_directory(shell, tmp_path):
    missing = tmp_path / "nope"
    result = run(shell, {"command": "x"}, commands={"x": ["true"]}, directory=str(missing))
    assert error(result) == f"tools.shell.directory: {missing} is not a directory"


def test_a_command_over_its_time_is_killed(shell):
    result = run(shell, {"command": "slow"},
                 commands={"slow": [PY, "-c", "import time; time.sleep(60)"]},
                 command_timeout=0.3)
    assert error(result) == "command 'slow' did not finish within 0.3 seconds and was stopped"


# -- configuration ----------------------------------------------------------------------------


def test_the_table_validates_into_settings(shell):
    config = cfg.parse({"tools": {"shell": {
        "timeout": 15, "commands": {"uptime": ["uptime"], "disk": ["df", "-h", "/"]},
        "allow_arguments": ["disk"], "environment": {"A": "b"}}}},
        require_key=False, registry=plugins.load())
    (component,) = config.components
    assert component.timeout == 15.0
    assert component.settings.commands == {"uptime": ["uptime"], "disk": ["df", "-h", "/"]}
    assert component.settings.allow_arguments == ["disk"]
    toml = cfg.to_toml(config)
    assert 'commands = {uptime = ["uptime"], disk = ["df", "-h", "/"]}' in toml
    assert 'allow_arguments = ["disk"]' in toml


def test_the_configured_tool_offers_the_command_names_as_an_enum(shell):
    """rtd asks `register_tools(settings)` again once [tools.shell] is valid: that tool runs."""
    config = parse_shell({"commands": {"uptime": ["uptime"], "disk": ["df", "-h", "/"]},
                          "allow_arguments": ["disk"]})
    (component,) = config.components
    offered = component.component.schema()
    assert offered["parameters"]["properties"]["command"] == {
        "type": "string", "enum": ["disk", "uptime"],
        "description": "The name of the command to run."}
    assert offered["description"].endswith(
        "Allowed commands: disk, uptime. Commands that take arguments: disk.")
    assert component.component.function is shell.run_command.function
    assert component.component.settings is shell.ShellSettings
    # the model can only pick a configured name now; the schema check answers before the call
    answer = json.loads(component.component.run(component.settings, '{"command": "reboot"}'))
    assert answer == {"error": "invalid arguments: command: expected one of 'disk', 'uptime', "
                               "got 'reboot'"}


def test_without_allowed_arguments_the_tool_offers_none(shell):
    tool = shell.for_settings(shell.ShellSettings(commands={"up": ["uptime"]}))
    assert set(tool.parameters["properties"]) == {"command"}
    assert shell.for_settings(shell.ShellSettings()) is shell.run_command  # nothing to enumerate


def test_the_defaults_allow_nothing(shell):
    settings = shell.ShellSettings()
    assert settings.commands == {} and settings.allow_arguments == []


def parse_shell(table: dict) -> cfg.Config:
    return cfg.parse({"tools": {"shell": table}}, require_key=False, registry=plugins.load())


def test_command_lines_as_strings_are_a_problem():
    """The old form (one string per command, names in one string) is refused, not split."""
    config = parse_shell({"commands": {"disk": "df -h /"}, "allow_arguments": "disk"})
    assert config.components == ()
    assert config.component_problems == (
        "tools.shell.commands: expected a table of arrays of strings, got a table "
        "(tools.shell is disabled)",
        "tools.shell.allow_arguments: expected an array of strings, got a string "
        "(tools.shell is disabled)")


@pytest.mark.parametrize(("table", "problem"), [
    ({"commands": {"disk": []}},
     'commands.disk is empty: give the program and its arguments, e.g. ["df", "-h", "/"]'),
    ({"commands": {"disk": ["", "-h"]}}, "commands.disk: the program (the first word) is empty"),
    ({"commands": {"disk": ["df", "-h", "/\0"]}}, "commands.disk contains a NUL character"),
    ({"commands": {"disk": ["df"]}, "allow_arguments": ["disk", "lights", "volume"]},
     "allow_arguments names 'lights', 'volume', not in commands (disk)"),
    ({"allow_arguments": ["lights"]}, "allow_arguments names 'lights', not in commands (none)"),
    ({"commands": {"x": ["true"]}, "directory": "/tmp\0"}, "directory contains a NUL character"),
    ({"commands": {"x": ["true"]}, "environment": {"A=B": "c"}},
     "environment: 'A=B' is not a variable name"),
    ({"commands": {"x": ["true"]}, "environment": {"A": "b\0"}},
     "environment.A contains a NUL character"),
])
def test_cross_field_mistakes_disable_the_tool_at_load_time(shell, table, problem):
    """Found by ShellSettings.__post_init__: one `tools.shell: ...` line, not a failed call."""
    config = parse_shell(table)
    assert config.components == ()
    assert config.component_problems == (f"tools.shell: {problem} (tools.shell is disabled)",)
    with pytest.raises(ValueError, match="^" + re.escape(problem) + "$"):
        shell.ShellSettings(**table)


def test_every_cross_field_mistake_is_on_the_one_line():
    config = parse_shell({"commands": {"a": []}, "allow_arguments": ["b"]})
    (line,) = config.component_problems
    assert line == ('tools.shell: commands.a is empty: give the program and its arguments, '
                    'e.g. ["df", "-h", "/"]; allow_arguments names \'b\', not in commands (a) '
                    "(tools.shell is disabled)")


def test_python_callers_get_a_problem_for_a_command_line_string(shell):
    with pytest.raises(ValueError, match=r"commands.x: expected an array of strings, got 'ls -l'"):
        shell.ShellSettings(commands={"x": "ls -l"})


def test_a_bad_table_disables_the_tool_with_a_problem_line():
    config = cfg.parse({"tools": {"shell": {"command_timeout": 0, "max_output": "lots"}}},
                       require_key=False, registry=plugins.load())
    assert config.components == ()
    assert config.component_problems == (
        "tools.shell.command_timeout: expected a value from 0.1 to 3600.0, got 0.0 "
        "(tools.shell is disabled)",
        "tools.shell.max_output: expected an integer, got a string 'lots' "
        "(tools.shell is disabled)")
