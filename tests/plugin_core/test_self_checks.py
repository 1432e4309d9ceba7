"""The built-in components' self-checks, and what `rtd check` and `rtd run` do with them.

A self-check reports what a table's types cannot show (a time zone this machine lacks, a file
the daemon could not write, a socket path too long to bind) before anything runs: `rtd check`
prints one ``section.key: ...`` line each and exits 78, `rtd run` logs each and runs without
that component.
"""

from __future__ import annotations

import json
import os

import pytest
from rtdproc import KEY

from rtd.builtin.clock import ClockSettings, check_clock, clock
from rtd.builtin.receivers import TranscriptLogReceiver, TranscriptLogSettings
from rtd.builtin.senders import SocketSender, SocketSettings
from rtd.builtin.unixsocket import MAX_SOCKET_PATH
from rtd.emulator import Emulator

NO_AUDIO = '[audio.input]\nbackend = "none"\n[audio.output]\nbackend = "none"\n'


# -- the clock --------------------------------------------------------------------------------


def test_clock_check_refuses_a_zone_this_machine_does_not_know():
    assert check_clock(ClockSettings("Europe/Berlin")) == []
    assert check_clock(ClockSettings("")) == []  # the system's zone
    assert check_clock(ClockSettings("Mars/Base")) == [
        "timezone: unknown time zone 'Mars/Base'; expected an IANA name such as "
        "'Europe/Berlin', or empty for the system's"]
    assert clock.check(ClockSettings("../../etc/passwd"))[0].startswith(
        "timezone: unknown time zone '../../etc/passwd'")


def test_the_clock_call_judges_the_zone_the_same_way():
    """One judgement of a zone name: the call's error output is the check's finding."""
    out = json.loads(clock.run(ClockSettings("Mars/Base"), "{}"))
    assert out == {"error": "unknown time zone 'Mars/Base' in tools.clock.timezone"}


# -- the transcript log -----------------------------------------------------------------------


def test_transcript_log_check_accepts_a_file_it_can_create(tmp_path):
    assert TranscriptLogReceiver.check(TranscriptLogSettings(str(tmp_path / "a" / "t.jsonl"))) \
        == []
    existing = tmp_path / "t.jsonl"
    existing.write_text("")
    assert TranscriptLogReceiver.check(TranscriptLogSettings(str(existing))) == []
    assert not (tmp_path / "a").exists()  # a check creates nothing


def test_transcript_log_check_names_a_path_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert TranscriptLogReceiver.check(TranscriptLogSettings(str(blocker / "t.jsonl"))) == [
        f"path: cannot create {blocker / 't.jsonl'}: {blocker} is not a directory"]
    assert TranscriptLogReceiver.check(TranscriptLogSettings(str(tmp_path))) == [
        f"path: {tmp_path} is a directory, expected a file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only permissions")
