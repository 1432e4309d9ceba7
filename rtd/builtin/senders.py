"""Built-in senders: a Unix socket for `rtd say` and scripts, and the terminal's stdin."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from rtd.builtin.paths import directory_problem
from rtd.components import Sender, SenderContext
from rtd.schema import setting

MAX_LINE = 4096
"""Bytes: a longer line is refused, so one client cannot make rtd hold unbounded text."""
CLIENT_TIMEOUT = 10.0
"""Seconds a socket client may stay silent before it is dropped."""
MAX_SOCKET_PATH = 107
"""Bytes: the longest Unix socket path Linux binds (``sun_path`` holds 108 with the NUL)."""
STAGING_PREFIX = ".rtd-"
STAGING = len(f"/{STAGING_PREFIX}xxxxxxxx/s")
"""Bytes the staging path adds to the socket's folder: it is bound in a private folder first."""


class _Wakeable:
    """A socketpair that interrupts a selector wait from another thread, without polling."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._w.send(b"x")

    def close(self) -> None:
        self._r.close()
        self._w.close()


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
        self._wake = _Wakeable()

    @classmethod
    def check(cls, settings: SocketSettings) -> list[str]:
        """The socket must be bindable: a short enough path, in a folder rtd can write to."""
        path = Path(settings.path)
        if _bind_length(path) > MAX_SOCKET_PATH:
            return [f"path: {path} is too long for a Unix socket: rtd binds it as "
                    f"{path.parent}/{STAGING_PREFIX}xxxxxxxx/s first, and Linux takes at most "
                    f"{MAX_SOCKET_PATH} bytes; choose a shorter one"]
        try:
            if (path.exists() or path.is_symlink()) and not stat.S_ISSOCK(path.lstat().st_mode):
                return [f"path: {path} exists and is not a socket; remove it or choose another "
                        "senders.socket.path"]
        except OSError as exc:
            return [f"path: cannot look at {path}: {exc.strerror or exc}"]
        problem = directory_problem(path)
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
        """Listen on ``path`` with ``mode`` from the first moment anyone can connect.

        bind() creates the socket file with the process umask's permissions, so binding at
        ``path`` and then chmod-ing leaves a moment in which anyone may connect. The socket is
        bound inside a fresh owner-only folder beside ``path`` instead, given its mode there,
        and renamed into place: nobody else can reach it before it has its final mode.
        """
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        staging: Path | None = None
        try:
            if path.exists() or path.is_symlink():
                if not stat.S_ISSOCK(path.lstat().st_mode):
                    raise OSError(f"{path} exists and is not a socket; remove it or choose "
                                  "another senders.socket.path")
                path.unlink()  # left over from a previous run
            path.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=path.parent))  # 0700
            staged = staging / "s"
            server.bind(str(staged))
            os.chmod(staged, mode)
            server.listen(8)
            os.replace(staged, path)
        except OSError as exc:
            server.close()
            raise OSError(f"senders.socket.path: cannot listen on {path}: "
                          f"{exc.strerror or exc}") from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        return server

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
        self._wake = _Wakeable()

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


def _bind_length(path: Path) -> int:
    """Bytes of the longest path bind() sees for this socket: its own or its staging path."""
    return max(len(os.fsencode(path)), len(os.fsencode(path.parent)) + STAGING)


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
