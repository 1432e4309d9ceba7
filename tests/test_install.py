"""The README's service block, run as written, in a throwaway copy of this machine.

The commands run unchanged in a private mount namespace where /etc, /opt and /usr/local are
overlays that vanish afterwards: useradd really adds the user (to the overlay's /etc/passwd),
pip really installs rtd and a plugin into /opt/rtd, the unit is really installed and enabled.
What a container cannot do is replaced by the closest honest step, and said so:

- ``apt-get install`` checks that the packages are installed (a test installs nothing);
- ``systemctl daemon-reload`` has no service manager to tell; ``enable --now`` enables the unit
  (offline, as systemctl can) and, instead of starting it, runs ``systemd-analyze verify`` on the
  installed unit, whose ExecStart= now exists;
- ``systemd-run -p User= -p SupplementaryGroups= -p LoadCredential=`` runs the command as that
  user, with its groups, the credential copied into a private $CREDENTIALS_DIRECTORY owned by
  it, and the same standard input, which is what systemd does for a transient service;
- the container has no sound card, so ALSA's default device is the `null` plugin (written to
  the overlay's /etc/asound.conf), which opens like a card and plays into nothing.

Needs root (mount namespaces, useradd), overlayfs, systemd-analyze and a Debian python3 with
venv; it skips with the reason otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- service block: run by tests/test_install.py -->"
KEY = "sk-install-test-key-7731"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # sudo's secure_path

SHIMS = r'''
sudo() {  # root already: run the command, as another user with -u
    if [ "$1" = -u ]; then local user=$2; shift 2; runuser -u "$user" -- "$@"; else "$@"; fi
}
apt-get() {  # check, do not install
    [ "$1" = install ] || { echo "apt-get $1: not run here" >&2; return 1; }
    shift; local pkg missing=0
    for pkg in "$@"; do
        case $pkg in -*) continue ;; esac
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" \
            || { echo "apt-get: $pkg is not installed" >&2; missing=1; }
    done
    echo "apt-get: checked $* (installed)"
    return $missing
}
systemctl() {
    case $1 in
    daemon-reload) echo "systemctl daemon-reload: no service manager here" ;;
    enable)
        shift; local arg now=0 units=()
        for arg in "$@"; do [ "$arg" = --now ] && now=1 || units+=("$arg"); done
        command systemctl enable "${units[@]}" || return
        if [ $now = 1 ]; then
            for arg in "${units[@]}"; do
                echo "systemctl enable --now: cannot start $arg here; verifying it instead"
                systemd-analyze verify "/etc/systemd/system/$arg.service" || return
                echo "systemd-analyze verify: ok"
            done
        fi ;;
    *) echo "systemctl $1: not run here" >&2; return 1 ;;
    esac
}
systemd-run() {  # a transient service's user, groups, credential and stdin
    local user="" groups="" cred=""
    while [ $# -gt 0 ]; do
        case $1 in
        --quiet|--pipe|--wait) shift ;;
        -p) case $2 in
                User=*) user=${2#User=} ;;
                SupplementaryGroups=*) groups=${2#SupplementaryGroups=} ;;
                LoadCredential=*) cred=${2#LoadCredential=} ;;
                *) echo "systemd-run: property $2 not emulated" >&2; return 1 ;;
            esac; shift 2 ;;
        *) break ;;
        esac
    done
    local dir; dir=$(mktemp -d)
    if [ -n "$cred" ]; then
        install -m 0400 -o "$user" "${cred#*:}" "$dir/${cred%%:*}"
    fi
    chown "$user" "$dir" && chmod 0500 "$dir"
    local group
    for group in $groups; do id -nG "$user" | grep -qw "$group" \
        || { echo "systemd-run: $user is not in $group" >&2; return 1; }; done
    runuser -u "$user" -- env CREDENTIALS_DIRECTORY="$dir" "$@"
    local code=$?
    rm -rf "$dir"
    return $code
}
export -f sudo apt-get systemctl systemd-run
'''

PROBES = r'''
echo "== probes"
id rtd
stat -c 'mode %a %U:%G %n' /etc/rtd /etc/rtd/rtd.toml /etc/rtd/api_key
readlink /usr/local/bin/rtd
command -v rtd
/opt/rtd/bin/pip list 2>/dev/null | grep -E '^(rtd-voice|rtd-shell) '
rtd plugins </dev/null
ls /etc/systemd/system/multi-user.target.wants/
'''


def service_block() -> str:
    text = README.read_text(encoding="utf-8")
    assert MARK in text, f"README.md lost the marker {MARK}"
    block = re.search(r"```sh\n(.*?)```", text.split(MARK, 1)[1], re.DOTALL)
    assert block, "no ```sh block after the service block marker"
    return block.group(1)


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root: a private mount namespace and useradd"
    for tool in ("unshare", "mount", "runuser", "useradd", "systemd-analyze", "dpkg-query"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if not Path("/usr/bin/python3").exists():
        return "no /usr/bin/python3 (the Debian python the README installs with)"
    probe = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c",
                            "mount --make-rprivate / && mount -t tmpfs none /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a private mount namespace here: {probe.stderr.strip()}"
    return None


def _checkout(dest: Path) -> Path:
    """A clean copy of the repository, as a fresh clone would be (builds write into it)."""
    skip = shutil.ignore_patterns(".git", ".venv", ".ci", "*.egg-info", "build", "dist",
                                  "__pycache__", ".pytest_cache", ".ruff_cache", "*.wav.tmp")
    return Path(shutil.copytree(ROOT, dest, ignore=skip))


def test_the_readme_service_block_installs_a_working_service(tmp_path):
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    checkout = _checkout(tmp_path / "rtd")
    layers = tmp_path / "layers"
    mounts = []
    for target in ("/etc", "/opt", "/usr/local"):
        name = target.strip("/").replace("/", "-")
        for part in ("upper", "work"):
            (layers / name / part).mkdir(parents=True)
        mounts.append(f"mount -t overlay overlay -o lowerdir={target},"
                      f"upperdir={layers / name / 'upper'},workdir={layers / name / 'work'} "
                      f"{target}")
    script = "\n".join([
        "set -euo pipefail",
        "mount --make-rprivate /",
        *mounts,
        "printf 'pcm.!default { type null }\\n' > /etc/asound.conf",
        SHIMS,
        f"cd {checkout}",
        service_block(),
        PROBES,
    ])
    env = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8",
           **{k: v for k, v in os.environ.items() if k.startswith("PIP_")}}
    proc = subprocess.run(["unshare", "--mount", "--fork", "bash", "-c", script],
                          input=f"{KEY}\n", capture_output=True, text=True, env=env,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]

    assert "apt-get: checked" in out
    assert re.search(r"uid=\d+\(rtd\) gid=\d+\(rtd\) groups=\d+\(rtd\),\d+\(audio\)", out), out
    assert "mode 750 root:rtd /etc/rtd" in out
    assert "mode 640 root:rtd /etc/rtd/rtd.toml" in out
    assert "mode 600 root:root /etc/rtd/api_key" in out
    assert "/opt/rtd/bin/rtd\n/usr/local/bin/rtd" in out  # the link, and rtd on PATH
    assert re.search(r"^rtd-voice +0\.1\.0", out, re.MULTILINE)
    assert re.search(r"^rtd-shell +0\.1\.0", out, re.MULTILINE)  # in the service's environment
    assert "shell (rtd-shell 0.1.0): loaded" in out
    # `rtd devices` and `rtd check` ran as the service user, with the key as a credential
    assert re.search(r"^\s*\d+\s+\d+\s+\d+\s+\d+\s+default \(ALSA\)", out, re.MULTILINE), out
    assert "provider: openai, model gpt-realtime-2, key from credential api_key" in out
    assert "config OK" in out
    assert "systemd-analyze verify: ok" in out
    assert "rtd.service" in out.split("== probes", 1)[1]  # enabled: the wants link exists
    assert KEY not in out
    # nothing leaked onto this machine
    assert not Path("/opt/rtd").exists() and not Path("/etc/rtd").exists()
    assert not re.search(r"^rtd:", Path("/etc/passwd").read_text(), re.MULTILINE)
