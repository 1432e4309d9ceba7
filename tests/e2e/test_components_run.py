"""Senders and receivers in the real daemon: rtd say in, console and transcript log out."""

from __future__ import annotations

import json
import subprocess
import sys

from rtdproc import KEY, wait_until

from rtd.emulator import Emulator


def test_text_in_through_the_socket_out_through_receivers(run_rtd, tmp_path, env):
    sock = tmp_path / "rtd.sock"
    log = tmp_path / "transcript.jsonl"
    with Emulator(voice_engine="tones") as emu:
        conf = tmp_path / "rtd.toml"
        conf.write_text(f"""
[provider]
name = "custom"
url = "{emu.url}"
[session]
output = "text"
[audio.input]
backend = "none"
[audio.output]
backend = "none"
[senders.socket]
path = "{sock}"
[receivers.console]
[receivers.transcript_log]
path = "{log}"
[receivers.consle]
""")
        d = run_rtd("run", "--config", str(conf))
        warn = d.wait_for_line("not running: receivers.consle")
        assert "did you mean 'console'?" in warn
        d.wait_for_line("session ready")
        assert wait_until(sock.exists, timeout=20)
        say = subprocess.run([sys.executable, "-m", "rtd", "say", "--socket", str(sock),
                              "Is the oven on?"], capture_output=True, text=True, env=env,
                             timeout=20)
        assert say.returncode == 0, say.stderr
        d.wait_for_line("assistant: ")  # printed by the console receiver
        created = emu.wait_for(lambda e: e["type"] == "conversation.item.create", timeout=10)
        assert created["item"]["content"] == [{"type": "input_text", "text": "Is the oven on?"}]
        emu.wait_for(lambda e: e["type"] == "response.create", timeout=10)
        assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 2,
                          timeout=20)
        assert d.stop() == 0
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    # typed text is part of the dialogue, as spoken input is (text-only replies still logged)
    assert [x["role"] for x in lines] == ["user", "assistant"]
    assert lines[0]["text"] == "Is the oven on?" and lines[1]["text"]
    assert "you: Is the oven on?" in d.output and "user: Is the oven on?" in d.output
    assert any(line.startswith("assistant: ") for line in d.lines)
    assert "Traceback" not in d.output and KEY not in d.output
    assert not sock.exists()


def test_check_reports_broken_component_tables(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text("""
[provider]
name = "custom"
url = "ws://127.0.0.1:9/v1/realtime"
[audio.input]
backend = "none"
[audio.output]
backend = "none"
[tools.clock]
timezone = 5
[receivers.nothing_here]
""")
    d = run_rtd("check", "--config", str(conf))
    assert d.wait() == 78
    assert "tools.clock.timezone: expected a string, got an integer 5 (tools.clock is " \
           "disabled)" in d.output
    assert "receivers.nothing_here: no installed plugin provides a receiver named " \
           "'nothing_here'" in d.output


def test_plugins_command_lists_components(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text("[tools.clock]\n[receivers.console]\n")
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait() == 0
    out = d.output
    assert "builtin (rtd-voice 0.1.0): loaded" in out
    assert [ln.split() for ln in d.lines if "clock" in ln or "console" in ln
            or "socket" in ln] == [["tool", "clock", "enabled"], ["sender", "socket", "available"],
                                   ["receiver", "console", "enabled"]]
