"""A private PulseAudio daemon with two null sinks, used as virtual audio cables in tests.

`mic` is a sink the tests play into; rtd records its monitor (`PULSE_SOURCE=mic.monitor`) as the
microphone. `speaker` is where rtd plays (`PULSE_SINK=speaker`); tests record its monitor.
Audio runs through the real sounddevice -> PortAudio -> ALSA `pulse` -> PulseAudio path and is
paced in real time, as on a Pi.

The daemon gets its own XDG_RUNTIME_DIR and HOME in a temporary directory, so it never touches
a desktop's sound server and works as root (it prints a warning about root; that is fine).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path

TOOLS = ("pulseaudio", "pactl", "pacmd", "paplay", "parecord", "pacat")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class PulseUnavailable(Exception):
    """PulseAudio or its utilities are not installed (the tests may skip)."""


class PulseError(Exception):
    """PulseAudio is installed but did not behave (the tests must fail)."""


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


class PulseServer:
    """Starts, queries and stops one private PulseAudio daemon."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rtd-pulse-"))
        self.runtime_dir = self.root / "run"
        self.home = self.root / "home"
        self.socket = self.runtime_dir / "pulse" / "native"
        self.env: dict[str, str] = {}
        """What a client needs to reach this daemon (merged into os.environ by `export`)."""
        self.daemon_env: dict[str, str] = {}
        self.pid: int | None = None
        self._keepalive: dict[str, subprocess.Popen[bytes]] = {}
        self._saved: dict[str, str | None] = {}

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        missing = missing_tools()
        if missing:
            raise PulseUnavailable(
                f"PulseAudio tools not found: {', '.join(missing)} (install with "
                "`apt-get install pulseaudio pulseaudio-utils libasound2-plugins`)"
            )
        self.runtime_dir.mkdir(mode=0o700)
        self.home.mkdir()
        self.daemon_env = {
            **os.environ,
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "HOME": str(self.home),
        }
        for key in ("PULSE_SERVER", "PULSE_SINK", "PULSE_SOURCE", "PULSE_COOKIE"):
            self.daemon_env.pop(key, None)
        cmd = [
            "pulseaudio",
            "--daemonize=yes",
            "--exit-idle-time=-1",
            "--system=false",
            "-n",
            "--load=module-native-protocol-unix",
            "--load=module-cli-protocol-unix",
            "--load=module-null-sink sink_name=speaker",
            "--load=module-null-sink sink_name=mic",
        ]
        try:
            proc = subprocess.run(
                cmd, env=self.daemon_env, capture_output=True, text=True, timeout=START_TIMEOUT
            )
        except subprocess.TimeoutExpired as exc:
            raise PulseError(f"pulseaudio did not daemonize within {START_TIMEOUT} s") from exc
        if proc.returncode != 0:
            raise PulseError(
                f"pulseaudio failed to start (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        self.env = {
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_COOKIE": str(self.home / ".config" / "pulse" / "cookie"),
        }
        pid_file = self.runtime_dir / "pulse" / "pid"
        with contextlib.suppress(OSError, ValueError):
            self.pid = int(pid_file.read_text().strip())
        self._wait_ready()
        self._keep_sinks_awake()

    def _keep_sinks_awake(self, sinks: tuple[str, ...] = ("speaker", "mic")) -> None:
        """Feed digital silence into the sinks at low latency, for the whole session.

        An idle null sink sleeps on a timer of up to 2 s and only notices a new client's
        latency when that timer fires. Until then a new capture stream gets nothing and a new
        ALSA playback stream underruns in a loop, racing through (and losing) whatever is
        queued. A real sound card does not behave like that; a sink kept busy does not either.
        Zeros mix into the sink without changing what the tests play or record.
        """
        for sink in sinks:
            self._keepalive[sink] = subprocess.Popen(
                [
                    "pacat",
                    "--playback",
                    "--raw",
                    f"--device={sink}",
                    "--latency-msec=20",
                    "--rate=24000",
                    "--channels=1",
                    "--format=s16le",
                    "/dev/zero",
                ],
                env=self.client_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        deadline = time.monotonic() + START_TIMEOUT
        latencies: dict[str, int] = {}
        while time.monotonic() < deadline:
            for name in sinks:
                proc = self._keepalive[name]
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    raise PulseError(f"pacat keep-alive exited ({proc.returncode}): {err}")
            latencies = self.sink_latencies_usec()
            if all(latencies.get(name, 10**9) < 100_000 for name in sinks):
                return
            time.sleep(0.05)
        raise PulseError(f"null sinks did not settle to low latency: {latencies} usec")

    def _stop_keepalive(self, sink: str) -> None:
        proc = self._keepalive.pop(sink, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_TIMEOUT)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()

    def _short(self, what: str) -> list[list[str]]:
        out = self.run("pactl", "list", "short", what).stdout
        return [line.split("\t") for line in out.splitlines() if line.strip()]

    def unplug(self, sink: str) -> None:
        """Make a virtual cable vanish the way a USB card does, until `replug`.

        The null sink's module is unloaded, so the device is gone and opening it fails. A real
        card's open streams fail with it; PulseAudio would instead move them to another device,
        so the streams that were on this one are killed, which PortAudio reports as an unplug
        does: host errors, no more callbacks, an inactive stream.
        """
        sinks = {row[1]: row[0] for row in self._short("sinks")}
        sources = {row[1]: row[0] for row in self._short("sources")}
        if sink not in sinks:
            raise PulseError(f"no sink {sink!r} to unplug")
        module = next(row[0] for row in self._short("modules")
                      if row[1] == "module-null-sink" and f"sink_name={sink}" in row[2])
        inputs = [row[0] for row in self._short("sink-inputs") if row[1] == sinks[sink]]
        outputs = [row[0] for row in self._short("source-outputs")
                   if row[1] == sources.get(f"{sink}.monitor")]
        self._stop_keepalive(sink)
        self.run("pactl", "unload-module", module)
        # pactl has no kill command; pacmd speaks to module-cli-protocol-unix
        for index in inputs:
            self.run("pacmd", "kill-sink-input", index, check=False)
        for index in outputs:
            self.run("pacmd", "kill-source-output", index, check=False)

    def suspend(self, sink: str, suspended: bool = True) -> None:
        """Stop (or restart) a cable's clock: its streams stay open and deliver nothing, as
        with a device that hangs."""
        self.run("pactl", "suspend-sink", sink, "1" if suspended else "0")

    def replug(self, sink: str) -> None:
        """Bring an unplugged cable back, awake (see `_keep_sinks_awake`)."""
        self.run("pactl", "load-module", "module-null-sink", f"sink_name={sink}")
        self._keep_sinks_awake((sink,))

    def sink_latencies_usec(self) -> dict[str, int]:
        """Current latency of each sink as `pactl list sinks` reports it."""
        out = self.run("pactl", "list", "sinks", check=False).stdout
        result: dict[str, int] = {}
        name = ""
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("Name:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Latency:") and name:
                with contextlib.suppress(ValueError, IndexError):
                    result[name] = int(line.split()[1])
        return result

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            proc = self.run("pactl", "list", "short", "sinks", check=False)
            sinks = {line.split("\t")[1] for line in proc.stdout.splitlines() if "\t" in line}
            if proc.returncode == 0 and {"speaker", "mic"} <= sinks:
                return
            last = (proc.stderr or proc.stdout).strip()
            time.sleep(0.1)
        raise PulseError(f"PulseAudio did not answer `pactl` within {START_TIMEOUT} s: {last}")

    def stop(self) -> None:
        """Kill the daemon (only the one we started) and remove its directory."""
        self.unexport()
        for sink in list(self._keepalive):
            self._stop_keepalive(sink)
        if self.daemon_env:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                subprocess.run(
                    ["pulseaudio", "--kill"],
                    env=self.daemon_env,
                    capture_output=True,
                    timeout=STOP_TIMEOUT,
                )
        if self.pid is not None and not self._wait_gone(self.pid, STOP_TIMEOUT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_gone(self.pid, STOP_TIMEOUT)
        shutil.rmtree(self.root, ignore_errors=True)

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                return False
            # A daemonized process is reparented; if it is our zombie, reap it.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        return False

    def export(self) -> None:
        """Point this process (and its children) at the daemon."""
        for key, value in self.env.items():
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def unexport(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved.clear()

    # -- helpers ----------------------------------------------------------------------------

    def client_env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, **self.env, **extra}

    def run(
        self, *cmd: str, check: bool = True, timeout: float = 10.0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(cmd), env=self.client_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise PulseError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def play_into_mic(self, wav_path: str | os.PathLike[str], timeout: float | None = None) -> None:
        """Play a WAV into the `mic` sink and wait until it has been played (real time)."""
        if timeout is None:
            try:
                with wave.open(str(wav_path), "rb") as w:
                    timeout = w.getnframes() / w.getframerate() + 10.0
            except (wave.Error, EOFError):  # e.g. WAVE_FORMAT_EXTENSIBLE, as sox writes
                timeout = 60.0
        self.run("paplay", "--device=mic", str(wav_path), timeout=timeout)

    @contextlib.contextmanager
    def record_speaker(
        self,
        path: str | os.PathLike[str],
        rate: int = 24000,
        channels: int = 1,
        timeout: float = 5.0,
    ) -> Iterator[Path]:
        """Record `speaker.monitor` to a WAV while the block runs; the file is complete after.

        Returns once recording is live (the file grows), so nothing played after entering the
        block is missed.
        """
        path = Path(path)
        proc = subprocess.Popen(
            [
                "parecord",
                "--device=speaker.monitor",
                "--file-format=wav",
                f"--rate={rate}",
                f"--channels={channels}",
                "--format=s16le",
                "--latency-msec=20",
                str(path),
            ],
            env=self.client_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + timeout
            while not (path.exists() and path.stat().st_size > 1024):
                if proc.poll() is not None:
                    raise PulseError(
                        f"parecord exited ({proc.returncode}): "
                        f"{proc.stderr.read().decode(errors='replace').strip()}"
                    )
                if time.monotonic() > deadline:
                    raise PulseError(f"parecord wrote nothing to {path} within {timeout} s")
                time.sleep(0.02)
            yield path
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # parecord finalises the WAV header on SIGINT
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


@contextlib.contextmanager
def cables_for_this_process(**pulse_env: str) -> Iterator[PulseServer]:
    """A private daemon this process (and its children) and PortAudio use, stopped after.

    For the benches, which play and record in their own process; the tests use the `pulse`
    fixture. ``pulse_env`` is PULSE_SINK / PULSE_SOURCE. Raises PulseUnavailable when
    PulseAudio is not installed.
    """
    cables = PulseServer()
    cables.start()
    try:
        cables.export()
        os.environ.update(pulse_env)
        import sounddevice  # noqa: F401  (initialises PortAudio, which reinit_portaudio redoes)

        reinit_portaudio()
        yield cables
    finally:
        cables.stop()


def reinit_portaudio() -> None:
    """PortAudio lists devices once, at initialisation: re-initialise it so ALSA's `pulse`
    device (which exists only while a PulseAudio daemon answers) appears."""
    sd = sys.modules.get("sounddevice")
    if sd is not None:
        sd._terminate()
        sd._initialize()
