"""Run a command under the seccomp filters systemd would install for rtd.service's options.

    python tests/sandbox.py [--unit systemd/rtd.service] [--mdwe] -- COMMAND...

From the unit it takes ``SystemCallFilter=`` (groups expanded by ``systemd-analyze
syscall-filter``, the way systemd expands them), ``SystemCallErrorNumber=`` and
``RestrictAddressFamilies=``, and builds the same kind of filters with libseccomp: an allow-list
whose other calls fail with the errno, and a rule per address family refusing ``socket()`` with
EAFNOSUPPORT. ``--mdwe`` adds what ``MemoryDenyWriteExecute=yes`` installs (systemd's
seccomp_memory_deny_write_execute): no mmap() that is writable and executable, no mprotect() or
pkey_mprotect() to executable, no shmat() with SHM_EXEC. Then it executes COMMAND.

This is not the whole sandbox (no mount namespace, no device cgroup), but it is the part that
decides whether Python, numpy, cffi, PortAudio and the network calls work, which a container
without a service manager cannot otherwise show.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import re
import subprocess
import sys
from pathlib import Path

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ = 4
SCMP_CMP_GE = 5
SCMP_CMP_MASKED_EQ = 7
PROT_WRITE, PROT_EXEC = 0x2, 0x4
SHM_EXEC = 0o100000
AF_MAX = 46
PR_SET_NO_NEW_PRIVS = 38
FAMILIES = {"AF_UNIX": 1, "AF_LOCAL": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16,
            "AF_PACKET": 17}


def act_errno(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class Seccomp:
    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32,
                                                    ctypes.c_int, ctypes.c_uint,
                                                    ctypes.POINTER(_Arg)]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_release.argtypes = [ctypes.c_void_p]

    def number(self, name: str) -> int | None:
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr < 0 else nr

    def load(self, default: int, rules: list[tuple[int, str, list[tuple[int, int, int, int]]]]
             ) -> None:
        """One filter: ``default`` action, and (action, syscall, [(arg, op, a, b)]) rules."""
        ctx = self.lib.seccomp_init(default)
        if not ctx:
            raise OSError("seccomp_init failed")
        try:
            for action, name, conditions in rules:
                nr = self.number(name)
                if nr is None:  # not a call of this architecture
                    continue
                args = (_Arg * max(1, len(conditions)))(*[_Arg(*c) for c in conditions])
                rc = self.lib.seccomp_rule_add_array(ctx, action, nr, len(conditions), args)
                if rc < 0 and rc != -errno.EEXIST:
                    raise OSError(-rc, f"seccomp rule for {name}: {os.strerror(-rc)}")
            rc = self.lib.seccomp_load(ctx)
            if rc < 0:
                raise OSError(-rc, f"seccomp_load: {os.strerror(-rc)}")
        finally:
            self.lib.seccomp_release(ctx)


def syscall_groups() -> dict[str, list[str]]:
    """Every group systemd knows, with its members (calls and nested groups)."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True,
                         check=True).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.startswith("    ") and current is not None:
            entry = line.strip()
            if entry and not entry.startswith("#"):
                current.append(entry)
        elif not line.strip():
            current = None
    return groups


def expand(names: list[str], groups: dict[str, list[str]]) -> set[str]:
    found: set[str] = set()
    for name in names:
        if name.startswith("@"):
            found |= expand(groups[name], groups)
        else:
            found.add(name)
    return found


def unit_settings(unit: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        match = re.match(r"^(\w+)=(.*)$", line.strip())
        if match:
            settings.setdefault(match.group(1), []).append(match.group(2).strip())
    return settings


def allowed_syscalls(filters: list[str], groups: dict[str, list[str]]) -> set[str]:
    """SystemCallFilter= lines in order: a plain list adds, a ~list removes."""
    allowed: set[str] = set()
    for value in filters:
        words = value.split()
        if words and words[0].startswith("~"):
            allowed -= expand([words[0][1:], *words[1:]], groups)
        else:
            allowed |= expand(words, groups)
    return allowed


def apply(unit: Path, mdwe: bool) -> None:
    settings = unit_settings(unit)
    sc = Seccomp()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if mdwe:
        refuse = act_errno(errno.EPERM)
        sc.load(SCMP_ACT_ALLOW, [
            (refuse, "mmap", [(2, SCMP_CMP_MASKED_EQ, PROT_WRITE | PROT_EXEC,
                               PROT_WRITE | PROT_EXEC)]),
            (refuse, "mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (refuse, "pkey_mprotect", [(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, PROT_EXEC)]),
            (refuse, "shmat", [(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
        ])
    families = settings.get("RestrictAddressFamilies", [])
    if families:
        allowed = {FAMILIES[f] for value in families for f in value.split()}
        refuse = act_errno(errno.EAFNOSUPPORT)
        rules = [(refuse, "socket", [(0, SCMP_CMP_EQ, f, 0)]) for f in range(AF_MAX)
                 if f not in allowed]
        rules.append((refuse, "socket", [(0, SCMP_CMP_GE, AF_MAX, 0)]))
        sc.load(SCMP_ACT_ALLOW, rules)
    filters = settings.get("SystemCallFilter", [])
    if filters:
        name = (settings.get("SystemCallErrorNumber") or ["EPERM"])[-1]
        calls = allowed_syscalls(filters, syscall_groups())
        sc.load(act_errno(getattr(errno, name)), [(SCMP_ACT_ALLOW, c, []) for c in calls])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--unit", type=Path,
                        default=Path(__file__).resolve().parents[1] / "systemd/rtd.service")
    parser.add_argument("--mdwe", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    apply(args.unit, args.mdwe)
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
