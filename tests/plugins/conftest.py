"""The plugins under plugins/, installed into this environment for the tests in this folder.

rtd finds plugins through entry points, so the tests install rtd-example and rtd-shell as a
user would (editable, so the tests see the working tree). Installing changes what a *new*
process finds; in this process the packages are put on sys.path by hand, because the .pth
file of an editable install is only read when Python starts. Everything that asks rtd which
plugins exist therefore runs `python -m rtd ...` in a subprocess, or calls
`rtd.plugins.load()` (never `rtd.config.default_registry()`, which caches its first answer).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: entry-point name -> (distribution, package, source folder)
PLUGINS = {
    "example": ("rtd-example", "rtd_example", ROOT / "plugins" / "rtd-example"),
    "shell": ("rtd-shell", "rtd_shell", ROOT / "plugins" / "rtd-shell"),
}
PIP_TIMEOUT = 300


def _installed_from(entry_point: str, distribution: str) -> Path | None:
    """The folder the entry point's distribution was installed from, or None."""
    for ep in importlib.metadata.entry_points(group="rtd"):
        dist = getattr(ep, "dist", None)
        if ep.name != entry_point or dist is None or dist.metadata["Name"] != distribution:
            continue
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        url = direct.get("url", "")
        if url.startswith("file://") and direct.get("dir_info", {}).get("editable"):
            return Path(url[len("file://"):]).resolve()
    return None


def _pip_install(folder: Path) -> None:
    """``pip install -e folder`` without dependencies (rtd is installed already).

    --no-build-isolation uses the installed setuptools and needs no network; setuptools older
    than 70.1 cannot build without the separate `wheel` package, so then pip is run once more
    with build isolation, which fetches a build backend from the package index.
    """
    base = [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
            "--disable-pip-version-check"]
    attempts = [[*base, "--no-build-isolation", "-e", str(folder)], [*base, "-e", str(folder)]]
    failures = []
    for command in attempts:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT,
                              check=False)
        if done.returncode == 0:
            return
        failures.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
    pytest.fail(f"cannot install {folder.name}:\n" + "\n".join(failures), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def installed_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """rtd-example and rtd-shell installed (editable, from this tree); their entry points."""
    for entry_point, (distribution, _package, folder) in PLUGINS.items():
        if _installed_from(entry_point, distribution) != folder.resolve():
            _pip_install(folder)
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="rtd")}
    missing = [name for name in PLUGINS if name not in found]
    assert not missing, f"entry points {missing} not found after installing; found {list(found)}"
    for name, (distribution, package, _folder) in PLUGINS.items():
        assert found[name].value == package
        assert found[name].dist is not None and found[name].dist.metadata["Name"] == distribution
    return {name: found[name] for name in PLUGINS}