def test_transcript_log_check_names_a_folder_without_write_permission(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    problem = TranscriptLogReceiver.check(TranscriptLogSettings(str(locked / "t.jsonl")))
    assert problem and problem[0].startswith(f"path: cannot create {locked / 't.jsonl'}: "
                                             f"{locked} is not writable by ")


# -- the socket -------------------------------------------------------------------------------


def test_socket_check_names_what_would_stop_it_listening(tmp_path):
    assert SocketSender.check(SocketSettings(str(tmp_path / "run" / "rtd.sock"))) == []
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert SocketSender.check(SocketSettings(str(notes))) == [
        f"path: {notes} exists and is not a socket; remove it or choose another "
        "senders.socket.path"]
    for long in (tmp_path / ("x" * (MAX_SOCKET_PATH + 1 - len(str(tmp_path)))),
                 # a short name in a long folder: the staging path beside it is too long
                 tmp_path / ("d" * (MAX_SOCKET_PATH - 10 - len(str(tmp_path)))) / "s"):
        assert SocketSender.check(SocketSettings(str(long))) == [
            f"path: {long} is too long for a Unix socket: rtd binds it as {long.parent}/"
            f".rtd-xxxxxxxx/s first, and Linux takes at most {MAX_SOCKET_PATH} bytes; choose "
            "a shorter one"]
    assert notes.read_text() == "keep me"


def test_socket_mode_is_checked_with_the_table():
    with pytest.raises(ValueError, match=r"^mode '0999' is not an octal mode such as '0660'$"):
        SocketSettings(mode="0999")
    with pytest.raises(ValueError, match="is not an octal mode"):
        SocketSettings(mode="rw-rw----")
    assert SocketSettings(mode="600").mode == "600"


# -- rtd check and rtd run ---------------------------------------------------------------------


def test_rtd_check_prints_every_self_check_line_and_exits_78(run_rtd, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    conf = tmp_path / "rtd.toml"
    conf.write_text(f'[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
                    f'{NO_AUDIO}[tools.clock]\ntimezone = "Mars/Base"\n'
                    f'[receivers.transcript_log]\npath = "{blocker / "t.jsonl"}"\n'
                    f'[receivers.console]\n[senders.socket]\npath = "{tmp_path / "s.sock"}"\n'
                    'mode = "0999"\n')
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 78
    for line in (
            "tools.clock.timezone: unknown time zone 'Mars/Base'; expected an IANA name such as "
            "'Europe/Berlin', or empty for the system's (tools.clock is disabled)",
            f"receivers.transcript_log.path: cannot create {blocker / 't.jsonl'}: {blocker} is "
            "not a directory (receivers.transcript_log is disabled)",
            "senders.socket: mode '0999' is not an octal mode such as '0660' (senders.socket is "
            "disabled)"):
        assert line in d.output, d.output
    assert "receivers: console" in d.lines  # what passed its check still counts
    assert "tools: none" in d.lines
    assert "Traceback" not in d.output


def test_rtd_check_is_clean_when_every_check_passes(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text(f'[provider]\nname = "custom"\nurl = "ws://127.0.0.1:9/v1/realtime"\n'
                    f'{NO_AUDIO}[tools.clock]\ntimezone = "Europe/Berlin"\n'
                    f'[receivers.transcript_log]\npath = "{tmp_path / "log" / "t.jsonl"}"\n')
    d = run_rtd("check", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    assert "config OK" in d.lines and "tools: clock" in d.lines


def test_rtd_run_logs_a_failed_self_check_and_runs_without_the_component(run_rtd, tmp_path):
    with Emulator(voice_engine="tones") as emu:
        conf = tmp_path / "rtd.toml"
        conf.write_text(f'[provider]\nname = "custom"\nurl = "{emu.url}"\n[session]\n'
                        f'output = "text"\n{NO_AUDIO}[tools.clock]\ntimezone = "Mars/Base"\n'
                        '[receivers.console]\n')
        d = run_rtd("run", "--config", str(conf))
        line = d.wait_for_line("not running: tools.clock.timezone: unknown time zone")
        assert line.endswith("(tools.clock is disabled)")
        d.wait_for_line("session ready")
        update = emu.wait_for(lambda e: e["type"] == "session.update", timeout=10)
        assert update["session"].get("tools", []) == []  # the model is not offered the clock
        assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output


def test_rtd_plugins_marks_an_enabled_component_whose_check_fails(run_rtd, tmp_path):
    conf = tmp_path / "rtd.toml"
    conf.write_text('[tools.clock]\ntimezone = "Mars/Base"\n[receivers.console]\n')
    d = run_rtd("plugins", "--config", str(conf))
    assert d.wait(timeout=30) == 0, d.output
    rows = {tuple(line.split(None, 2)) for line in d.lines if line.startswith("  ")}
    assert ("tool", "clock", "enabled, but its self-check fails (see rtd check)") in rows
    assert ("receiver", "console", "enabled") in rows
