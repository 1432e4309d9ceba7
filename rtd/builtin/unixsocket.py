"""Listening on a Unix socket safely: the socket sender's and the control socket's one way.

A socket file created by bind() has the umask's permissions until chmod, a moment in which
anyone may connect; a leftover file from a crashed run blocks the bind; a live socket may belong
to another rtd. These helpers handle all three, so neither user of them gets one of them wrong.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from rtd.builtin.paths import directory_problem

MAX_SOCKET_PATH = 107
"""Bytes: the longest Unix socket path Linux binds (``sun_path`` holds 108 with the NUL)."""
STAGING_PREFIX = ".rtd-"
STAGING = len(f"/{STAGING_PREFIX}xxxxxxxx/s")
"""Bytes the staging path adds to the socket's folder: it is bound in a private folder first."""


class Wakeable:
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


def bind_length(path: Path) -> int:
    """Bytes of the longest path bind() sees for this socket: its own or its staging path."""
    return max(len(os.fsencode(path)), len(os.fsencode(path.parent)) + STAGING)


def path_problem(path: Path, key: str) -> str | None:
    """Why rtd could not listen on ``path`` (named ``key`` in the config), or None."""
    if bind_length(path) > MAX_SOCKET_PATH:
        return (f"{path} is too long for a Unix socket: rtd binds it as "
                f"{path.parent}/{STAGING_PREFIX}xxxxxxxx/s first, and Linux takes at most "
                f"{MAX_SOCKET_PATH} bytes; choose a shorter one")
    try:
        if (path.exists() or path.is_symlink()) and not stat.S_ISSOCK(path.lstat().st_mode):
            return f"{path} exists and is not a socket; remove it or choose another {key}"
    except OSError as exc:
        return f"cannot look at {path}: {exc.strerror or exc}"
    return directory_problem(path)


def in_use(path: Path) -> bool:
    """Whether a live server answers on ``path`` (another rtd, say)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def listen(path: Path, mode: int, key: str) -> socket.socket:
    """Listen on ``path`` with ``mode`` from the first moment anyone can connect.

    The socket is bound inside a fresh owner-only folder beside ``path``, given its mode there,
    and renamed into place: nobody else can reach it before it has its final mode. A leftover
    socket file is replaced; raises OSError naming ``key`` when that cannot be done.
    """
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staging: Path | None = None
    try:
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise OSError(f"{path} exists and is not a socket; remove it or choose "
                              f"another {key}")
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
        raise OSError(f"{key}: cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    return server


def unlink_own(path: Path, server: socket.socket) -> None:
    """Remove ``path`` if it is still the socket ``server`` listens on (not a successor's)."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(path.lstat().st_mode) and not _answered_by_other(path, server):
            path.unlink()


def _answered_by_other(path: Path, server: socket.socket) -> bool:
    """Whether a connection to ``path`` reaches a server other than ``server``."""
    server.setblocking(False)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        try:
            probe.connect(str(path))
        except OSError:
            return False  # nobody answers: a stale file, safe to remove
        try:
            conn, _ = server.accept()
        except (BlockingIOError, OSError):
            return True  # it connected, but not to us
        conn.close()
        return False


__all__ = ["MAX_SOCKET_PATH", "Wakeable", "bind_length", "in_use", "listen", "path_problem",
           "unlink_own"]
