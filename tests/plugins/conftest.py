"""The plugins under plugins/, found by rtd as if installed, without installing anything.

Rather than pip-installing rtd-example and rtd-shell into the environment the tests run in
(which would change it for its owner, and could need the package index for a build backend),
the session makes them findable from a temporary folder (plugin_tree.py): first on
``sys.path`` of this process, first on ``PYTHONPATH`` of every `rtd` process the tests start
(the `env` fixture below). The packages are the working tree's, as with an editable install.

Being first, these copies also win over copies of the same distributions installed earlier
(importlib.metadata reports one distribution per name, the first found): nothing needs to be
uninstalled first. At the end of the session the environment's site-packages folders are
compared with what they held at the start, so a test that installs something fails the run.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from collections.abc import Iterator

import pytest
from plugin_tree import PLUGINS, PluginPath, make_plugin_path, site_folders


@pytest.fixture(scope="session", autouse=True)
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginPath]:
    """The plugins of plugins/ findable by entry point, in this process and its children."""
    before = site_folders()
    found_path = make_plugin_path(tmp_path_factory.mktemp("plugin-path"))
    sys.path.insert(0, str(found_path.folder))
    importlib.invalidate_caches()
    try:
        found = {ep.name: ep for ep in importlib.metadata.entry_points(group="rtd")}
        for name, (distribution, package, _source) in PLUGINS.items():
            ep = found.get(name)
            assert ep is not None, f"entry point {name} not found; found {sorted(found)}"
            assert (ep.value, ep.dist.metadata["Name"]) == (package, distribution)
        yield found_path
    finally:
        sys.path.remove(str(found_path.folder))
        importlib.invalidate_caches()
    after = site_folders()
    assert after == before, ("the plugin tests changed the Python environment they ran in: "
                             f"site-packages held {before}, now {after}")


@pytest.fixture
def env(env: dict[str, str], plugin_path: PluginPath) -> dict[str, str]:
    """The clean environment of tests/conftest.py, with the plugins findable by `rtd`."""
    rest = env.get("PYTHONPATH", "")
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(plugin_path.folder), rest]))}
