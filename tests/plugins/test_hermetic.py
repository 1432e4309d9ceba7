"""The plugin tests find plugins/ without installing it (see conftest.py), and stay so.

The session fixture `plugin_path` also compares the environment's site-packages folders before
and after the session, so an install by any test fails the run.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

from plugin_tree import PLUGINS, PluginPath, installed_copies, site_folders, write_dist_info

from rtd import plugins


def test_the_plugins_come_from_the_temporary_dist_info(plugin_path: PluginPath) -> None:
    found = {ep.name: ep for ep in importlib.metadata.entry_points(group="rtd")}
    for name, (_distribution, package, source) in PLUGINS.items():
        ep = found[name]
        assert Path(str(ep.dist.locate_file(""))).resolve() == plugin_path.folder.resolve()
        module = ep.load()
        assert Path(module.__file__).resolve().is_relative_to(source / package)
    assert str(plugin_path.folder) not in map(str, site_folders())


def test_nothing_of_it_is_installed_where_the_tests_run(plugin_path: PluginPath) -> None:
    """A fresh interpreter of this environment sees the plugins installed as they were."""
    now = installed_copies()
    assert now == plugin_path.installed_before
    assert not any(str(plugin_path.folder) in line for line in now)


def test_an_installed_copy_does_not_get_in_the_way(plugin_path, tmp_path, monkeypatch,
                                                   run_rtd) -> None:
    """Copies installed earlier (an old `pip install -e`) need not be uninstalled first."""
    old = tmp_path / "site-packages"
    old.mkdir()
    old_project = tmp_path / "old-rtd-example"
    old_project.mkdir()
    (old_project / "pyproject.toml").write_text(
        '[project]\nname = "rtd-example"\nversion = "0.0.1"\n'
        '[project.entry-points.rtd]\nexample = "rtd_example_gone"\n')
    write_dist_info(old, old_project)
    monkeypatch.setattr(sys, "path", [*sys.path, str(old)])  # after ours, as site-packages is
    importlib.invalidate_caches()
    registry = plugins.load()
    example = next(info for info in registry.plugins if info.name == "example")
    assert (example.version, example.status) == ("0.1.0", plugins.PluginStatus.LOADED)
    assert "dice" in registry.tools

    d = run_rtd("plugins", extra_env={"PYTHONPATH": f"{plugin_path.folder}:{old}"})
    assert d.wait(timeout=30) == 0, d.output
    assert "example (rtd-example 0.1.0): loaded" in d.lines
    assert "rtd_example_gone" not in d.output


def test_the_dist_info_is_read_from_the_plugins_own_pyproject(tmp_path) -> None:
    for distribution, package, source in PLUGINS.values():
        name, version = write_dist_info(tmp_path, source)
        assert name == distribution
        dist = next(d for d in importlib.metadata.distributions(path=[str(tmp_path)])
                    if d.metadata["Name"] == name)
        assert dist.version == version
        assert [ep.value for ep in dist.entry_points if ep.group == "rtd"] == [package]
