"""`rtd status`, `rtd wake`, `rtd sleep` and `rtd talk` as a user runs them, against `rtd run`."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from rtdproc import KEY, wait_until, write_config

from rtd.actors.control import STATUS_KEYS
from rtd.emulator import DEMO_QUESTION_WAV


def test_status_json_wake_sleep_and_talk_reach_the_running_daemon(run_rtd, demo_emulator,
                                                                   tmp_path):
    conf = write_config(tmp_path / "rtd.toml", demo_emulator.url, input_wav=DEMO_QUESTION_WAV,
                        output_wav=tmp_path / "out.wav")
    sock = tmp_path / "control.sock"
    d = run_rtd("run", "--config", str(conf))
    d.wait_for_line("connected to", timeout=20)
    assert wait_until(sock.exists, timeout=10)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # owner only: it can wake a paid session

    def status() -> dict:
        s = run_rtd("status", "--json", "--config", str(conf))
        assert s.wait() == 0, s.output
        assert s.output.lstrip().startswith("{"), s.output
        return json.loads(s.output)  # stdout holds the JSON object and nothing else

    first = status()
    assert set(STATUS_KEYS) <= set(first)
    assert first["pid"] == d.proc.pid
    assert wait_until(lambda: status()["connected"] is True, timeout=10)

    human = run_rtd("status", "--config", str(conf))
    assert human.wait() == 0
    assert "connected: yes" in human.output
    assert KEY not in human.output

    for args in (("wake",), ("sleep",), ("talk", "start"), ("talk", "cancel")):
        c = run_rtd(*args, "--config", str(conf))
        assert c.wait() == 0, (args, c.output)
        assert c.output == ""
    assert d.stop() == 0
    assert "Traceback" not in d.output
    assert not sock.exists()


def test_status_when_rtd_is_not_running_is_one_line(run_rtd, tmp_path: Path):
    conf = write_config(tmp_path / "rtd.toml", "ws://127.0.0.1:9/v1/realtime",
                        input_wav=DEMO_QUESTION_WAV, output_wav=tmp_path / "out.wav")
    for command in ("status", "wake", "sleep"):
        c = run_rtd(command, "--config", str(conf))
        assert c.wait() == 1
        lines = c.output.strip().splitlines()
        assert len(lines) == 1, c.output
        assert "rtd is not running (nothing answers on" in lines[0]
        assert str(tmp_path / "control.sock") in lines[0]
