"""What `from rtd import hookimpl, tool, setting` costs a plugin, beside `import pluggy`.

Every `rtd` command imports every installed plugin, and every plugin starts with this line, so
its cost is paid on each `rtd check`, `rtd plugins` and daemon start, several times over on a
Pi. Each figure is the median of fresh interpreters (`python -X importtime`), so nothing is
cached in the process; the first run warms the disk cache and is not counted.

    python bench/imports.py [--runs 15]

Prints the median milliseconds and module count of the plugin import and of pluggy alone, the
target (within 1.5x of pluggy's), and any module a plugin must not pay for that was loaded.
An editable install's import finder is left out: a user's `pip install` has none.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

PLUGIN_IMPORT = "from rtd import hookimpl, tool, setting"
#: Modules a plugin's import must not load: the runtime, the event loop, the WebSocket client.
FORBIDDEN = ("asyncio", "websocket", "websockets", "ssl", "pykka", "numpy", "sounddevice",
             "rtd.app", "rtd.config", "rtd.daemon", "rtd.protocol", "rtd.supervisor",
             "rtd.actors", "rtd.audio", "rtd.plugins")


def _parse(stderr: str) -> tuple[float, list[str]]:
    total_us = 0
    modules: list[str] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        fields = line[len("import time:"):].split("|")
        cumulative, name = int(fields[1]), fields[2]
        if name.strip().startswith("__editable__"):  # an editable install's finder, not rtd
            continue
        modules.append(name.strip())
        if not name.startswith("  "):  # top level (one space of padding): count it once
            total_us += cumulative
    return total_us / 1000, modules


def run(statement: str, runs: int) -> tuple[float, int, list[str]]:
    # Byte-compiled, as pip leaves an installed package: the warm-up run writes the caches.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: list[float] = []
    modules: list[str] = []
    for i in range(runs + 1):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement],
                              capture_output=True, text=True, check=True, env=env)
        ms, modules = _parse(done.stderr)
        if i:  # the first run warms the disk cache
            times.append(ms)
    return statistics.median(times), len(modules), modules


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    plugin_ms, plugin_count, modules = run(PLUGIN_IMPORT, args.runs)
    pluggy_ms, pluggy_count, _ = run("import pluggy", args.runs)
    forbidden = sorted({m for m in modules if m.split(".")[0] in FORBIDDEN or any(
        m == f or m.startswith(f + ".") for f in FORBIDDEN)})
    print(f"{PLUGIN_IMPORT!r}: {plugin_ms:.1f} ms, {plugin_count} modules (median of "
          f"{args.runs})")
    print(f"'import pluggy': {pluggy_ms:.1f} ms, {pluggy_count} modules")
    print(f"ratio: {plugin_ms / pluggy_ms:.2f}x pluggy (target: at most 1.5x)")
    print(f"forbidden modules loaded: {', '.join(forbidden) or 'none'} (target: none)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
