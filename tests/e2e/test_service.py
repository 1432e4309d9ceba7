"""`rtd run` as systemd runs it: the notify protocol, SIGHUP reloads, journald logs, stdin.

The service manager's end is a real datagram socket this test binds (tests/notifysock.py); the
daemon is the real process, talking to the real emulator on loopback.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from notifysock import NotifySocket
from rtdproc import KEY, write_config

from rtd.emulator import DEMO_QUESTION_WAV

WATCHDOG_USEC = "2000000"
"""2 s: a beat every second, so a test sees several."""


@pytest.fixture
def notify(tmp_path: Path):
    sock = NotifySocket(tmp_path / "notify")
    yield sock
    sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_updates(emu) -> list[dict]:
    return [e for e in emu.received if e["type"] == "session.update"]


def test_ready_status_watchdog_and_stopping(run_rtd, demo_emulator, notify, tmp_path):
    emu = demo_emulator
    conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=tmp_path / "out.wav")
    d = run_rtd("run", "--config", str(conf),
                extra_env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": WATCHDOG_USEC})
    got = notify.wait_for(lambda ms: any("READY" in m for m in ms), what="READY=1")
    ready = next(m for m in got if "READY" in m)
    assert ready.fields["READY"] == "1"
    assert ready.pid == d.proc.pid  # from the main process (NotifyAccess=main)
    assert ready.fields["STATUS"].startswith(f"connected to {emu.url}")
    d.wait_for_line("session ready")  # the actors are up and the session is configured
    # the question plays: the server hears speech, and the state is in STATUS=
    notify.wait_for(lambda ms: any("listening" in m.fields.get("STATUS", "") for m in ms),
                    timeout=30, what="STATUS= with the listening state")
    beats = notify.wait_for(lambda ms: sum("WATCHDOG" in m for m in ms) >= 3,
                            what="three watchdog beats")
    assert all(m.pid == d.proc.pid for m in beats)
    assert d.stop() == 0
    stopping = notify.wait_for(lambda ms: any("STOPPING" in m for m in ms), timeout=5,
                               what="STOPPING=1")
    kinds = [next(iter(m.fields)) for m in stopping]
    assert kinds.index("READY") < kinds.index("STOPPING")
    assert "Traceback" not in d.output and KEY not in d.output


def test_ready_while_retrying_on_an_abstract_socket(run_rtd, tmp_path):
    """The first attempt failed: ready, saying so, and the watchdog is fed (knowingly
    reconnecting is healthy). The notify socket is an abstract one this time."""
    notify = NotifySocket(abstract=f"rtd-test-{uuid.uuid4().hex}")
    try:
        port = _free_port()
        conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{port}/v1/realtime",
                            input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav")
        d = run_rtd("run", "--config", str(conf),
                    extra_env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": WATCHDOG_USEC})
        got = notify.wait_for(lambda ms: any("READY" in m for m in ms), what="READY=1")
        status = next(m for m in got if "READY" in m).fields["STATUS"]
        assert status.startswith(f"reconnecting (cannot connect to ws://127.0.0.1:{port}")
        assert "connection refused" in status and status.endswith("retrying)")
        notify.wait_for(lambda ms: sum("WATCHDOG" in m for m in ms) >= 2,
                        what="watchdog beats while reconnecting")
        assert d.stop() == 0
    finally:
        notify.close()


def test_watchdog_pid_of_another_process_means_no_beats(run_rtd, tmp_path, notify):
    """WATCHDOG_PID names the process meant to beat; a daemon that inherited it stays quiet."""
    conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{_free_port()}/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav")
    d = run_rtd("run", "--config", str(conf),
                extra_env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": WATCHDOG_USEC,
                           "WATCHDOG_PID": "1"})
    notify.wait_for(lambda ms: any("READY" in m for m in ms), what="READY=1")
    d.wait_for_count("retrying in", 3)  # a few seconds in which beats would have come
    assert not notify.messages("WATCHDOG")
    assert d.stop() == 0


def _reloaded(notify: NotifySocket, after: float) -> tuple[dict, dict]:
    """Wait for RELOADING=1 then READY=1 sent after ``after``; their fields (and print how
    long the reload took, against systemd's expectation of a few seconds)."""
    got = notify.wait_for(
        lambda ms: any("RELOADING" in m and m.at >= after for m in ms) and any(
            "READY" in m and m.at > next(r.at for r in ms if "RELOADING" in r and r.at >= after)
            for m in ms), what="RELOADING=1 then READY=1")
    reloading = next(m for m in got if "RELOADING" in m and m.at >= after)
    ready = next(m for m in got if "READY" in m and m.at > reloading.at)
    print(f"reload: READY=1 {ready.at - reloading.at:.2f} s after RELOADING=1 (target: 5 s)")
    return reloading.fields, ready.fields


def test_sighup_applies_a_new_config_on_the_same_connection(run_rtd, demo_emulator, notify,
                                                           tmp_path):
    emu = demo_emulator
    out1, out2 = tmp_path / "first.wav", tmp_path / "second.wav"
    conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=out1)
    d = run_rtd("run", "--config", str(conf),
                extra_env={"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": WATCHDOG_USEC})
    d.wait_for_line("session ready")
    notify.wait_for(lambda ms: any("READY" in m for m in ms), what="READY=1")
    assert len(_session_updates(emu)) == 1

    text = conf.read_text().replace(f'path = "{out1}"', f'path = "{out2}"')
    conf.write_text(text + '\n[session]\ninstructions = "Answer like a ship\'s captain."\n'
                    'speed = 1.2\n\n[receivers.console]\n')
    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    sent = time.monotonic()
    d.proc.send_signal(1)  # SIGHUP
    reloading, ready = _reloaded(notify, sent)
    after_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert before_usec <= int(reloading["MONOTONIC_USEC"]) <= after_usec
    assert ready["STATUS"].startswith(f"connected to {emu.url}")
    line = d.wait_for_line("reloaded ")
    assert f"reloaded {conf}: " in line
    assert "restarted audio_output" in line and "started receivers.console" in line
    assert "sent the new session settings" in line and "restarted session" not in line

    updates = emu.wait_for(lambda e: e["type"] == "session.update"
                           and "captain" in e["session"].get("instructions", ""), timeout=10)
    assert updates["session"]["audio"]["output"]["speed"] == 1.2
    assert emu.connections == 1  # live, on the same connection
    assert len(_session_updates(emu)) == 2
    assert out2.exists()  # the restarted speaker writes where the new config says
    # the watchdog beat through the reload and goes on
    notify.wait_for(lambda ms: sum("WATCHDOG" in m and m.at > sent for m in ms) >= 2,
                    what="watchdog beats after the reload")
    assert d.stop() == 0
    assert "Traceback" not in d.output and KEY not in d.output


