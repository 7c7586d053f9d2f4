"""The competing tools, each in its own virtualenv under the cache (built once, reused)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# Pinned so that numbers from two runs compare; bump deliberately.
TOOLS = {
    "ansible": ["ansible-core==2.19.14"],
    "pyinfra": ["pyinfra==3.10.0"],
    "py-spy": ["py-spy==0.4.3"],  # the profiler (bench/profile.py), not a competitor
}


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "opsbook" / "bench"


@dataclass(frozen=True)
class Venv:
    """One tool's virtualenv: where its executables are."""

    name: str
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def exe(self, name: str) -> str:
        return str(self.bin / name)


def _stamp(requirements: list[str]) -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor} " + " ".join(requirements)


def ensure(name: str, log=print) -> Venv:
    """Create (or reuse) the venv for `name`; idempotent and safe against a parallel caller."""
    reqs = TOOLS[name]
    root = cache_root() / "venvs"
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    stamp = path / ".bench-stamp"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == _stamp(reqs):
            return Venv(name, path)
        log(f"installing {' '.join(reqs)} into {path} (once; cached afterwards)")
        if path.exists():
            subprocess.run(["rm", "-rf", "--", str(path)], check=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", *reqs],
                       check=True, env=env)
        stamp.write_text(_stamp(reqs))
    return Venv(name, path)


def version_of(venv: Venv, package: str) -> str:
    out = subprocess.run([venv.exe("python"), "-c",
                          f"import importlib.metadata as m; print(m.version({package!r}))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    for tool in sys.argv[1:] or list(TOOLS):
        print(ensure(tool).path)
