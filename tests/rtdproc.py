"""Helpers for driving the real `rtd` process in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

KEY = "sk-e2e-secret-key-0042"


class Daemon:
    """A running `rtd` subprocess whose stderr is collected line by line.

    ``journal`` connects its stdout and stderr to a pipe named in ``$JOURNAL_STREAM``, as
    systemd does with the journal's stream socket; ``stdin`` is passed to Popen as it is;
    ``wrap`` is a command that runs rtd's (tests/sandbox.py).
    """

    def __init__(self, args: list[str], env: dict[str, str], *, journal: bool = False,
                 stdin: IO[Any] | int | None = None, wrap: tuple[str, ...] = (),
                 **popen: Any) -> None:
        write: int | None = None
        if journal:
            read, write = os.pipe()
            st = os.fstat(write)
            env = {**env, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
            out: Any = write
            self._out: IO[str] = os.fdopen(read, "r", encoding="utf-8", errors="replace")
        else:
            out = subprocess.PIPE
        self.proc = subprocess.Popen([*wrap, sys.executable, "-m", "rtd", *args], env=env,
                                     stdin=stdin,
                                     stdout=out, stderr=subprocess.STDOUT, text=True, **popen)
        if write is not None:
            os.close(write)
        else:
            assert self.proc.stdout is not None
            self._out = self.proc.stdout
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._out:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for_line(self, text: str, timeout: float = 20.0) -> str:
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(text in ln for ln in self.lines) or self.proc.poll() is not None,
                timeout)
            found = [ln for ln in self.lines if text in ln]
        if not found:
            raise AssertionError(f"no line with {text!r} within {timeout} s "
                                 f"(exit {self.proc.poll()}, ok={ok}):\n{self.output}")
        return found[0]

    def count(self, text: str) -> int:
        with self._changed:
            return sum(text in ln for ln in self.lines)

    def wait_for_count(self, text: str, n: int, timeout: float = 20.0) -> list[str]:
        """Wait until ``n`` lines hold ``text`` (or the process ended); those lines."""
        with self._changed:
            self._changed.wait_for(
                lambda: self.count(text) >= n or self.proc.poll() is not None, timeout)
            found = [ln for ln in self.lines if text in ln]
        if len(found) < n:
            raise AssertionError(f"{len(found)} of {n} lines with {text!r} within {timeout} s "
                                 f"(exit {self.proc.poll()}):\n{self.output}")
        return found

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then the exit code; a daemon that does not stop in time fails the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"rtd did not stop within {timeout} s:\n{self.output}") from None
        self._reader.join(timeout=5)
        return code

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code


def write_config(path: Path, url: str, *, input_wav: Path | str, output_wav: Path,
                 extra: str = "", provider: str = "") -> Path:
    path.write_text(f"""
[provider]
name = "custom"
url = "{url}"
api_key_env = "OPENAI_API_KEY"
{provider}

[audio.input]
backend = "file"
path = "{input_wav}"

[audio.output]
backend = "file"
path = "{output_wav}"

[control]
path = "{path.parent / 'control.sock'}"

[log]
level = "info"

[tools.clock]
{extra}
""")
    return path


def wait_until(predicate: Callable[[], object], timeout: float = 5.0,
               interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    gate = threading.Event()
    for _ in range(int(timeout / interval)):
        if predicate():
            return True
        gate.wait(interval)
    return bool(predicate())