def test_sighup_with_a_bad_config_keeps_the_running_one(run_rtd, demo_emulator, notify,
                                                      tmp_path):
    emu = demo_emulator
    conf = write_config(tmp_path / "rtd.toml", emu.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=tmp_path / "out.wav")
    good = conf.read_text()
    d = run_rtd("run", "--config", str(conf), extra_env={"NOTIFY_SOCKET": notify.address})
    d.wait_for_line("session ready")

    conf.write_text(good + '\n[session]\nvoice = "robot"\nturn_detect = "none"\n')
    sent = time.monotonic()
    d.proc.send_signal(1)
    _reloading, ready = _reloaded(notify, sent)
    rejected = d.wait_for_line("reload rejected")
    assert "ERROR" in rejected  # at error level, and every problem with the file named:
    assert f"{conf}: invalid configuration:" in d.output
    assert "session.voice: expected one of" in d.output
    assert "session.turn_detect: unknown key (did you mean 'turn_detection'?)" in d.output
    assert ready["STATUS"].startswith("connected to")

    conf.write_text("this is [not toml")
    sent = time.monotonic()
    d.proc.send_signal(1)
    _reloaded(notify, sent)
    d.wait_for_count("reload rejected", 2)
    assert f"{conf}: not valid TOML" in d.output
    assert d.proc.poll() is None and emu.connections == 1
    assert len(_session_updates(emu)) == 1  # nothing of the bad files reached the server

    conf.write_text(good + '\n[session]\ninstructions = "Be brief."\n')
    d.proc.send_signal(1)
    assert "sent the new session settings" in d.wait_for_line("reloaded ")
    assert d.stop() == 0
    assert "Traceback" not in d.output


