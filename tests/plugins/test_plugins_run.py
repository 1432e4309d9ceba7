"""The installed plugins in the real `rtd` process: listed, configured, called by the "model".

The tool conversations run `rtd run` against the emulator with file audio backends: the
emulator hears rtd.emulator.DEMO_QUESTION_WAV, answers its scripted turn by calling a plugin's
tool, and speaks the turn's `then` template filled from the tool's output. The sender's
conversation needs no audio at all: the heartbeat's text is the user's turn.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rtdproc import KEY

from rtd.emulator import DEMO_QUESTION_WAV, Emulator, Scenario, load_scenario

CONVERSATION_TIMEOUT = 40.0
PLUGIN_FOLDERS = Path(__file__).resolve().parents[2] / "plugins"


def write_config(path: Path, url: str, tables: str, *, audio: str = "file") -> Path:
    """An rtd.toml for the emulator at ``url`` with the component ``tables`` appended."""
    if audio == "file":
        devices = (f'[audio.input]\nbackend = "file"\npath = "{DEMO_QUESTION_WAV}"\n'
                   f'[audio.output]\nbackend = "file"\npath = "{path.parent / "speaker.wav"}"\n')
    else:
        devices = '[audio.input]\nbackend = "none"\n[audio.output]\nbackend = "none"\n'
    path.write_text(f'[provider]\nname = "custom"\nurl = "{url}"\n{devices}'
                    f'[log]\nlevel = "info"\n{tables}')
    return path


def write_scenario(path: Path, text: str) -> Scenario:
    """Save a scenario's TOML text and load it (checking it, as the emulator would)."""
    path.write_text(text)
    return load_scenario(path)


