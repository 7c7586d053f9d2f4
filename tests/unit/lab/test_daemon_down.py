"""`opsbook-lab exec|kill|...` when the lab's dockerd is not running: one line saying so and
what to run, exit 2, no traceback (found by a plugin author whose lab another suite took down)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsbook_lab.cli import main
from opsbook_lab.daemon import DockerDaemon, LabError


def _gone(tmp_path: Path) -> DockerDaemon:
    return DockerDaemon(socket=tmp_path / "docker.sock", data_root=tmp_path / "root", exec_root=tmp_path / "exec",
                        pidfile=tmp_path / "dockerd.pid", logfile=tmp_path / "dockerd.log")


def test_a_client_of_a_daemon_that_is_not_running_is_a_lab_error(tmp_path: Path) -> None:
    with pytest.raises(LabError, match=r"does not answer on unix://.*docker\.sock.*opsbook-lab up"):
        _gone(tmp_path).client(timeout=5)


def test_exec_with_the_daemon_down_says_so_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(DockerDaemon, "default", classmethod(lambda cls: _gone(tmp_path)))
    monkeypatch.delenv("OPSBOOK_LAB_DOCKER_HOST", raising=False)
    assert main(["exec", "db1", "redis-cli", "PING"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("opsbook-lab: error: ") and "opsbook-lab up" in err
    assert len(err.strip().splitlines()) == 1
