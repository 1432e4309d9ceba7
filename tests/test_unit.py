"""systemd/rtd.service: its security rating, `systemd-analyze verify`, what it promises, and
whether rtd still works under its filters (tests/sandbox.py installs the same seccomp rules)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from rtd import config as cfg
from rtd import exitcodes
from rtd.builtin.senders import SocketSettings
from rtd.emulator import DEMO_QUESTION_WAV, DEMO_SCENARIO, Emulator, load_scenario
from rtd.emulator.voice import synthesize

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "rtd.service"
SANDBOX = ROOT / "tests" / "sandbox.py"
LIMIT = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package `systemd`; .ci/run installs it)")


def _libseccomp() -> bool:
    import ctypes

    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        return False
    return True


needs_seccomp = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None or not _libseccomp(),
    reason="needs systemd-analyze and libseccomp2 (Debian package `systemd` brings both)")


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


@needs_analyze
def test_security_exposure_is_at_most_2():
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for rtd\.service: (\d+\.\d+) (\w+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    score, verdict = float(match.group(1)), match.group(2)
    print(f"systemd-analyze security --offline=yes: {score} {verdict} (limit {LIMIT})")
    assert score <= LIMIT, proc.stdout
    readme = (ROOT / "README.md").read_text()
    assert f"**{score} ({verdict})**" in readme, "README.md does not state the current score"
    assert f"scores this unit {score} ({verdict})" in UNIT.read_text()


@needs_analyze
def test_verify_accepts_the_unit(tmp_path):
    """As installed, except that ExecStart= names this test run's own `rtd`: /opt/rtd does not
    exist here (tests/test_install.py verifies the unit where it does)."""
    rtd = Path(sys.executable).parent / "rtd"
    assert rtd.exists(), f"{rtd}: rtd is not installed next to the interpreter"
    text = UNIT.read_text()
    assert "ExecStart=/opt/rtd/bin/rtd run" in text
    unit = tmp_path / "rtd.service"
    unit.write_text(text.replace("ExecStart=/opt/rtd/bin/rtd", f"ExecStart={rtd}"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), \
        proc.stdout + proc.stderr


def test_the_unit_is_what_the_daemon_expects():
    s = settings()
    one = {key: values[-1] for key, values in s.items()}
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert int(one["WatchdogSec"]) > 0
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"].split() == [str(exitcodes.EX_NOPERM),
                                                      str(exitcodes.EX_CONFIG)]
    assert one["User"] == "rtd" and one["SupplementaryGroups"] == "audio"
    assert one["LoadCredential"] == f"{cfg.CREDENTIAL_NAME}:/etc/rtd/api_key"
    assert one["RuntimeDirectory"] == "rtd" and one["StateDirectory"] == "rtd"
    assert SocketSettings().path.startswith("/run/rtd/")  # the control socket lives there
    assert int(one["RuntimeDirectoryMode"], 8) & 0o007 == 0  # owner and group only
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    # options that break audio: off, and each says why
    assert "MemoryDenyWriteExecute" not in s and "PrivateDevices" not in s
    assert "PrivateUsers" not in s and "ProcSubset" not in s
    text = UNIT.read_text()
    for option in ("MemoryDenyWriteExecute", "PrivateDevices", "PrivateUsers", "ProcSubset"):
        assert f"# Not {option}=" in text, f"the unit does not say why {option}= is not set"
    assert one["DeviceAllow"] == "char-alsa rw" and one["DevicePolicy"] == "closed"
    assert set(one["RestrictAddressFamilies"].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}


def _run_sandboxed(*args: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SANDBOX), *args, "--", sys.executable, "-c",
                           code], capture_output=True, text=True, timeout=60)


@needs_seccomp
def test_memory_deny_write_execute_would_break_sounddevice():
    """The reason the unit leaves MemoryDenyWriteExecute= off, measured: under its seccomp rule
    cffi cannot make the callback every sounddevice stream is opened with."""
    code = ("import mmap, sounddevice\n"
            "try:\n"
            "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
            "    print('write+execute memory: allowed')\n"
            "except OSError:\n"
            "    print('write+execute memory: refused')\n"
            "try:\n"
            "    sounddevice._ffi.callback('PaStreamCallback', lambda *a: 0)\n"
            "    print('callback: made')\n"
            "except MemoryError as exc:\n"
            "    print('callback:', exc)\n")
    under = _run_sandboxed("--unit", "/dev/null", "--mdwe", code=code)
    assert "write+execute memory: refused" in under.stdout, under.stdout + under.stderr
    assert "callback: Cannot allocate write+execute memory for ffi.callback()" in under.stdout
    # with the unit's own filters (no MemoryDenyWriteExecute=) the callback is made
    unit = _run_sandboxed(code=code)
    assert "callback: made" in unit.stdout, unit.stdout + unit.stderr


@needs_seccomp
def test_the_units_filters_are_really_applied_by_the_sandbox():
    code = ("import errno, os, socket\n"
            "for family in (socket.AF_NETLINK, socket.AF_PACKET):\n"
            "    try:\n"
            "        socket.socket(family, socket.SOCK_RAW)\n"
            "    except OSError as exc:\n"
            "        print(family, errno.errorcode[exc.errno])\n"
            "socket.socket(socket.AF_INET6).close()\n"
            "try:\n"
            "    os.setpriority(os.PRIO_PROCESS, 0, 5)\n"  # @resources: filtered out
            "except OSError as exc:\n"
            "    print('setpriority', errno.errorcode[exc.errno])\n")
    proc = _run_sandboxed(code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["16 EAFNOSUPPORT", "17 EAFNOSUPPORT",
                                           "setpriority EPERM"]


@pytest.mark.pulse
@needs_seccomp
def test_a_conversation_inside_the_units_seccomp_filters(pulse, run_rtd, tmp_path):
    """The whole daemon (Python, numpy, soxr, cffi callbacks from PortAudio, ALSA's pulse plugin
    over AF_UNIX, the WebSocket over AF_INET) under the unit's SystemCallFilter=,
    SystemCallErrorNumber= and RestrictAddressFamilies=."""
    with Emulator(scenario=load_scenario(DEMO_SCENARIO), voice_engine="tones") as emu:
        _converse(pulse, run_rtd, emu, tmp_path)


def _converse(pulse, run_rtd, emu, tmp_path: Path) -> None:
    conf = tmp_path / "rtd.toml"
    conf.write_text(f'[provider]\nname = "custom"\nurl = "{emu.url}"\n'
                    '[audio.input]\ndevice = "pulse"\n[audio.output]\ndevice = "pulse"\n'
                    "[tools.clock]\n")
    d = run_rtd("run", "--config", str(conf), wrap=(sys.executable, str(SANDBOX), "--"),
                extra_env={**pulse.env, "PULSE_SOURCE": "mic.monitor", "PULSE_SINK": "speaker"})
    d.wait_for_line("session ready")
    rec_path = tmp_path / "speaker.wav"
    with pulse.record_speaker(rec_path):
        pulse.play_into_mic(DEMO_QUESTION_WAV)
        answer = d.wait_for_line("assistant: It is", timeout=30).split("assistant: ", 1)[1]
        spoken = np.frombuffer(synthesize(answer, "tones"), np.int16)
        threading.Event().wait(len(spoken) / 24000 + 2.0)
    assert d.stop() == 0
    assert "user: What time is it?" in d.output and "tool: clock" in d.output
    assert "Traceback" not in d.output
    with wave.open(str(rec_path)) as w:
        recorded = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    loud = np.abs(recorded.astype(np.int32)) > 1000
    assert loud.sum() > len(spoken) // 2  # the answer came out of the speaker