def tool_line(line: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The arguments and the output of a ``tool: NAME(ARGS) -> OUTPUT`` log line."""
    match = re.search(rf"tool: {name}\((.*)\) -> (.*)$", line)
    assert match, line
    return json.loads(match.group(1)), json.loads(match.group(2))


def assert_output_then_response(emu: Emulator, output: dict[str, Any]) -> None:
    """The emulator got the tool's output as a function_call_output, then a response.create."""
    emu.wait_for(lambda e: e["type"] == "response.create", timeout=10)
    received = emu.received
    types = [e["type"] for e in received]
    outputs = [i for i, e in enumerate(received) if e["type"] == "conversation.item.create"
               and e["item"]["type"] == "function_call_output"]
    assert len(outputs) == 1, types
    assert json.loads(received[outputs[0]]["item"]["output"]) == output
    assert "response.create" in types[outputs[0] + 1:], types


def test_rtd_plugins_lists_both_plugins_with_their_components(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text('[tools.dice]\n[tools.shell]\ncommands = { up = ["uptime"] }\n')
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    assert "example (rtd-example 0.1.0): loaded" in d.lines
    assert "shell (rtd-shell 0.1.0): loaded" in d.lines
    rows = [line.split() for line in d.lines if line.startswith("  ")]
    for row in (["tool", "dice", "enabled"], ["sender", "heartbeat", "available"],
                ["receiver", "word_count", "available"], ["tool", "shell", "enabled"]):
        assert row in rows, d.output
    assert "problem" not in d.output


def test_the_model_rolls_dice(run_rtd, tmp_path):
    scenario = write_scenario(tmp_path / "dice.toml", """
[[turn]]
transcript = "Roll two dice."
call = "dice"
arguments = { count = 2, sides = 6 }
then = "You rolled a total of {total}."
""")
    with Emulator(scenario=scenario, voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url,
                            "[tools.dice]\nmax_dice = 4\n[receivers.word_count]\n")
        d = run_rtd("run", "--config", str(conf))
        answer = d.wait_for_line("assistant: You rolled", timeout=CONVERSATION_TIMEOUT)
        arguments, output = tool_line(d.wait_for_line("tool: dice("), "dice")
        assert arguments == {"count": 2, "sides": 6}
        assert len(output["rolls"]) == 2 and all(1 <= r <= 6 for r in output["rolls"])
        assert answer.endswith(f"assistant: You rolled a total of {sum(output['rolls'])}.")
        assert_output_then_response(emu, output)
        assert [t["name"] for t in emu.received[0]["session"]["tools"]] == ["dice"]
        # the receiver saw both turns, in its own actor
        d.wait_for_line("word_count: user said 3 words")
        d.wait_for_line("word_count: assistant said 6 words")
        assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output


def test_the_model_runs_an_allowed_command(run_rtd, tmp_path):
    scenario = write_scenario(tmp_path / "shell.toml", """
[[turn]]
transcript = "Say hello from the shell."
call = "shell"
arguments = { command = "say", arguments = ["hello", "from;", "$HOME"] }
then = "The command printed {stdout} and exited with {exit_code}."
""")
    with Emulator(scenario=scenario, voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url,
                            '[tools.shell]\ntimeout = 15\n'
                            'commands = { say = ["echo"], up = ["uptime"] }\n'
                            'allow_arguments = ["say"]\n')
        d = run_rtd("run", "--config", str(conf))
        answer = d.wait_for_line("assistant: The command printed", timeout=CONVERSATION_TIMEOUT)
        assert answer.endswith("assistant: The command printed hello from; $HOME and exited "
                               "with 0.")
        arguments, output = tool_line(d.wait_for_line("tool: shell("), "shell")
        assert arguments == {"command": "say", "arguments": ["hello", "from;", "$HOME"]}
        assert output == {"command": "say", "exit_code": 0, "stdout": "hello from; $HOME",
                          "stderr": ""}
        assert_output_then_response(emu, output)
        # the tool rtd offered was built for this table: the configured names, as an enum
        updates = [e for e in emu.received if e["type"] == "session.update"]
        (offered,) = updates[0]["session"]["tools"]
        assert offered["name"] == "shell"
        assert offered["parameters"]["properties"]["command"]["enum"] == ["say", "up"]
        assert offered["description"].endswith("Allowed commands: say, up. Commands that take "
                                               "arguments: say.")
        assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output


def test_the_heartbeat_sender_talks_to_the_model(run_rtd, tmp_path):
    scenario = write_scenario(tmp_path / "stretch.toml",
                              '[[turn]]\nreply = "Up you get: stretch!"\n')
    with Emulator(scenario=scenario, voice_engine="tones") as emu:
        conf = write_config(tmp_path / "rtd.toml", emu.url,
                            '[session]\noutput = "text"\n'
                            '[senders.heartbeat]\ninterval = 0.5\ncount = 1\n'
                            'text = "Time to stretch?"\n', audio="none")
        d = run_rtd("run", "--config", str(conf))
        d.wait_for_line("assistant: Up you get: stretch!", timeout=CONVERSATION_TIMEOUT)
        created = emu.wait_for(lambda e: e["type"] == "conversation.item.create", timeout=10)
        assert created["item"]["content"] == [{"type": "input_text", "text": "Time to stretch?"}]
        d.wait_for_line("sent 1 message(s); done")
        assert d.stop() == 0
    assert "Traceback" not in d.output


def test_rtd_check_reports_a_bad_plugin_table(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        '[tools.shell]\nmax_output = "lots"\n[tools.dice]\n', audio="none")
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert ("tools.shell.max_output: expected an integer, got a string 'lots' (tools.shell is "
            "disabled)") in d.output
    assert "tools: dice" in d.output  # the good table still counts


def test_rtd_check_reports_a_shell_table_that_contradicts_itself(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        '[tools.shell]\ncommands = { disk = ["df", "-h", "/"], off = [] }\n'
                        'allow_arguments = ["lights"]\n[tools.dice]\n', audio="none")
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    assert ('tools.shell: commands.off is empty: give the program and its arguments, e.g. '
            '["df", "-h", "/"]; allow_arguments names \'lights\', not in commands (disk, off) '
            "(tools.shell is disabled)") in d.output
    assert "tools: dice" in d.output
    assert "Traceback" not in d.output


@pytest.mark.parametrize("plugin", ["rtd-example", "rtd-shell"])
def test_each_plugins_own_tests_pass_from_its_folder(plugin):
    """What a plugin author runs (`cd plugins/rtd-x && python -m pytest -q`) keeps passing."""
    folder = PLUGIN_FOLDERS / plugin
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          cwd=folder, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in done.stdout
