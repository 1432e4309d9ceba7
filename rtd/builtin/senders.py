"""Built-in senders: a Unix socket for `rtd say` and scripts, and the terminal's stdin."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rtd.builtin.unixsocket import Wakeable, listen, path_problem
from rtd.components import Sender, SenderContext
from rtd.schema import setting

MAX_LINE = 4096
"""Bytes: a longer line is refused, so one client cannot make rtd hold unbounded text."""
CLIENT_TIMEOUT = 10.0
"""Seconds a socket client may stay silent before it is dropped."""
@dataclass(frozen=True)
class SocketSettings:
    """Settings of the socket sender."""

    path: str = setting("/run/rtd/rtd.sock", "Unix socket accepting one text message per line")
    mode: str = setting("0660", "permissions of the socket file, in octal; bits for other "
                        "users are dropped")
    respond: bool = setting(True, "ask the model to answer each message")

    def __post_init__(self) -> None:
        try:
            mode = int(self.mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f"mode {self.mode!r} is not an octal mode such as '0660'")


class SocketSender(Sender):
    """Text lines from local programs: `rtd say "turn on the radio"`, cron jobs, scripts.

    Each line becomes a user message; the client gets "ok" per line (or "error: ..."), so
    `rtd say` can tell the user whether it was heard.
    """

    name = "socket"
    Settings = SocketSettings

    def __init__(self, settings: SocketSettings | None = None) -> None:
        super().__init__(settings or SocketSettings())
        self._wake = Wakeable()

    @classmethod
    def check(cls, settings: SocketSettings) -> list[str]:
        """The socket must be bindable: a short enough path, in a folder rtd can write to."""
        problem = path_problem(Path(settings.path), "senders.socket.path")
        return [f"path: {problem}"] if problem else []

    def run(self, ctx: SenderContext) -> None:
        path = Path(self.settings.path)
        mode = int(self.settings.mode, 8)  # checked by SocketSettings
        if mode & 0o007:
            ctx.log.warning("senders.socket.mode: %s would let every user on this machine talk "
                            "to rtd; using %04o (owner and group only)", self.settings.mode,
                            mode & 0o770)
            mode &= 0o770
        problems = self.check(self.settings)
        if problems:  # retrying cannot make the directory writable: say so once, stay down
            ctx.log.warning("senders.socket.%s; the socket sender is not running", problems[0])
            return
        server = self._listen(path, mode)
        ctx.log.info("listening on %s", path)
        sel = selectors.DefaultSelector()
        sel.register(server, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        try:
            while not ctx.stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is server and not ctx.stopping.is_set():
                        client, _addr = server.accept()
                        with client:
                            self._serve(client, ctx)
        finally:
            sel.close()
            server.close()
            with contextlib.suppress(OSError):
                path.unlink()

    @staticmethod
    def _listen(path: Path, mode: int) -> socket.socket:
        return listen(path, mode, "senders.socket.path")

    def _serve(self, client: socket.socket, ctx: SenderContext) -> None:
        """Read lines from one client until it closes, idles too long, or rtd stops."""
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        pending = b""
        try:
            while not ctx.stopping.is_set():
                ready = sel.select(timeout=CLIENT_TIMEOUT)
                if not ready or any(key.fileobj is self._wake for key, _ in ready):
                    return  # idle client, or stopping
                chunk = client.recv(MAX_LINE)
                if not chunk:
                    return
                pending += chunk
                while b"\n" in pending:
                    raw, pending = pending.split(b"\n", 1)
                    text = raw.decode("utf-8", "replace").strip()
                    if text:
                        ok = ctx.send_text(text, respond=self.settings.respond)
                        client.sendall(b"ok\n" if ok else b"error: rtd is stopping\n")
                if len(pending) > MAX_LINE:
                    client.sendall(b"error: line longer than 4096 bytes\n")
                    return
        except OSError:
            return
        finally:
            sel.close()

    def stop(self) -> None:
        self._wake.wake()


@dataclass(frozen=True)
class StdinSettings:
    """Settings of the stdin sender."""

    respond: bool = setting(True, "ask the model to answer each line")


class StdinSender(Sender):
    """Lines typed in the terminal become user messages: a keyboard for `rtd run` at a desk."""

    name = "stdin"
    Settings = StdinSettings

    def __init__(self, settings: StdinSettings | None = None, stream: IO[str] | None = None
                 ) -> None:
        super().__init__(settings or StdinSettings())
        self.stream = stream if stream is not None else sys.stdin
        self._wake = Wakeable()

    @classmethod
    def check(cls, settings: StdinSettings) -> list[str]:
        """Standard input must be something to type or pipe into (not systemd's /dev/null)."""
        problem = stdin_problem()
        return [problem.removeprefix("senders.stdin: ")] if problem else []

    def run(self, ctx: SenderContext) -> None:
        problem = stdin_problem(self.stream)
        if problem is not None:  # a restart would find the same stdin: say so once, stay down
            ctx.log.warning("%s; the stdin sender is not running", problem)
            return
        sel = selectors.DefaultSelector()
        sel.register(self.stream, selectors.EVENT_READ)
        sel.register(self._wake, selectors.EVENT_READ)
        try:
            while not ctx.stopping.is_set():
                for key, _ in sel.select():
                    if key.fileobj is not self.stream or ctx.stopping.is_set():
                        continue
                    line = self.stream.readline()
                    if not line:  # end of input: nothing more will come
                        return
                    if line.strip():
                        ctx.send_text(line.strip(), respond=self.settings.respond)
        finally:
            sel.close()

    def stop(self) -> None:
        self._wake.wake()


def stdin_problem(stream: IO[str] | None = None) -> str | None:
    """Why the stdin sender cannot read ``stream`` (standard input by default), or None.

    It reads lines as they are typed or piped; under systemd stdin is /dev/null, and a regular
    file cannot be waited on (and would be read once, at start, with nobody to answer).
    """
    stream = sys.stdin if stream is None else stream
    where = "senders.stdin: standard input"
    if stream is None or stream.closed:
        return f"{where} is closed"
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file descriptor
        return f"{where} is not a terminal or a pipe"
    if stream.isatty() or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return None
    try:
        null = os.stat(os.devnull)
        is_null = stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev
    except OSError:
        is_null = False
    what = ("/dev/null (as under systemd)" if is_null
            else "a regular file" if stat.S_ISREG(st.st_mode) else "not a terminal or a pipe")
    return (f"{where} is {what}, so there is nothing to type into; remove [senders.stdin] here, "
            "or run rtd in a terminal or with a pipe")
