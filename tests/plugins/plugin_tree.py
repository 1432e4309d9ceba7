"""plugins/ made findable by entry point from a temporary folder, instead of being installed.

rtd finds plugins through entry points, that is through ``*.dist-info/entry_points.txt`` files
in the folders of ``sys.path``. `make_plugin_path` writes a minimal dist-info for each plugin
(METADATA and entry_points.txt, taken from the plugin's own pyproject.toml) into one folder and
links the plugin's package next to it: that folder on ``sys.path`` (or ``PYTHONPATH``) is what
an editable install would give, without touching the environment.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
#: entry-point name -> (distribution, package, source folder)
PLUGINS = {
    "example": ("rtd-example", "rtd_example", ROOT / "plugins" / "rtd-example"),
    "shell": ("rtd-shell", "rtd_shell", ROOT / "plugins" / "rtd-shell"),
    "leds": ("rtd-leds", "rtd_leds", ROOT / "plugins" / "rtd-leds"),
    "mqtt": ("rtd-mqtt", "rtd_mqtt", ROOT / "plugins" / "rtd-mqtt"),
    "wakeword": ("rtd-wakeword", "rtd_wakeword", ROOT / "plugins" / "rtd-wakeword"),
}


@dataclass(frozen=True)
class PluginPath:
    """The folder that makes the plugins findable."""

    folder: Path
    """Put this first on sys.path / PYTHONPATH."""
    installed_before: list[str]
    """What `installed_copies` said before the folder was made."""


def write_dist_info(folder: Path, project: Path) -> tuple[str, str]:
    """A ``NAME-VERSION.dist-info`` for the project at ``project``, in ``folder``.

    Only what importlib.metadata reads: METADATA (name and version) and entry_points.txt
    (the ``[project.entry-points.*]`` tables of pyproject.toml). Returns (name, version).
    """
    meta = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    name, version = meta["name"], meta["version"]
    info = folder / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                                   encoding="utf-8")
    groups = [f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in eps.items())
              for group, eps in meta.get("entry-points", {}).items()]
    (info / "entry_points.txt").write_text("\n".join(groups), encoding="utf-8")
    return name, version


def installed_copies() -> list[str]:
    """'rtd-example 0.1.0 at /path' for each plugin of `PLUGINS` installed in this environment.

    Asked of a fresh interpreter of this environment, without PYTHONPATH, from /: what a user
    of the environment would see, whatever this process put on its own sys.path.
    """
    names = sorted(distribution for distribution, _package, _source in PLUGINS.values())
    code = ("import importlib.metadata as m, json, sys; print(json.dumps(sorted("
            "f\"{d.metadata['Name']} {d.version} at {d.locate_file('')}\" "
            f"for d in m.distributions() if d.metadata['Name'] in {names!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True, cwd="/",
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return json.loads(done.stdout)


def make_plugin_path(folder: Path) -> PluginPath:
    """Every plugin of `PLUGINS` findable from ``folder`` (which must be empty)."""
    before = installed_copies()
    for _distribution, package, source in PLUGINS.values():
        write_dist_info(folder, source)
        (folder / package).symlink_to(source / package, target_is_directory=True)
    return PluginPath(folder, before)


def site_folders() -> dict[str, list[str]]:
    """What each site-packages folder of this environment holds: an install changes it."""
    folders = [*site.getsitepackages(), site.getusersitepackages()]
    return {folder: sorted(n for n in os.listdir(folder) if n != "__pycache__")
            for folder in folders if os.path.isdir(folder)}