def test_journald_lines_carry_levels_and_no_timestamps(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{_free_port()}/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav")
    conf.write_text(conf.read_text().replace(
        'api_key_env = "OPENAI_API_KEY"',
        'api_key_env = "OPENAI_API_KEY"\nheaders = { "x-gateway-key" = "gw-secret-5150" }'))
    conf.chmod(0o644)
    d = run_rtd("run", "--config", str(conf), journal=True)
    d.wait_for_count("retrying in", 2)
    assert d.stop() == 0
    lines = [ln for ln in d.lines if ln]
    assert all(re.match(r"<[0-7]>", ln) for ln in lines), d.output
    assert not any(re.search(r"\b\d\d:\d\d:\d\d\b", ln) for ln in lines)  # no time of our own
    assert f"<6>rtd: using config {conf} (--config)" in lines
    retry = next(ln for ln in lines if "retrying in" in ln)
    assert retry.startswith("<4>rtd.protocol.transport: cannot connect")
    exposed = next(ln for ln in lines if "every user of this machine can read it" in ln)
    assert exposed.startswith(f"<4>rtd: {conf}: ") and "provider.headers" in exposed
    assert any(ln.startswith("<6>rtd: rtd ") and "running" in ln for ln in lines)
    assert KEY not in d.output and "gw-secret-5150" not in d.output


def test_journald_errors_and_a_stream_that_is_not_the_journal(run_rtd, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[session]\nvoice = "robot"\n')
    d = run_rtd("run", "--config", str(bad), journal=True)
    assert d.wait() == 78
    assert f"<3>rtd: {bad}: invalid configuration:" in d.lines
    assert any(ln.startswith("<3>  session.voice: expected one of") for ln in d.lines)
    # $JOURNAL_STREAM inherited by a process whose stderr goes elsewhere: plain lines
    d = run_rtd("run", "--config", str(bad), extra_env={"JOURNAL_STREAM": "8:12345"})
    assert d.wait() == 78
    assert not any(ln.startswith("<") for ln in d.lines)


def test_stdin_sender_on_dev_null_says_so_once_and_stays_down(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{_free_port()}/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav",
                        extra="\n[senders.stdin]\n")
    with open(os.devnull) as null:
        d = run_rtd("run", "--config", str(conf), stdin=null)
        d.wait_for_line("senders.stdin: standard input is /dev/null (as under systemd)")
        d.wait_for_count("retrying in", 3)  # past the first restart delay of a failed sender
        assert d.stop() == 0
        assert d.count("senders.stdin: standard input is /dev/null") == 1
        assert "senders.stdin failed" not in d.output and "Traceback" not in d.output
        check = run_rtd("check", "--config", str(conf), stdin=null)
        assert check.wait() == 78
        assert "senders.stdin: standard input is /dev/null" in check.output


def test_stdin_sender_on_a_regular_file(run_rtd, tmp_path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav",
                        extra="\n[senders.stdin]\n")
    lines = tmp_path / "lines.txt"
    lines.write_text("hello\n")
    with lines.open() as stdin:
        check = run_rtd("check", "--config", str(conf), stdin=stdin)
        assert check.wait() == 78
    assert "senders.stdin: standard input is a regular file" in check.output
    piped = run_rtd("check", "--config", str(conf), stdin=subprocess.PIPE)
    piped.proc.stdin.close()
    assert piped.wait() == 0, piped.output


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this user cannot create files in: a 0555 one, or for root (who may write
    anywhere the mode allows) /proc/sys, where the kernel lets nobody create files."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for candidate in (locked, Path("/proc/sys")):
        if not os.access(candidate, os.W_OK):
            return candidate
    pytest.skip("found no directory this user cannot write to")


def test_socket_path_that_cannot_be_written_says_so_once(run_rtd, tmp_path):
    """As under ProtectSystem=strict outside /run/rtd: a directory rtd may not write to."""
    locked = _unwritable_dir(tmp_path)
    path = locked / "rtd.sock"
    conf = write_config(tmp_path / "rtd.toml", f"ws://127.0.0.1:{_free_port()}/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav",
                        extra=f'\n[senders.socket]\npath = "{path}"\n')
    problem = f"senders.socket.path: cannot create {path}: {locked} is not writable by "
    check = run_rtd("check", "--config", str(conf))
    assert check.wait() == 78, check.output
    assert problem in check.output
    # rtd run finds the same with the same self-check, and leaves the sender down
    d = run_rtd("run", "--config", str(conf))
    d.wait_for_line(f"not running: {problem}")
    d.wait_for_count("retrying in", 3)  # past the first restart delay of a failed sender
    assert d.stop() == 0
    assert d.count(problem) == 1
    assert "senders.socket failed" not in d.output and "Traceback" not in d.output
