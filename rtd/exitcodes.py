"""The daemon's exit codes, named as in sysexits.h, in one place.

systemd acts on them: the unit restarts on failure but not on 77 or 78
(``RestartPreventExitStatus=77 78``), since retrying with the same key or the same broken file
cannot help; 70 is "actors kept crashing": worth a fresh process.
"""

from __future__ import annotations

EX_OK = 0
"""A clean stop (SIGTERM, Ctrl-C, the end of a demo)."""
EX_FAILURE = 1
"""A failure worth retrying: a device missing, the network down."""
EX_SOFTWARE = 70
"""Internal software error: core actors kept crashing past the restart limit."""
EX_NOPERM = 77
"""The server refused the credentials: retrying with the same key will not help."""
EX_CONFIG = 78
"""The configuration (or the server's answer about it: model, dialect) is unusable."""
