"""Exit codes of the `rtd` command, sysexits.h names: the unit's RestartPreventExitStatus= reads
them, so a code means the same wherever it is returned."""

from __future__ import annotations

EX_SOFTWARE = 70
"""The actors kept crashing: an internal error; systemd may start the daemon afresh."""
EX_NOPERM = 77
"""The server refused the credentials: restarting with the same key cannot help."""
EX_CONFIG = 78
"""The configuration is wrong: restarting cannot help until someone edits it."""
