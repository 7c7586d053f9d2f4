"""Where the lab keeps its things. Every location can be overridden by environment."""

from __future__ import annotations

import os
from pathlib import Path


def _xdg(var: str, default: str) -> Path:
    v = os.environ.get(var)
    return Path(v) if v else Path.home() / default


def state_dir() -> Path:
    """Generated artefacts: keys, known_hosts, inventories, lab.json."""
    v = os.environ.get("OPSBOOK_LAB_DIR")
    if v:
        return Path(v)
    return _xdg("XDG_STATE_HOME", ".local/state") / "opsbook" / "lab"


def cache_dir() -> Path:
    """Cached base image tarballs, keyed by the hash of their recipe."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "opsbook" / "lab" / "images"


def docker_root() -> Path:
    """The lab's own dockerd data root (images, containers)."""
    v = os.environ.get("OPSBOOK_LAB_DOCKER_ROOT")
    if v:
        return Path(v)
    if os.geteuid() == 0:
        return Path("/var/lib/opsbook-lab")
    return state_dir() / "docker-root"


def docker_run_dir() -> Path:
    """The lab's own dockerd exec root, pid file and unix socket."""
    v = os.environ.get("OPSBOOK_LAB_DOCKER_RUN")
    if v:
        return Path(v)
    if os.geteuid() == 0:
        return Path("/run/opsbook-lab")
    return state_dir() / "docker-run"


def lab_files() -> Path:
    """Files copied into every container (entrypoint, service configs)."""
    return Path(__file__).resolve().parent / "files"


def install_script() -> Path:
    return Path(__file__).resolve().parent / "install.sh"
