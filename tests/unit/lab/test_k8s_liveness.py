"""The k8s lab judges the components it started by their exit status, not by /proc.

Right after fork+exec (Python uses vfork), /proc/PID/cmdline can still show the parent's
command line for a moment; reading it once made the lab report a healthy etcd as dead.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from opsbook_lab import k8s


def test_a_started_component_is_alive_until_it_exits(tmp_path: Path):
    paths = k8s._Paths(tmp_path)
    paths.mkdirs()
    child = subprocess.Popen(["sleep", "30"], stdin=subprocess.DEVNULL)
    try:
        paths.pidfile("etcd").write_text(f"{child.pid}\n")
        k8s._CHILDREN["etcd"] = child
        # the binary is not the one /proc would have to show: liveness comes from the child
        assert k8s._alive_or_fail(paths, "etcd", tmp_path / "no-such-bin")
        child.kill()
        child.wait()
        (paths.logs / "etcd.log").write_text("bind: address already in use\n")
        with pytest.raises(k8s._Died, match="etcd exited during start-up(.|\n)*address already in use"):
            k8s._alive_or_fail(paths, "etcd", tmp_path / "no-such-bin")
    finally:
        k8s._CHILDREN.pop("etcd", None)
        if child.poll() is None:
            child.kill()
            child.wait()
