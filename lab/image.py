"""The lab's base image: a debootstrapped Debian bookworm imported into docker.

No image registry is needed: the root file system is built with
``debootstrap --variant=minbase`` from the machine's Debian mirror, tarred, and
``docker import``-ed. The tarball is cached under
``${XDG_CACHE_HOME:-~/.cache}/opsbook/lab/images/base-<recipe hash>.tar`` so later
runs import it in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import paths
from .daemon import LabError, _log

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = [
    "openssh-server", "python3", "iproute2", "procps", "iputils-ping", "curl", "sudo",
    "nginx", "haproxy", "redis-server", "redis-tools", "socat", "sysvinit-utils",
    "init-system-helpers", "ca-certificates", "iptables", "netcat-openbsd", "jq", "less",
    "psmisc", "lsof", "rsync",
]
# Run in the chroot after debootstrap (part of the recipe hash).
POST_SCRIPT = r"""
set -e
rm -f /etc/ssh/ssh_host_*
rm -f /etc/nginx/sites-enabled/default
echo 'opsbook-lab' >/etc/hostname
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* /tmp/* /root/.bash_history
"""
RECIPE_VERSION = 1
IMAGE_REPO = "opsbook-lab/base"
IMAGE_CHANGES = [
    'CMD ["/opt/opsbook-lab/entrypoint.sh"]',
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
]


def recipe() -> dict:
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "post": POST_SCRIPT,
        "changes": IMAGE_CHANGES,
    }


def recipe_hash() -> str:
    blob = json.dumps(recipe(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def image_tag() -> str:
    return f"{IMAGE_REPO}:{recipe_hash()}"


def cache_file() -> Path:
    return paths.cache_dir() / f"base-{recipe_hash()}.tar"


def debian_mirror() -> str:
    """The Debian mirror the machine's apt uses (OPSBOOK_LAB_MIRROR overrides)."""
    env = os.environ.get("OPSBOOK_LAB_MIRROR")
    if env:
        return env
    texts = []
    for p in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(p.read_text(errors="replace"))
        except OSError:
            pass
    for text in texts:
        # deb822 stanzas
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.MULTILINE)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.MULTILINE)
            if uris and suites and SUITE in suites.group(1).split() and "/debian" in uris.group(1) \
                    and "security" not in uris.group(1):
                return uris.group(1).rstrip("/")
        # one-line format
        for m in re.finditer(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s", text, re.MULTILINE):
            if m.group(2) == SUITE and "security" not in m.group(1):
                return m.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def ensure_image(client, progress: bool = True) -> str:
    """Make sure the base image exists in the engine; build/import it if needed."""
    import docker.errors

    tag = image_tag()
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    cf = cache_file()
    if not cf.exists():
        build_rootfs_tar(cf, progress=progress)
    t0 = time.monotonic()
    _log(f"importing {cf.name} ({cf.stat().st_size / 2**20:.0f} MiB) as {tag}")
    repo, _, t = tag.partition(":")
    client.api.import_image_from_file(str(cf), repository=repo, tag=t, changes=IMAGE_CHANGES)
    client.images.get(tag)
    _log(f"imported in {time.monotonic() - t0:.1f}s")
    return tag


def build_rootfs_tar(dest: Path, progress: bool = True) -> None:
    """debootstrap the recipe and write the root file system as a tar to dest."""
    if os.geteuid() != 0:
        raise LabError("building the lab base image needs root (debootstrap)")
    deb = shutil.which("debootstrap")
    if not deb:
        raise LabError("debootstrap is not installed: run `bash lab/install.sh` as root")
    dest.parent.mkdir(parents=True, exist_ok=True)
    build_parent = paths.docker_root() / "build"
    build_parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=build_parent))
    root = work / "rootfs"
    mirror = debian_mirror()
    t0 = time.monotonic()
    try:
        cmd = [deb, f"--variant={VARIANT}", f"--include={','.join(PACKAGES)}", SUITE, str(root), mirror]
        _log(f"building base image {image_tag()} with debootstrap from {mirror} (about a minute)")
        _run_with_progress(cmd, dest.parent / "debootstrap.log", t0, progress)
        subprocess.run(["chroot", str(root), "/bin/sh", "-c", POST_SCRIPT], check=True,
                       stdin=subprocess.DEVNULL)
        tmp = dest.with_suffix(".tar.tmp")
        subprocess.run(
            ["tar", "-C", str(root), "--numeric-owner", "--xattrs",
             "--xattrs-include=security.capability", "-cf", str(tmp), "."],
            check=True, stdin=subprocess.DEVNULL,
        )
        os.replace(tmp, dest)
        (dest.with_suffix(".json")).write_text(json.dumps(
            {"recipe": recipe(), "mirror": mirror, "built": time.time(),
             "build_seconds": round(time.monotonic() - t0, 1)}, indent=2))
        _log(f"base image root fs built in {time.monotonic() - t0:.0f}s -> {dest}")
    finally:
        _remove_tree(work)


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve()) + "/"
    out = []
    try:
        with open("/proc/mounts") as f:
            for line in f:
                mp = line.split()[1].replace("\\040", " ")
                if mp.startswith(prefix):
                    out.append(mp)
    except OSError:
        pass
    return out


def _remove_tree(path: Path) -> None:
    """Remove a build tree, never crossing into something still mounted in it."""
    for mp in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], check=False)
    left = _mounts_under(path)
    if left:
        _log(f"not removing {path}: still mounted: {left}")
        return
    shutil.rmtree(path, ignore_errors=True)


def _run_with_progress(cmd: list[str], logpath: Path, t0: float, progress: bool) -> None:
    phases = ("Retrieving", "Validating", "Extracting", "Unpacking", "Configuring")
    counts: dict[str, int] = {}
    tail: list[str] = []
    with open(logpath, "w") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert proc.stdout
        for line in proc.stdout:
            logf.write(line)
            line = line.rstrip()
            tail = (tail + [line])[-30:]
            if not progress:
                continue
            word = line[3:].split(" ", 1)[0] if line.startswith("I: ") else ""
            if word in phases:
                counts[word] = counts.get(word, 0) + 1
                if counts[word] == 1 or counts[word] % 50 == 0:
                    print(f"  [{time.monotonic() - t0:5.0f}s] debootstrap: {word} ... ({counts[word]})",
                          file=sys.stderr, flush=True)
            elif line.startswith(("I: ", "W: ", "E: ")):
                print(f"  [{time.monotonic() - t0:5.0f}s] {line}", file=sys.stderr, flush=True)
        rc = proc.wait()
    if rc != 0:
        raise LabError(f"debootstrap failed ({rc}); log {logpath}:\n" + "\n".join(tail))
