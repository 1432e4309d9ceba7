"""Whether this process could create or write a file, judged without touching anything.

The built-in components' self-checks use it: `rtd check` runs as the user who will run the
daemon, so "not writable by rtd" is found before the first turn that should have been logged.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid {os.geteuid()}"


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists (``path`` is made absolute first)."""
    parent = path.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def directory_problem(path: Path) -> str | None:
    """Why a file could not be created at ``path`` (its folder created as needed), or None."""
    try:
        parent = _existing_ancestor(path)
        if not parent.is_dir():
            return f"cannot create {path}: {parent} is not a directory"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"cannot create {path}: {parent} is not writable by {_user()}"
    except OSError as exc:  # a folder on the way that cannot even be looked into
        return f"cannot create {path}: {exc.strerror or exc}"
    return None


def append_problem(path: Path) -> str | None:
    """Why ``path`` could not be opened for appending (created as needed), or None."""
    try:
        if path.is_dir():
            return f"{path} is a directory, expected a file"
        if path.exists():
            if not os.access(path, os.W_OK):
                return f"cannot append to {path}: not writable by {_user()}"
            return None
    except OSError as exc:
        return f"cannot append to {path}: {exc.strerror or exc}"
    return directory_problem(path)


__all__ = ["append_problem", "directory_problem"]
